"""Daily focus lists: each morning in the person's own zone, their ranked work, once a day."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select

from bot import ids
from core.engine import DecisionEngine
from core.store import outbox
from core.store.models import AuditEvent, OutboxRow
from scheduler.context import SchedulerContext
from scheduler.focus import run_focus_list
from tests.bot.conftest import Harness

MONDAY_0835_NY = datetime(2026, 11, 23, 13, 35, tzinfo=UTC)


def _ctx(harness: Harness) -> SchedulerContext:
    return SchedulerContext(harness.db, policy=lambda: harness.policy, engine=DecisionEngine, clock=harness.clock)


def _rows(harness: Harness) -> list[OutboxRow]:
    with harness.db.sessions() as s:
        return list(s.execute(select(OutboxRow).where(OutboxRow.dedupe_key.like("focus:%"))).scalars())


def test_given_work_waiting_when_the_morning_comes_then_the_rep_gets_one_ranked_focus_list_that_day(
    harness: Harness,
) -> None:
    harness.decide_examples()
    harness.clock.at = MONDAY_0835_NY

    first = run_focus_list(_ctx(harness), "ana")
    again = run_focus_list(_ctx(harness), "ana")
    outbox.drain(harness.db, [harness.runtime.notifier], "test", harness.clock)

    assert first["sent"] is True and again["sent"] is False
    assert [r.dedupe_key for r in _rows(harness)] == ["focus:ana:2026-11-23"]
    [dm] = [m for m in harness.slack.im_for("U01ANA").messages if m.text.startswith("Your focus today")]
    assert dm.blocks[0]["text"]["text"] == "Your focus for Monday 23 November"
    sections = [b["text"]["text"] for b in dm.blocks if b["type"] == "section"]
    hot_at = sections.index("*🔥 Hot leads — call these first*")
    reviews_at = sections.index("*🙋 Reviews waiting for you* (most urgent first)")
    others_at = sections.index("*📋 Also waiting for your first touch*")
    assert hot_at < reviews_at < others_at
    assert "🔥 Hot" in sections[hot_at + 1]  # the hot lead comes first
    text = json.dumps(dm.blocks)
    assert ids.FIRST_TOUCH in text and ids.APPROVE in text
    assert dm.notifies.broadcasts == set() and dm.notifies.users == set()
    assert len(dm.blocks) <= 50


def test_given_the_time_and_day_when_the_job_runs_then_it_sends_only_on_the_persons_working_morning(
    harness: Harness,
) -> None:
    harness.decide_examples()
    ctx = _ctx(harness)
    harness.clock.at = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)  # 08:00 in New York: too early
    assert "before today's focus time" in run_focus_list(ctx, "ana")["skipped"]
    harness.clock.at = datetime(2026, 11, 22, 14, 0, tzinfo=UTC)  # a Sunday
    assert run_focus_list(ctx, "ana") == {"skipped": "not a working day"}
    harness.clock.at = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)  # 11:00: late (scheduler was down), still today
    assert run_focus_list(ctx, "ana")["sent"] is True
    assert run_focus_list(ctx, "rev") == {"skipped": "no focus list for this person in the policy"}  # admin only

    with harness.db.sessions() as s:
        query = select(AuditEvent.kind).where(AuditEvent.kind.like("focus.%")).order_by(AuditEvent.seq)
        kinds = s.execute(query).scalars().all()
    assert kinds == ["focus.skipped", "focus.late"]
