"""Incremental sync of one CRM: read each stream from its cursor, store every page with its
cursor in one transaction, then decide what changed.

Crash safety comes from the order of commits. A page and its cursor commit together, so a
killed sync resumes after the last stored page and never skips or doubles one. Deciding
happens after the page commit, in transactions of its own; a kill between the two leaves
leads whose ``content_hash`` differs from their ``decided_hash``, and every sync ends with a
sweep (:func:`core.store.decide.decide_pending`) that decides exactly those. Deciding is
idempotent per content, so nothing is decided twice.

Reading runs one page ahead in a background thread: the next page is on the wire while this
one is stored and decided. The port is only used from that thread while a sync runs.

A sync given ``rebuild`` decides for the published champion: when a batch finds that a publish,
promote or rollback replaced it since the engine was built (``ChampionChanged``, nothing of the
batch stored), the engine is built again and the batch decided again — a rollback stops the
rolled-back policy acting from the next batch, not the next sync.
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, or_, select, text

from core.engine import DecisionEngine
from core.ports import CrmPort, Page
from core.store.db import Database
from core.store.decide import ChampionChanged, decide_pending
from core.store.ingest import apply_page, load_cursor, save_cursor
from core.store.models import Lead, Owner
from core.store.policies import ensure_version

__all__ = ["StreamReport", "SyncReport", "prefetch", "sync_crm"]

log = logging.getLogger(__name__)
T = TypeVar("T")
Progress = Callable[[str, int], None]


@dataclass(slots=True)
class StreamReport:
    pages: int = 0
    records: int = 0


@dataclass(slots=True)
class SyncReport:
    """What a sync did. ``unknown_owners`` maps CRM owner ids that no policy rep or queue
    claims to (name, leads seen with that owner in this sync): reported, never guessed."""

    system: str
    streams: dict[str, StreamReport] = field(default_factory=dict)
    leads: int = 0
    accounts: int = 0
    owners: int = 0
    deals: int = 0
    events: int = 0  # event records read (campaign members), responded or not
    tombstones: int = 0
    decided: int = 0
    rejected: list[str] = field(default_factory=list)
    unknown_owners: dict[str, tuple[str | None, int]] = field(default_factory=dict)
    seconds: float = 0.0
    store_seconds: float = 0.0  # storing pages and cursors
    decide_seconds: float = 0.0  # deciding what changed

    def to_dict(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "streams": {name: {"pages": s.pages, "records": s.records} for name, s in self.streams.items()},
            "leads": self.leads,
            "accounts": self.accounts,
            "owners": self.owners,
            "deals": self.deals,
            "events": self.events,
            "tombstones": self.tombstones,
            "decided": self.decided,
            "rejected": self.rejected,
            "unknown_owners": {k: {"name": n, "leads": c} for k, (n, c) in self.unknown_owners.items()},
            "seconds": round(self.seconds, 3),
            "store_seconds": round(self.store_seconds, 3),
            "decide_seconds": round(self.decide_seconds, 3),
        }


_DONE = object()


def prefetch(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Iterate ``items`` in a background thread, ``depth`` items ahead. Errors raised by the
    producer surface here, in order; stopping early stops the producer."""
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            slots.put(exc)

    thread = threading.Thread(target=produce, name="crm-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                slots.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.1)


def sync_crm(
    db: Database,
    port: CrmPort,
    engine: DecisionEngine,
    *,
    clock: Callable[[], datetime],
    full: bool = False,
    decide: bool = True,
    decide_batch: int = 500,
    streams: Sequence[str] | None = None,
    progress: Progress | None = None,
    read_ahead: bool = True,
    rebuild: Callable[[], DecisionEngine] | None = None,
) -> SyncReport:
    """Sync ``port``'s CRM into the store and decide new or changed leads.

    ``full`` reads every stream from the beginning (cursors are rewritten as it goes, so a
    full sync that is interrupted resumes incrementally). Owner ids no rep claims are counted.
    ``rebuild`` builds the active policy's engine again: given, the sync follows the published
    champion (see the module doc); without it, ``engine`` decides as given (an explicit file).
    """
    with _COLLECTOR.relaxed():
        deciding = _Deciding(engine, rebuild)
        return _sync(db, port, deciding, clock, full, decide, decide_batch, streams, progress, read_ahead)


class _Deciding:
    """The engine a sync decides with, rebuilt when the champion changes under it."""

    def __init__(self, engine: DecisionEngine, rebuild: Callable[[], DecisionEngine] | None) -> None:
        self.engine, self.rebuild = engine, rebuild

    def pending(
        self, db: Database, clock: Callable[[], datetime], *, limit: int, lead_pks: list[int] | None = None
    ) -> int:
        """Decide a batch in a transaction of its own; again with a rebuilt engine if the
        champion changed (the failed try stored nothing)."""
        while True:
            try:
                with db.transaction() as session:
                    decided = decide_pending(
                        session,
                        self.engine,
                        now=clock(),
                        lead_pks=lead_pks,
                        limit=limit,
                        follow_champion=self.rebuild is not None,
                    )
                return len(decided)
            except ChampionChanged as exc:
                engine = self.rebuild() if self.rebuild is not None else None
                if engine is None or engine.version == self.engine.version:
                    raise  # building again gives the same policy: retrying would change nothing
                log.warning(
                    "the published policy is now %s: deciding with it (was %s)", exc.champion, self.engine.version
                )
                self.engine = engine


def _sync(
    db: Database,
    port: CrmPort,
    deciding: _Deciding,
    clock: Callable[[], datetime],
    full: bool,
    decide: bool,
    decide_batch: int,
    streams: Sequence[str] | None,
    progress: Progress | None,
    read_ahead: bool,
) -> SyncReport:
    started = time.monotonic()
    report = SyncReport(port.system)
    with db.transaction() as session:
        ensure_version(session, deciding.engine.loaded, now=clock(), by=f"loopgate:sync:{port.system}")
    owner_counts: dict[str, int] = {}
    planner = _PlannerStats(db)
    for stream in streams or port.streams(full=full):
        stats = report.streams.setdefault(stream, StreamReport())
        with db.transaction() as session:
            cursor = None if full else load_cursor(session, port.system, stream)
        pages = port.read(stream, cursor)
        # stored leads wait here for a full batch: pages can be smaller than a batch (HubSpot's
        # 200), and each batch costs ~17 ms beyond its leads (bench/sync.py). A kill while
        # leads wait leaves them to the sweep, like a kill between a page and its deciding.
        waiting: list[int] = []
        for page in prefetch(pages, depth=2) if read_ahead else pages:
            mark = time.monotonic()
            pks = _store(db, port.system, page, clock, report, owner_counts)
            report.store_seconds += time.monotonic() - mark
            stats.pages += 1
            stats.records += page.size
            planner.grew(len(pks))
            if progress is not None:
                progress(stream, page.size)
            if decide:
                waiting += pks
                ready = len(waiting) - len(waiting) % decide_batch
                if ready:
                    report.decided += _decide(db, deciding, waiting[:ready], clock, decide_batch, report)
                    del waiting[:ready]
        if waiting:  # the stream's last leads: decided before the next stream is read
            report.decided += _decide(db, deciding, waiting, clock, decide_batch, report)
    if decide:
        mark = time.monotonic()
        report.decided += _sweep(db, deciding, clock, decide_batch)
        report.decide_seconds += time.monotonic() - mark
    report.unknown_owners = _unknown_owners(db, deciding.engine, port.system, owner_counts)
    report.seconds = time.monotonic() - started
    return report


class _Collector:
    """CPython's cyclic garbage collector, relaxed while syncs run.

    A sync allocates rows, dicts and ORM states by the hundred thousand, nearly all freed by
    reference counting. At the default threshold (a collection per 700 net allocations) the
    collector ran ~1,000 times per 10,000 leads, and each of its ~8 full collections rescanned
    the whole long-lived heap (policy, SQLAlchemy's metadata, the pages read ahead): 1.2 s of a
    4.5 s sync's CPU (bench/sync.py, measured with gc.callbacks). While any sync runs, what was
    alive when the first one started is frozen (never rescanned; it is old and stays) and the
    youngest generation is collected every 10,000 allocations. Cycles are still collected,
    just less often; the previous settings come back when the last sync ends. Process-wide by
    nature, so counted: syncs of two CRMs in parallel threads restore once, at the end."""

    YOUNG_THRESHOLD = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved: tuple[int, int, int] = gc.get_threshold()
        self._froze = False

    @contextmanager
    def relaxed(self) -> Iterator[None]:
        with self._lock:
            self._users += 1
            if self._users == 1:
                self._saved = gc.get_threshold()
                # a heap someone else froze (a pre-fork server) is theirs to unfreeze
                self._froze = gc.get_freeze_count() == 0
                if self._froze:
                    gc.freeze()
                gc.set_threshold(max(self._saved[0], self.YOUNG_THRESHOLD), *self._saved[1:])
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    gc.set_threshold(*self._saved)
                    if self._froze:
                        gc.unfreeze()


_COLLECTOR = _Collector()


class _PlannerStats:
    """On PostgreSQL a bulk load — a first sync of a big org — outruns autovacuum's ANALYZE:
    the planner goes on believing the tables are nearly empty and scans them for every batch
    of decisions (measured: decide 2-3x slower at 30,000 leads). The sync re-analyzes the
    tables it grows whenever they have grown by half since it last did."""

    TABLES = ("leads", "decisions")  # the two whose stale statistics turned lookups into scans

    def __init__(self, db: Database) -> None:
        self.db = db
        self.enabled = db.is_postgres
        self.grown = 0
        self.size: float | None = None

    def grew(self, rows: int) -> None:
        if not self.enabled or rows == 0:
            return
        if self.size is None:
            with self.db.transaction() as session:
                estimate = session.execute(
                    text("SELECT reltuples FROM pg_class WHERE relname = 'leads'")
                ).scalar_one_or_none()
            self.size = max(float(estimate or 0), 0.0)
        self.grown += rows
        if self.grown >= max(2000.0, 0.5 * self.size):
            with self.db.transaction() as session:
                session.execute(text(f"ANALYZE {', '.join(self.TABLES)}"))
            self.size += self.grown
            self.grown = 0


def _store(
    db: Database, source: str, page: Page, clock: Callable[[], datetime], report: SyncReport, owners: dict[str, int]
) -> list[int]:
    now = clock()
    with db.transaction() as session:
        result = apply_page(session, source, page, now=now)
        save_cursor(session, source, page.stream, page.cursor, now=now)
    report.leads += result.leads
    report.accounts += result.accounts
    report.owners += result.owners
    report.deals += result.deals
    report.events += result.events
    report.tombstones += result.tombstones
    for problem in result.rejected:
        log.warning("%s record not stored: %s", source, problem)
    report.rejected += result.rejected
    for owner_id, count in result.owner_ids.items():
        owners[owner_id] = owners.get(owner_id, 0) + count
    return result.lead_pks


def _decide(
    db: Database, deciding: _Deciding, pks: list[int], clock: Callable[[], datetime], batch: int, report: SyncReport
) -> int:
    mark = time.monotonic()
    decided = 0
    for start in range(0, len(pks), batch):
        chunk = pks[start : start + batch]
        decided += deciding.pending(db, clock, lead_pks=chunk, limit=len(chunk))
    report.decide_seconds += time.monotonic() - mark
    return decided


def _sweep(db: Database, deciding: _Deciding, clock: Callable[[], datetime], batch: int) -> int:
    """Decide anything an interrupted run left undecided (any source), until nothing is left
    or a round makes no progress (rows another decider holds are skipped, not waited for)."""
    decided = 0
    left = _undecided(db)
    while left:
        decided += deciding.pending(db, clock, limit=batch)
        now_left = _undecided(db)
        if now_left >= left:
            break
        left = now_left
    return decided


def _undecided(db: Database) -> int:
    with db.transaction() as session:
        return int(
            session.execute(
                select(func.count()).where(
                    Lead.is_deleted.is_(False),
                    Lead.content_hash.is_not(None),
                    Lead.converted.is_(False),  # never decided: see core.store.decide
                    or_(Lead.decided_hash.is_(None), Lead.decided_hash != Lead.content_hash),
                )
            ).scalar_one()
        )


def _unknown_owners(
    db: Database, engine: DecisionEngine, source: str, counts: dict[str, int]
) -> dict[str, tuple[str | None, int]]:
    unknown = {o: c for o, c in counts.items() if engine.roster.person_for_crm(source, o) is None}
    if not unknown:
        return {}
    with db.transaction() as session:
        names = dict(
            session.execute(
                select(Owner.crm_id, Owner.name).where(Owner.source == source, Owner.crm_id.in_(list(unknown)))
            ).all()
        )
    return {o: (names.get(o), c) for o, c in sorted(unknown.items(), key=lambda kv: -kv[1])}
