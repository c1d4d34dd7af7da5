"""Requests Slack sends to an app, built the way Slack builds them, and signed.

Shapes follow Slack's documented payloads (``block_actions`` from a message or a Home tab,
``view_submission``, slash commands as form posts, ``event_callback`` for
``app_home_opened``). Signing is Slack's: ``v0=`` + hex HMAC-SHA256 of ``v0:{ts}:{body}``
with the app's signing secret, in ``X-Slack-Signature`` beside ``X-Slack-Request-Timestamp``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import quote, urlencode

__all__ = [
    "app_home_opened",
    "block_actions",
    "form_body",
    "sign",
    "signed_headers",
    "slash_command",
    "view_submission",
]


def sign(secret: str, timestamp: str, body: str) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(
    secret: str,
    body: str,
    content_type: str,
    *,
    timestamp: int | None = None,
    retry_num: int | None = None,
    retry_reason: str | None = None,
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": sign(secret, ts, body),
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
    }
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
    return headers


def form_body(payload: dict[str, Any]) -> str:
    """Interactive payloads arrive as ``payload=<url-encoded JSON>``."""
    return "payload=" + quote(json.dumps(payload, separators=(",", ":")))


def _user(user: dict[str, Any], team_id: str) -> dict[str, Any]:
    return {"id": user["id"], "username": user["name"], "name": user["name"], "team_id": team_id}


def block_actions(
    *,
    team: dict[str, Any],
    app_id: str,
    user: dict[str, Any],
    action: dict[str, Any],
    block_id: str,
    trigger_id: str,
    response_url: str | None,
    message: dict[str, Any] | None = None,
    channel: dict[str, Any] | None = None,
    view: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A button click on a message (``message`` + ``channel``) or on a view (``view``)."""
    clicked = {
        "action_id": action["action_id"],
        "block_id": block_id,
        "text": action.get("text"),
        "value": action.get("value"),
        "type": action.get("type", "button"),
        "action_ts": f"{time.time():.6f}",
    }
    if action.get("style"):
        clicked["style"] = action["style"]
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user(user, team["id"]),
        "api_app_id": app_id,
        "token": "legacy-verification-token",
        "trigger_id": trigger_id,
        "team": {"id": team["id"], "domain": team["domain"]},
        "enterprise": None,
        "is_enterprise_install": False,
        "actions": [clicked],
    }
    if view is not None:
        payload["container"] = {"type": "view", "view_id": view["id"]}
        payload["view"] = view
        payload["state"] = view.get("state", {"values": {}})
    else:
        assert message is not None and channel is not None
        payload["container"] = {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": channel["id"],
            "is_ephemeral": False,
        }
        payload["channel"] = {"id": channel["id"], "name": channel["name"]}
        payload["message"] = message
        payload["state"] = {"values": {}}
        payload["response_url"] = response_url
    return payload


def view_submission(
    *, team: dict[str, Any], app_id: str, user: dict[str, Any], view: dict[str, Any], trigger_id: str
) -> dict[str, Any]:
    return {
        "type": "view_submission",
        "team": {"id": team["id"], "domain": team["domain"]},
        "user": _user(user, team["id"]),
        "api_app_id": app_id,
        "token": "legacy-verification-token",
        "trigger_id": trigger_id,
        "view": view,
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def slash_command(
    *,
    team: dict[str, Any],
    app_id: str,
    user: dict[str, Any],
    channel: dict[str, Any],
    command: str,
    text: str,
    response_url: str,
    trigger_id: str,
) -> str:
    """A slash command: a form post, not JSON."""
    return urlencode(
        {
            "token": "legacy-verification-token",
            "team_id": team["id"],
            "team_domain": team["domain"],
            "channel_id": channel["id"],
            "channel_name": channel["name"],
            "user_id": user["id"],
            "user_name": user["name"],
            "command": command,
            "text": text,
            "api_app_id": app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
    )


def app_home_opened(
    *, team: dict[str, Any], app_id: str, user: dict[str, Any], channel: str, view: dict[str, Any] | None, bot_user: str
) -> str:
    now = time.time()
    event: dict[str, Any] = {"type": "app_home_opened", "user": user["id"], "channel": channel, "tab": "home"}
    if view is not None:
        event["view"] = view
    event["event_ts"] = f"{now:.6f}"
    return json.dumps(
        {
            "token": "legacy-verification-token",
            "team_id": team["id"],
            "api_app_id": app_id,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{int(now * 1000):X}",
            "event_time": int(now),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": team["id"],
                    "user_id": bot_user,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }
    )
