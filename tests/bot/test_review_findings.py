"""Regressions found in review of the bot: each test states what a RevOps team would expect
(it failed before its fix). Driven as the other bot tests are: the fake Slack, signed clicks,
the outbox."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
import yaml
from slack_sdk.models.blocks import Block

from bot import ids
from core.policy import LoadedPolicy, parse_policy
from core.store.db import Database
from core.store.models import Decision
from core.store.outbox import RetryPolicy
from loopgate.sandbox.slack import FakeSlack
from tests.bot.conftest import Harness, escalate, reviews, serving
from tests.builders import LeadBuilder

LEAD = LeadBuilder("00Q5e00000F0001")  # a banking lead: reviewed, routed to the mid-market team


def test_given_the_review_channel_was_archived_when_the_lead_is_approved_then_the_owners_dm_copy_still_updates(
    harness: Harness,
) -> None:
    """The team archives its old review channel; the owner approves from their DM copy. The
    channel copy can no longer be edited (``is_archived``), but the DM copy — the one the owner
    is looking at — must still lose its buttons and say who approved."""
    pk, owner = escalate(harness, LEAD)
    harness.click(owner, ids.APPROVE, pk, target="dm")
    harness.slack.inject(r"^/api/chat\.update$", 200, body={"ok": False, "error": "is_archived"})
    report = harness.drain()
    dm = harness.posted(pk, "dm")
    assert len(dm.edits) == 1, f"DM copy never updated (drain: {report}); it still shows Approve/Reassign/Override"
    assert not any(b["type"] == "actions" for b in dm.blocks)
    [row] = harness.outbox_rows("slack.decision_update")
    assert row.status == "done" and row.result is not None
    assert row.result["refused"] == {f"escalation:{pk}:channel": "is_archived"}  # recorded, not retried


def test_given_slack_fails_once_on_one_copy_when_the_update_is_retried_then_each_copy_is_edited_once(
    harness: Harness,
) -> None:
    """A transient failure on the channel copy must neither keep the DM copy waiting nor, on
    the retry, edit the DM copy a second time."""
    pk, owner = escalate(harness, LEAD)
    harness.click(owner, ids.APPROVE, pk, target="dm")
    harness.slack.inject(r"^/api/chat\.update$", 503, body="upstream error")  # the first edit: the channel copy
    report = harness.drain()
    assert report.retried == 1 and report.done == 0
    channel, dm = harness.posted(pk), harness.posted(pk, "dm")
    assert (len(channel.edits), len(dm.edits)) == (0, 1)
    [row] = harness.outbox_rows("slack.decision_update")
    harness.clock.at = row.available_at
    assert harness.drain().done == 1
    channel, dm = harness.posted(pk), harness.posted(pk, "dm")
    assert (len(channel.edits), len(dm.edits)) == (1, 1)
    assert not any(b["type"] == "actions" for m in (channel, dm) for b in m.blocks)


def test_given_slack_down_for_about_an_hour_when_it_is_back_then_the_escalation_is_still_posted(
    harness: Harness,
) -> None:
    """Slack has outages of an hour or more (and a rotated/revoked bot token looks the same
    until someone fixes it). An escalation queued meanwhile must be posted once Slack answers
    again — a lead that waits in review with no message is never decided by anyone."""
    started = harness.clock.at
    pk = harness.decide(LEAD.raw(harness.clock.at))[LEAD.id]
    # every post fails for 10 attempts (channel copy and DM copy each time), then Slack is back
    harness.slack.inject(r"^/api/chat\.postMessage$", 503, times=20, body="upstream error")
    for _ in range(12):
        harness.drain()
        [row] = harness.outbox_rows("slack.escalation")
        if row.status != "pending":
            break
        harness.clock.at = max(harness.clock.at, row.available_at)
    outage = harness.clock.at - started
    harness.clock.advance(hours=1)
    harness.drain()
    [row] = harness.outbox_rows("slack.escalation")
    posted = [m for m in harness.slack.all_messages() if m.metadata["event_payload"]["key"].startswith("escalation:")]  # type: ignore[index]
    assert posted, (
        f"escalation for decision {pk} is {row.status} after a {outage} Slack outage and never posted: {row.last_error}"
    )
    # ten attempts' backoff with its jitter: 36 to 73 minutes (5 s doubling, capped at 30 min)
    assert outage <= sum((RetryPolicy().ceiling(n) for n in range(1, 11)), timedelta())


def test_given_the_bot_token_revoked_when_an_admin_fixes_it_a_day_later_then_the_escalations_are_posted(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A revoked or rotated token fails every call the same way until an admin fixes it: the
    effects wait for that (one probe per batch, not one per row), the log says what to fix,
    and nothing is given up on however many times it is tried."""
    pks = harness.decide_examples("00Q5e00000A0003", "00Q5e00000A0004")
    assert len(pks) == 2
    harness.slack.tokens.discard(harness.slack.bot_token)
    before = len(harness.slack.api_log)
    waits = []
    with caplog.at_level("ERROR", logger="bot.errors"):
        for _ in range(40):  # four times the outbox's attempts
            report = harness.drain()
            assert report.dead == 0
            rows = harness.outbox_rows("slack.escalation")
            assert all(r.status == "pending" and r.attempts <= 1 for r in rows), [(r.status, r.attempts) for r in rows]
            waits.append(min(r.available_at for r in rows) - harness.clock.at)
            harness.clock.at = min(r.available_at for r in rows)
    assert set(waits) == {timedelta(minutes=15)}, waits  # as long as an admin may take: no backoff to outgrow
    # one row's two copies probed per drain, the other row waited without a call
    calls = harness.slack.api_log[before:]
    assert all(error == "invalid_auth" for _, _, error in calls) and len(calls) == 2 * 40
    assert any("invalid_auth" in r.getMessage() and "SLACK_BOT_TOKEN" in r.getMessage() for r in caplog.records)
    [row, _] = harness.outbox_rows("slack.escalation")
    assert "invalid_auth" in (row.last_error or "")  # the row says why it waits, too

    harness.slack.tokens.add(harness.slack.bot_token)  # the admin fixes it
    harness.clock.advance(minutes=15)
    assert harness.drain().done == 2
    assert len(harness.slack.messages("C0MMREVIEW")) == 2


