"""Claims of a periodic job's work: ``(job, period)`` is inserted once, in the transaction that
does the work, so the weekly digest of 2026-W47 or the tuning report of 2026-11 is produced
once however many times (or on however many replicas) the job runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.store.db import dialect_insert
from core.store.models import JobPeriod

__all__ = ["claim_period", "last_period", "period_detail", "set_period_detail"]


def claim_period(
    session: Session, job: str, period: str, *, now: datetime, detail: dict[str, Any] | None = None
) -> bool:
    """Claim ``period`` of ``job`` for this transaction; False if it was claimed before."""
    inserted = session.execute(
        dialect_insert(session, JobPeriod)
        .values(job=job, period=period, done_at=now, detail=detail or {})
        .on_conflict_do_nothing(index_elements=["job", "period"])
        .returning(JobPeriod.period)
    ).first()
    return inserted is not None


def last_period(session: Session, job: str) -> str | None:
    """The newest period claimed for ``job`` (periods sort as text: 2026-W47, 2026-11, 2026-11-20)."""
    return session.execute(
        select(JobPeriod.period).where(JobPeriod.job == job).order_by(JobPeriod.period.desc()).limit(1)
    ).scalar()


def period_detail(session: Session, job: str, period: str) -> dict[str, Any] | None:
    row = session.get(JobPeriod, (job, period))
    return dict(row.detail) if row is not None else None


def set_period_detail(session: Session, job: str, period: str, detail: dict[str, Any], *, now: datetime) -> None:
    """Create or replace a period's detail (a job's own bookmark, e.g. the trust watermark)."""
    row = session.get(JobPeriod, (job, period), with_for_update=True)
    if row is None:
        session.add(JobPeriod(job=job, period=period, done_at=now, detail=detail))
    else:
        row.detail, row.done_at = detail, now
    session.flush()
