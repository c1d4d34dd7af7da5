"""What the scheduler's jobs look like in Slack (the fake), end to end through the outbox:
nudges that ping nobody but their reader, the weekly digest posted once with its chart, the
audit sample's Confirm / Flag… stored as verdicts, and "I contacted them"."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from bot import ids
from bot.uploads import enqueue_file
from core.engine import DecisionEngine
from core.store import outbox
from core.store.models import AuditVerdict, Decision, Lead, OutboxRow, SlaClock
from core.store.outbox import DrainReport
from loopgate.sandbox.slack import FakeMessage
from scheduler.context import SchedulerContext
from scheduler.digest import run_weekly_digest
from scheduler.sla_scan import run_sla_scan
from tests.bot.conftest import Harness
from tests.builders import decide, example_leads

MONDAY = datetime(2026, 11, 23, 13, 5, tzinfo=UTC)  # 08:05 in New York: W47 is complete
PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 64
PENDING = "00Q5e00000A0003"  # escalated: waits for a person
EVIL = "106"  # first name "<!channel>", last name "@here <@U01ANA>", company "<script>…": assigned to Ana


def _ctx(harness: Harness) -> SchedulerContext:
    return SchedulerContext(
        harness.db, policy=lambda: harness.policy, engine=lambda p: DecisionEngine(p), clock=harness.clock
    )


def _drain(harness: Harness) -> DrainReport:
    assert harness.runtime.uploader is not None
    return outbox.drain(harness.db, [harness.runtime.notifier, harness.runtime.uploader], "test", harness.clock)


def _safe(message: FakeMessage) -> None:
    assert message.notifies.broadcasts == set()
    assert message.notifies.users == set()


def test_given_an_owner_in_new_york_when_nudged_then_the_notification_says_the_deadline_in_their_time(
    harness: Harness,
) -> None:
    """The notification's text (lock screen, email) cannot show a <!date> in the reader's zone."""
    pk = harness.decide_examples(EVIL)[EVIL]
    harness.clock.at += timedelta(hours=2)  # half of the warm first-touch SLA (4 h)
    run_sla_scan(_ctx(harness))
    _drain(harness)
    [nudge] = [m for m in harness.slack.im_for("U01ANA").messages if "Reminder" in m.text]
    with harness.db.sessions() as s:
        due = s.execute(select(SlaClock.due_at).where(SlaClock.decision_pk == pk)).scalar_one()
    local = due.astimezone(ZoneInfo("America/New_York"))
    assert nudge.text.endswith(f" by {local:%-I:%M %p} EST, Fri 20 Nov")
    assert "UTC" not in nudge.text


def test_given_a_hostile_lead_when_its_owner_is_nudged_then_only_the_owner_reads_it_and_nobody_is_pinged(
    harness: Harness,
) -> None:
    pk = harness.decide_examples(EVIL)[EVIL]
    start = harness.clock.at - timedelta(minutes=10)
    harness.clock.at = start + timedelta(hours=2)  # half of the warm first-touch SLA (4 h)
    run_sla_scan(_ctx(harness))
    _drain(harness)

    [nudge] = [m for m in harness.slack.im_for("U01ANA").messages if "Reminder" in m.text]
    _safe(nudge)
    text = json.dumps(nudge.blocks, ensure_ascii=False)
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text and "<@U01ANA>" not in text
    assert ids.FIRST_TOUCH in text
    with harness.db.sessions() as s:
        clock_pk = s.execute(select(SlaClock.pk).where(SlaClock.decision_pk == pk)).scalar_one()

    delivery = harness.slack.click("U01ANA", ids.FIRST_TOUCH, channel=nudge.channel, ts=nudge.ts, value=str(clock_pk))
    harness.settle()
    assert delivery.status == 200
    with harness.db.sessions() as s:
        clock = s.get(SlaClock, clock_pk)
    assert clock is not None and (clock.state, clock.met_via, clock.met_at) == ("met", "slack", harness.clock.at)
    assert "Noted: first touch" in harness.slack.ephemerals_for("U01ANA")[-1].text

    harness.slack.click("U01ANA", ids.FIRST_TOUCH, channel=nudge.channel, ts=nudge.ts, value=str(clock_pk))
    harness.settle()
    assert "not waiting for a first touch any more" in harness.slack.ephemerals_for("U01ANA")[-1].text


def _nudges(harness: Harness) -> list[OutboxRow]:
    return [r for r in harness.outbox_rows("slack.message") if r.dedupe_key.startswith("sla:")]


def test_given_a_review_nudge_queued_when_the_review_is_approved_before_it_is_sent_then_it_is_not_sent(
    harness: Harness,
) -> None:
    pk = harness.decide_examples(PENDING)[PENDING]
    _drain(harness)  # the escalation is posted
    harness.clock.at += timedelta(minutes=50)  # half of the review SLA (2 h) since the decision
    run_sla_scan(_ctx(harness))
    [nudge] = _nudges(harness)

    harness.click("U01REV", ids.APPROVE, pk)  # handled before the outbox gets to the nudge
    _drain(harness)

    reader = harness.slack.im_for(nudge.payload["user"])
    assert [m for m in reader.messages if "Reminder" in m.text] == []  # of a review already done
    [nudge] = _nudges(harness)
    assert nudge.status == "done" and nudge.result == {"skipped": "the SLA clock is answered"}


def test_given_a_first_touch_nudge_queued_when_the_crm_shows_a_touch_before_it_is_sent_then_it_is_not_sent(
    harness: Harness,
) -> None:
    harness.decide_examples(EVIL)
    harness.clock.at += timedelta(minutes=110)  # half of the warm first-touch SLA (4 h)
    run_sla_scan(_ctx(harness))
    [nudge] = _nudges(harness)
    with harness.db.transaction() as s:  # the CRM sync brings Ana's first call (the scan settles later)
        s.execute(update(Lead).values(first_touch_at=harness.clock.at))

    _drain(harness)

    assert [m for m in harness.slack.im_for("U01ANA").messages if "Reminder" in m.text] == []
    [nudge] = _nudges(harness)
    assert nudge.status == "done" and nudge.result == {"skipped": "the SLA clock is answered"}


def test_given_a_second_nudge_queued_when_the_owner_says_they_contacted_the_lead_before_it_is_sent_then_it_is_not_sent(
    harness: Harness,
) -> None:
    pk = harness.decide_examples(EVIL)[EVIL]
    start = harness.clock.at - timedelta(minutes=10)
    harness.clock.at = start + timedelta(hours=2)  # the first nudge: half of the warm SLA (4 h)
    run_sla_scan(_ctx(harness))
    _drain(harness)
    [first] = [m for m in harness.slack.im_for("U01ANA").messages if "Reminder" in m.text]
    harness.clock.at = start + timedelta(hours=3.6)  # the second nudge is queued
    run_sla_scan(_ctx(harness))
    with harness.db.sessions() as s:
        clock_pk = s.execute(select(SlaClock.pk).where(SlaClock.decision_pk == pk)).scalar_one()

    harness.slack.click("U01ANA", ids.FIRST_TOUCH, channel=first.channel, ts=first.ts, value=str(clock_pk))
    harness.settle()
    _drain(harness)

    assert [m for m in harness.slack.im_for("U01ANA").messages if "Reminder" in m.text] == [first]
    assert [(r.status, r.result) for r in _nudges(harness)][1] == ("done", {"skipped": "the SLA clock is answered"})


def test_given_a_first_touch_nudge_queued_when_the_lead_is_escalated_before_it_is_sent_then_it_is_not_sent(
    harness: Harness,
) -> None:
    harness.decide_examples(EVIL)
    harness.clock.at += timedelta(minutes=110)  # half of the warm first-touch SLA (4 h)
    run_sla_scan(_ctx(harness))

    # banking is regulated: decided again for a review, Ana owes no first touch any more
    decide(harness.db, harness.policy, [{**example_leads()[EVIL], "industry": "Banking"}], harness.clock.at)
    _drain(harness)

    assert [m for m in harness.slack.im_for("U01ANA").messages if "Reminder" in m.text] == []
    assert [(r.status, r.result) for r in _nudges(harness)] == [("done", {"skipped": "the SLA clock is answered"})]


def test_given_the_scheduler_was_down_when_one_scan_breaches_and_re_routes_then_the_manager_still_hears_of_the_breach(
    harness: Harness,
) -> None:
    harness.decide_examples(EVIL)
    harness.clock.at += timedelta(hours=5)  # past the breach (4 h) and the re-route (30 min after)
    run_sla_scan(_ctx(harness))

    _drain(harness)

    assert [m for m in harness.slack.im_for("U01LEE").messages if m.text.startswith("SLA breached")]


def _digest_week(harness: Harness) -> list[int]:
    """The example leads decided on Friday of W47; the automatic decisions the engine sampled."""
    harness.decide_examples()
    harness.clock.at = MONDAY
    with harness.db.sessions() as s:
        query = select(Decision.pk).where(Decision.audit_sample.is_(True)).order_by(Decision.pk)
        return list(s.execute(query).scalars())


def test_given_a_complete_week_when_the_digest_job_runs_twice_then_summary_chart_and_sample_are_posted_once(
    harness: Harness,
) -> None:
    sampled = _digest_week(harness)
    first = run_weekly_digest(_ctx(harness))
    again = run_weekly_digest(_ctx(harness))
    report = _drain(harness)

    assert (first["posted"], again["posted"]) == (["2026-W47"], [])
    assert report.dead == 0 and report.retried == 0
    leaders = harness.slack.messages("C0LEADERS")
    summary, sample = (m for m in leaders if not m.files)
    [chart] = [m for m in leaders if m.files]
    assert summary.blocks[0]["text"]["text"].startswith("Weekly audit · 2026-W47")
    assert [f["name"] for f in chart.files] == ["loopgate-digest-2026-W47.png"]
    [file] = harness.slack.files.values()
    assert file["content"][:8] == b"\x89PNG\r\n\x1a\n" and file["shared"] == ["C0LEADERS"]
    for message in (summary, sample):
        _safe(message)
    assert len(sampled) >= 2 and json.dumps(sample.blocks).count(ids.AUDIT_CONFIRM) == len(sampled)


def test_given_an_upload_response_is_lost_when_retried_then_the_file_is_in_the_channel_once(
    harness: Harness,
) -> None:
    # the app's clock stays behind the fake Slack's (wall) clock, as it would be in production
    with harness.db.transaction() as s:
        enqueue_file(
            s, "digest:2026-W47:chart", channel="C0LEADERS", filename="loopgate-digest-2026-W47.png",
            content=PNG, title="chart", comment="Weekly audit 2026-W47", now=harness.clock.at,
        )  # fmt: skip
    harness.slack.lose_responses("files.completeUploadExternal")
    first = _drain(harness)
    harness.clock.advance(minutes=5)
    second = _drain(harness)
    third = _drain(harness)

    assert (first.retried, second.done, third.done) == (1, 1, 0)
    assert len([m for m in harness.slack.messages("C0LEADERS") if m.files]) == 1
    assert [f["content"] for f in harness.slack.files.values()] == [PNG]


def _sample_message(harness: Harness) -> FakeMessage:
    return next(m for m in harness.slack.messages("C0LEADERS") if ids.AUDIT_CONFIRM in json.dumps(m.blocks))


def test_given_the_audit_sample_when_leaders_confirm_and_flag_then_verdicts_are_stored_once_each(
    harness: Harness,
) -> None:
    sampled = _digest_week(harness)
    run_weekly_digest(_ctx(harness))
    _drain(harness)
    sample = _sample_message(harness)
    target = str(sampled[0])

    harness.slack.click("U01LEE", ids.AUDIT_CONFIRM, channel=sample.channel, ts=sample.ts, value=target)
    harness.settle()
    harness.slack.click("U01LEE", ids.AUDIT_CONFIRM, channel=sample.channel, ts=sample.ts, value=target)
    harness.settle()
    harness.slack.click("U0STRANGER", ids.AUDIT_CONFIRM, channel=sample.channel, ts=sample.ts, value=target)
    harness.settle()
    refreshed = harness.slack.message(sample.channel, sample.ts)
    assert "Confirmed by Lee Chen" in json.dumps(refreshed.blocks)
    assert "already gave this decision a verdict" in harness.slack.ephemerals_for("U01LEE")[-1].text
    assert "for admins and team managers" in harness.slack.ephemerals_for("U0STRANGER")[-1].text

    harness.slack.click("U01MO", ids.AUDIT_FLAG, channel=sample.channel, ts=sample.ts, value=target)
    harness.settle()
    [modal] = harness.slack.open_views("U01MO")
    harness.slack.submit(modal.id, "U01MO", {ids.BLOCK_REASON: None})
    assert modal.errors == {ids.BLOCK_REASON: "choose a reason for the flag"}
    harness.slack.submit(modal.id, "U01MO", {ids.BLOCK_REASON: "data_quality", ids.BLOCK_NOTE: "title is <!here>"})
    harness.settle()
    assert not modal.open

    with harness.db.sessions() as s:
        rows = s.execute(select(AuditVerdict).order_by(AuditVerdict.pk)).scalars().all()
    assert [(v.decision_pk, v.verdict, v.reason_code, v.reviewer) for v in rows] == [
        (int(target), "confirm", None, "lee"),
        (int(target), "flag", "data_quality", "mo"),
    ]
    final = harness.slack.message(sample.channel, sample.ts)
    assert "Flagged by Mo Haddad (Bad or missing data)" in json.dumps(final.blocks, ensure_ascii=False)
    _safe(final)
