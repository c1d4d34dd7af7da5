"""Draining the outbox in the background of ``loopgate serve``.

One thread per process drains the given handlers' kinds until nothing is due, then waits for
the poll interval — or less, when :meth:`OutboxWorker.wake` says something was just queued
(a review recorded by this process), so Slack updates go out at once. Every replica may run
one: claims use ``SKIP LOCKED`` leases, so replicas share rows instead of doubling them.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from datetime import datetime

from core.store.db import Database
from core.store.outbox import DrainReport, EffectHandler, RetryPolicy, drain

__all__ = ["OutboxWorker", "worker_id"]

log = logging.getLogger(__name__)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class OutboxWorker:
    def __init__(
        self,
        db: Database,
        handlers: Sequence[EffectHandler],
        *,
        clock: Callable[[], datetime],
        worker: str | None = None,
        poll: float = 1.0,
        policy: RetryPolicy | None = None,
        batches_per_round: int = 50,
        name: str = "outbox",
    ) -> None:
        self.name = name
        self.db, self.handlers, self.clock = db, list(handlers), clock
        self.worker = worker or worker_id()
        self.poll, self.policy, self.batches = poll, policy, batches_per_round
        self.report = DrainReport()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(kind for handler in self.handlers for kind in handler.kinds)

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if not self.handlers:
            return
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in hand, then stop (rows not settled return after their lease)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is None or self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            busy = False
            try:
                round_ = drain(
                    self.db,
                    self.handlers,
                    self.worker,
                    self.clock,
                    policy=self.policy,
                    max_batches=self.batches,
                    stop=self._stop.is_set,
                )
                self.report.add(round_)
                busy = round_.done + round_.retried + round_.dead + round_.lost_lease >= self.batches
            except Exception:  # the database may be away for a moment; the loop must live on
                log.exception("outbox drain failed; retrying in %.1fs", self.poll)
            if not busy:
                self._wake.wait(self.poll)
