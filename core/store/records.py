"""Upserting CRM records (leads, accounts, owners) idempotently, in bulk.

Connectors and ``loopgate decide --store`` hand over normalised values; this module decides
how they land in the tables. An upsert that changes nothing the engine looks at leaves the
lead's ``content_hash`` as it was, so it is not decided again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from core.leads import content_hash, lead_record, normalize_account, normalize_lead
from core.model import Account as AccountValue
from core.model import Lead as LeadValue
from core.store.db import dialect_insert
from core.store.models import Account, Lead, Owner

__all__ = [
    "LeadRow",
    "OwnerRow",
    "account_value",
    "lead_value",
    "upsert_accounts",
    "upsert_leads",
    "upsert_owners",
]

# CRM-side facts about a lead that are not decision input (lifecycle, outcomes)
LEAD_EXTRAS = (
    "object_type", "status", "is_deleted", "merged_into", "converted", "converted_at", "outcome",
    "outcome_at", "outcome_amount", "first_touch_at", "account_pk",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class LeadRow:
    """A lead to store, with CRM facts beside the decision input (``extras`` ⊆ LEAD_EXTRAS)."""

    lead: LeadValue
    extras: Mapping[str, Any] = field(default_factory=dict)


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
                "data": lead_record(lead),
                "content_hash": content_hash(lead),
                **{"is_deleted": False, "converted": False},
                **row.extras,
            }
        )
    # rows of one batch may differ in which extras they carry; group by key set for executemany
    by_keys: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for value in _last_per_key(values):
        by_keys.setdefault(tuple(sorted(value)), []).append(value)
    for keys, group in by_keys.items():
        stmt = dialect_insert(session, Lead)
        updates = {k: getattr(stmt.excluded, k) for k in keys if k not in ("source", "crm_id")}
        session.execute(stmt.on_conflict_do_update(index_elements=["source", "crm_id"], set_=updates), group)
    keys_wanted = [(v["source"], v["crm_id"]) for v in values]
    found = session.execute(
        select(Lead.source, Lead.crm_id, Lead.pk).where(tuple_(Lead.source, Lead.crm_id).in_(keys_wanted))
    ).all()
    return {(source, crm_id): pk for source, crm_id, pk in found}


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
    stmt = dialect_insert(session, Account)
    keys = next(iter(latest.values())).keys()
    updates = {k: getattr(stmt.excluded, k) for k in keys if k not in ("source", "crm_id")}
    session.execute(
        stmt.on_conflict_do_update(index_elements=["source", "crm_id"], set_=updates), list(latest.values())
    )
    found = session.execute(
        select(Account.source, Account.crm_id, Account.pk).where(
            tuple_(Account.source, Account.crm_id).in_(list(latest))
        )
    ).all()
    return {(source, crm_id): pk for source, crm_id, pk in found}


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
    stmt = dialect_insert(session, Owner)
    updates = {k: getattr(stmt.excluded, k) for k in ("kind", "name", "email", "active", "synced_at")}
    session.execute(
        stmt.on_conflict_do_update(index_elements=["source", "crm_id"], set_=updates), list(latest.values())
    )


def lead_value(row: Lead) -> LeadValue:
    """The engine's view of a stored lead (rebuilt from the stored input record)."""
    return normalize_lead(row.data, default_source=row.source)


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
