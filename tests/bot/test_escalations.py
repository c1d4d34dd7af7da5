"""Escalations and assignments reach Slack through the outbox: complete, safe, exactly once."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from slack_sdk.models.blocks import Block

from bot import ids
from bot.notifier import enqueue_message
from core.policy import LoadedPolicy, parse_policy
from core.policy.schema import Rep
from core.store import outbox
from core.store.db import Database
from core.store.models import Decision
from core.store.outbox import RetryPolicy
from loopgate.runtime import compose
from loopgate.sandbox.slack import FakeMessage, FakeSlack
from tests.bot.conftest import Clock, Harness, settings_for
from tests.builders import LeadBuilder, example_leads

EVIL = example_leads()["106"]  # first name "<!channel>", last name "@here <@U01ANA>", company "<script>…"


def _owner(harness: Harness, decision_pk: int) -> Rep:
    with harness.db.sessions() as s:
        row = s.get(Decision, decision_pk)
    assert row is not None and row.owner_kind == "rep"
    return harness.runtime.context.rules.roster.reps[row.owner or ""]


def _mrkdwn(node: object) -> list[str]:
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn":
            return [str(node["text"])]
        return [t for v in node.values() for t in _mrkdwn(v)]
    if isinstance(node, list):
        return [t for v in node for t in _mrkdwn(v)]
    return []


def _texts(message: FakeMessage) -> str:
    return json.dumps(message.blocks, ensure_ascii=False)


def _assert_valid(message: FakeMessage) -> None:
    """What Slack holds passes slack_sdk.models, the 50-block limit and pings nobody."""
    assert 0 < len(message.blocks) <= 50
    for block in message.blocks:
        Block.parse(block).validate_json()  # type: ignore[union-attr]
    assert message.notifies.broadcasts == set()
    assert "parse" not in message.args and "link_names" not in message.args


def test_given_review_decisions_when_the_outbox_drains_then_each_is_posted_to_its_team_channel_and_the_owner(
    harness: Harness,
) -> None:
    pks = harness.decide_examples("00Q5e00000A0003", "00Q5e00000A0004", "00Q5e00000A0002")
    report = harness.drain()
    assert report.dead == 0 and report.retried == 0
    mid = harness.posted(pks["00Q5e00000A0004"])
    assert mid.channel == "C0MMREVIEW"
    text = _texts(mid)
    owner = _owner(harness, pks["00Q5e00000A0004"])
    # why it is theirs and what to do, at a glance
    for expected in ("Review: Raj Iyer · QuantaForge", f"<@{owner.slack_user}>", "High deal size", "250,000"):
        assert expected in text
    zone = datetime(2026, 11, 20, tzinfo=ZoneInfo(owner.timezone)).tzname()
    assert "Decide by:* " in text and f" {zone}, Fri 20 Nov" in text
    assert "Call within 15 min" in text  # next-best-action, and its button
    buttons = [e["action_id"] for b in mid.blocks if b["type"] == "actions" for e in b["elements"]]
    assert buttons == [ids.APPROVE, ids.REASSIGN, ids.OVERRIDE, ids.NEXT_BEST_ACTION]
    assert mid.metadata == {
        "event_type": ids.METADATA_EVENT,
        "event_payload": {"key": f"escalation:{pks['00Q5e00000A0004']}:channel"},
    }
    dm = harness.posted(pks["00Q5e00000A0004"], "dm")
    assert harness.slack.channels[dm.channel].im_user == owner.slack_user
    assert "You are the recommended owner" in _texts(dm)
    ent = harness.posted(pks["00Q5e00000A0002"])  # strategic account owned by dana, enterprise EMEA
    assert ent.channel == "C0ENTREVIEW" and "CET" in _texts(ent)  # due time in the owner's zone
    for message in harness.slack.all_messages():
        _assert_valid(message)
    assert mid.notifies.users == {owner.slack_user}  # the only person pinged is the recommended owner


def test_given_posted_escalations_when_the_effect_runs_again_then_nothing_is_posted_twice(harness: Harness) -> None:
    pks = harness.decide_examples("00Q5e00000A0003")
    harness.drain()
    before = len(harness.slack.all_messages())
    row = harness.outbox_rows("slack.escalation")[0]
    # the outbox is at-least-once: perform the same effect again, as a second worker would
    from core.store.outbox import OutboxItem

    item = OutboxItem(row.pk, row.kind, row.dedupe_key, row.payload, 2, row.created_at)
    outcome = harness.runtime.notifier.perform([item])[row.pk]
    assert outcome.result["channel"]["new"] is False  # type: ignore[union-attr]
    assert len(harness.slack.all_messages()) == before == 2
    assert harness.posted(pks["00Q5e00000A0003"]).channel == "C0MMREVIEW"


def test_given_a_lost_response_when_the_effect_is_retried_then_the_message_is_found_not_posted_again(
    harness: Harness,
) -> None:
    pks = harness.decide_examples("00Q5e00000A0003")
    harness.slack.lose_responses("chat.postMessage")  # Slack posts, the worker never hears back
    first = harness.drain()
    assert first.retried == 1
    assert len(harness.slack.messages("C0MMREVIEW")) == 1  # it *was* posted
    harness.clock.advance(minutes=5)
    second = harness.drain()
    assert second.done == 1
    assert len(harness.slack.messages("C0MMREVIEW")) == 1  # found by its metadata, not posted again
    assert len(harness.slack.messages(_owner(harness, pks["00Q5e00000A0003"]).slack_user or "")) == 1
    assert harness.posted(pks["00Q5e00000A0003"]).ts == harness.slack.messages("C0MMREVIEW")[0].ts
    assert harness.slack.api_calls("conversations.history")[0]["include_all_metadata"] in (True, "1", "true")


def test_given_two_workers_racing_on_one_effect_when_both_post_then_one_message_remains(harness: Harness) -> None:
    """A lease that runs out under a slow call lets a second worker take the same row."""
    import threading

    from core.store.outbox import OutboxItem

    pks = harness.decide_examples("00Q5e00000A0003")
    row = next(r for r in harness.outbox_rows("slack.escalation"))
    item = OutboxItem(row.pk, row.kind, row.dedupe_key, row.payload, 1, row.created_at)
    harness.slack.latency = 0.3  # both read "not posted yet" before either records
    results = []
    threads = [threading.Thread(target=lambda: results.append(harness.runtime.notifier.perform([item]))) for _ in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(harness.slack.messages("C0MMREVIEW")) == 1
    deleted_keys = {m.metadata["event_payload"]["key"].rsplit(":", 1)[1] for m in harness.slack.deleted}  # type: ignore[index]
    assert "channel" in deleted_keys  # the loser took back its copy (of the DM too, if it got that far)
    assert harness.posted(pks["00Q5e00000A0003"]).ts == harness.slack.messages("C0MMREVIEW")[0].ts
    dms = [c for c in harness.slack.channels.values() if c.is_im]
    assert [len(c.messages) for c in dms] == [1]


def test_given_slack_rate_limits_when_draining_then_the_batch_waits_for_retry_after(harness: Harness) -> None:
    harness.decide_examples("00Q5e00000A0003", "00Q5e00000A0004")
    harness.slack.inject(
        r"^/api/chat\.postMessage$", 429, headers={"Retry-After": "42"}, body={"ok": False, "error": "ratelimited"}
    )
    report = harness.drain()
    assert report.retried == 2 and report.done == 0
    assert len(harness.slack.api_calls("chat.postMessage")) == 0  # the second item did not hit the limit again
    rows = harness.outbox_rows("slack.escalation")
    assert all(r.available_at == harness.clock.at + timedelta(seconds=42) for r in rows)
    assert harness.drain().done == 0  # not due yet
    harness.clock.advance(seconds=42)
    assert harness.drain().done == 2
    assert len(harness.slack.messages("C0MMREVIEW")) == 2


def test_given_the_bot_is_not_in_the_review_channel_when_escalated_then_the_owner_hears_and_the_channel_waits(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.slack.channels["C0MMREVIEW"].members.discard(harness.slack.bot_user_id)  # never invited
    pks = harness.decide_examples("00Q5e00000A0003")
    owner = _owner(harness, pks["00Q5e00000A0003"]).slack_user or ""
    with caplog.at_level("WARNING", logger="bot.errors"):
        report = harness.drain()
    assert report.retried == 1 and report.dead == 0
    assert [m.text.split(":")[0] for m in harness.slack.messages(owner)] == ["Review needed"]  # not held back
    [row] = harness.outbox_rows("slack.escalation")
    assert row.status == "pending" and row.available_at == harness.clock.at + timedelta(minutes=15)
    assert any("C0MMREVIEW" in r.getMessage() and "/invite" in r.getMessage() for r in caplog.records)

    harness.slack.channels["C0MMREVIEW"].members.add(harness.slack.bot_user_id)  # someone invites it
    harness.clock.advance(minutes=15)
    assert harness.drain().done == 1
    assert len(harness.slack.messages("C0MMREVIEW")) == 1
    assert len(harness.slack.messages(owner)) == 1  # the retry posted only the missing copy
    _assert_valid(harness.posted(pks["00Q5e00000A0003"]))


def test_given_a_burst_of_posts_to_one_channel_when_slack_paces_them_then_every_one_is_posted(
    harness: Harness,
) -> None:
    """Slack takes about one post a second per channel: a burst is sent one row per Retry-After,
    and the rows waiting their turn must not use up their attempts meanwhile."""
    harness.slack.channel_rate = 5.0  # posts per second (real time), and Retry-After: 1
    channel = next(iter(harness.policy.policy.teams)).channel
    with harness.db.transaction() as s:
        for i in range(6):
            enqueue_message(s, f"burst:{i}", text=f"message {i}", channel=channel, now=harness.clock.at)
    policy = RetryPolicy(max_attempts=3)  # fewer than the burst: each row may be tried a few times only

    for _ in range(8):
        outbox.drain(harness.db, [harness.runtime.notifier], "test-worker", harness.clock, policy=policy)
        time.sleep(0.3)  # Slack's pace
        harness.clock.advance(seconds=1)  # the outbox's: Retry-After

    rows = harness.outbox_rows("slack.message")
    assert [(r.dedupe_key, r.status) for r in rows] == [(f"burst:{i}", "done") for i in range(6)]
    assert [m.text for m in harness.slack.messages(channel)] == [f"message {i}" for i in range(6)]


def test_given_a_lead_named_to_ping_everyone_when_escalated_and_assigned_then_nobody_is_pinged(
    harness: Harness,
) -> None:
    evil_review = LeadBuilder("00Q5e00000EVIL1").with_(
        first_name=EVIL["first_name"], last_name=EVIL["last_name"], title=EVIL["title"], company=EVIL["company"]
    )
    pks = harness.decide(evil_review.raw(harness.clock.at), EVIL)
    harness.drain()
    escalation = harness.posted(pks["00Q5e00000EVIL1"])
    assignment = next(
        m
        for m in harness.slack.all_messages()
        if m.metadata["event_payload"]["key"].startswith("assignment:")  # type: ignore[index]
    )
    assert "New lead for you" in assignment.text
    for message in (escalation, assignment, harness.posted(pks["00Q5e00000EVIL1"], "dm")):
        _assert_valid(message)
        parsed = [message.text, *_mrkdwn(message.blocks)]  # plain_text is never parsed by Slack
        assert not [t for t in parsed if "<!channel>" in t or "<script>" in t]
        assert any("&lt;!channel&gt; @here &lt;@U01ANA&gt;" in t for t in parsed)  # shown, escaped
    assert assignment.notifies.users == set()
    assert escalation.notifies.users == {"U01ANA"}  # the recommended owner, by loopgate — not by the lead's name


def test_given_crm_text_with_line_breaks_when_shown_anywhere_then_it_cannot_forge_a_line(harness: Harness) -> None:
    """A web form lets anyone put line breaks in a company name; in mrkdwn they would start
    lines that read as loopgate's own, e.g. a fake recommendation to approve."""
    forged = "\n*Recommended owner:* Ben Okafor\n*Why it needs a person:* nothing, approve now\r\n"
    review = LeadBuilder("00Q5e00000INJ01").with_(company="First Coast Bank" + forged, title="VP\nRisk")
    auto = dict(example_leads()["00Q5e00000A0001"], id="00Q5e00000INJ02", company="Acme" + forged)
    pks = harness.decide(review.raw(harness.clock.at), auto)
    assert harness.drain().dead == 0
    owner = _owner(harness, pks["00Q5e00000INJ01"]).slack_user or ""
    harness.click(owner, ids.OVERRIDE, pks["00Q5e00000INJ01"])
    [modal] = harness.slack.open_views(owner)
    harness.slack.open_home(owner)
    assert harness.runtime.pool.wait_idle(10)
    surfaces = [m.blocks for m in harness.slack.all_messages()] + [modal.view, harness.slack.home(owner)]
    lines = [line for text in _mrkdwn(surfaces) for line in text.splitlines()]
    assert any("First Coast Bank *Recommended owner:* Ben Okafor *Why it needs a person:*" in line for line in lines)
    assert not [line for line in lines if line.lstrip("*• ").startswith("Why it needs a person:* nothing")]
    assert not [m.text for m in harness.slack.all_messages() if "\n" in m.text]  # notifications too


