"""Deciding in Slack: signed clicks and modal submissions of the real shapes, over HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from sqlalchemy import func, select

from bot import click_inbox, ids
from bot.click_inbox import ClickInbox
from core.policy import LoadedPolicy, parse_policy
from core.store import outbox
from core.store.db import Database
from core.store.models import Decision, OutboxRow
from loopgate.runtime import compose
from loopgate.sandbox.slack import FakeSlack
from loopgate.sandbox.slack_payloads import form_body
from tests.bot.conftest import Clock, Harness, escalate, reviews, serving, settings_for
from tests.builders import LeadBuilder

LEAD = LeadBuilder("00Q5e00000D0001")  # a banking lead: reviewed, routed to the mid-market team


def _outbox_count(db: Database) -> int:
    """Effects queued (a click's own inbox row is not an effect)."""
    with db.sessions() as s:
        query = select(func.count()).select_from(OutboxRow).where(OutboxRow.kind != click_inbox.KIND)
        return int(s.execute(query).scalar_one())


def _text(blocks: list[dict[str, object]]) -> str:
    return " ".join(str(b) for b in blocks)


def test_given_an_escalation_when_the_owner_approves_then_recorded_updated_in_place_and_written_back(
    harness: Harness,
) -> None:
    pk, owner = escalate(harness, LEAD)
    delivery = harness.click(owner, ids.APPROVE, pk)
    assert delivery.status == 200 and delivery.elapsed < 3
    [review] = reviews(harness.db)
    assert (review.kind, review.agree, review.reviewer) == ("approve", True, owner)
    assert {r.dedupe_key for r in harness.outbox_rows("crm.writeback")} >= {f"crm.writeback:{pk}:review"}
    harness.drain()
    for target in ("channel", "dm"):
        message = harness.posted(pk, target)
        assert len(message.edits) == 1
        assert message.blocks[0]["text"]["text"].startswith("Approved: ")
        assert not any(b["type"] == "actions" for b in message.blocks)
        outcome = _text(message.blocks)
        assert "✅ *Approved* by" in outcome and "<!date^" in outcome  # who and when
    assert harness.slack.ephemerals == []


def test_given_someone_who_may_not_act_when_they_click_then_refused_ephemerally_and_nothing_changes(
    harness: Harness,
) -> None:
    pk, _ = escalate(harness, LEAD)
    before = _outbox_count(harness.db)
    for outsider in ("U0STRANGER", "U01DANA", "U01MO"):  # not in policy; enterprise rep; enterprise manager
        harness.click(outsider, ids.APPROVE, pk)
        [reply] = harness.slack.ephemerals_for(outsider)
        assert reply.channel == "C0MMREVIEW" and "can't act" in reply.text
        assert "Lee Chen (manager of Mid-market)" in reply.text and "policy admins" in reply.text
    assert reviews(harness.db) == [] and _outbox_count(harness.db) == before
    assert harness.slack.open_views() == []
    harness.click("U0STRANGER", ids.REASSIGN, pk)  # no modal for someone who cannot submit it
    assert harness.slack.open_views() == []


@pytest.mark.parametrize("who", ["U01LEE", "U01REV"])  # the team's manager; a policy admin
def test_given_the_manager_or_an_admin_when_they_approve_then_it_counts(harness: Harness, who: str) -> None:
    pk, _ = escalate(harness, LEAD)
    harness.click(who, ids.APPROVE, pk)
    [review] = reviews(harness.db)
    assert review.reviewer == who


def test_given_a_decided_lead_when_clicked_again_or_retried_then_nothing_changes_and_it_says_who_decided(
    harness: Harness,
) -> None:
    pk, owner = escalate(harness, LEAD)
    harness.click(owner, ids.APPROVE, pk)
    before = _outbox_count(harness.db)
    retry = harness.click(owner, ids.APPROVE, pk, retry_num=1)  # Slack's retry of the same request
    assert retry.status == 200
    harness.click("U01LEE", ids.APPROVE, pk)
    harness.click("U01LEE", ids.OVERRIDE, pk)
    assert len(reviews(harness.db)) == 1 and _outbox_count(harness.db) == before
    mine = harness.slack.ephemerals_for(owner)
    assert len(mine) == 1 and mine[0].text.startswith("Already approved by you")
    lee = harness.slack.ephemerals_for("U01LEE")
    owner_name = harness.runtime.context.rules.rep_for_slack(owner).name  # type: ignore[union-attr]
    assert len(lee) == 2 and all(f"Already approved by {owner_name}" in e.text for e in lee)
    assert harness.slack.open_views() == []


def test_given_two_people_clicking_at_once_when_both_land_then_one_review_and_the_other_is_told(
    harness: Harness,
) -> None:
    pk, owner = escalate(harness, LEAD)
    message = harness.posted(pk)
    start = threading.Barrier(2)

    def click(user: str) -> None:
        start.wait()
        harness.slack.click(user, ids.APPROVE, channel=message.channel, ts=message.ts)

    threads = [threading.Thread(target=click, args=(u,)) for u in (owner, "U01LEE")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    harness.settle()
    [review] = reviews(harness.db)
    loser = "U01LEE" if review.reviewer == owner else owner
    [told] = harness.slack.ephemerals_for(loser)
    assert told.text.startswith("Already approved by")


def test_given_reassign_when_submitted_then_modal_validates_records_and_the_message_shows_the_reason(
    harness: Harness,
) -> None:
    pk, owner = escalate(harness, LEAD)
    harness.click(owner, ids.REASSIGN, pk)
    [modal] = harness.slack.open_views(owner)
    assert modal.view["callback_id"] == ids.REASSIGN_VIEW
    blocks = {b.get("block_id"): b for b in modal.view["blocks"]}
    reasons = [o["value"] for o in blocks[ids.BLOCK_REASON]["element"]["options"]]
    assert "territory_exception" in reasons and "data_quality" not in reasons  # applies_to: override, flag
    owner_rep = harness.runtime.context.rules.rep_for_slack(owner)
    assert owner_rep is not None
    offered = [o["value"] for g in blocks[ids.BLOCK_OWNER]["element"]["option_groups"] for o in g["options"]]
    assert owner_rep.id not in offered and "lee" not in offered and "dana" in offered

    missing = harness.slack.submit(modal.id, owner, {ids.BLOCK_OWNER: "dana", ids.BLOCK_REASON: None})
    assert missing.json() == {
        "response_action": "errors",
        "errors": {ids.BLOCK_REASON: "pick a reason for the reassign"},
    }
    assert modal.open and reviews(harness.db) == []

    done = harness.slack.submit(
        modal.id,
        owner,
        {ids.BLOCK_OWNER: "dana", ids.BLOCK_REASON: "existing_relationship", ids.BLOCK_NOTE: "Dana knows <them> & co"},
    )
    assert done.status == 200 and not modal.open
    [review] = reviews(harness.db)
    assert (review.kind, review.reason_code, review.after["owner"]) == ("reassign", "existing_relationship", "dana")
    harness.drain()
    shown = _text(harness.posted(pk).blocks)
    assert "↪️ *Reassigned* by" in shown and "→ Dana Weiss" in shown
    assert "*Reason:* Existing relationship with the account" in shown
    assert "> Dana knows &lt;them&gt; &amp; co" in shown


def test_given_a_lead_reassigned_to_a_third_rep_when_drained_then_they_get_one_dm_saying_who_and_why(
    harness: Harness,
) -> None:
    pk, owner = escalate(harness, LEAD)
    owner_dm = len(harness.slack.messages(owner))
    harness.click(owner, ids.REASSIGN, pk)
    [modal] = harness.slack.open_views(owner)
    harness.slack.submit(
        modal.id, owner, {ids.BLOCK_OWNER: "dana", ids.BLOCK_REASON: "existing_relationship", ids.BLOCK_NOTE: "<!here>"}
    )
    harness.drain()
    harness.drain()
    [told] = harness.slack.messages("U01DANA")
    assert told.text == "New lead for you: Lena Moreau · First Coast Bank"
    shown = _text(told.blocks)
    assert "*Why you:* Ana Ruiz chose you" in shown and "*Reason:* Existing relationship with the account" in shown
    assert "&lt;!here&gt;" in shown and "Given to you by Ana Ruiz" in shown
    for block in told.blocks:
        Block.parse(block).validate_json()  # type: ignore[union-attr]
    assert told.notifies.broadcasts == set() and told.notifies.users == set()
    assert told.metadata["event_payload"]["key"] == f"assignment:{pk}:review"  # type: ignore[index]
    assert len(harness.slack.messages(owner)) == owner_dm  # the reviewer chose: nothing new for them


def _offered(view: dict[str, Any]) -> dict[str, str]:
    """The owner picker's options: value → label."""
    element = next(b for b in view["blocks"] if b.get("block_id") == ids.BLOCK_OWNER)["element"]
    options = [o for g in element.get("option_groups") or [{"options": element["options"]}] for o in g["options"]]
    return {o["value"]: o["text"]["text"] for o in options}


@pytest.mark.parametrize("kind", ["reassign", "override"])
def test_given_a_rep_without_a_user_in_the_leads_crm_when_made_owner_then_the_modal_refuses_on_the_owner(
    db: Database, example_policy: LoadedPolicy, slack: FakeSlack, now: datetime, kind: str
) -> None:
    """Ben was hired last week: HubSpot knows him, Salesforce does not yet. A Salesforce lead
    given to him would say "Reassigned" in Slack while Salesforce kept the old owner."""
    text = example_policy.text.replace('crm: {salesforce: 0055e000001BBBB, hubspot: "102"}', 'crm: {hubspot: "102"}')
    with serving(db, parse_policy(text, "new-hire.yaml"), slack, now) as harness:
        pk, owner = escalate(harness, LEAD)
        harness.click(owner, ids.REASSIGN if kind == "reassign" else ids.OVERRIDE, pk)
        [modal] = harness.slack.open_views(owner)
        offered = _offered(modal.view)
        assert offered["ben"] == "Ben Okafor (no Salesforce user)" and offered["dana"] == "Dana Weiss"

        answer = harness.slack.submit(modal.id, owner, {ids.BLOCK_OWNER: "ben", ids.BLOCK_REASON: "capacity"})
        assert answer.json()["response_action"] == "errors"
        [(block, message)] = answer.json()["errors"].items()
        assert block == ids.BLOCK_OWNER and message.startswith("Ben Okafor has no Salesforce user in the policy")
        assert modal.open and reviews(harness.db) == []


def test_given_a_rep_out_of_office_when_made_owner_then_the_modal_refuses_saying_until_when(
    db: Database, example_policy: LoadedPolicy, slack: FakeSlack, now: datetime
) -> None:
    text = example_policy.text.replace("{start: 2026-12-22, end: 2027-01-02", "{start: 2026-11-16, end: 2026-11-27")
    with serving(db, parse_policy(text, "holidays.yaml"), slack, now) as harness:
        pk, owner = escalate(harness, LEAD)
        harness.click(owner, ids.REASSIGN, pk)
        [modal] = harness.slack.open_views(owner)
        assert _offered(modal.view)["cy"] == "Cy Park (out of office until 2026-11-27)"

        answer = harness.slack.submit(modal.id, owner, {ids.BLOCK_OWNER: "cy", ids.BLOCK_REASON: "capacity"})
        assert answer.json()["errors"] == {
            ids.BLOCK_OWNER: "Cy Park is out of office until 2026-11-27; pick someone who can work the lead now"
        }
        assert modal.open and reviews(harness.db) == []


def test_given_override_when_nothing_changes_then_error_on_the_action_and_when_changed_then_recorded(
    harness: Harness,
) -> None:
    pk, _ = escalate(harness, LEAD)
    harness.click("U01REV", ids.OVERRIDE, pk)
    [modal] = harness.slack.open_views("U01REV")
    same = harness.slack.submit(modal.id, "U01REV", {ids.BLOCK_REASON: "data_quality"})
    assert list(same.json()["errors"]) == [ids.BLOCK_ACTION]
    harness.slack.submit(
        modal.id, "U01REV", {ids.BLOCK_REASON: "data_quality", ids.BLOCK_BAND: "warm", ids.BLOCK_ACTION: "suppress"}
    )
    [review] = reviews(harness.db)
    assert (review.kind, review.after["band"], review.after["action"]) == ("override", "warm", "suppress")
    with harness.db.sessions() as s:
        decision = s.get(Decision, pk)
    assert decision is not None and (decision.final_action, decision.final_owner) == ("suppress", None)
    harness.drain()
    shown = _text(harness.posted(pk).blocks)
    assert "✏️ *Overridden* by RevOps Admin" in shown and "band hot → warm" in shown


def test_given_a_policy_change_between_opening_and_submitting_when_submitted_then_the_reason_block_errors(
    harness: Harness, db: Database, example_policy: LoadedPolicy, slack: FakeSlack
) -> None:
    pk, owner = escalate(harness, LEAD)
    harness.click(owner, ids.REASSIGN, pk)
    [modal] = slack.open_views(owner)
    # a new deploy: the policy no longer lets "capacity" justify a reassignment
    text = example_policy.text.replace(
        "{code: capacity, label: Owner has no capacity}",
        "{code: capacity, label: Owner has no capacity, applies_to: [flag]}",
    )
    newer = compose(settings_for(slack), db, parse_policy(text, "v2.yaml"), port=0, clock=harness.clock, outbox=False)
    newer.start()
    slack.request_url = f"{newer.front.url}/slack/events"
    try:
        answer = slack.submit(modal.id, owner, {ids.BLOCK_OWNER: "dana", ids.BLOCK_REASON: "capacity"})
    finally:
        newer.front.stop()
        newer.pool.shutdown()
    assert answer.json()["errors"] == {ids.BLOCK_REASON: "'Owner has no capacity' is not a reason for a reassign"}
    assert reviews(db) == []


def test_given_the_lead_was_decided_while_the_modal_was_open_when_submitted_then_the_modal_says_who(
    harness: Harness,
) -> None:
    pk, owner = escalate(harness, LEAD)
    harness.click(owner, ids.OVERRIDE, pk)
    [modal] = harness.slack.open_views(owner)
    harness.click("U01LEE", ids.APPROVE, pk)
    answer = harness.slack.submit(modal.id, owner, {ids.BLOCK_REASON: "timing", ids.BLOCK_BAND: "cold"})
    body = answer.json()
    assert body["response_action"] == "update"
    assert "Already approved by Lee Chen" in _text(body["view"]["blocks"])
    assert [r.reviewer for r in reviews(harness.db)] == ["U01LEE"]


def test_given_the_next_best_action_button_when_clicked_then_approved_and_the_message_says_who_is_on_it(
    harness: Harness,
) -> None:
    pk, owner = escalate(harness, LEAD)
    harness.click(owner, ids.NEXT_BEST_ACTION, pk, target="dm")
    [review] = reviews(harness.db)
    assert review.kind == "approve" and review.after["next_best_action"]
    harness.drain()
    assert "who is on it: Call" in _text(harness.posted(pk).blocks)


def test_given_a_slow_slack_api_when_a_button_is_clicked_then_the_ack_does_not_wait_for_it(
    harness: Harness,
) -> None:
    pk, owner = escalate(harness, LEAD)
    harness.slack.latency = 2.0  # every Web API call now takes two seconds
    message = harness.posted(pk)
    delivery = harness.slack.click(owner, ids.REASSIGN, channel=message.channel, ts=message.ts)
    # acked before views.open finished (the margin is wide: a loaded CI machine is slow)
    assert delivery.status == 200 and delivery.elapsed < 1.0
    assert harness.slack.open_views(owner) == []
    harness.settle()
    assert len(harness.slack.open_views(owner)) == 1  # and the slow work still happened, in time


def _post_signed(slack: FakeSlack, *, secret: str | None = None, timestamp: int | None = None) -> int:
    body = form_body(
        {"type": "block_actions", "user": {"id": "U01LEE"}, "actions": [{"action_id": ids.APPROVE, "value": "1"}]}
    )
    return slack.deliver(body, "application/x-www-form-urlencoded", secret=secret, timestamp=timestamp).status


def test_given_a_request_not_signed_by_slack_when_posted_then_401_and_nothing_changes(harness: Harness) -> None:
    pk, _ = escalate(harness, LEAD)
    assert _post_signed(harness.slack, secret="not-the-secret") == 401
    assert _post_signed(harness.slack, timestamp=int(time.time()) - 301) == 401  # outside the 5-minute window
    harness.settle()
    assert reviews(harness.db) == []
    with harness.db.sessions() as s:
        assert s.get(Decision, pk).state == "pending_review"  # type: ignore[union-attr]


def test_given_an_escalation_shown_in_the_dm_when_decided_there_then_both_copies_update(
    harness: Harness, now: datetime
) -> None:
    pk, owner = escalate(harness, LEAD)
    harness.clock.at = now + timedelta(hours=5)  # after the SLA: still decidable
    harness.click(owner, ids.APPROVE, pk, target="dm")
    harness.drain()
    assert len(harness.posted(pk, "channel").edits) == 1 and len(harness.posted(pk, "dm").edits) == 1


def test_given_two_replicas_when_each_gets_a_click_then_they_share_one_decision(
    db_url: str, example_policy: LoadedPolicy, slack: FakeSlack, now: datetime
) -> None:
    """Replicas behind a load balancer: a click on either is one truth, the second is told."""
    clock = Clock(now + timedelta(minutes=10))
    replicas = [Database(db_url), Database(db_url)]
    runtimes = [compose(settings_for(slack), d, example_policy, port=0, clock=clock, outbox=False) for d in replicas]
    for r in runtimes:
        r.start()
    try:
        harness = Harness(runtimes[0], slack, replicas[0], example_policy, clock)
        pk, owner = escalate(harness, LEAD)
        message = harness.posted(pk)
        for runtime, replica, user in zip(runtimes, replicas, (owner, "U01LEE"), strict=True):
            slack.request_url = f"{runtime.front.url}/slack/events"
            slack.click(user, ids.APPROVE, channel=message.channel, ts=message.ts)
            assert runtime.pool.wait_idle(10)
            outbox.drain(replica, [runtime.clicks], f"worker-{user}", clock)
        assert [r.reviewer for r in reviews(replicas[1])] == [owner]
        assert slack.ephemerals_for("U01LEE")[0].text.startswith("Already approved by")
    finally:
        for r in runtimes:
            r.front.stop()
            r.pool.shutdown()
        for d in replicas:
            d.dispose()


def test_given_slack_fails_while_opening_a_modal_when_clicked_then_the_person_gets_a_reference_and_it_is_logged(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    pk, owner = escalate(harness, LEAD)
    harness.slack.inject(r"^/api/views\.open$", 500, body="upstream error")
    with caplog.at_level("ERROR", logger="loopgate.bot"):
        harness.click(owner, ids.REASSIGN, pk)
    [told] = harness.slack.ephemerals_for(owner)
    ref = told.text.split("(ref ", 1)[1].split(")", 1)[0]
    [logged] = [r for r in caplog.records if ref in r.getMessage()]
    assert "block_actions loopgate.reassign by " + owner in logged.getMessage()
    assert "SlackUnavailable" in logged.getMessage()


def test_given_the_store_fails_under_a_slash_command_when_run_then_app_error_reports_it_once(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    from sqlalchemy import text

    with harness.db.transaction() as s:  # the database loses a table under the running app
        s.execute(text("ALTER TABLE decisions RENAME TO decisions_away"))
    try:
        with caplog.at_level("ERROR", logger="loopgate.bot"):
            delivery = harness.slack.command("U01LEE", "queue")
            harness.settle()
    finally:
        with harness.db.transaction() as s:
            s.execute(text("ALTER TABLE decisions_away RENAME TO decisions"))
    assert delivery.status == 500  # Slack shows its own "didn't work" beside ours
    [told] = harness.slack.ephemerals_for("U01LEE")
    assert "Something went wrong on loopgate's side (ref" in told.text
    assert len([r for r in caplog.records if r.name == "loopgate.bot"]) == 1


def test_given_a_level_1_suppression_when_approved_then_the_message_says_it_stays_suppressed(harness: Harness) -> None:
    pk = harness.decide_examples("102")["102"]  # the enterprise student: not_a_buyer, parked in nurture
    harness.drain()
    harness.click("U01REV", ids.OVERRIDE, pk)
    [modal] = harness.slack.open_views("U01REV")
    action = next(b for b in modal.view["blocks"] if b.get("block_id") == ids.BLOCK_ACTION)
    assert action["element"]["initial_option"]["value"] == "suppress"  # what automation proposed
    harness.click("U01REV", ids.APPROVE, pk)
    harness.settle()
    harness.drain()
    text = str(harness.posted(pk).blocks)
    assert "stays suppressed: nobody is assigned or pinged" in text and "assigned to" not in text


def test_given_the_store_fails_under_a_modal_submission_when_submitted_then_the_modal_says_so_and_nothing_else(
    harness: Harness,
) -> None:
    pk, owner = escalate(harness, LEAD)
    harness.click(owner, ids.REASSIGN, pk)
    [modal] = harness.slack.open_views(owner)
    dm_before = len(harness.slack.messages(owner))
    from sqlalchemy import text

    with harness.db.transaction() as s:
        s.execute(text("ALTER TABLE decisions RENAME TO decisions_away"))
    try:
        answer = harness.slack.submit(modal.id, owner, {ids.BLOCK_OWNER: "dana", ids.BLOCK_REASON: "capacity"})
        harness.settle()
    finally:
        with harness.db.transaction() as s:
            s.execute(text("ALTER TABLE decisions_away RENAME TO decisions"))
    assert answer.json()["response_action"] == "errors"
    [message] = answer.json()["errors"].values()
    assert message.startswith("That did not work (ref ") and modal.open
    # the modal is where they look: no second notice in their DM, none in the channel
    assert len(harness.slack.messages(owner)) == dm_before and harness.slack.ephemerals_for(owner) == []


def test_given_a_burst_of_slow_lazy_work_when_more_clicks_arrive_then_their_acks_do_not_queue_behind_it(
    harness: Harness,
) -> None:
    pk, owner = escalate(harness, LEAD)
    message = harness.posted(pk)
    harness.slack.latency = 2.0  # every views.open takes 2 s: twelve of them keep lazy threads busy
    harness.slack.trigger_ttl = 60
    acks: list[float] = []

    def click() -> None:
        delivery = harness.slack.click(owner, ids.REASSIGN, channel=message.channel, ts=message.ts)
        assert delivery.status == 200
        acks.append(delivery.elapsed)

    burst = [threading.Thread(target=click) for _ in range(12)]
    for t in burst:
        t.start()
    for t in burst:
        t.join()
    # with Bolt's single shared pool, the clicks after the 8th would wait ~2 s for a thread
    assert max(acks) < 1.0, sorted(acks)
    harness.settle()
    assert len(harness.slack.open_views(owner)) == 12


@contextmanager
def _refusing_clicks(db: Database) -> Iterator[None]:
    """The store refuses to take clicks (a full disk, a lost connection), at the database itself."""
    with db.engine.begin() as conn:
        if db.is_postgres:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse_clicks() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'disk full'; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_clicks BEFORE INSERT ON outbox FOR EACH ROW "
                f"WHEN (NEW.kind = '{click_inbox.KIND}') EXECUTE FUNCTION refuse_clicks()"
            )
        else:
            conn.exec_driver_sql(
                f"CREATE TRIGGER refuse_clicks BEFORE INSERT ON outbox WHEN NEW.kind = '{click_inbox.KIND}' "
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
    try:
        yield
    finally:  # the PostgreSQL test database outlives the test
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER refuse_clicks" + (" ON outbox" if db.is_postgres else ""))
            if db.is_postgres:
                conn.exec_driver_sql("DROP FUNCTION refuse_clicks()")


def test_given_the_store_refuses_a_click_when_approve_is_pressed_then_no_ack_and_no_review(harness: Harness) -> None:
    # the person must be told it failed (Slack does, for an unanswered click) and nothing may
    # be approved behind their back
    pk, owner = escalate(harness, LEAD)
    message = harness.posted(pk)
    with _refusing_clicks(harness.db):
        delivery = harness.slack.click(owner, ids.APPROVE, channel=message.channel, ts=message.ts)
        assert delivery.status == 500
        harness.settle()
        harness.drain()
    assert reviews(harness.db) == []
    assert harness.posted(pk).blocks == message.blocks


def test_given_an_approve_acknowledged_when_its_replica_dies_before_recording_it_then_another_records_it_once(
    harness: Harness,
) -> None:
    # Slack never resends an acknowledged click: the ack must leave something durable behind,
    # even if this process never runs anything after it (the harness runs no worker)
    pk, owner = escalate(harness, LEAD)
    message = harness.posted(pk)
    delivery = harness.slack.click(owner, ids.APPROVE, channel=message.channel, ts=message.ts)
    assert delivery.status == 200
    assert harness.runtime.pool.wait_idle(10)
    assert reviews(harness.db) == []
    other = ClickInbox(harness.runtime.context, harness.runtime.app.client)  # another replica's worker
    assert outbox.drain(harness.db, [other], "other-replica", harness.clock).done == 1
    assert outbox.drain(harness.db, [other], "other-replica", harness.clock).done == 0
    [review] = reviews(harness.db)
    assert (review.kind, review.reviewer) == ("approve", owner)
    harness.drain()
    assert harness.posted(pk).blocks[0]["text"]["text"].startswith("Approved: ")
    assert harness.slack.ephemerals == []


def test_given_a_worker_dies_after_recording_a_click_when_its_lease_ends_then_the_retry_changes_nothing(
    harness: Harness,
) -> None:
    pk, owner = escalate(harness, LEAD)
    message = harness.posted(pk)
    harness.slack.click(owner, ids.APPROVE, channel=message.channel, ts=message.ts)
    assert harness.runtime.pool.wait_idle(10)
    [item] = outbox.claim(harness.db, [click_inbox.KIND], "dies", limit=10, now=harness.clock())
    harness.runtime.clicks.perform([item])  # recorded; the worker dies before settling the row
    harness.clock.advance(seconds=outbox.DEFAULT_LEASE.total_seconds() + 1)
    report = outbox.drain(harness.db, [harness.runtime.clicks], "next", harness.clock)
    assert report.done == 1
    assert [r.reviewer for r in reviews(harness.db)] == [owner]
    assert harness.slack.ephemerals_for(owner) == []  # not told "already approved by you"
    [row] = harness.outbox_rows(click_inbox.KIND)
    assert row.result == {"review": "recorded before"}


def test_given_the_same_person_clicks_approve_twice_when_recorded_then_the_second_is_told_it_was_them(
    harness: Harness,
) -> None:
    pk, owner = escalate(harness, LEAD)
    harness.click(owner, ids.APPROVE, pk)
    harness.click(owner, ids.APPROVE, pk)
    assert [r.reviewer for r in reviews(harness.db)] == [owner]
    [told] = harness.slack.ephemerals_for(owner)
    assert told.text.startswith("Already approved by you"), told.text


def test_given_two_people_approve_before_the_worker_runs_when_recorded_together_then_the_first_wins(
    harness: Harness,
) -> None:
    # one batch of clicks is one transaction on PostgreSQL: the second approve must still see
    # the first, and be told who was first
    pk, owner = escalate(harness, LEAD)
    message = harness.posted(pk)
    for user in (owner, "U01LEE"):
        assert harness.slack.click(user, ids.APPROVE, channel=message.channel, ts=message.ts).status == 200
    harness.settle()
    assert [r.reviewer for r in reviews(harness.db)] == [owner]
    [told] = harness.slack.ephemerals_for("U01LEE")
    assert told.text.startswith("Already approved by"), told.text
    assert harness.slack.ephemerals_for(owner) == []
