"""The outbox: effects added once, claimed by one worker, retried with backoff, never lost."""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, text

from core.store import outbox
from core.store.db import Database
from core.store.models import OutboxRow
from core.store.outbox import Dead, Deferred, Done, OutboxItem, Outcome, Retry, RetryPolicy


def _add(db: Database, now: datetime, n: int, kind: str = "test.effect") -> None:
    with db.transaction() as s:
        for i in range(n):
            outbox.enqueue(s, kind, f"{kind}:{i}", {"i": i}, now=now)


class Recorder:
    kinds = ("test.effect",)
    batch_size = 7

    def __init__(self, outcome: Outcome | None = None) -> None:
        self.seen: list[int] = []
        self.outcome = outcome or Done({"ok": True})

    def perform(self, items: Sequence[OutboxItem]) -> Mapping[int, Outcome]:
        self.seen += [item.payload["i"] for item in items]
        return {item.pk: self.outcome for item in items}


def _statuses(db: Database) -> list[str]:
    with db.sessions() as s:
        return list(s.execute(select(OutboxRow.status).order_by(OutboxRow.pk)).scalars())


def test_given_the_same_key_twice_when_enqueued_then_one_row(db: Database, now: datetime) -> None:
    with db.transaction() as s:
        assert outbox.enqueue(s, "test.effect", "k", {"a": 1}, now=now) is True
        assert outbox.enqueue(s, "test.effect", "k", {"a": 2}, now=now) is False
    assert len(_statuses(db)) == 1


def test_given_the_same_key_twice_when_enqueued_alone_then_one_row_with_the_first_payload(
    db: Database, now: datetime
) -> None:
    assert outbox.enqueue_alone(db, "test.effect", "k", {"a": 1}, now=now) is True
    assert outbox.enqueue_alone(db, "test.effect", "k", {"a": 2}, now=now) is False
    with db.sessions() as s:
        assert list(s.execute(select(OutboxRow.payload)).scalars()) == [{"a": 1}]


def test_given_its_connection_was_killed_when_enqueued_alone_then_sent_again_on_a_fresh_one(
    db: Database, now: datetime
) -> None:
    if not db.is_postgres:
        pytest.skip("the server dropping a pooled connection is PostgreSQL's case")
    assert outbox.enqueue_alone(db, "test.effect", "k1", {}, now=now)
    with db.engine.connect() as admin:  # the server ends every other session, as a restart would
        admin.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    assert outbox.enqueue_alone(db, "test.effect", "k2", {}, now=now)
    assert len(_statuses(db)) == 2


def test_given_due_rows_when_drained_then_each_is_performed_once_and_done(db: Database, now: datetime) -> None:
    _add(db, now, 20)
    handler = Recorder()
    report = outbox.drain(db, [handler], "w1", lambda: now)
    assert sorted(handler.seen) == list(range(20))
    assert report.done == 20
    assert set(_statuses(db)) == {"done"}
    assert outbox.drain(db, [handler], "w1", lambda: now).done == 0


def test_given_a_backlog_when_a_handlers_first_kind_arrives_then_it_is_claimed_ahead_of_the_rest(
    db: Database, now: datetime
) -> None:
    _add(db, now, 5, "test.post")  # a backlog of new posts...
    _add(db, now, 2, "test.update")  # ...then two updates a person is waiting for
    _add(db, now, 1, "test.post2")
    claimed = outbox.claim(db, ["test.update", "test.post", "test.post2"], "w", limit=4, now=now)
    assert [(i.kind, i.payload["i"]) for i in claimed] == [
        ("test.update", 0),
        ("test.update", 1),
        ("test.post", 0),
        ("test.post", 1),
    ]
    rest = outbox.claim(db, ["test.post", "test.post2", "test.update"], "w", limit=10, now=now)
    assert [(i.kind, i.payload["i"]) for i in rest] == [("test.post", 2), ("test.post", 3), ("test.post", 4),
                                                        ("test.post2", 0)]  # fmt: skip


