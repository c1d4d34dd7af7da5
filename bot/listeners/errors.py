"""The one place listener failures go: ``@app.error`` for listeners and acks, and
:func:`guarded` for lazy functions and :func:`after_ack` for work after an ack (Bolt would only
log those), all ending in :func:`report`.

A failure is logged once with a short reference (never the request body: it can hold a
legacy verification token and CRM text), and the person who clicked is told, with the same
reference, that it did not work: in the channel where they clicked, seen only by them, or in
the app's DM with them when the click had no channel (the App Home tab, a modal).
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltResponse
from slack_sdk import WebClient

from bot import ids
from bot.blocks.replies import failure
from bot.context import BotContext
from bot.errors import SlackCallFailed, slack_call

__all__ = ["after_ack", "guarded", "register", "report"]

log = logging.getLogger("loopgate.bot")


def _describe(body: dict[str, Any]) -> str:
    kind = body.get("type") or ("slash_command" if "command" in body else "request")
    detail = ""
    if body.get("actions"):
        detail = body["actions"][0].get("action_id", "")
    elif isinstance(body.get("view"), dict):
        detail = body["view"].get("callback_id", "")
    elif body.get("command"):
        detail = f"{body['command']} {str(body.get('text', '')).split(' ')[0]}"
    elif isinstance(body.get("event"), dict):
        detail = body["event"].get("type", "")
    user = (body.get("user") or {}).get("id") if isinstance(body.get("user"), dict) else body.get("user_id")
    return f"{kind} {detail} by {user or '?'}"


def _where(body: dict[str, Any]) -> tuple[str | None, str | None]:
    user = (body.get("user") or {}).get("id") if isinstance(body.get("user"), dict) else body.get("user_id")
    container = body.get("container") or {}
    channel = container.get("channel_id") or body.get("channel_id")
    return user, channel


def report(error: BaseException, body: dict[str, Any], client: WebClient | None, *, tell: bool = True) -> str:
    """Log a failure once and tell the person (unless the caller tells them itself); returns
    the reference both carry."""
    ref = uuid.uuid4().hex[:8]
    log.error("[ref %s] %s failed: %s: %s", ref, _describe(body), type(error).__name__, error, exc_info=error)
    user, channel = _where(body)
    if tell and client is not None and user:
        message = failure(ref)
        try:
            if channel:
                post = client.chat_postEphemeral
                slack_call("chat.postEphemeral", post, channel=channel, user=user, **message.kwargs())
            else:  # a click in the App Home or a modal has no channel: the app's DM with them is theirs alone
                slack_call("chat.postMessage", client.chat_postMessage, channel=user, **message.kwargs())
        except SlackCallFailed as exc:
            log.warning("[ref %s] could not tell %s: %s", ref, user, exc)
    return ref


def guarded(func: Callable[..., None]) -> Callable[..., None]:
    """Route a lazy function's exceptions to :func:`report` (Bolt would only log them).
    Bolt reads the wrapped function's parameter names, so injection is unchanged."""

    @functools.wraps(func)
    def run(**kwargs: Any) -> None:
        _reported(lambda: func(**kwargs), kwargs.get("body") or {}, kwargs.get("client"))

    return run


def after_ack(ctx: BotContext, body: dict[str, Any], client: WebClient, work: Callable[[], None]) -> None:
    """Run ``work`` once the listener has returned (Slack gets its answer first), reporting
    its failure like a lazy function's."""

    ctx.later(lambda: _reported(work, body, client))


def _reported(work: Callable[[], None], body: dict[str, Any], client: WebClient | None) -> None:
    try:
        work()
    except Exception as exc:  # the single catch-all of work after an ack: reported, not swallowed
        report(exc, body, client)


def register(app: App) -> None:
    @app.error
    def on_error(error: Exception, body: dict[str, Any], client: WebClient, response: BoltResponse | None) -> Any:
        in_modal = (body or {}).get("type") == "view_submission" and response is not None
        ref = report(error, body or {}, client, tell=not in_modal)
        if in_modal:
            # keep the modal open and say so there, instead of Slack's generic "trouble connecting"
            return BoltResponse(
                status=200,
                body={"response_action": "errors", "errors": {ids.BLOCK_REASON: f"That did not work (ref {ref})."}},
            )
        return None