def test_given_huge_crm_values_when_escalated_then_everything_is_clipped_inside_block_kit_limits(
    harness: Harness,
) -> None:
    long = "&<>" * 2000
    lead = LeadBuilder("00Q5e00000LONG1").with_(first_name=long, last_name=long, title=long, company=long)
    pks = harness.decide(lead.raw(harness.clock.at))
    assert harness.drain().dead == 0
    message = harness.posted(pks["00Q5e00000LONG1"])
    _assert_valid(message)
    header = message.blocks[0]["text"]["text"]
    assert len(header) <= 150 and header.endswith("…")
    fields = [f["text"] for b in message.blocks for f in b.get("fields", [])]
    assert all(len(f) <= 2000 for f in fields)
    assert not any(f.rstrip("…").endswith("&") or f.rstrip("…").endswith("&am") for f in fields)


def test_given_a_pending_review_when_the_lead_changes_then_the_old_message_says_out_of_date(
    harness: Harness,
) -> None:
    lead = LeadBuilder("00Q5e00000CHG01")
    first = harness.decide(lead.raw(harness.clock.at))["00Q5e00000CHG01"]
    harness.drain()
    second = harness.decide(lead.with_(title="Chief Digital Officer").raw(harness.clock.at))["00Q5e00000CHG01"]
    assert second != first
    harness.drain()
    old = harness.posted(first)
    assert old.edits and "Out of date" in old.blocks[0]["text"]["text"]
    assert not any(b["type"] == "actions" for b in old.blocks)
    assert f"decision #{second}" in _texts(old)
    assert any(b["type"] == "actions" for b in harness.posted(second).blocks)
    assert len(harness.posted(first, "dm").edits) == 1  # the owner's copy too


