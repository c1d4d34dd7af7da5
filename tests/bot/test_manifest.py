"""``manifest.yaml``, the listeners and the payloads loopgate builds agree with each other."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot import ids
from bot.blocks.digest import FlagOrigin, digest_message, flag_modal, sample_message
from bot.blocks.escalation import escalation_message
from bot.blocks.focus import FocusLead, focus_message
from bot.blocks.home import home_view
from bot.blocks.modals import Origin, override_modal, reassign_modal
from bot.blocks.sla import ClockFacts, nudge_message
from bot.cards import load_card
from core.digest import SampleItem
from core.store.digest import weekly_digest
from loopgate.sandbox.slack import METHOD_SCOPES
from loopgate.sandbox.slack_payloads import block_actions, form_body, slash_command, view_submission
from loopgate.server import EVENTS_PATH
from tests.bot.conftest import MANIFEST, MANIFEST_SCOPES, Harness
from tests.builders import LeadBuilder
from tests.conftest import ROOT


def _interactive_ids(node: Any, inside_input: bool = False) -> tuple[set[str], set[str]]:
    """(action ids of interactive elements outside input blocks, view callback ids)."""
    actions: set[str] = set()
    callbacks: set[str] = set()
    if isinstance(node, dict):
        if node.get("callback_id"):
            callbacks.add(node["callback_id"])
        if node.get("action_id") and not inside_input:
            actions.add(node["action_id"])
        for key, value in node.items():
            a, c = _interactive_ids(value, inside_input or (node.get("type") == "input" and key == "element"))
            actions |= a
            callbacks |= c
    elif isinstance(node, list):
        for value in node:
            a, c = _interactive_ids(value, inside_input)
            actions |= a
            callbacks |= c
    return actions, callbacks


def _everything_loopgate_shows(harness: Harness) -> list[dict[str, Any]]:
    pk = harness.decide(LeadBuilder().raw(harness.clock.at))["00Q5e00000Z0001"]
    ctx = harness.runtime.context
    with harness.db.sessions() as s:
        card = load_card(s, ctx.rules, ctx.review_clock, pk)
    assert card is not None
    origin = Origin(pk, "C0MMREVIEW", "1.000001")
    now = harness.clock.at
    touch = ClockFacts(7, "first_touch", "Ana", now, now + timedelta(minutes=15))
    review = ClockFacts(8, "review", "Ana", now, now + timedelta(hours=2))
    item = SampleItem(pk, "Lena Moreau", "First Coast Bank", "Ana", "hot", 80, "mid_market", 0.7)
    with harness.db.sessions() as s:
        digest = weekly_digest(s, harness.policy, week="2026-W47", now=now)
    lead = FocusLead(card, 7, "hot", now + timedelta(minutes=15))
    return [
        {"blocks": escalation_message(card).blocks},
        {"blocks": escalation_message(card, audience="owner").blocks},
        home_view([card], now=now),
        reassign_modal(card, ctx.rules, origin, now),
        override_modal(card, ctx.rules, origin, now),
        # the scheduler's messages (issue 6)
        {"blocks": nudge_message(card, touch, now=now).blocks},
        {"blocks": nudge_message(card, review, now=now).blocks},
        {
            "blocks": focus_message(
                "Ana", now.date(), hot=[lead], reviews=[card], reviews_total=1, others=[], now=now
            ).blocks
        },
        {"blocks": digest_message(digest).blocks},
        {"blocks": sample_message("2026-W47", [item], 1).blocks},
        flag_modal("Lena Moreau", [("data_quality", "Bad data")], FlagOrigin(pk, "2026-W47", "C0LEADERS", "1.1")),
    ]


def test_given_the_manifest_when_read_then_command_events_and_request_urls_are_the_ones_served() -> None:
    features, settings = MANIFEST["features"], MANIFEST["settings"]
    assert [c["command"] for c in features["slash_commands"]] == [ids.COMMAND]
    assert settings["event_subscriptions"]["bot_events"] == list(ids.EVENTS)
    assert settings["interactivity"]["is_enabled"] is True
    assert features["app_home"]["home_tab_enabled"] is True and features["bot_user"]["display_name"]
    urls = [
        features["slash_commands"][0]["url"],
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
    ]
    assert all(url.startswith("https://") and url.endswith(EVENTS_PATH) for url in urls)


def test_given_every_payload_loopgate_builds_when_scanned_then_it_uses_exactly_the_declared_ids(
    harness: Harness,
) -> None:
    actions, callbacks = _interactive_ids(_everything_loopgate_shows(harness))
    assert actions == set(ids.ACTIONS)  # every button has a listener id, every listener a button
    assert callbacks == set(ids.VIEWS)


def test_given_each_declared_id_when_slack_sends_it_then_a_listener_answers_and_an_unknown_one_is_404(
    harness: Harness,
) -> None:
    fake = harness.slack
    team, user = fake.team, {"id": "U0STRANGER", "name": "stranger"}

    def click(action_id: str) -> int:
        payload = block_actions(
            team=team, app_id=fake.app_id, user=user, block_id="b", trigger_id="t", response_url=None,
            action={"action_id": action_id, "value": "999999", "type": "button"},
            message={"ts": "1.000001", "text": "x"}, channel={"id": "C0MMREVIEW", "name": "mm"},
        )  # fmt: skip
        return fake.deliver(form_body(payload), "application/x-www-form-urlencoded").status

    def submit(callback_id: str) -> int:
        view = {"id": "V1", "type": "modal", "callback_id": callback_id, "private_metadata": '{"d": 999999}',
                "state": {"values": {}}}  # fmt: skip
        payload = view_submission(team=team, app_id=fake.app_id, user=user, view=view, trigger_id="t")
        return fake.deliver(form_body(payload), "application/x-www-form-urlencoded").status

    def command(name: str) -> int:
        body = slash_command(
            team=team, app_id=fake.app_id, user=user, channel={"id": "C0MMREVIEW", "name": "mm"}, command=name,
            text="help", response_url=f"{fake.url}/hooks/response/none", trigger_id="t",
        )  # fmt: skip
        return fake.deliver(body, "application/x-www-form-urlencoded").status

    assert [click(a) for a in ids.ACTIONS] == [200] * len(ids.ACTIONS)
    assert [submit(v) for v in ids.VIEWS] == [200] * len(ids.VIEWS)
    assert command(ids.COMMAND) == 200
    assert fake.open_home("U0STRANGER").status == 200  # the one event
    assert (click("loopgate.unknown"), submit("loopgate.unknown_modal"), command("/other")) == (404, 404, 404)
    harness.settle()


_CALL = re.compile(
    r"client\.(chat_postMessage|chat_update|chat_delete|chat_postEphemeral|conversations_open|conversations_history"
    r"|users_info|views_open|views_update|views_push|views_publish|files_upload_v2)\b"
)


_SDK_FLOWS = {"files.upload_v2": {"files.getUploadURLExternal", "files.completeUploadExternal"}}


def _methods_called() -> set[str]:
    found: set[str] = set()
    for path in Path(ROOT / "bot").rglob("*.py"):
        for method in (m.replace("_", ".", 1) for m in _CALL.findall(path.read_text())):
            found |= _SDK_FLOWS.get(method, {method})  # an SDK helper is the Web API calls it makes
    return found


def test_given_the_code_when_scanned_for_web_api_calls_then_the_manifest_grants_exactly_the_scopes_they_need() -> None:
    called = _methods_called()
    assert {"chat.postMessage", "chat.update", "chat.postEphemeral", "views.open", "views.publish"} <= called
    needed = {scope for method in called for scope in METHOD_SCOPES[method]}
    if "conversations.history" in called:  # review channels may be public or private; DMs are IMs
        needed |= {"channels:history", "groups:history", "im:history"}
    needed.add("commands")  # the slash command
    assert set(MANIFEST_SCOPES) == needed