def test_given_slack_loses_a_posts_response_during_an_outage_when_it_is_back_then_the_post_is_not_doubled(
    harness: Harness,
) -> None:
    """An outage's 5xx can hide a post that went through. The outbox counts no attempt for a
    deferred row, yet every attempt after the first must still look for such a post."""
    pks = harness.decide_examples("00Q5e00000A0003")
    harness.slack.inject(r"^/api/chat\.postMessage$", 503, times=2, body="upstream error")
    harness.drain()  # nothing posted
    [row] = harness.outbox_rows("slack.escalation")
    harness.clock.at = row.available_at
    harness.slack.lose_responses("chat.postMessage", times=2)
    harness.drain()  # both copies posted, both answers lost
    for _ in range(2):
        [row] = harness.outbox_rows("slack.escalation")
        harness.clock.at = max(harness.clock.at, row.available_at)
        harness.drain()
    [row] = harness.outbox_rows("slack.escalation")
    assert row.status == "done"
    assert len(harness.slack.messages("C0MMREVIEW")) == 1
    dm = harness.posted(pks["00Q5e00000A0003"], "dm")
    assert len(harness.slack.messages(dm.channel)) == 1


def test_given_over_100_reps_and_the_proposed_owner_now_away_when_only_the_band_is_overridden_then_it_is_recorded(
    db: Database, example_policy: LoadedPolicy, slack: FakeSlack, now: datetime
) -> None:
    """A sales org with more than 100 reps gets a users_select as the override modal's owner
    picker, pre-filled with the proposed owner. A manager who only lowers the band (owner left
    as it is) must not be refused because that owner went out of office since the decision —
    with a static select (under 100 reps) the same override is accepted."""
    doc = yaml.safe_load(example_policy.text)
    for rep in doc["reps"]:
        if rep["id"] == "ana":
            rep["out_of_office"] = [{"start": date(2026, 11, 23), "end": date(2026, 11, 30)}]
    doc["reps"] += [
        {"id": f"r{i:03d}", "name": f"Rep {i}", "slack_user": f"U9{i:03d}", "team": "ent", "timezone": "UTC",
         "crm": {"salesforce": f"0055e00000R{i:04d}"}}
        for i in range(120)
    ]  # fmt: skip
    big = parse_policy(yaml.safe_dump(doc, allow_unicode=True), "big.yaml")
    with serving(db, big, slack, now) as harness:
        lead = LEAD.with_(lead_source="partner_referral")  # vip_referrals: hot → Ana
        pk, owner = escalate(harness, lead)
        assert owner == "U01ANA"
        harness.clock.advance(days=3)  # Monday: Ana is out of office from today
        harness.click("U01LEE", ids.OVERRIDE, pk)
        [modal] = harness.slack.open_views("U01LEE")
        picker = next(b for b in modal.view["blocks"] if b.get("block_id") == ids.BLOCK_OWNER)["element"]
        assert picker["type"] == "users_select" and picker["initial_user"] == "U01ANA"
        answer = harness.slack.submit(modal.id, "U01LEE", {ids.BLOCK_REASON: "wrong_segment", ids.BLOCK_BAND: "warm"})
        assert answer.body.strip() == "", f"override of the band refused: {answer.body}"
        [review] = reviews(harness.db)
        assert (review.after["band"], review.after["owner"]) == ("warm", "ana")


