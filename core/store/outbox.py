"""The transactional outbox: every external side effect (a Slack post, a CRM write) is a row.

A decision and its effects are written in one transaction, so a crash can never leave a
decision without its effects or an effect without its decision. Workers claim rows with a
lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two replicas never take the same row),
perform them through an :class:`EffectHandler`, and settle each row as done, retry later
(exponential backoff with jitter), deferred (not tried: no attempt counted) or dead. A row
failing on its own dies after ``max_attempts``; one failing because the service is down
(``Retry(transient=True)``) only once it is also ``max_age`` old, so an outage of hours does
not kill effects nothing was wrong with. A worker that dies holding rows loses them when its
lease ends; the next worker performs them again — so handlers must be idempotent (check
before post, skip writes of equal values), which is their contract.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Table, and_, bindparam, case, func, or_, select, update
from sqlalchemy.orm import Session

from core.store.db import Database, execute_many, insert_for
from core.store.models import OutboxRow

__all__ = [
    "Backlog",
    "Dead",
    "Deferred",
    "Done",
    "DrainReport",
    "EffectHandler",
    "OutboxItem",
    "Outcome",
    "Retry",
    "RetryPolicy",
    "backlog",
    "claim",
    "drain",
    "enqueue",
    "enqueue_alone",
    "enqueue_many",
    "pending_counts",
    "requeue_dead",
    "settle",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    pk: int
    kind: str
    dedupe_key: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Done:
    result: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again later; ``after`` overrides the backoff (e.g. a server's Retry-After).

    ``transient``: the failure is the service's, not the row's (a 5xx, a timeout, a
    maintenance window), so the row is not given up after ``max_attempts`` alone but when it
    is also ``RetryPolicy.max_age`` old: the attempts, backoff capped, run out within the
    hour, and an hour's CRM outage killed every write-back pending over it."""

    error: str
    after: timedelta | None = None
    transient: bool = False


@dataclass(frozen=True, slots=True)
class Dead:
    """Give up: the effect can never succeed as it stands (recorded, reported, not retried)."""

    error: str


@dataclass(frozen=True, slots=True)
class Deferred:
    """Not tried this time, wait ``after``: the attempt :func:`claim` counted is given back.

    For rows a handler did not get to (a rate limit hit earlier in the batch): counting them
    as failures let a burst of posts to one Slack channel use up every later row's attempts
    before it was ever sent. Also for rows that cannot be tried until something outside them
    changes (a daily allowance spent, a token revoked, a permission missing): they wait for as
    long as that takes, and ``error``, when given, is kept as the row's ``last_error`` so a
    status page says what they wait for."""

    after: timedelta
    error: str | None = None


Outcome = Done | Retry | Dead | Deferred


class EffectHandler(Protocol):
    """Performs outbox rows of some kinds, a batch at a time, and says how each one went.
    Rows of the first kind listed are taken ahead of the others (the effect a person is
    waiting for, e.g. the message update after their click); the rest in order of arrival."""

    kinds: tuple[str, ...]
    batch_size: int

    def perform(self, items: Sequence[OutboxItem]) -> Mapping[int, Outcome]: ...


DEFAULT_LEASE = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``max_attempts`` bounds a row failing on its own; a ``transient`` failure (the service
    down) is given up only when the row is also ``max_age`` old, which outlasts a maintenance
    window or a night's outage (the backoff's ``cap`` keeps trying every half hour)."""

    base: timedelta = timedelta(seconds=5)
    cap: timedelta = timedelta(minutes=30)
    max_attempts: int = 10
    max_age: timedelta = timedelta(hours=48)
    lease: timedelta = DEFAULT_LEASE

    def ceiling(self, attempts: int) -> timedelta:
        """The longest :meth:`backoff` after this many attempts: ``base`` doubling, up to ``cap``."""
        # the exponent is capped too: a transient row may be tried a hundred times
        doublings: int = min(max(attempts - 1, 0), 32)
        return min(self.cap, self.base * (1 << doublings))

    def backoff(self, attempts: int, rng: random.Random) -> timedelta:
        """Full-jitter exponential backoff: spreads retries of many rows over time."""
        return self.ceiling(attempts) * (0.5 + rng.random() / 2)

    def gives_up(self, item: OutboxItem, outcome: Retry, now: datetime) -> bool:
        """Whether a row that failed again is dead: out of attempts, and, for a failure of the
        service rather than the row, old enough that the service is not coming back for it."""
        if item.attempts < self.max_attempts:
            return False
        return not outcome.transient or now - item.created_at >= self.max_age


def enqueue(
    session: Session,
    kind: str,
    dedupe_key: str,
    payload: dict[str, Any],
    *,
    now: datetime,
    available_at: datetime | None = None,
) -> bool:
    """Add an effect in the caller's transaction. The same ``dedupe_key`` is only ever added
    once, so retried callers cannot double an effect. Returns whether a row was added."""
    stmt = _insert_once(session.get_bind().dialect.name, kind, dedupe_key, payload, now, available_at)
    return session.execute(stmt).first() is not None


def enqueue_alone(db: Database, kind: str, dedupe_key: str, payload: dict[str, Any], *, now: datetime) -> bool:
    """:func:`enqueue` as a transaction of its own, in one round trip to the database: for the
    effect a person's click is acknowledged on (see :meth:`Database.execute_alone`)."""
    return bool(db.execute_alone(_insert_once(db.dialect, kind, dedupe_key, payload, now, None)))