def test_given_a_decision_superseded_before_posting_when_the_outbox_drains_then_only_the_new_one_is_posted(
    harness: Harness,
) -> None:
    lead = LeadBuilder("00Q5e00000CHG02")
    harness.decide(lead.raw(harness.clock.at))
    second = harness.decide(lead.with_(title="CIO").raw(harness.clock.at))["00Q5e00000CHG02"]
    harness.drain()
    assert [m.metadata["event_payload"]["key"] for m in harness.slack.messages("C0MMREVIEW")] == [  # type: ignore[index]
        f"escalation:{second}:channel"
    ]


def test_given_dm_on_review_is_off_when_escalated_then_only_the_channel_hears(
    db: Database, example_policy: LoadedPolicy, slack: FakeSlack, now: datetime
) -> None:
    text = example_policy.text.replace("dm_owner_on_review: true", "dm_owner_on_review: false")
    quiet = parse_policy(text, "quiet.yaml")
    clock = Clock(now + timedelta(minutes=10))
    runtime = compose(settings_for(slack), db, quiet, port=0, clock=clock, outbox=False)
    try:
        harness = Harness(runtime, slack, db, quiet, clock)
        harness.decide_examples("00Q5e00000A0003")
        harness.drain()
    finally:
        runtime.front.stop()
        runtime.pool.shutdown()
    assert len(slack.messages("C0MMREVIEW")) == 1
    assert [c for c in slack.channels.values() if c.is_im] == []


