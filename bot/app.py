"""The Bolt app: listeners bound to a :class:`bot.context.BotContext`, a WebClient pointed at
``SLACK_API_URL`` (or the fake), and request verification whenever a signing secret is set
(HTTP mode always has one; Socket Mode requests are authenticated by the socket).
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry import RetryHandler
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler

from bot import listeners
from bot.context import BotContext

__all__ = ["build_app", "web_client"]


class _QuietTokenWarning(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment on its own and then warns that the
    client we pass wins over it — which is the point (the client knows SLACK_API_URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("As you gave `client` as well")


_BOLT_LOG = logging.getLogger("loopgate.bolt")
_BOLT_LOG.addFilter(_QuietTokenWarning())


def web_client(token: str, base_url: str, *, retries: bool = True) -> WebClient:
    """A WebClient for ``base_url``. ``retries=False`` for effects that must not be repeated
    behind the caller's back (the outbox retries them, after checking what already happened)."""
    handlers: list[RetryHandler] = [ConnectionErrorRetryHandler(max_retry_count=1)] if retries else []
    return WebClient(
        token=token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        timeout=10,
        retry_handlers=handlers,
        logger=logging.getLogger("loopgate.slack_sdk"),
    )


def build_app(
    ctx: BotContext,
    *,
    client: WebClient,
    signing_secret: str | None,
    executor: Executor | None = None,
) -> App:
    """``signing_secret=None`` only for Socket Mode. Calls ``auth.test`` once, now.

    Listeners run in the request's own thread and Slack is answered when they return
    (``process_before_response``). Bolt's default hands each listener to a pool and polls for
    its ``ack()`` every 10 ms, which made 10 ms the least any click waited (bench/slack_ack.py:
    a bare Bolt app's p50 fell from 13 to 3 ms with it). So a listener must return as soon as it
    has acked: work after the ack goes to lazy listeners, ``ctx.later`` or the outbox. Bolt runs
    the lazy listeners on ``executor``."""
    app = App(
        name="loopgate",
        client=client,
        signing_secret=signing_secret or "",
        request_verification_enabled=bool(signing_secret),
        listener_executor=executor,
        process_before_response=True,
        logger=_BOLT_LOG,
    )
    listeners.register(app, ctx)
    return app
