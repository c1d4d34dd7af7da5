"""Composition of ``loopgate serve``: the Bolt app, its front (HTTP or Socket Mode), the outbox
workers (one records stored clicks, one performs Slack effects) and any other background
services, built from settings, database and policy.

Extension points, so other parts plug in without editing the bot:

* ``handlers`` — more :class:`core.store.outbox.EffectHandler` s for the effects worker; Slack
  messages and file uploads (the digest's chart) are always handled. (``serve`` runs the CRM
  write-back in a worker of its own, as a service: see :mod:`loopgate.scheduling`);
* ``services`` — anything with ``name``, ``start()`` and ``stop()`` (the CRM write-back worker,
  the scheduler), started after the worker and stopped before it;
* ``review_clock`` — when reviews are due (:class:`bot.sla.ReviewClock`); the default is the
  decision time plus ``sla.review``, the scheduler can pass one that knows working hours.

Shutdown runs in reverse: the front stops accepting and answers the requests in flight, work
after acks finishes (the lazy pool is drained), services stop, the worker settles its batch, and the
database is disposed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from slack_bolt import App
from slack_bolt.error import BoltError
from slack_bolt.lazy_listener import ThreadLazyListenerRunner

from bot.app import build_app, web_client
from bot.click_inbox import ClickInbox
from bot.context import BotContext
from bot.notifier import SlackNotifier
from bot.sla import PolicyReviewClock, ReviewClock
from bot.uploads import SlackFileUploader
from core.policy import LoadedPolicy, Policy
from core.store.db import Database
from core.store.outbox import EffectHandler
from loopgate.outbox_worker import OutboxWorker
from loopgate.policy_follower import PolicyFollower
from loopgate.server import HttpFront
from loopgate.settings import ConfigError, Settings

__all__ = ["ListenerPool", "Runtime", "Service", "compose"]

log = logging.getLogger(__name__)


class Service(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


class _CountingPool(ThreadPoolExecutor):
    """A thread pool that counts work in flight, so callers can wait until it is idle."""

    def __init__(self, max_workers: int, prefix: str) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=prefix)
        self._busy = 0
        self._idle = threading.Condition()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._idle:
            self._busy += 1
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: Future[Any]) -> None:
        with self._idle:
            self._busy -= 1
            self._idle.notify_all()

    def idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)


class ListenerPool:
    """The pool for work after an ack: Bolt's lazy listeners and :attr:`BotContext.later`.

    Acks themselves run in the request's thread (see :func:`bot.app.build_app`), so they never
    queue behind this work. Shutdown (and tests) wait until the pool is idle.
    """

    name = "listeners"

    def __init__(self, threads: int) -> None:
        self.lazy = _CountingPool(threads, "bolt-lazy")

    def attach(self, app: App) -> None:
        """Route the app's lazy functions to this pool."""
        runner = app.listener_runner
        runner.lazy_listener_runner = ThreadLazyListenerRunner(logger=runner.logger, executor=self.lazy)

    def later(self, work: Callable[[], None]) -> None:
        self.lazy.submit(work)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once the pool has no work (work may queue more, so check twice)."""
        deadline = time.monotonic() + timeout
        return all(self.lazy.idle(max(deadline - time.monotonic(), 0)) for _ in range(2))

    def start(self) -> None:
        return None

    def stop(self) -> None:
        self.shutdown()

    def shutdown(self, wait: bool = True) -> None:
        self.lazy.shutdown(wait=wait)


class _SocketMode:
    name = "socket-mode"

    def __init__(self, app: App, app_token: str) -> None:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        self.handler = SocketModeHandler(app, app_token, web_client=app.client)

    def start(self) -> None:
        self.handler.connect()  # type: ignore[no-untyped-call]

    def stop(self) -> None:
        self.handler.close()  # type: ignore[no-untyped-call]


@dataclass
class Runtime:
    """Services in start order; ``front`` is the HTTP front (health check, and Slack in HTTP mode)."""

    app: App
    context: BotContext
    notifier: SlackNotifier
    worker: OutboxWorker
    front: HttpFront
    pool: ListenerPool
    clicks: ClickInbox
    services: list[Any] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)
    mode: str = "http"
    uploader: SlackFileUploader | None = None

    def start(self) -> None:
        for service in self.services:
            log.info("starting %s", service.name)
            service.start()

    def stop(self) -> None:
        if self.stopped.is_set():
            return
        for service in reversed(self.services):
            try:
                service.stop()
            except Exception:  # one service failing to stop must not keep the others running
                log.exception("stopping %s failed", service.name)
        self.context.db.dispose()
        self.stopped.set()


def _health(db: Database, workers: Sequence[OutboxWorker]) -> Callable[[], tuple[bool, dict[str, Any]]]:
    def check() -> tuple[bool, dict[str, Any]]:
        try:
            db.check_connection()
            database = "ok"
        except Exception as exc:  # health reports any failure instead of raising it
            database = f"error: {type(exc).__name__}"
        ok = database == "ok" and all(w.alive for w in workers)
        states = {f"{w.name}_worker": "running" if w.alive else "stopped" for w in workers}
        return ok, {"database": database, **states}

    return check


def _utcnow() -> datetime:
    return datetime.now(UTC)


def compose(
    settings: Settings,
    db: Database,
    policy: LoadedPolicy,
    *,
    host: str = "127.0.0.1",
    port: int = 3000,
    clock: Callable[[], datetime] = _utcnow,
    handlers: Sequence[EffectHandler] = (),
    services: Sequence[Service] = (),
    review_clock_for: Callable[[Policy], ReviewClock] | None = None,
    follow_champion: float | None = None,
    outbox: bool = True,
    poll: float = 1.0,
    lazy_threads: int = 4,
) -> Runtime:
    """Build (not start) everything ``loopgate serve`` runs. ``follow_champion`` (seconds):
    adopt a newly published champion that often (:mod:`loopgate.policy_follower`)."""
    token, signing_secret = settings.require_slack()
    socket_mode = settings.slack_app_token is not None and bool(settings.slack_app_token.get_secret_value())
    secret = signing_secret.get_secret_value() if signing_secret is not None else ""
    if not socket_mode and not secret:
        raise ConfigError("SLACK_SIGNING_SECRET is empty: HTTP mode verifies every request with it")
    context = BotContext(db, policy, clock=clock, review_clock_for=review_clock_for or PolicyReviewClock)
    pool = ListenerPool(lazy_threads)
    try:  # Bolt checks the token with auth.test right here: fail in one line, not a traceback
        app = build_app(
            context,
            client=web_client(token.get_secret_value(), settings.slack_api_url),
            signing_secret=None if socket_mode else secret,
            executor=pool.lazy,
        )
    except BoltError as exc:
        pool.shutdown()
        raise ConfigError(f"Slack refused SLACK_BOT_TOKEN at {settings.slack_api_url} ({exc})") from None
    except OSError as exc:
        pool.shutdown()
        raise ConfigError(f"cannot reach Slack at SLACK_API_URL={settings.slack_api_url} ({exc})") from None
    pool.attach(app)
    context.later = pool.later
    notifier = SlackNotifier(
        db,
        context.rules,
        web_client(token.get_secret_value(), settings.slack_api_url, retries=False),
        review_clock=context.review_clock,
        clock=clock,
    )
    uploader = SlackFileUploader(
        db, web_client(token.get_secret_value(), settings.slack_api_url, retries=False), clock=clock
    )
    clicks = ClickInbox(context, app.client)
    # two workers: recording clicks does not wait behind posting messages, nor the other way
    # round (on PostgreSQL each is mostly round trips; one thread doing both fell seconds
    # behind a burst of clicks)
    retry = settings.outbox_retry_policy()
    click_handlers: list[EffectHandler] = [clicks] if outbox else []
    effect_handlers: list[EffectHandler] = [notifier, uploader, *handlers] if outbox else []
    click_worker = OutboxWorker(db, click_handlers, clock=clock, poll=poll, policy=retry, name="clicks")
    worker = OutboxWorker(db, effect_handlers, clock=clock, poll=poll, policy=retry)
    context.wake_outbox, context.wake_clicks = worker.wake, click_worker.wake
    try:  # a port in use or a host that is not this machine's: one line naming the setting
        front = HttpFront(
            None if socket_mode else app, host=host, port=port, health=_health(db, [click_worker, worker])
        )
    except (OSError, OverflowError) as exc:
        pool.shutdown()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc}): choose another --port/LOOPGATE_PORT or --host/LOOPGATE_HOST"
        ) from None
    ordered: list[Any] = [click_worker, worker, *services, pool]
    if follow_champion is not None:

        def adopt(loaded: LoadedPolicy) -> None:
            context.adopt(loaded)
            notifier.adopt(context.rules, context.review_clock)

        ordered.insert(0, PolicyFollower(db, policy, [adopt], every=follow_champion))
    if socket_mode:
        assert settings.slack_app_token is not None
        ordered.append(_SocketMode(app, settings.slack_app_token.get_secret_value()))
    ordered.append(front)
    return Runtime(
        app,
        context,
        notifier,
        worker,
        front,
        pool,
        clicks,
        ordered,
        mode="socket" if socket_mode else "http",
        uploader=uploader,
    )