def test_given_an_approve_acknowledged_when_its_worker_records_it_later_then_the_review_keeps_the_click_time(
    harness: Harness,
) -> None:
    """The ack stores the click; a worker records it — at once normally, but after the lease
    (2 min) when the replica that took it died, or later while the store was away. The review's
    time (shown as "Approved by … at …", used for the review SLA, the audit log and the median
    time to decide) must be when the person clicked, not when a worker got round to it."""
    pk, owner = escalate(harness, LEAD)
    message = harness.posted(pk)
    clicked_at = harness.clock.at
    assert harness.slack.click(owner, ids.APPROVE, channel=message.channel, ts=message.ts).status == 200
    assert harness.runtime.pool.wait_idle(10)
    harness.clock.advance(minutes=3)  # the worker that took it died; another takes it after the lease
    harness.settle()
    [review] = reviews(harness.db)
    assert review.decided_at == clicked_at, f"recorded at {review.decided_at}, clicked at {clicked_at}"


def test_given_an_approve_clicked_before_the_review_deadline_when_recorded_after_it_then_the_sla_was_met(
    harness: Harness, now: datetime
) -> None:
    """The review SLA is answered when the person clicked: a click a minute before the 2 h
    deadline, recorded after it by the next worker, is not a breach."""
    from core.engine import DecisionEngine
    from core.store.models import SlaClock
    from scheduler.context import SchedulerContext
    from scheduler.sla_scan import run_sla_scan

    pk, owner = escalate(harness, LEAD)
    message = harness.posted(pk)
    harness.clock.at = clicked_at = now + timedelta(hours=2) - timedelta(minutes=1)
    assert harness.slack.click(owner, ids.APPROVE, channel=message.channel, ts=message.ts).status == 200
    assert harness.runtime.pool.wait_idle(10)
    harness.clock.advance(minutes=3)
    harness.settle()
    run_sla_scan(
        SchedulerContext(harness.db, policy=lambda: harness.policy, engine=DecisionEngine, clock=harness.clock)
    )
    with harness.db.sessions() as s:
        [clock] = s.query(SlaClock).filter(SlaClock.decision_pk == pk, SlaClock.kind == "review").all()
        assert (clock.state, clock.met_at, clock.breached_at) == ("met", clicked_at, None)


