"""Upserting CRM records (leads, accounts, owners) idempotently, in bulk.

Connectors and ``loopgate decide --store`` hand over normalised values; this module decides
how they land in the tables. An upsert that changes nothing the engine looks at leaves the
lead's ``content_hash`` as it was, so it is not decided again.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import FromClause, case, or_, select
from sqlalchemy.orm import Session

from core.leads import hashed_record, lead_record, normalize_account, normalize_lead
from core.model import Account as AccountValue
from core.model import Event
from core.model import Lead as LeadValue
from core.store.db import EncodedJson, dialect_insert, execute_many, in_chunks, insert_for
from core.store.models import Account, Lead, Owner

__all__ = [
    "RECORD_EVENTS",
    "LeadRow",
    "OwnerRow",
    "StoredLead",
    "account_value",
    "data_and_hash",
    "lead_value",
    "leads_by_pk",
    "upsert_accounts",
    "upsert_changed",
    "upsert_leads",
    "upsert_owners",
]

# CRM-side facts about a lead that are not decision input (lifecycle, outcomes)
LEAD_EXTRAS = (
    "object_type", "status", "is_deleted", "merged_into", "converted", "converted_at", "outcome",
    "outcome_at", "outcome_amount", "first_touch_at", "account_pk",
)  # fmt: skip


# the key of a stored lead's ``data`` that keeps the events of the CRM record itself, when
# ``events`` also holds events stored on their own (core.store.lead_events)
RECORD_EVENTS = "record_events"


@dataclass(frozen=True, slots=True)
class LeadRow:
    """A lead to store, with CRM facts beside the decision input (``extras`` ⊆ LEAD_EXTRAS).

    ``record_events`` is set when ``lead.events`` merges events stored on their own into the
    record's: the record's own, kept so the merge can be redone when the stored ones change."""

    lead: LeadValue
    extras: Mapping[str, Any] = field(default_factory=dict)
    record_events: tuple[Event, ...] | None = None


@dataclass(slots=True)
class StoredLead:
    """A stored lead as deciding reads it: the columns :mod:`core.store.decide` uses, read as
    plain values. Loading the ORM entity for every lead of a sync (identity map, instance state,
    twenty columns nobody reads) cost twice as much as reading these (bench/sync.py)."""

    pk: int
    source: str
    email: str | None
    owner_id: str | None
    account_pk: int | None
    content_hash: str | None
    decided_hash: str | None
    first_touch_at: datetime | None
    data: dict[str, Any]
    converted: bool

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "pk", "source", "email", "owner_id", "account_pk", "content_hash", "decided_hash", "first_touch_at", "data",
        "converted",
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class OwnerRow:
    source: str
    crm_id: str
    kind: str  # user | queue
    name: str | None = None
    email: str | None = None
    active: bool = True


def upsert_leads(session: Session, rows: Sequence[LeadRow], *, now: datetime) -> dict[tuple[str, str], int]:
    """Insert or update leads by (source, crm_id); returns their primary keys."""
    if not rows:
        return {}
    values = []
    for row in rows:
        lead = row.lead
        unknown = set(row.extras) - set(LEAD_EXTRAS)
        if unknown:
            raise ValueError(f"unknown lead columns: {sorted(unknown)}")
        values.append(
            {
                "source": lead.source,
                "crm_id": lead.id,
                "email": lead.email,
                "email_domain": lead.email_domain,
                "first_name": lead.first_name,
                "last_name": lead.last_name,
                "title": lead.title,
                "company": lead.company,
                "domain": lead.domain,
                "industry": lead.industry,
                "country": lead.country,
                "employees": lead.employees,
                "estimated_deal_size": lead.estimated_deal_size,
                "owner_id": lead.owner_id,
                "crm_created_at": lead.created_at,
                "crm_updated_at": lead.updated_at,
                "synced_at": now,
                **data_and_hash(lead, row.record_events),
                **{"is_deleted": False, "converted": False},
                **row.extras,
            }
        )
    # rows of one batch may differ in which extras they carry; group by key set for executemany
    by_keys: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for value in _last_per_key([_clipped(Lead.__table__, v) for v in values]):
        by_keys.setdefault(tuple(sorted(value)), []).append(value)
    for keys, group in by_keys.items():
        execute_many(session, _lead_upsert(session.get_bind().dialect.name, keys), group)
    return _pks(session, Lead, [(v["source"], v["crm_id"]) for v in values])


@functools.lru_cache(maxsize=32)
def _lead_upsert(dialect: str, keys: tuple[str, ...]) -> Any:
    """The leads upsert for rows with these keys, built once (see :func:`execute_many`)."""
    # the Core table, not the ORM entity: ORM bulk inserts split rows by which values are
    # NULL, which on PostgreSQL meant a round trip per lead (connectors branch)
    stmt = insert_for(dialect, Lead.__table__)
    updates = {k: getattr(stmt.excluded, k) for k in keys if k not in ("source", "crm_id")}
    if "first_touch_at" in updates:  # a lead is first touched once: later sightings keep the earliest
        # the earliest, not the first stored: "I contacted them" in Slack stores the click's
        # time, and the CRM may log the call itself minutes before it
        stored, seen = Lead.__table__.c.first_touch_at, stmt.excluded.first_touch_at
        updates["first_touch_at"] = case((or_(stored.is_(None), seen < stored), seen), else_=stored)
    return upsert_changed(stmt, Lead.__table__, updates)


def upsert_changed(
    stmt: Any, table: FromClause, updates: Mapping[str, Any], keys: Sequence[str] = ("source", "crm_id")
) -> Any:
    """``ON CONFLICT (keys) DO UPDATE`` only where a stored value would change: a
    record read again as it was (a ``--full`` sync, a page read twice) writes nothing — no row
    rewrite, no index upkeep, no WAL. ``synced_at`` is therefore when the stored copy last
    changed, not when it was last seen (likewise ``seen_at``): neither is compared, or every
    sighting would be a write. Nothing reads them as "last seen"."""
    changed = [table.c[k].is_distinct_from(v) for k, v in updates.items() if k not in _SIGHTINGS]
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=updates, where=or_(*changed))


_SIGHTINGS = frozenset({"synced_at", "seen_at"})


def data_and_hash(lead: LeadValue, record_events: Sequence[Event] | None = None) -> dict[str, Any]:
    """The lead's stored ``data`` (its input record) and ``content_hash``, from one encoding;
    with ``record_events`` (see :class:`LeadRow`) kept beside, outside the hash.

    Building the record, encoding it for the hash, then building and encoding it again for the
    column was a third of storing a lead (bench/sync.py). So ``data`` is the hash's own text
    (:func:`core.leads.hashed_record`) with the two fields the hash leaves out appended — key
    order means nothing in a JSON object.

    Text that the column must not hold as it is — a NaN or Infinity token (PostgreSQL refuses
    them), an escaped NUL (PostgreSQL's JSON refuses it) — takes the general path; so does
    text that merely looks like them (a company called "NaN Labs"), which is only slower."""
    text, digest, updated_at, problems = hashed_record(lead)
    data = text[:-1] + ',"updated_at":' + json.dumps(updated_at)
    if problems:
        data += ',"problems":' + json.dumps(problems, separators=(",", ":"), ensure_ascii=False, default=str)
    own = None if record_events is None else [{"type": e.type, "at": e.at.isoformat()} for e in record_events]
    if own is not None:
        data += f',"{RECORD_EVENTS}":' + json.dumps(own, separators=(",", ":"))
    data += "}"
    if "NaN" in data or "Infinity" in data or "\\u0000" in data:
        record = lead_record(lead)
        if own is not None:
            record[RECORD_EVENTS] = own
        return {"data": _without_nul(record), "content_hash": digest}
    return {"data": EncodedJson(data), "content_hash": digest}


def _pks(
    session: Session, model: type[Lead] | type[Account], keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """Primary keys by (source, crm_id), one ``crm_id IN`` per source: a row-value ``IN`` of
    thousands of pairs took PostgreSQL ~0.2 s per sync page (connectors branch)."""
    by_source: dict[str, list[str]] = {}
    for source, crm_id in keys:
        by_source.setdefault(source, []).append(crm_id)
    out: dict[tuple[str, str], int] = {}
    for source, crm_ids in by_source.items():
        rows = session.execute(
            select(model.crm_id, model.pk).where(model.source == source, model.crm_id.in_(crm_ids))
        ).all()
        out.update({(source, crm_id): pk for crm_id, pk in rows})
    return out


def _clipped(table: FromClause, value: dict[str, Any]) -> dict[str, Any]:
    """Text cut to its column's length: a CRM can hold anything in a field (a 7,000-character
    country), and PostgreSQL refuses what does not fit — which failed the whole sync page, on
    every run, so one record stopped a CRM's sync for good. (SQLite does not check lengths.)
    The full value stays in ``data`` and in the content hash. NUL characters are dropped."""
    lengths = _text_lengths(table)
    out = value.copy()
    for key, item in value.items():
        kind = type(item)
        if kind in _PLAIN:  # most values of a row: nothing to clip, tested by type alone
            continue
        if kind is str or isinstance(item, str):
            if "\x00" in item:
                item = item.replace("\x00", "")
            length = lengths.get(key)
            if length is not None and len(item) > length:
                item = item[:length]
            out[key] = item
        elif isinstance(item, dict | list):
            out[key] = _without_nul(item)
    return out


# types of row values that are neither text nor JSON containers: ``_clipped`` leaves them as
# they are (its per-value checks were ~14 µs per stored lead)
_PLAIN = frozenset({type(None), bool, int, float, datetime, EncodedJson})


_LENGTHS: dict[str, dict[str, int]] = {}


def _text_lengths(table: FromClause) -> dict[str, int]:
    """Column name → length of the table's bounded text columns (looked up once per table:
    per value it was a third of storing a sync page)."""
    name = str(getattr(table, "name", ""))
    if name not in _LENGTHS:
        _LENGTHS[name] = {
            column.key: length
            for column in table.columns
            if isinstance(length := getattr(column.type, "length", None), int)
        }
    return _LENGTHS[name]


def _without_nul(value: Any) -> Any:
    """PostgreSQL stores no NUL character in text or JSON; a CRM field can hold one."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict | list) and "\\x00" not in repr(value):
        # repr (C, fast) writes a NUL in any nested string as the four characters \x00, so
        # without them there is nothing to drop and nothing to rebuild; a string that holds
        # those four characters itself only takes the slow path below
        return value
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _last_per_key(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A page can carry the same record twice (it changed mid-sync); the last one wins."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for value in values:
        latest[(value["source"], value["crm_id"])] = value
    return list(latest.values())


def upsert_accounts(
    session: Session, accounts: Sequence[AccountValue], *, now: datetime, updated: Mapping[str, datetime] | None = None
) -> dict[tuple[str, str], int]:
    """Insert or update accounts by (source, crm_id); returns their primary keys."""
    if not accounts:
        return {}
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for acc in accounts:
        latest[(acc.source, acc.id)] = {
            "source": acc.source,
            "crm_id": acc.id,
            "name": acc.name,
            "domain": acc.domain,
            "owner_id": acc.owner_id,
            "strategic": acc.strategic,
            "tier": acc.tier,
            "industry": acc.industry,
            "employees": acc.employees,
            "is_customer": acc.is_customer,
            "is_deleted": False,
            "data": {"fields": acc.fields},
            "crm_updated_at": (updated or {}).get(acc.id),
            "synced_at": now,
        }
    latest = {key: _clipped(Account.__table__, value) for key, value in latest.items()}
    keys = tuple(next(iter(latest.values())))
    execute_many(session, _account_upsert(session.get_bind().dialect.name, keys), list(latest.values()))
    return _pks(session, Account, list(latest))


@functools.lru_cache(maxsize=8)
def _account_upsert(dialect: str, keys: tuple[str, ...]) -> Any:
    stmt = insert_for(dialect, Account.__table__)  # Core table: one executemany (see upsert_leads)
    updates = {k: getattr(stmt.excluded, k) for k in keys if k not in ("source", "crm_id")}
    return upsert_changed(stmt, Account.__table__, updates)


def upsert_owners(session: Session, owners: Sequence[OwnerRow], *, now: datetime) -> None:
    """Insert or update CRM users, owners and queues by (source, crm_id)."""
    if not owners:
        return
    latest = {
        (o.source, o.crm_id): {
            "source": o.source,
            "crm_id": o.crm_id,
            "kind": o.kind,
            "name": o.name,
            "email": o.email,
            "active": o.active,
            "synced_at": now,
        }
        for o in owners
    }
    stmt = dialect_insert(session, Owner.__table__)  # Core table: one executemany (see upsert_leads)
    updates = {k: getattr(stmt.excluded, k) for k in ("kind", "name", "email", "active", "synced_at")}
    session.execute(upsert_changed(stmt, Owner.__table__, updates), list(latest.values()))


def leads_by_pk(session: Session, pks: Sequence[int]) -> dict[int, Lead]:
    """The stored leads with these keys (replaying or tuning a month of labelled decisions
    reads thousands: in IN lists of :data:`core.store.db.IN_LIMIT`)."""
    return {
        row.pk: row
        for chunk in in_chunks(list(dict.fromkeys(pks)))
        for row in session.execute(select(Lead).where(Lead.pk.in_(chunk))).scalars()
    }


def lead_value(row: Lead | StoredLead) -> LeadValue:
    """The engine's view of a stored lead (rebuilt from the stored input record).

    The stored record holds the cleaned values, so reading it again finds nothing wrong: what
    the first reading could not understand is kept beside it (``problems``) and put back, or
    a stored lead's "missing email" would no longer say the CRM held "n/a" there."""
    lead = normalize_lead(row.data, default_source=row.source)
    stored = row.data.get("problems") if isinstance(row.data, dict) else None
    if stored and isinstance(stored, dict):
        lead = replace(lead, problems={**{str(k): str(v) for k, v in stored.items()}, **lead.problems})
    return lead


def account_value(row: Account) -> AccountValue:
    return normalize_account(
        {
            "id": row.crm_id,
            "source": row.source,
            "name": row.name,
            "domain": row.domain,
            "owner_id": row.owner_id,
            "strategic": row.strategic,
            "tier": row.tier,
            "industry": row.industry,
            "employees": row.employees,
            "is_customer": row.is_customer,
            "fields": (row.data or {}).get("fields") or {},
        }
    )
