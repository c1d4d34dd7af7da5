"""Which replica runs the scheduler: a lease row in ``scheduler_lease`` with an expiry.

The holder renews the lease every third of its time to live; another replica takes it only
once it has expired, so with N replicas exactly one schedules, and when the holder dies a
standby takes over within ``ttl`` plus its polling interval (30 s + 10 s by default). A holder
that cannot renew in time must stop scheduling on its own (``SchedulerService`` does), and
every job checks :meth:`Lease.held` before it starts — a fence against a paused leader that
has not noticed yet. Jobs are idempotent in the database anyway, so a brief overlap cannot
repeat an effect; the lease keeps APScheduler's job store from being used by two schedulers.

A lease row (rather than a PostgreSQL advisory lock) works the same on SQLite and PostgreSQL
and survives connection pool recycling; its expiry uses the replicas' clocks, so their skew
must stay well below the time to live (NTP keeps it in milliseconds).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import case, or_, select, update

from core.store.db import Database, dialect_insert
from core.store.models import SchedulerLease

__all__ = ["Lease", "holder_id"]


def holder_id() -> str:
    """host:pid:random — unique per process start, readable in ``scheduler_lease``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Lease:
    def __init__(
        self,
        db: Database,
        *,
        holder: str,
        ttl: timedelta,
        clock: Callable[[], datetime],
        name: str = "scheduler",
    ) -> None:
        self.db, self.holder, self.ttl, self.clock, self.name = db, holder, ttl, clock, name

    def acquire(self) -> datetime | None:
        """Take the lease if it is free or expired, or renew it if ours; returns until when it
        is held, or ``None`` if another replica holds it."""
        now = self.clock()
        until = now + self.ttl
        with self.db.transaction() as session:
            inserted = session.execute(
                dialect_insert(session, SchedulerLease)
                .values(name=self.name, holder=self.holder, expires_at=until, acquired_at=now)
                .on_conflict_do_nothing(index_elements=["name"])
                .returning(SchedulerLease.name)
            ).first()
            if inserted is not None:
                return until
            renewed = session.execute(
                update(SchedulerLease)
                .where(
                    SchedulerLease.name == self.name,
                    or_(SchedulerLease.holder == self.holder, SchedulerLease.expires_at < now),
                )
                .values(
                    holder=self.holder,
                    expires_at=until,
                    acquired_at=case((SchedulerLease.holder == self.holder, SchedulerLease.acquired_at), else_=now),
                )
                .returning(SchedulerLease.name)
            ).first()
        return until if renewed is not None else None

    def renew(self) -> datetime | None:
        """Extend the lease if this replica holds it (expired or not, as long as no one took it
        over); never takes it. Returns until when it is held, or ``None`` if it is not ours."""
        now = self.clock()
        until = now + self.ttl
        with self.db.transaction() as session:
            renewed = session.execute(
                update(SchedulerLease)
                .where(SchedulerLease.name == self.name, SchedulerLease.holder == self.holder)
                .values(expires_at=until)
                .returning(SchedulerLease.name)
            ).first()
        return until if renewed is not None else None

    def held(self) -> bool:
        """Whether this replica holds an unexpired lease right now (read from the database)."""
        with self.db.sessions() as session:
            row = session.execute(
                select(SchedulerLease.holder, SchedulerLease.expires_at).where(SchedulerLease.name == self.name)
            ).first()
        return row is not None and row.holder == self.holder and row.expires_at > self.clock()

    def release(self) -> None:
        """Give the lease up now (a clean shutdown), so a standby need not wait for expiry."""
        with self.db.transaction() as session:
            session.execute(
                update(SchedulerLease)
                .where(SchedulerLease.name == self.name, SchedulerLease.holder == self.holder)
                .values(expires_at=self.clock() - timedelta(seconds=1))
            )

    def current(self) -> tuple[str, datetime] | None:
        """(holder, expires_at) of the lease, for status output."""
        with self.db.sessions() as session:
            row = session.execute(
                select(SchedulerLease.holder, SchedulerLease.expires_at).where(SchedulerLease.name == self.name)
            ).first()
        return (row.holder, row.expires_at) if row is not None else None