def test_given_an_approve_acknowledged_before_the_reroute_when_the_scan_runs_first_then_the_approve_still_counts(
    harness: Harness, now: datetime
) -> None:
    """The owner approves one second before the policy re-routes the review (2 h SLA, re-route
    30 min after the breach). Slack shows the click as accepted; the worker that took it dies
    and the next one records it after the lease. Meanwhile the SLA scan sees no review and
    re-routes the lead — then the owner's acknowledged approve is refused as out of date."""
    from core.engine import DecisionEngine
    from scheduler.context import SchedulerContext
    from scheduler.sla_scan import run_sla_scan

    pk, owner = escalate(harness, LEAD)
    message = harness.posted(pk)
    harness.clock.at = now + timedelta(hours=2, minutes=30) - timedelta(seconds=1)
    assert harness.slack.click(owner, ids.APPROVE, channel=message.channel, ts=message.ts).status == 200
    assert harness.runtime.pool.wait_idle(10)
    harness.clock.advance(seconds=2)
    scan = SchedulerContext(harness.db, policy=lambda: harness.policy, engine=DecisionEngine, clock=harness.clock)
    held = run_sla_scan(scan).steps  # the nudges and breach notice due before it go out; the re-route
    assert held["held_for_click"] == 1 and "rerouted" not in held, held  # is not claimed: the next scan looks again
    harness.clock.advance(minutes=2)
    harness.settle()
    told = harness.slack.ephemerals_for(owner)
    assert [r.reviewer for r in reviews(harness.db)] == [owner], f"the approve was refused: {[t.text for t in told]}"
    assert "reroute" not in run_sla_scan(scan).steps  # answered: the clock settles, nobody re-routes
    with harness.db.sessions() as s:
        assert s.query(Decision).count() == 1


def test_given_an_escalation_rerouted_at_its_deadline_when_the_late_owner_approves_then_told_it_was_rerouted(
    harness: Harness, now: datetime
) -> None:
    """No click waited, so the scan re-routed the lead; the late owner then clicks Approve on
    the message before its update arrives. The refusal names the cause, not a lead change."""
    from core.engine import DecisionEngine
    from scheduler.context import SchedulerContext
    from scheduler.sla_scan import run_sla_scan

    pk, owner = escalate(harness, LEAD)
    harness.clock.at = now + timedelta(hours=2, minutes=31)
    scan = SchedulerContext(harness.db, policy=lambda: harness.policy, engine=DecisionEngine, clock=harness.clock)
    assert run_sla_scan(scan).steps.get("rerouted") == 1
    harness.click(owner, ids.APPROVE, pk)
    [told] = harness.slack.ephemerals_for(owner)
    assert "deadline passed and the lead was re-routed" in told.text and "lead changed" not in told.text, told.text
    assert reviews(harness.db) == []


def test_given_an_override_to_warm_and_a_new_owner_when_the_new_owner_is_told_then_their_dm_shows_warm(
    harness: Harness,
) -> None:
    """Lee overrides a lead: not hot but warm, and Dana's. Dana's DM ("New lead for you") is
    the only thing she sees about it: it must show the band the person decided, not the one
    automation proposed and the person rejected."""
    pk, _ = escalate(harness, LEAD)
    harness.click("U01LEE", ids.OVERRIDE, pk)
    [modal] = harness.slack.open_views("U01LEE")
    answer = harness.slack.submit(
        modal.id, "U01LEE", {ids.BLOCK_REASON: "wrong_segment", ids.BLOCK_BAND: "warm", ids.BLOCK_OWNER: "dana"}
    )
    assert answer.body.strip() == ""
    harness.drain()
    harness.drain()
    [told] = harness.slack.messages("U01DANA")
    summary = told.blocks[0]["text"]["text"]
    assert "Warm" in summary and "Hot" not in summary, summary
    assert "*What changed:* owner Ana Ruiz → Dana Weiss; band hot → warm" in summary, summary
    for block in told.blocks:
        Block.parse(block).validate_json()  # type: ignore[union-attr]