def _insert_once(
    dialect: str, kind: str, dedupe_key: str, payload: dict[str, Any], now: datetime, available_at: datetime | None
) -> Any:
    table: Table = OutboxRow.__table__  # type: ignore[assignment]  # Core: the ORM's bulk insert cost an ack 1/4 of its CPU
    return (
        insert_for(dialect, table)
        .values(
            kind=kind,
            dedupe_key=dedupe_key,
            payload=payload,
            status="pending",
            attempts=0,
            available_at=available_at or now,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(table.c.pk)
    )


def enqueue_many(session: Session, effects: Sequence[tuple[str, str, dict[str, Any]]], *, now: datetime) -> None:
    """Add many ``(kind, dedupe_key, payload)`` effects in one statement, with the same
    once-per-key guarantee as :func:`enqueue` (connectors branch: deciding a page of leads)."""
    if not effects:
        return
    rows = [
        {"kind": kind, "dedupe_key": key, "payload": payload, "status": "pending", "attempts": 0,
         "available_at": now, "created_at": now}
        for kind, key, payload in effects
    ]  # fmt: skip
    execute_many(session, _insert_many(session.get_bind().dialect.name), rows)


@functools.lru_cache(maxsize=4)
def _insert_many(dialect: str) -> Any:
    """:func:`enqueue_many`'s statement, built once per database kind (see :func:`execute_many`)."""
    table = OutboxRow.__table__  # the Core table: one executemany, not an ORM bulk insert split by NULLs
    return insert_for(dialect, table).on_conflict_do_nothing(index_elements=["dedupe_key"])


def claim(
    db: Database,
    kinds: Sequence[str],
    worker: str,
    *,
    limit: int,
    now: datetime,
    lease: timedelta = DEFAULT_LEASE,
    key_prefix: str | None = None,
) -> list[OutboxItem]:
    """Take up to ``limit`` due rows of these kinds for ``worker`` until ``now + lease``: rows
    of ``kinds[0]`` first, then by arrival (a message update after a click must not wait for
    a morning's backlog of new escalations, each paced by Slack's rate limit). With
    ``key_prefix``, only rows whose dedupe key starts with it: one job's own effects."""
    statement = _claim_statement(tuple(kinds), limit, key_prefix is not None)
    params: dict[str, Any] = {"worker": worker, "now": now, "until": now + lease}
    if key_prefix is not None:
        params |= {"prefix": key_prefix, "prefix_length": len(key_prefix)}
    with db.transaction() as session:
        rows = session.connection().execute(statement, params).all()
    return sorted((OutboxItem(*row) for row in rows), key=lambda item: (item.kind != kinds[0], item.pk))


@functools.lru_cache(maxsize=64)
def _claim_statement(kinds: tuple[str, ...], limit: int, by_prefix: bool = False) -> Any:
    """The claim as one Core statement per (kinds, limit), built once: a worker claims after
    every batch, often of one row, and building the statement through the ORM each time was
    most of a busy Slack worker's CPU (py-spy, bench/slack_ack.py: 63% of the effects worker)."""
    table: Table = OutboxRow.__table__  # type: ignore[assignment]
    c = table.c
    now = bindparam("now", type_=c.available_at.type)
    urgent = case((c.kind == kinds[0], 0), else_=1) if len(kinds) > 1 else None
    # substr, not LIKE: exact on both databases (SQLite's LIKE ignores case; no escaping of % or _)
    prefixed = (func.substr(c.dedupe_key, 1, bindparam("prefix_length")) == bindparam("prefix"),) if by_prefix else ()
    due = (
        select(c.pk)
        .where(
            c.kind.in_(kinds),
            *prefixed,
            or_(
                and_(c.status == "pending", c.available_at <= now),
                and_(c.status == "claimed", c.claimed_until < now),
            ),
        )
        .order_by(*(() if urgent is None else (urgent,)), c.pk)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (
        update(table)
        .where(c.pk.in_(due.scalar_subquery()))
        .values(
            status="claimed",
            claimed_by=bindparam("worker"),
            claimed_until=bindparam("until", type_=c.claimed_until.type),
            attempts=c.attempts + 1,
        )
        .returning(c.pk, c.kind, c.dedupe_key, c.payload, c.attempts, c.created_at)
    )


def settle(
    db: Database,
    worker: str,
    items: Sequence[OutboxItem],
    outcomes: Mapping[int, Outcome],
    *,
    now: datetime,
    policy: RetryPolicy,
    rng: random.Random,
) -> DrainReport:
    """Record each item's outcome, if ``worker`` still holds it. An item without an outcome
    is retried: a handler that forgot a row must not lose it."""
    report = DrainReport()
    # rows are settled per outcome in one statement each, not one UPDATE per row: a drained
    # batch of thousands of CRM writes spent most of its time here (connectors branch). Each
    # group's rows set the same columns (a deferred row gives its attempt back, a retried one not)
    groups: dict[str, list[dict[str, Any]]] = {"done": [], "retry": [], "deferred": [], "waiting": [], "dead": []}
    for item in items:
        outcome = outcomes.get(item.pk, Retry("handler returned no outcome for this row"))
        values: dict[str, Any]
        if isinstance(outcome, Done):
            group, values = "done", {"status": "done", "done_at": now, "result": outcome.result, "last_error": None}
            report.done += 1
        elif isinstance(outcome, Deferred):
            attempts = max(item.attempts - 1, 0)
            group, values = "deferred", {"status": "pending", "available_at": now + outcome.after, "attempts": attempts}
            if outcome.error is not None:
                group, values = "waiting", {**values, "last_error": outcome.error[:2000]}
            report.retried += 1
        elif isinstance(outcome, Retry) and not policy.gives_up(item, outcome, now):
            delay = outcome.after if outcome.after is not None else policy.backoff(item.attempts, rng)
            group = "retry"
            values = {"status": "pending", "available_at": now + delay, "last_error": outcome.error[:2000]}
            report.retried += 1
        else:
            group, values = "dead", {"status": "dead", "done_at": now, "last_error": outcome.error[:2000]}
            report.dead += 1
            log.error(
                "outbox %s %s gave up after %d attempts: %s",
                item.kind,
                item.dedupe_key,
                item.attempts,
                outcome.error,
            )
        groups[group].append({"pk": item.pk, **values})
    with db.transaction() as session:
        held = set(
            session.execute(
                select(OutboxRow.pk)
                .where(
                    OutboxRow.pk.in_([item.pk for item in items]),
                    OutboxRow.claimed_by == worker,
                    OutboxRow.status == "claimed",
                )
                .with_for_update()
            ).scalars()
        )
        # rows our lease lost were taken by another worker; it settles them
        report.lost_lease += sum(1 for item in items if item.pk not in held)
        table: Table = OutboxRow.__table__  # type: ignore[assignment]  # Core table: one executemany
        for rows in groups.values():
            rows = [row for row in rows if row["pk"] in held]
            if not rows:
                continue
            columns = [c for c in rows[0] if c != "pk"]
            session.execute(
                update(table)
                .where(table.c.pk == bindparam("b_pk"))
                .values(claimed_by=None, claimed_until=None, **{c: bindparam(f"b_{c}") for c in columns}),
                [{f"b_{k}": v for k, v in row.items()} for row in rows],
            )
    return report


@dataclass(slots=True)
class DrainReport:
    done: int = 0
    retried: int = 0
    dead: int = 0
    lost_lease: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)

    def add(self, other: DrainReport) -> None:
        self.done += other.done
        self.retried += other.retried
        self.dead += other.dead
        self.lost_lease += other.lost_lease


def drain(
    db: Database,
    handlers: Sequence[EffectHandler],
    worker: str,
    clock: Callable[[], datetime],
    *,
    policy: RetryPolicy | None = None,
    max_batches: int | None = None,
    rng: random.Random | None = None,
    key_prefix: str | None = None,
    stop: Callable[[], bool] | None = None,
) -> DrainReport:
    """Perform due effects until none are due (or ``max_batches``); returns what happened.
    With ``key_prefix``, only effects whose dedupe key starts with it (see :func:`claim`).
    ``stop`` is asked before each batch is claimed: a process shutting down finishes the batch
    in hand and claims no more (a row claimed and not performed would wait out its lease)."""
    policy = policy or RetryPolicy()
    rng = rng or random.Random()  # noqa: S311 - jitter, not security
    report = DrainReport()
    batches = 0
    progress = True
    while progress and (max_batches is None or batches < max_batches):
        progress = False
        for handler in handlers:
            if stop is not None and stop():
                return report
            items = claim(
                db,
                handler.kinds,
                worker,
                limit=handler.batch_size,
                now=clock(),
                lease=policy.lease,
                key_prefix=key_prefix,
            )
            if not items:
                continue
            progress = True
            batches += 1
            try:
                outcomes = handler.perform(items)
            except Exception as exc:  # a handler bug must not strand claimed rows until lease end
                log.exception("outbox handler for %s failed; retrying its batch", handler.kinds)
                outcomes = {item.pk: Retry(f"handler error: {type(exc).__name__}: {exc}") for item in items}
            report.add(settle(db, worker, items, outcomes, now=clock(), policy=policy, rng=rng))
            for item in items:
                report.by_kind[item.kind] = report.by_kind.get(item.kind, 0) + 1
    return report


def requeue_dead(session: Session, kinds: Sequence[str], *, now: datetime, pks: Sequence[int] | None = None) -> int:
    """Put rows of these kinds that were given up on back in the queue, due now and with
    their attempts back, for an admin who fixed what failed them (a field, a permission, the
    CRM's days-long outage): nothing else ever tries a dead row again. Handlers are idempotent
    and check what is stale (write-back skips superseded decisions), so re-queuing an effect
    that no longer applies costs a no-op. ``last_error`` stays until the next try. A row older
    than ``max_age`` has its ``max_attempts`` again for an outage. ``pks`` narrows it to these
    rows. Returns how many."""
    statement = update(OutboxRow).where(OutboxRow.kind.in_(list(kinds)), OutboxRow.status == "dead")
    if pks is not None:
        statement = statement.where(OutboxRow.pk.in_(list(pks)))
    result = session.execute(statement.values(status="pending", attempts=0, available_at=now, done_at=None))
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True, slots=True)
class Backlog:
    """One kind of effect not yet done, for ``loopgate scheduler status``: rows that wait for a
    fixed token, permission or field are deferred without end and never show up as dead, so
    the oldest waiting row's age and error are what tells an admin something needs them."""

    kind: str
    waiting: int  # pending or claimed
    dead: int
    oldest: datetime | None  # when the oldest waiting row was queued
    error: str | None  # the last error of the oldest waiting row that failed


