"""The App Home queue (app_home_opened events, clicks on the Home tab) and ``/loopgate``."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bot import ids
from core.store.models import Decision, Review
from loopgate.sandbox.slack import FakeView
from loopgate.sandbox.slack_limits import Notifies, notifications
from tests.bot.conftest import Harness
from tests.builders import LeadBuilder, decide


def _decide_at(harness: Harness, minutes_ago: int, *leads: LeadBuilder) -> dict[str, int]:
    at = harness.clock.at - timedelta(minutes=minutes_ago)
    return decide(harness.db, harness.policy, [lead.raw(at) for lead in leads], at)


def _home_items(harness: Harness, user: str) -> list[int]:
    view = harness.slack.home(user)
    assert view is not None
    return [int(b["block_id"].split(":")[1]) for b in view["blocks"] if b.get("block_id", "").startswith("home:")]


def _text(node: Any) -> str:
    return json.dumps(node, ensure_ascii=False)


def _owners(harness: Harness, pks: list[int]) -> dict[int, str]:
    with harness.db.sessions() as s:
        return {d.pk: d.owner for d in s.execute(select(Decision).where(Decision.pk.in_(pks))).scalars()}  # type: ignore[misc]


def test_given_pending_reviews_when_people_open_home_then_each_sees_theirs_most_urgent_first(harness: Harness) -> None:
    old = _decide_at(harness, 60, LeadBuilder("00Q5e00000H0001").with_(employees=300))  # due first
    new = _decide_at(
        harness,
        5,
        LeadBuilder("00Q5e00000H0002"),
        LeadBuilder("00Q5e00000H0003").with_(title="Intern", employees=250),
    )
    ent = harness.decide_examples("00Q5e00000A0002")  # enterprise, owned by dana
    for user in ("U01REV", "U01LEE", "U01MO", "U0STRANGER"):
        assert harness.slack.open_home(user).status == 200
    harness.settle()
    everything = _home_items(harness, "U01REV")  # admin: all of them
    assert everything[0] == old["00Q5e00000H0001"]
    with harness.db.sessions() as s:
        scores = {d.pk: d.score_total for d in s.execute(select(Decision)).scalars()}
    same_time = [pk for pk in everything if pk in new.values()]
    assert [scores[pk] for pk in same_time] == sorted((scores[pk] for pk in same_time), reverse=True)
    assert set(_home_items(harness, "U01LEE")) == set(everything) - set(ent.values())  # mid-market manager
    assert _home_items(harness, "U01MO") == list(ent.values())
    stranger = _text(harness.slack.home("U0STRANGER"))
    assert "not in the loopgate policy" in stranger
    owners = _owners(harness, everything)
    ana = [pk for pk in everything if owners[pk] == "ana"]
    harness.slack.open_home("U01ANA")
    harness.settle()
    assert _home_items(harness, "U01ANA") == ana


def test_given_an_overdue_review_when_home_opens_then_it_is_marked_overdue(harness: Harness) -> None:
    _decide_at(harness, 0, LeadBuilder("00Q5e00000H0004"))
    harness.clock.advance(hours=3)  # the example policy's review SLA is 2 h
    harness.slack.open_home("U01REV")
    harness.settle()
    assert "⚠️ *Overdue* since" in _text(harness.slack.home("U01REV"))


def test_given_home_when_approved_there_then_recorded_and_the_tab_refreshes_with_a_notice(harness: Harness) -> None:
    pks = _decide_at(harness, 10, LeadBuilder("00Q5e00000H0005"), LeadBuilder("00Q5e00000H0006"))
    harness.drain()
    harness.slack.open_home("U01LEE")
    harness.settle()
    first, second = _home_items(harness, "U01LEE")
    harness.slack.click("U01LEE", ids.APPROVE, home=True, value=str(first))
    harness.settle()
    with harness.db.sessions() as s:
        assert [r.decision_pk for r in s.execute(select(Review)).scalars()] == [first]
    assert _home_items(harness, "U01LEE") == [second]
    assert "✅ Approved" in _text(harness.slack.home("U01LEE"))
    assert set(pks.values()) == {first, second}


def _modal_from_home(harness: Harness, lead_id: str, button: str) -> FakeView:
    """The modal U01REV (an admin) opens with ``button`` on the one lead in their Home tab."""
    _decide_at(harness, 10, LeadBuilder(lead_id))
    harness.slack.open_home("U01REV")
    harness.settle()
    [pk] = _home_items(harness, "U01REV")
    harness.slack.click("U01REV", button, home=True, value=str(pk))
    harness.settle()
    [modal] = harness.slack.open_views("U01REV")
    return modal


def test_given_home_when_reassigned_there_then_the_modal_submits_and_the_tab_refreshes(harness: Harness) -> None:
    modal = _modal_from_home(harness, "00Q5e00000H0007", ids.REASSIGN)
    assert json.loads(modal.view["private_metadata"])["h"] == 1
    harness.slack.submit(modal.id, "U01REV", {ids.BLOCK_OWNER: "eli", ids.BLOCK_REASON: "territory_exception"})
    harness.settle()
    assert _home_items(harness, "U01REV") == []
    assert "↪️ Reassigned" in _text(harness.slack.home("U01REV"))


def test_given_slack_fails_on_a_home_click_when_clicked_then_the_person_is_told_in_the_app_dm(
    harness: Harness,
) -> None:
    # a Home click has no channel to answer in ephemerally: the app's own DM is where they look
    _decide_at(harness, 10, LeadBuilder("00Q5e00000H0011"))
    harness.slack.open_home("U01REV")
    harness.settle()
    [pk] = _home_items(harness, "U01REV")
    harness.slack.inject(r"^/api/views\.open$", 500, body="upstream error")
    harness.slack.click("U01REV", ids.REASSIGN, home=True, value=str(pk))
    harness.settle()
    [told] = harness.slack.messages("U01REV")
    assert "Something went wrong on loopgate's side (ref" in told.text


def test_given_slack_slow_to_publish_when_home_opens_then_the_event_is_answered_first(harness: Harness) -> None:
    _decide_at(harness, 10, LeadBuilder("00Q5e00000H0010"))
    with harness.slack.hold("views.publish"):
        assert harness.slack.open_home("U01REV").status == 200
        assert harness.slack.home("U01REV") is None  # answered while the publish still waits
    harness.settle()
    assert _home_items(harness, "U01REV")


def test_given_slack_slow_to_publish_when_a_modal_from_home_is_submitted_then_it_closes_first(harness: Harness) -> None:
    modal = _modal_from_home(harness, "00Q5e00000H0011", ids.OVERRIDE)
    with harness.slack.hold("views.publish"):
        delivery = harness.slack.submit(
            modal.id, "U01REV", {ids.BLOCK_ACTION: "suppress", ids.BLOCK_REASON: "data_quality"}
        )
        assert delivery.status == 200 and harness.slack.open_views("U01REV") == []
        assert "Overridden" not in _text(harness.slack.home("U01REV"))  # the refresh waits for Slack
    harness.settle()
    assert "✏️ Overridden" in _text(harness.slack.home("U01REV"))


def test_given_a_decided_lead_on_a_stale_home_when_clicked_then_the_home_says_who_decided(harness: Harness) -> None:
    _decide_at(harness, 10, LeadBuilder("00Q5e00000H0008"))
    harness.drain()
    harness.slack.open_home("U01REV")
    harness.settle()
    [pk] = _home_items(harness, "U01REV")
    harness.click("U01LEE", ids.APPROVE, pk)  # decided in the channel meanwhile
    harness.slack.click("U01REV", ids.APPROVE, home=True, value=str(pk))
    harness.settle()
    home = _text(harness.slack.home("U01REV"))
    assert "Already approved by Lee Chen" in home and _home_items(harness, "U01REV") == []


def test_given_a_retried_home_event_when_delivered_then_the_same_home_is_published(harness: Harness) -> None:
    _decide_at(harness, 10, LeadBuilder("00Q5e00000H0009"))
    harness.slack.open_home("U01LEE")
    harness.settle()
    first = harness.slack.home("U01LEE")
    assert harness.slack.open_home("U01LEE", retry_num=1).status == 200
    harness.settle()
    again = harness.slack.home("U01LEE")
    assert first is not None and again is not None
    assert first["blocks"][2:] == again["blocks"][2:]  # only the "as of" context line may differ


def _reply(harness: Harness, user: str, text: str) -> str:
    delivery = harness.slack.command(user, text)
    assert delivery.status == 200 and delivery.elapsed < 3
    harness.settle()
    return _text([e.__dict__ for e in harness.slack.ephemerals_for(user)])


def test_given_slash_commands_when_run_then_help_queue_and_unknown_answer_at_once(harness: Harness) -> None:
    pks = _decide_at(harness, 10, LeadBuilder("00Q5e00000C0001"))
    owner = _owners(harness, list(pks.values()))[pks["00Q5e00000C0001"]]
    slack_user = harness.runtime.context.rules.roster.reps[owner].slack_user or ""
    assert "/loopgate queue" in _reply(harness, slack_user, "help")
    queue = _reply(harness, slack_user, "queue")
    assert "Your queue: 1 waiting" in queue and "Lena Moreau" in queue and "due" in queue
    assert "I don't know `frobnicate`" in _reply(harness, slack_user, "frobnicate")
    assert "not in the loopgate policy" in _reply(harness, "U0STRANGER", "queue")
    assert all(e.via == "command_reply" for e in harness.slack.ephemerals)


def test_given_an_unknown_command_with_slack_markup_when_run_then_it_is_echoed_escaped(harness: Harness) -> None:
    for typed in ("<!channel>", "<http://evil.test|click-me>"):
        _reply(harness, "U01LEE", typed)
        answer = harness.slack.ephemerals_for("U01LEE")[-1]
        assert notifications(answer.text, answer.blocks, parse=None, link_names=None) == Notifies()
        shown = _text([answer.text, answer.blocks])
        assert "I don't know `&lt;" in shown and "<!channel>" not in shown and "<http" not in shown


def test_given_a_lead_lookup_when_run_then_the_latest_decision_shows_escaped_without_buttons(
    harness: Harness,
) -> None:
    harness.decide_examples("106", "00Q5e00000A0003")
    found = _reply(harness, "U01LEE", "lead X@EvilCorp.test")
    assert "&lt;!channel&gt;" in found and "Assigned automatically" in found
    assert "<!channel>" not in found.replace('"text": "Assigned automatically: <!channel>', "")  # header is plain_text
    pending = _reply(harness, "U01REV", "lead 00Q5e00000A0003")
    assert "Waiting for a person" in pending and ids.APPROVE not in pending
    assert "No lead with email or CRM id" in _reply(harness, "U01MO", "lead nobody@nowhere.test")


def test_given_stats_when_asked_then_acked_at_once_and_answered_through_the_response_url(harness: Harness) -> None:
    pks = _decide_at(harness, 30, LeadBuilder("00Q5e00000S0001"), LeadBuilder("00Q5e00000S0002"))
    harness.drain()
    harness.click("U01LEE", ids.APPROVE, pks["00Q5e00000S0001"])
    delivery = harness.slack.command("U01LEE", "stats")
    assert "Counting" in delivery.body
    harness.settle()
    [late] = [e for e in harness.slack.ephemerals_for("U01LEE") if e.via == "response_url"]
    text = _text(late.blocks)
    assert "*Waiting for a person:* 1" in text and "*Reviews:* 1 (approve 1)" in text
    assert "*Agreement with automation:* 100%" in text
