"""The fake Slack behaves like Slack where loopgate (and the browser sandbox) rely on it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from loopgate.sandbox.slack import FakeSlack


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack(scopes=["chat:write", "im:write", "channels:history", "files:write", "users:read"]) as slack:
        slack.add_user("U1", "ana", "Ana Ruiz", tz="America/New_York")
        slack.add_channel("C1", "reviews")
        slack.add_channel("C2", "elsewhere", bot_member=False)
        slack.add_channel("G1", "private", private=True)
        yield slack  # type: ignore[misc]


def _client(fake: FakeSlack, token: str | None = None) -> WebClient:
    return WebClient(token=token or fake.bot_token, base_url=fake.api_url, retry_handlers=[])


def _error(call: object) -> dict[str, object]:
    with pytest.raises(SlackApiError) as caught:
        call()  # type: ignore[operator]
    return dict(caught.value.response.data)  # type: ignore[arg-type]


def test_given_a_bad_or_missing_token_when_calling_then_invalid_auth_or_not_authed(fake: FakeSlack) -> None:
    assert _error(lambda: _client(fake, "xoxb-wrong").auth_test())["error"] == "invalid_auth"
    assert _error(lambda: WebClient(base_url=fake.api_url).auth_test())["error"] == "not_authed"
    assert _client(fake).auth_test()["user_id"] == fake.bot_user_id


def test_given_scopes_when_a_method_needs_another_then_missing_scope_names_it(fake: FakeSlack) -> None:
    error = _error(lambda: _client(fake).conversations_history(channel="G1"))
    assert (error["error"], error["needed"]) == ("missing_scope", "groups:history")
    assert _error(lambda: _client(fake).chat_postMessage(channel="C2", text="x"))["error"] == "not_in_channel"


@pytest.mark.parametrize(
    ("blocks", "pointer"),
    [
        ([{"type": "divider"}] * 51, "/blocks]"),
        ([{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}], "/blocks/0/text/text]"),
        ([{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}], "/blocks/0/text/type]"),
        ([{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}], "/blocks/0/text/text]"),
        (
            [
                {
                    "type": "actions",
                    "elements": [
                        {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "x" * 76}}
                    ],
                }
            ],
            "/blocks/0/elements/0/text/text]",
        ),
        ([{"type": "divider", "block_id": "b"}, {"type": "divider", "block_id": "b"}], "/blocks/1/block_id]"),
    ],
)
def test_given_blocks_over_slack_limits_when_posted_then_invalid_blocks_with_a_json_pointer(
    fake: FakeSlack, blocks: list[dict[str, object]], pointer: str
) -> None:
    error = _error(lambda: _client(fake).chat_postMessage(channel="C1", text="x", blocks=blocks))
    assert error["error"] == "invalid_blocks"
    assert any(str(e).endswith(pointer) for e in error["errors"])  # type: ignore[attr-defined]
    assert fake.messages("C1") == []


def test_given_a_modal_when_opened_then_trigger_ids_expire_and_work_once_and_titles_are_limited(
    fake: FakeSlack,
) -> None:
    view = {"type": "modal", "title": {"type": "plain_text", "text": "ok"}, "blocks": [{"type": "divider"}]}
    with fake._state:
        fresh, used, old = (fake._issue_trigger("U1") for _ in range(3))
    client = _client(fake)
    assert client.views_open(trigger_id=fresh, view=view)["view"]["id"].startswith("V")
    assert _error(lambda: client.views_open(trigger_id=fresh, view=view))["error"] == "exchanged_trigger_id"
    long_title = {**view, "title": {"type": "plain_text", "text": "x" * 25}}
    assert _error(lambda: client.views_open(trigger_id=used, view=long_title))["error"] == "invalid_arguments"
    fake.trigger_ttl = 0.01
    time.sleep(0.02)
    assert _error(lambda: client.views_open(trigger_id=old, view=view))["error"] == "expired_trigger_id"
    assert _error(lambda: client.views_open(trigger_id="made.up", view=view))["error"] == "invalid_trigger_id"


def test_given_messages_with_metadata_when_reading_history_then_metadata_only_on_request_and_pages_newest_first(
    fake: FakeSlack,
) -> None:
    client = _client(fake)
    for i in range(5):
        client.chat_postMessage(channel="C1", text=f"m{i}", metadata={"event_type": "t", "event_payload": {"i": i}})
    page = client.conversations_history(channel="C1", limit=2, include_all_metadata=True)
    assert [m["text"] for m in page["messages"]] == ["m4", "m3"] and page["has_more"]
    assert page["messages"][0]["metadata"]["event_payload"] == {"i": 4}
    rest = client.conversations_history(channel="C1", limit=10, cursor=page["response_metadata"]["next_cursor"])
    assert [m["text"] for m in rest["messages"]] == ["m2", "m1", "m0"] and "metadata" not in rest["messages"][0]
    bad = {"event_type": "t"}
    assert (
        _error(lambda: client.chat_postMessage(channel="C1", text="x", metadata=bad))["error"]
        == "invalid_metadata_format"
    )


def test_given_a_file_when_uploaded_with_files_upload_v2_then_it_is_shared_in_the_channel(fake: FakeSlack) -> None:
    result = _client(fake).files_upload_v2(
        channel="C1", content=b"\x89PNG fake chart", filename="chart.png", title="Week 47", initial_comment="Digest"
    )
    file_id = result["files"][0]["id"]
    assert fake.files[file_id]["content"] == b"\x89PNG fake chart" and fake.files[file_id]["shared"] == ["C1"]
    [message] = fake.messages("C1")
    assert message.text == "Digest" and message.files[0]["title"] == "Week 47"


def test_given_an_injected_429_when_posting_then_retry_after_is_returned_and_nothing_posted(fake: FakeSlack) -> None:
    fake.inject(
        r"^/api/chat\.postMessage$", 429, headers={"Retry-After": "9"}, body={"ok": False, "error": "ratelimited"}
    )
    with pytest.raises(SlackApiError) as caught:
        _client(fake).chat_postMessage(channel="C1", text="x")
    assert caught.value.response.status_code == 429 and caught.value.response.headers["Retry-After"] == "9"
    assert fake.messages("C1") == []
    fake.channel_rate = 1.0
    _client(fake).chat_postMessage(channel="C1", text="first")
    assert _error(lambda: _client(fake).chat_postMessage(channel="C1", text="second"))["error"] == "ratelimited"


def test_given_mentions_when_posted_then_the_fake_says_who_would_be_notified(fake: FakeSlack) -> None:
    client = _client(fake)
    client.chat_postMessage(channel="C1", text="hello <!here> and <@U1>")
    client.chat_postMessage(channel="C1", text="plain @channel")
    client.chat_postMessage(channel="C1", text="linked @channel", link_names=True)
    client.chat_postMessage(
        channel="C1", text="x", blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "auto @everyone"}}]
    )
    client.chat_postMessage(
        channel="C1",
        text="x",
        blocks=[
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "verbatim @everyone &lt;!here&gt;", "verbatim": True},
            }
        ],
    )
    client.chat_postMessage(
        channel="C1", text="x", blocks=[{"type": "header", "text": {"type": "plain_text", "text": "<!channel>"}}]
    )
    got = [(sorted(m.notifies.broadcasts), sorted(m.notifies.users)) for m in fake.messages("C1")]
    assert got == [(["here"], ["U1"]), ([], []), (["channel"], []), (["everyone"], []), ([], []), ([], [])]


def test_given_a_lost_response_when_posting_then_the_message_exists_but_the_caller_saw_a_failure(
    fake: FakeSlack,
) -> None:
    fake.lose_responses("chat.postMessage")
    with pytest.raises(SlackApiError):
        _client(fake).chat_postMessage(channel="C1", text="did it?")
    assert [m.text for m in fake.messages("C1")] == ["did it?"]
    assert _client(fake).users_info(user="U1")["user"]["tz"] == "America/New_York"
    shown = json.loads(json.dumps(fake.snapshot()))  # JSON-able, for a browser to render
    [reviews] = [c for c in shown["channels"] if c["id"] == "C1"]
    assert reviews["kind"] == "public" and reviews["messages"][0]["text"] == "did it?"
