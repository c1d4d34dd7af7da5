"""``serve --sandbox`` without a browser: the page's JSON routes, a refused click, the digest
chart, a new lead, and hostile CRM names that reach Slack without pinging anyone."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from bot import ids
from loopgate.demo.live import LiveSandbox
from tests.demo.escalations import is_reviewed, posted_escalations


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - the local sandbox
        return response.status, response.read()


def _post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(  # noqa: S310 - the local sandbox
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.loads(response.read())


def test_given_the_sandbox_when_using_its_page_api_then_clicks_reach_the_bot_signed_and_crm_text_stays_inert(
    live: LiveSandbox,
) -> None:
    slack = live.sandbox.slack
    channel = "C0SMBREVIEW"
    message = slack.wait_until(lambda: slack.messages(channel), timeout=20)[0]
    status, page = _get(live.url + "/")
    assert status == 200 and b"loopgate sandbox" in page

    def state() -> Any:
        return json.loads(_get(f"{live.url}/api/state?user=U0GUEST&channel={channel}")[1])

    slack.wait_until(lambda: state()["crm"], timeout=20)  # the write-back worker has written
    shown = state()
    assert {"C0MMREVIEW", "C0ENTREVIEW", "C0SMBREVIEW"} <= {c["id"] for c in shown["channels"]}
    assert shown["channel"]["messages"][0]["blocks"]  # the real Block Kit, as posted
    assert all(r["fields"]["status"] for r in shown["crm"])

    # someone outside the policy clicks Approve: the bot refuses, only they see why
    button = next(e for b in message.blocks if b.get("type") == "actions" for e in b["elements"]
                  if e["action_id"] == ids.APPROVE)  # fmt: skip
    answer = _post(live.url + "/api/click", {"user": "U0GUEST", "action_id": ids.APPROVE, "channel": channel,
                                             "ts": message.ts, "value": button["value"]})  # fmt: skip
    assert answer["ok"]
    slack.wait_until(lambda: slack.ephemerals_for("U0GUEST"), timeout=10)
    assert json.loads(_get(f"{live.url}/api/state?user=U0GUEST&channel={channel}")[1])["ephemerals"]

    # the week's digest so far is in the leaders' channel, its chart served to the page
    digest = slack.wait_until(lambda: [m for m in slack.messages("C0LEADERS") if m.files], timeout=20)
    status, chart = _get(f"{live.url}/files/{digest[0].files[0]['id']}")
    assert status == 200 and chart.startswith(b"\x89PNG")

    created = _post(live.url + "/api/lead", {"crm": "salesforce"})
    assert live.sandbox.salesforce.get("Lead", created["id"])["LastName"].startswith("Lead ")

    # the org has hostile names (<!channel>, <script>…); every post reached Slack as text
    assert all(not m.notifies.broadcasts for m in slack.all_messages())  # no @channel, no @here


def test_given_the_sandbox_page_when_a_rep_opens_home_and_runs_the_command_then_the_bot_answers_them(
    live: LiveSandbox,
) -> None:
    slack = live.sandbox.slack
    assert live.db is not None
    db = live.db

    decision, _ = slack.wait_until(lambda: posted_escalations(db)[:1], timeout=20)[0]
    rep = next(r for r in live.sandbox.loaded.policy.reps if r.id == decision.owner)
    user = str(rep.slack_user)

    def state(channel: str = "") -> Any:
        return json.loads(_get(f"{live.url}/api/state?user={user}&channel={channel}")[1])

    # opening the tab sends app_home_opened; the bot publishes this rep's pending reviews
    assert _post(live.url + "/api/home", {"user": user})["ok"]
    home = slack.wait_until(lambda: state()["home"], timeout=10)
    values = {e.get("value") for b in home["blocks"] if b.get("type") == "actions" for e in b["elements"]}
    assert str(decision.pk) in values

    # Approve on the Home tab: recorded as from Slack
    answer = _post(live.url + "/api/click", {"user": user, "action_id": ids.APPROVE, "value": str(decision.pk),
                                             "home": True})  # fmt: skip
    assert answer["ok"]

    slack.wait_until(lambda: is_reviewed(db, decision.pk), timeout=10)

    # /loopgate help in a review channel: the answer is only theirs, in that channel
    channel = next(c for c in state()["channels"] if c["kind"] != "im")["id"]
    assert _post(live.url + "/api/command", {"user": user, "text": "help", "channel": channel})["ok"]
    replies = slack.wait_until(lambda: state(channel)["ephemerals"], timeout=10)
    assert replies[-1]["channel"] == channel and "/loopgate" in json.dumps(replies[-1])
    assert not json.loads(_get(f"{live.url}/api/state?user=U01REV&channel={channel}")[1])["ephemerals"]

    # someone Slack does not know is refused by the page, not passed on
    with pytest.raises(urllib.error.HTTPError) as refused:
        _post(live.url + "/api/command", {"user": "UNOBODY", "text": "queue"})
    assert refused.value.code == 400
    refused.value.close()