def test_given_a_key_prefix_when_claimed_then_only_keys_starting_with_it_exactly(db: Database, now: datetime) -> None:
    keys = ["digest:2026-W47:summary", "digest:2026-W47:chart", "digest:2026-W470:x", "DIGEST:2026-W47:y",
            "digest_2026-W47:z", "escalation:1"]  # fmt: skip
    with db.transaction() as s:
        for i, key in enumerate(keys):
            outbox.enqueue(s, "test.effect", key, {"i": i}, now=now)
    taken = outbox.claim(db, ["test.effect"], "w", limit=10, now=now, key_prefix="digest:2026-W47:")
    assert sorted(i.dedupe_key for i in taken) == ["digest:2026-W47:chart", "digest:2026-W47:summary"]
    assert len(outbox.claim(db, ["test.effect"], "w", limit=10, now=now)) == 4  # the rest stayed due


def test_given_a_transient_failure_when_drained_then_retried_after_backoff_and_dead_after_max(
    db: Database, now: datetime
) -> None:
    _add(db, now, 1)
    policy = RetryPolicy(base=timedelta(seconds=10), max_attempts=3)
    failing = Recorder(Retry("boom"))
    clock = [now]
    rng = random.Random(1)
    outbox.drain(db, [failing], "w", lambda: clock[0], policy=policy, rng=rng)
    assert _statuses(db) == ["pending"]
    assert outbox.drain(db, [failing], "w", lambda: clock[0], policy=policy, rng=rng).retried == 0  # not due yet
    for _ in range(2):
        clock[0] += timedelta(hours=1)
        outbox.drain(db, [failing], "w", lambda: clock[0], policy=policy, rng=rng)
    assert _statuses(db) == ["dead"]
    assert len(failing.seen) == 3


def test_given_the_service_down_when_retried_past_max_attempts_then_the_row_waits_until_max_age_then_dies(
    db: Database, now: datetime
) -> None:
    _add(db, now, 1)
    policy = RetryPolicy(base=timedelta(seconds=10), cap=timedelta(minutes=30), max_attempts=3,
                         max_age=timedelta(hours=48))  # fmt: skip
    down = Recorder(Retry("503 maintenance", transient=True))
    clock = [now]
    while clock[0] < now + timedelta(hours=47):  # far more tries than max_attempts
        outbox.drain(db, [down], "w", lambda: clock[0], policy=policy)
        clock[0] += timedelta(minutes=30)
    assert _statuses(db) == ["pending"] and len(down.seen) > policy.max_attempts

    clock[0] = now + timedelta(hours=48)
    outbox.drain(db, [down], "w", lambda: clock[0], policy=policy)
    assert _statuses(db) == ["dead"]


def test_given_a_row_older_than_max_age_when_the_service_fails_then_it_still_gets_its_attempts(
    db: Database, now: datetime
) -> None:
    """A row that waited (deferred) longer than max_age, then meets an outage, still gets its
    attempts: age alone does not kill it, nor attempts alone."""
    _add(db, now, 1)
    policy = RetryPolicy(max_attempts=2, max_age=timedelta(hours=1))
    later = [now + timedelta(hours=5)]
    down = Recorder(Retry("503", after=timedelta(seconds=1), transient=True))
    outbox.drain(db, [down], "w", lambda: later[0], policy=policy)
    assert _statuses(db) == ["pending"]
    later[0] += timedelta(seconds=1)
    outbox.drain(db, [down], "w", lambda: later[0], policy=policy)
    assert _statuses(db) == ["dead"] and len(down.seen) == 2


def test_given_a_deferral_with_a_reason_when_settled_then_the_reason_is_kept_and_no_attempt_counted(
    db: Database, now: datetime
) -> None:
    _add(db, now, 1)
    policy = RetryPolicy(max_attempts=2)
    clock = [now]
    waiting = Recorder(Deferred(timedelta(minutes=15), "401 token expired"))
    for _ in range(5):
        outbox.drain(db, [waiting], "w", lambda: clock[0], policy=policy)
        clock[0] += timedelta(minutes=15)
    with db.sessions() as s:
        row = s.execute(select(OutboxRow)).scalar_one()
    assert (row.status, row.attempts, row.last_error) == ("pending", 0, "401 token expired")
    assert len(waiting.seen) == 5


