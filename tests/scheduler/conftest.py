"""Scheduler tests: a policy with SLAs, a clock moved by hand, and the job context built as
``loopgate serve`` builds it (the real engine; the policy read per run)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from core.engine import DecisionEngine
from core.policy import LoadedPolicy
from core.store.db import Database
from core.store.models import AuditEvent, OutboxRow, SlaClock, SlaStep
from scheduler.context import SchedulerContext
from tests.bot.conftest import Clock
from tests.builders import LeadBuilder, make_policy

SLA: dict[str, Any] = {
    "first_touch": {"hot": "15m", "warm": "4h", "cold": "2d"},
    "review": "2h",
    "nudge_at": [0.5, 0.9],
    "on_breach": [{"do": "notify_manager"}, {"after": "30m", "do": "reroute"}],
}
ESCALATION: dict[str, Any] = {"regulated_industry": {"industries": ["banking"]}}


def sla_policy(**overrides: Any) -> LoadedPolicy:
    values: dict[str, Any] = {"sla": SLA, "escalation": ESCALATION, "digest": {"channel": "C0LEAD"}}
    values.update(overrides)
    return make_policy(**values)


def hot_software_lead(lead_id: str = "00Q5e00000H0001", **values: Any) -> LeadBuilder:
    """Auto-assigned to a rep of team mm (no trigger fires), band hot."""
    return LeadBuilder(lead_id).with_(industry="Software", company="Initech", **values)


def context(db: Database, loaded: LoadedPolicy, clock: Clock) -> SchedulerContext:
    return SchedulerContext(db, policy=lambda: loaded, engine=lambda p: DecisionEngine(p), clock=clock)


@pytest.fixture
def clock(now: datetime) -> Iterator[Clock]:
    yield Clock(now)


def clocks(db: Database) -> list[SlaClock]:
    with db.sessions() as s:
        return list(s.execute(select(SlaClock).order_by(SlaClock.pk)).scalars())


def steps(db: Database, clock_pk: int | None = None) -> list[SlaStep]:
    with db.sessions() as s:
        query = select(SlaStep).order_by(SlaStep.pk)
        if clock_pk is not None:
            query = query.where(SlaStep.clock_pk == clock_pk)
        return list(s.execute(query).scalars())


def outbox(db: Database, prefix: str = "") -> list[OutboxRow]:
    with db.sessions() as s:
        return list(
            s.execute(select(OutboxRow).where(OutboxRow.dedupe_key.startswith(prefix)).order_by(OutboxRow.pk)).scalars()
        )


def audits(db: Database, prefix: str) -> list[AuditEvent]:
    with db.sessions() as s:
        return list(
            s.execute(select(AuditEvent).where(AuditEvent.kind.startswith(prefix)).order_by(AuditEvent.seq)).scalars()
        )


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


# the bot's harness (the app as ``loopgate serve`` composes it, against the fake Slack)
from tests.bot.conftest import harness, slack  # noqa: E402, F401
