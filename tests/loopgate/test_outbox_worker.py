"""The background outbox worker of ``loopgate serve``: how it stops."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import select

from core.store import outbox
from core.store.db import Database
from core.store.models import OutboxRow
from core.store.outbox import Done, OutboxItem, Outcome
from loopgate.outbox_worker import OutboxWorker


class HeldFirstBatch:
    """Slack, slow to answer: the first batch waits until the test lets it go."""

    kinds = ("test.effect",)
    batch_size = 2

    def __init__(self) -> None:
        self.started, self.release = threading.Event(), threading.Event()
        self.batches: list[list[int]] = []

    def perform(self, items: Sequence[OutboxItem]) -> Mapping[int, Outcome]:
        self.batches.append([item.payload["i"] for item in items])
        self.started.set()
        assert self.release.wait(30)
        return {item.pk: Done() for item in items}


def test_given_a_backlog_when_the_worker_is_stopped_mid_batch_then_it_finishes_that_batch_and_claims_no_more(
    db: Database, now: datetime
) -> None:
    with db.transaction() as s:
        for i in range(10):
            outbox.enqueue(s, "test.effect", f"test.effect:{i}", {"i": i}, now=now)
    handler = HeldFirstBatch()
    worker = OutboxWorker(db, [handler], clock=lambda: now, poll=0.01)
    worker.start()
    assert handler.started.wait(30)

    worker.stop(timeout=0)  # SIGTERM: asked to stop while the batch is with Slack
    handler.release.set()
    worker.stop(timeout=30)

    assert not worker.alive
    assert handler.batches == [[0, 1]]
    with db.sessions() as s:
        statuses = list(s.execute(select(OutboxRow.status).order_by(OutboxRow.pk)).scalars())
    assert statuses == ["done"] * 2 + ["pending"] * 8  # the rest is left for the next process, unclaimed