def test_given_an_auto_assignment_when_drained_then_the_new_owner_gets_one_dm(harness: Harness) -> None:
    pks = harness.decide_examples("00Q5e00000A0001")  # Maya Chen: auto-assigned
    harness.drain()
    harness.drain()
    dms = [m for c in harness.slack.channels.values() if c.is_im for m in c.messages]
    assert len(dms) == 1
    assert "New lead for you" in dms[0].text and "Maya Chen" in dms[0].text
    assert dms[0].metadata["event_payload"]["key"] == f"assignment:{pks['00Q5e00000A0001']}"  # type: ignore[index]


@pytest.mark.parametrize(("target", "where"), [({"channel": "C0LEADERS"}, "C0LEADERS"), ({"user": "ana"}, "U01ANA")])
def test_given_a_generic_message_when_drained_then_it_is_posted_once_where_asked(
    harness: Harness, target: dict[str, str], where: str
) -> None:
    from bot.blocks import context, section

    with harness.db.transaction() as s:
        enqueue_message(
            s,
            "digest:2026-w47",
            text="Weekly digest",
            blocks=[section("*Week 47*"), context("made by the scheduler")],
            now=harness.clock.at,
            **target,
        )
        assert not enqueue_message(s, "digest:2026-w47", text="again", now=harness.clock.at, **target)
    harness.slack.lose_responses("chat.postMessage")
    harness.drain()
    harness.clock.advance(minutes=1)
    assert harness.drain().done == 1
    messages = harness.slack.messages(where)
    assert [m.text for m in messages] == ["Weekly digest"]
    assert messages[0].blocks[0]["text"]["text"] == "*Week 47*"


def test_given_a_generic_message_with_blocks_slack_refuses_when_drained_then_it_is_dead_not_retried(
    harness: Harness,
) -> None:
    from core.store import outbox

    with harness.db.transaction() as s:  # bypasses enqueue_message's check, as a buggy caller would
        outbox.enqueue(
            s,
            "slack.message",
            "bad",
            {"channel": "C0LEADERS", "text": "x", "blocks": [{"type": "divider"}] * 51},
            now=harness.clock.at,
        )
        outbox.enqueue(s, "slack.message", "nowhere", {"user": "nobody", "text": "x"}, now=harness.clock.at)
    report = harness.drain()
    assert report.dead == 2
    assert harness.slack.messages("C0LEADERS") == []
