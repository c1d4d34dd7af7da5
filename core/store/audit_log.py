"""Appending to and reading the audit chain in the database.

Appends lock the single ``audit_head`` row, so concurrent writers on PostgreSQL form one
chain; the events of a transaction land (or vanish) with the data they describe.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Generator, Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from core.audit import ChainBreak, ChainedEvent, canonical_body, chain_hash, verify_chain
from core.store.db import Database, execute_many
from core.store.models import AuditEvent, AuditHead

__all__ = ["AuditRecord", "append", "export", "verify"]


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """Something that happened: who did what to which subject, with its details."""

    at: datetime
    actor: str
    kind: str
    subject: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


def append(session: Session, records: Iterable[AuditRecord]) -> int:
    """Append records in order inside the caller's transaction; returns the last seq.

    Each event's time is hashed in UTC, as the ``at`` column reads it back: an offset kept in
    the body (``--now 2026-11-20T10:00:00-05:00``) made every later verify report the event
    as altered. Times already in UTC hash exactly as before."""
    records = list(records)
    head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
    if not records:
        return head.seq
    seq, prev = head.seq, head.hash
    rows = []
    for rec in records:
        seq += 1
        at = rec.at
        if at.tzinfo is not UTC and at.tzinfo is not None:  # a naive time is refused by the column
            at = at.astimezone(UTC)
        body = canonical_body(seq, at, rec.actor, rec.kind, rec.subject, rec.data)
        digest = chain_hash(prev, body)
        rows.append(
            {"seq": seq, "at": at, "actor": rec.actor, "kind": rec.kind,
             "subject": rec.subject, "body": body, "prev_hash": prev, "hash": digest}
        )  # fmt: skip
        prev = digest
    execute_many(session, _INSERT, rows)  # Core: no ORM bulk-insert bookkeeping per row
    head.seq, head.hash = seq, prev
    return seq


_INSERT = insert(cast(Table, AuditEvent.__table__))  # the Core table: built once, see execute_many


def _stored(session: Session, since: datetime | None = None, kinds: Sequence[str] = ()) -> Generator[ChainedEvent]:
    query = select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=2000)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if kinds:
        query = query.where(AuditEvent.kind.in_(kinds))
    result = session.execute(query).scalars()
    try:
        for ev in result:
            yield ChainedEvent(ev.seq, ev.at, ev.actor, ev.kind, ev.subject, ev.body, ev.prev_hash, ev.hash)
            session.expunge(ev)
    finally:
        result.close()  # a verify that stops at the first break must not leak a server cursor


def verify(db: Database) -> tuple[int, ChainBreak | None]:
    """Check the whole chain against its head; (events checked, first break or None)."""
    with db.sessions() as session:
        head = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
        with closing(_stored(session)) as events:
            return verify_chain(events, head=(head[0], head[1]))


def export(
    db: Database, out: io.TextIOBase | Any, *, since: datetime | None, fmt: str, kinds: Sequence[str] = ()
) -> int:
    """Write events (from ``since``; of ``kinds`` only, if given) as JSONL or CSV, with their
    hashes; returns the count. A filtered export keeps each event's hashes, so an auditor can
    still match it to the full chain."""
    count = 0
    with db.sessions() as session:
        events = _stored(session, since, kinds)
        if fmt == "jsonl":
            for ev in events:
                record = json.loads(ev.body)
                record.update(prev_hash=ev.prev_hash, hash=ev.hash)
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
        elif fmt == "csv":
            writer = csv.writer(out)
            writer.writerow(["seq", "at", "actor", "kind", "subject", "data", "prev_hash", "hash"])
            for ev in events:
                data = json.dumps(json.loads(ev.body)["data"], ensure_ascii=False, sort_keys=True)
                writer.writerow(
                    [ev.seq, ev.at.isoformat(), ev.actor, ev.kind, ev.subject or "", data, ev.prev_hash, ev.hash]
                )
                count += 1
        else:
            raise ValueError(f"unknown export format {fmt!r}: use jsonl or csv")
    return count