def backlog(session: Session) -> list[Backlog]:
    """Per kind with rows waiting or dead: how many, and the oldest waiting one (see :class:`Backlog`)."""
    counts = pending_counts(session)
    waiting_rows = OutboxRow.status.in_(("pending", "claimed"))
    oldest = dict(
        session.execute(
            select(OutboxRow.kind, func.min(OutboxRow.created_at)).where(waiting_rows).group_by(OutboxRow.kind)
        ).all()
    )
    out = []
    for kind in sorted({kind for (kind, status) in counts if status != "done"}):
        error = session.execute(
            select(OutboxRow.last_error)
            .where(OutboxRow.kind == kind, waiting_rows, OutboxRow.last_error.is_not(None))
            .order_by(OutboxRow.created_at, OutboxRow.pk)
            .limit(1)
        ).scalar()
        waiting = counts.get((kind, "pending"), 0) + counts.get((kind, "claimed"), 0)
        out.append(Backlog(kind, waiting, counts.get((kind, "dead"), 0), oldest.get(kind), error))
    return out


def pending_counts(session: Session) -> dict[tuple[str, str], int]:
    """Rows per (kind, status), for status pages and the digest."""
    rows = session.execute(
        select(OutboxRow.kind, OutboxRow.status, func.count()).group_by(OutboxRow.kind, OutboxRow.status)
    ).all()
    return {(kind, status): count for kind, status, count in rows}
