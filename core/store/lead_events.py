"""Intent events kept as CRM records of their own (Salesforce campaign responses), and the
stored leads they belong to.

A campaign response is not a field of its Lead: adding one leaves the Lead as it was in the
CRM. So the events are stored apart (``lead_events``, one row per CRM record and lead), and
every stored lead's ``data`` holds the lead as the engine decides it: the CRM record's own
events merged with its stored ones, its ``content_hash`` covering both. Everything that reads
a stored lead (deciding, ``policy simulate``, tuning, write-back's re-hash) sees the same lead,
and a lead whose events change gets a new content hash, which is what marks it for deciding.

Both sides keep the merge true: storing events re-merges the leads they touch
(:func:`apply_events`); storing a lead merges the events stored for it
(:func:`merge_stored`). The record's own events are kept beside the merge in ``data``
(``record_events``), so a merge can be redone without the CRM. The merge is deterministic —
ordered by time, then type — and an event is one per CRM record: reading a record again (a
page read twice, the look-back, a full sync) replaces it, and an identical one writes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.orm import Session

from core.leads import MAX_EVENTS, normalize_lead
from core.model import Event
from core.model import Lead as LeadValue
from core.ports import EventRecord
from core.store.db import dialect_insert, in_chunks
from core.store.models import Lead, LeadEvent
from core.store.records import RECORD_EVENTS, LeadRow, data_and_hash

__all__ = ["apply_events", "merge_stored", "merged", "stored_events"]


def merged(lead: LeadValue, stored: Sequence[Event]) -> LeadValue:
    """``lead`` with ``stored`` events added: ordered by time then type (a stored lead read back
    through ``normalize_lead``, which orders by time stably, is the same lead), the latest
    ``MAX_EVENTS`` kept as ``normalize_lead`` keeps them."""
    if not stored:
        return lead
    events = sorted((*lead.events, *stored), key=lambda e: (e.at, e.type))
    return dataclasses.replace(lead, events=tuple(events[-MAX_EVENTS:]))


def stored_events(session: Session, source: str, lead_ids: Iterable[str]) -> dict[str, list[Event]]:
    """The stored events of these leads (by CRM id); leads without any are left out."""
    wanted = sorted(set(lead_ids))
    out: dict[str, list[Event]] = {}
    if not wanted:
        return out
    table: Table = LeadEvent.__table__  # type: ignore[assignment]
    for chunk in in_chunks(wanted):
        rows = session.execute(
            select(table.c.lead_id, table.c.type, table.c.at).where(
                table.c.source == source, table.c.lead_id.in_(chunk)
            )
        )
        for lead_id, kind, at in rows:
            out.setdefault(lead_id, []).append(Event(kind, at))
    return out


def merge_stored(session: Session, source: str, rows: Sequence[LeadRow]) -> list[LeadRow]:
    """Leads read from the CRM, each with the events stored for it merged in (one query)."""
    events = stored_events(session, source, (r.lead.id for r in rows))
    if not events:
        return list(rows)
    return [
        dataclasses.replace(r, lead=merged(r.lead, events[r.lead.id]), record_events=r.lead.events)
        if r.lead.id in events
        else r
        for r in rows
    ]


def apply_events(
    session: Session, source: str, records: Sequence[EventRecord], gone: Sequence[str], *, now: datetime
) -> list[int]:
    """Store a page's event records (and drop those in ``gone``, deleted in the CRM), then
    re-merge the stored leads whose events changed. Returns those leads' primary keys whose
    content changed (to decide). A record read again as it was writes nothing."""
    latest: dict[str, EventRecord | None] = {}
    for record in records:
        latest[record.id] = record
    for event_id in gone:
        latest[event_id] = None
    if not latest:
        return []
    table: Table = LeadEvent.__table__  # type: ignore[assignment]
    have: dict[tuple[str, str], tuple[str, datetime]] = {}
    ids = list(latest)
    for chunk in in_chunks(ids):
        for event_id, lead_id, kind, at in session.execute(
            select(table.c.event_id, table.c.lead_id, table.c.type, table.c.at).where(
                table.c.source == source, table.c.event_id.in_(chunk)
            )
        ):
            have[(event_id, lead_id)] = (kind, at)
    want: dict[tuple[str, str], tuple[str, datetime]] = {
        (record.id, lead_id[:64]): (record.type[:64], record.at)
        for record in latest.values()
        if record is not None and record.type and record.at is not None
        for lead_id in record.lead_ids
    }
    added = [key for key in want if key not in have]
    changed = [key for key in want if key in have and have[key] != want[key]]
    removed = [key for key in have if key not in want]
    if removed:
        session.execute(
            delete(table).where(
                table.c.source == bindparam("b_source"),
                table.c.event_id == bindparam("b_event"),
                table.c.lead_id == bindparam("b_lead"),
            ),
            [{"b_source": source, "b_event": e, "b_lead": lead} for e, lead in removed],
        )
    if changed:
        session.execute(
            update(table)
            .where(
                table.c.source == bindparam("b_source"),
                table.c.event_id == bindparam("b_event"),
                table.c.lead_id == bindparam("b_lead"),
            )
            .values(type=bindparam("b_type"), at=bindparam("b_at"), synced_at=bindparam("b_now")),
            [
                {"b_source": source, "b_event": e, "b_lead": lead, "b_type": want[(e, lead)][0],
                 "b_at": want[(e, lead)][1], "b_now": now}
                for e, lead in changed
            ],
        )  # fmt: skip
    if added:
        stmt = dialect_insert(session, table)
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["source", "event_id", "lead_id"],
                set_={k: stmt.excluded[k] for k in ("type", "at", "synced_at")},
            ),
            [
                {"source": source, "event_id": e, "lead_id": lead, "type": want[(e, lead)][0],
                 "at": want[(e, lead)][1], "synced_at": now}
                for e, lead in added
            ],
        )  # fmt: skip
    touched = {lead for _e, lead in (*added, *changed, *removed)}
    return _remerge(session, source, touched, now=now)


def _remerge(session: Session, source: str, lead_ids: set[str], *, now: datetime) -> list[int]:
    """Rebuild the stored leads ``lead_ids`` from their record's own events and their stored
    ones; returns the primary keys of those whose content changed. Leads not stored yet take
    their events when they are (:func:`merge_stored`)."""
    if not lead_ids:
        return []
    table: Table = Lead.__table__  # type: ignore[assignment]
    wanted = sorted(lead_ids)
    rows: list[Any] = []
    for chunk in in_chunks(wanted):
        rows += session.execute(
            select(table.c.pk, table.c.crm_id, table.c.data, table.c.content_hash).where(
                table.c.source == source, table.c.crm_id.in_(chunk)
            )
        ).all()
    events = stored_events(session, source, (r.crm_id for r in rows))
    params = []
    for row in rows:
        own = _record_lead(row.data, source)
        stored = events.get(row.crm_id, [])
        values = data_and_hash(merged(own, stored), own.events if stored else None)
        if values["content_hash"] != row.content_hash or _has_record_events(row.data) != bool(stored):
            params.append({"b_pk": row.pk, "b_data": values["data"], "b_hash": values["content_hash"], "b_now": now})
    if params:
        session.execute(
            update(table)
            .where(table.c.pk == bindparam("b_pk"))
            .values(data=bindparam("b_data"), content_hash=bindparam("b_hash"), synced_at=bindparam("b_now")),
            params,
        )
    return [p["b_pk"] for p in params]


def _record_lead(data: Mapping[str, Any], source: str) -> LeadValue:
    """The lead as its CRM record gave it: the stored lead with its record's own events."""
    raw = dict(data or {})
    if RECORD_EVENTS in raw:
        raw["events"] = raw.pop(RECORD_EVENTS)
    lead = normalize_lead(raw, default_source=source)
    # what the record's values lacked is not part of the hash, but the stored lead keeps saying it
    problems = raw.get("problems")
    return dataclasses.replace(lead, problems=dict(problems)) if isinstance(problems, Mapping) else lead


def _has_record_events(data: Mapping[str, Any] | None) -> bool:
    return RECORD_EVENTS in (data or {})