def test_given_a_retry_after_when_settled_then_the_row_waits_exactly_that_long(db: Database, now: datetime) -> None:
    _add(db, now, 1)
    outbox.drain(db, [Recorder(Retry("429", after=timedelta(seconds=42)))], "w", lambda: now)
    with db.sessions() as s:
        row = s.execute(select(OutboxRow)).scalar_one()
    assert row.available_at == now + timedelta(seconds=42)
    assert row.last_error == "429"


def test_given_rows_a_handler_did_not_get_to_when_deferred_again_and_again_then_they_keep_their_attempts(
    db: Database, now: datetime
) -> None:
    _add(db, now, 2)
    policy = RetryPolicy(max_attempts=3)
    clock = [now]
    for _ in range(5):  # more rounds than max_attempts
        report = outbox.drain(db, [Recorder(Deferred(timedelta(seconds=1)))], "w", lambda: clock[0], policy=policy)
        assert report.retried == 2
        clock[0] += timedelta(seconds=1)
    with db.sessions() as s:
        rows = s.execute(select(OutboxRow).order_by(OutboxRow.pk)).scalars().all()
    assert [(r.status, r.attempts, r.available_at) for r in rows] == [("pending", 0, clock[0])] * 2


def test_given_a_permanent_failure_when_settled_then_dead_without_retry(db: Database, now: datetime) -> None:
    _add(db, now, 1)
    outbox.drain(db, [Recorder(Dead("invalid field"))], "w", lambda: now)
    assert _statuses(db) == ["dead"]


def test_given_a_worker_that_died_when_its_lease_expires_then_another_worker_performs_the_rows(
    db: Database, now: datetime
) -> None:
    _add(db, now, 3)
    taken = outbox.claim(db, ["test.effect"], "dead-worker", limit=10, now=now, lease=timedelta(minutes=2))
    assert len(taken) == 3
    assert outbox.claim(db, ["test.effect"], "w2", limit=10, now=now + timedelta(minutes=1)) == []
    handler = Recorder()
    outbox.drain(db, [handler], "w2", lambda: now + timedelta(minutes=3))
    assert sorted(handler.seen) == [0, 1, 2]
    # the dead worker coming back cannot overwrite what w2 settled
    late = outbox.settle(
        db,
        "dead-worker",
        taken,
        {i.pk: Retry("late") for i in taken},
        now=now,
        policy=RetryPolicy(),
        rng=random.Random(),
    )
    assert late.lost_lease == 3
    assert set(_statuses(db)) == {"done"}


def test_given_a_handler_that_raises_when_drained_then_its_rows_are_retried_not_stranded(
    db: Database, now: datetime
) -> None:
    _add(db, now, 2)

    class Broken(Recorder):
        def perform(self, items: Sequence[OutboxItem]) -> Mapping[int, Outcome]:
            raise RuntimeError("bug")

    report = outbox.drain(db, [Broken()], "w", lambda: now)
    assert report.retried == 2
    assert _statuses(db) == ["pending", "pending"]


def test_given_two_concurrent_workers_when_claiming_then_no_row_is_claimed_twice(db: Database, now: datetime) -> None:
    _add(db, now, 200)
    claimed: dict[str, list[int]] = {"a": [], "b": []}

    def work(name: str) -> None:
        while True:
            items = outbox.claim(db, ["test.effect"], name, limit=5, now=now)
            if not items:
                return
            claimed[name] += [i.pk for i in items]

    threads = [threading.Thread(target=work, args=(n,)) for n in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = claimed["a"] + claimed["b"]
    assert len(everything) == 200
    assert len(set(everything)) == 200
