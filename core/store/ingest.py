"""Storing one page of CRM records, and the stream's cursor, in the caller's transaction.

A page from :class:`core.ports.CrmPort` lands here whole: owners, accounts, leads (with their
CRM facts and the current values of the loopgate fields), deals and their links to leads,
tombstones for deleted or merged records, intent events kept as records of their own (see
:mod:`core.store.lead_events`). The cursor is written in the same transaction, so a
crash either keeps the page and its cursor or neither, and the next run resumes exactly.
Everything is an upsert keyed by ``(source, crm_id)``: a page stored twice changes nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, delete, or_, select, update
from sqlalchemy.orm import Session

from core.leads import LeadInputError, content_hash, normalize_account, normalize_lead
from core.ports import Cursor, Page, Tombstone
from core.store.db import dialect_insert, execute_many, insert_for
from core.store.lead_events import apply_events, merge_stored
from core.store.models import Account, Deal, DealLink, Lead, SyncCursor, WritebackState
from core.store.records import LeadRow, OwnerRow, upsert_accounts, upsert_changed, upsert_leads, upsert_owners

__all__ = ["Ingested", "apply_page", "load_cursor", "refresh_outcomes", "save_cursor"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Ingested:
    """What one page changed; ``lead_pks`` are the leads to (maybe) decide."""

    lead_pks: list[int] = field(default_factory=list)
    leads: int = 0
    accounts: int = 0
    owners: int = 0
    deals: int = 0
    events: int = 0
    tombstones: int = 0
    rejected: list[str] = field(default_factory=list)  # "id: why", records that could not be stored
    owner_ids: dict[str, int] = field(default_factory=dict)  # CRM owner id → leads on this page


def load_cursor(session: Session, source: str, stream: str) -> Cursor | None:
    row = session.get(SyncCursor, (source, stream))
    if row is None:
        return None
    return Cursor(row.cursor_ts, row.cursor_id, dict(row.state or {}))


def save_cursor(session: Session, source: str, stream: str, cursor: Cursor, *, now: datetime) -> None:
    values = {
        "source": source,
        "stream": stream,
        "cursor_ts": cursor.ts,
        "cursor_id": cursor.id,
        "state": dict(cursor.state),
        "updated_at": now,
    }
    stmt = dialect_insert(session, SyncCursor).values(**values)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["source", "stream"],
            set_={k: getattr(stmt.excluded, k) for k in ("cursor_ts", "cursor_id", "state", "updated_at")},
        )
    )


def apply_page(session: Session, source: str, page: Page, *, now: datetime) -> Ingested:
    """Store a page (not its cursor: see :func:`save_cursor`)."""
    out = Ingested()
    if page.owners:
        upsert_owners(
            session, [OwnerRow(source, o.id, o.kind, o.name, o.email, o.active) for o in page.owners], now=now
        )
        out.owners = len(page.owners)
    if page.accounts:
        _accounts(session, source, page, now, out)
    if page.leads:
        _leads(session, source, page, now, out)
    if page.deals:
        _deals(session, source, page, now, out)
    if page.tombstones:
        _tombstones(session, source, page.tombstones)
        out.tombstones = len(page.tombstones)
    gone_events = [t.id for t in page.tombstones if t.kind == "event"]
    if page.events or gone_events:
        # leads whose events changed have new content: decided like a changed lead
        changed = apply_events(session, source, page.events, gone_events, now=now)
        seen = set(out.lead_pks)
        out.lead_pks += [pk for pk in changed if pk not in seen]
        out.events = len(page.events)
    return out


def _accounts(session: Session, source: str, page: Page, now: datetime, out: Ingested) -> None:
    values, updated = [], {}
    for record in page.accounts:
        try:
            account = normalize_account(record.raw, default_source=source)
        except LeadInputError as exc:
            out.rejected.append(f"account {record.raw.get('id')!r}: {exc}")
            continue
        values.append(account)
        if record.updated_at is not None:
            updated[account.id] = record.updated_at
    upsert_accounts(session, values, now=now, updated=updated)
    out.accounts = len(values)


def _leads(session: Session, source: str, page: Page, now: datetime, out: Ingested) -> None:
    account_ids = {r.account_id for r in page.leads if r.account_id}
    account_pks: dict[str, int] = {}
    if account_ids:
        account_pks = dict(
            session.execute(
                select(Account.crm_id, Account.pk).where(Account.source == source, Account.crm_id.in_(account_ids))
            ).all()
        )
    rows: list[LeadRow] = []
    loopgate: dict[str, Mapping[str, Any]] = {}
    links: list[dict[str, str]] = []
    for record in page.leads:
        try:
            lead = normalize_lead({**record.raw, "source": source}, default_source=source)
        except LeadInputError as exc:
            out.rejected.append(f"lead {record.raw.get('id')!r}: {exc}")
            continue
        extras: dict[str, Any] = {
            "object_type": record.object_type,
            "status": (record.status or None) and str(record.status)[:64],
            "converted": record.converted,
            "converted_at": record.converted_at,
            "merged_into": None,
            "account_pk": account_pks.get(record.account_id) if record.account_id else None,
        }
        if record.first_touch_at is not None:
            extras["first_touch_at"] = record.first_touch_at
        rows.append(LeadRow(lead, extras))
        loopgate[lead.id] = record.loopgate
        links += [{"source": source, "deal_id": d, "lead_id": lead.id, "origin": "lead"} for d in record.deal_ids]
        if lead.owner_id:
            out.owner_ids[lead.owner_id] = out.owner_ids.get(lead.owner_id, 0) + 1
    rows = merge_stored(session, source, rows)  # the lead as decided: with its stored events
    own, replaced = _own_owner_changes(session, source, rows)
    pks = upsert_leads(session, rows, now=now)
    if own:
        # only the owner changed, to the one loopgate wrote: already decided, not a new change
        session.execute(
            update(Lead).where(Lead.source == source, Lead.crm_id.in_(own)).values(decided_hash=Lead.content_hash)
        )
    if replaced:
        session.execute(update(WritebackState).where(WritebackState.lead_pk.in_(replaced)).values(owner_written=None))
    out.leads = len(rows)
    out.lead_pks = [pks[(source, r.lead.id)] for r in rows]
    states = [
        {"lead_pk": pks[(source, lead_id)], "values": dict(values), "seen_at": now}
        for lead_id, values in loopgate.items()
        if values
    ]
    if states:
        execute_many(session, _state_upsert(session.get_bind().dialect.name), states)
    if links:
        session.execute(dialect_insert(session, DealLink.__table__).on_conflict_do_nothing(), links)
        refresh_outcomes(session, source, {link["lead_id"] for link in links})


@functools.lru_cache(maxsize=4)
def _state_upsert(dialect: str) -> Any:
    """The write-back state upsert, built once per database kind (see :func:`execute_many`)."""
    stmt = insert_for(dialect, WritebackState.__table__)
    updates = {"values": stmt.excluded["values"], "seen_at": stmt.excluded.seen_at}
    return upsert_changed(stmt, WritebackState.__table__, updates, ("lead_pk",))


def _own_owner_changes(session: Session, source: str, rows: Sequence[LeadRow]) -> tuple[list[str], list[int]]:
    """Leads whose only change since they were decided is the owner loopgate itself wrote
    (``writeback_state.owner_written``): write-back mirrors its owner into the stored lead
    after the CRM call, but a sync can read the CRM in between (or a crash can come first).

    Also (second, by lead pk) the leads whose owner changed to one loopgate did not write: a
    person replaced loopgate's write, so what loopgate wrote no longer stands for anything and
    is forgotten. Kept, it passed the same person (or another) setting that owner again later —
    a lead handed back to the rep loopgate once chose — for loopgate's own write: the lead was
    not decided again, and a newer decision's write-back overwrote the person's owner. An owner
    read unchanged says nothing (loopgate's write may not have reached the CRM yet), nor does a
    record the CRM last changed before loopgate stored the owner it was about to write
    (``written_at``): a sync that read its page before the write and stores it after would
    otherwise forget loopgate's own write, and the next write-back would take it for a
    person's change (a conflict, the lead handed back to a rep a re-route took it from). The
    CRM's clock is compared with loopgate's there; skew only narrows or widens that window."""
    by_id = {r.lead.id: r.lead for r in rows}
    if not by_id:
        return [], []
    found = session.execute(
        select(
            Lead.pk,
            Lead.crm_id,
            Lead.owner_id,
            Lead.content_hash,
            Lead.decided_hash,
            WritebackState.owner_written,
            WritebackState.written_at,
        )
        .join(WritebackState, WritebackState.lead_pk == Lead.pk)
        .where(Lead.source == source, Lead.crm_id.in_(list(by_id)), WritebackState.owner_written.is_not(None))
    ).all()
    own, replaced = [], []
    for pk, crm_id, owner, content, decided, written, written_at in found:
        lead = by_id[crm_id]
        if lead.owner_id != written:
            if lead.owner_id != owner and _changed_after(lead.updated_at, written_at):
                replaced.append(pk)
            continue
        if owner == written or decided is None or decided != content:
            continue
        if content_hash(dataclasses.replace(lead, owner_id=owner)) == decided:
            own.append(crm_id)
    return own, replaced


def _changed_after(updated_at: datetime | None, written_at: datetime | None) -> bool:
    """Whether the CRM changed a record after loopgate stored an owner to write: unknown
    times (a record without a modification date, an owner stored before ``written_at`` was
    kept with it) count as after, as they did before."""
    return updated_at is None or written_at is None or updated_at > written_at


def _deals(session: Session, source: str, page: Page, now: datetime, out: Ingested) -> None:
    latest = {
        d.id: {
            "source": source,
            "crm_id": d.id,
            "stage": (d.stage or None) and str(d.stage)[:128],
            "is_closed": d.closed,
            "is_won": d.won,
            "amount": d.amount,
            "closed_at": d.closed_at,
            "is_deleted": False,
            "crm_updated_at": d.updated_at,
            "synced_at": now,
        }
        for d in page.deals
    }
    stmt = dialect_insert(session, Deal.__table__)
    keys = ("stage", "is_closed", "is_won", "amount", "closed_at", "is_deleted", "crm_updated_at", "synced_at")
    session.execute(
        upsert_changed(stmt, Deal.__table__, {k: getattr(stmt.excluded, k) for k in keys}), list(latest.values())
    )
    deal_ids = list(latest)
    before = _linked_leads(session, source, deal_ids)
    # the deal's own list of contacts replaces what it said before; links from leads stay
    session.execute(
        delete(DealLink).where(DealLink.source == source, DealLink.deal_id.in_(deal_ids), DealLink.origin == "deal")
    )
    links = [
        {"source": source, "deal_id": d.id, "lead_id": lead_id, "origin": "deal"}
        for d in page.deals
        for lead_id in dict.fromkeys(d.lead_ids)
    ]
    if links:
        session.execute(dialect_insert(session, DealLink.__table__).on_conflict_do_nothing(), links)
    refresh_outcomes(session, source, before | {link["lead_id"] for link in links})
    out.deals = len(latest)


def _linked_leads(session: Session, source: str, deal_ids: Iterable[str]) -> set[str]:
    return set(
        session.execute(
            select(DealLink.lead_id).where(DealLink.source == source, DealLink.deal_id.in_(list(deal_ids)))
        ).scalars()
    )


def _tombstones(session: Session, source: str, tombstones: Sequence[Tombstone]) -> None:
    leads = [{"b_source": source, "b_id": t.id, "b_merged": t.merged_into} for t in tombstones if t.kind == "lead"]
    if leads:
        table: Table = Lead.__table__  # type: ignore[assignment]  # Core table: a plain executemany UPDATE
        session.execute(
            update(table)
            .where(table.c.source == bindparam("b_source"), table.c.crm_id == bindparam("b_id"))
            .values(is_deleted=True, merged_into=bindparam("b_merged")),
            leads,
        )
    accounts = [t.id for t in tombstones if t.kind == "account"]
    if accounts:
        session.execute(
            update(Account).where(Account.source == source, Account.crm_id.in_(accounts)).values(is_deleted=True)
        )
    deals = [t.id for t in tombstones if t.kind == "deal"]
    if deals:
        session.execute(update(Deal).where(Deal.source == source, Deal.crm_id.in_(deals)).values(is_deleted=True))
        refresh_outcomes(session, source, _linked_leads(session, source, deals))


def refresh_outcomes(session: Session, source: str, lead_ids: Iterable[str]) -> None:
    """Recompute won/lost for these leads from their deals: won if any deal is won (latest
    close, won amounts summed), lost if every deal is closed and none won, else open."""
    wanted = sorted(set(lead_ids))
    if not wanted:
        return
    # a deal linked both ways (from the lead and from the deal) counts once: DISTINCT over
    # the deal's id too, or two different deals of equal amount and close date would be one
    rows = session.execute(
        select(DealLink.lead_id, Deal.crm_id, Deal.is_closed, Deal.is_won, Deal.amount, Deal.closed_at)
        .join(Deal, (Deal.source == DealLink.source) & (Deal.crm_id == DealLink.deal_id))
        .where(DealLink.source == source, DealLink.lead_id.in_(wanted), Deal.is_deleted.is_(False))
        .distinct()
    ).all()
    by_lead: dict[str, list[Any]] = {lead_id: [] for lead_id in wanted}
    for row in rows:
        by_lead[row.lead_id].append(row)
    params = []
    for lead_id, deals in by_lead.items():
        won = [d for d in deals if d.is_won]
        outcome: str | None = None
        at: datetime | None = None
        amount: float | None = None
        if won:
            outcome = "won"
            at = max((d.closed_at for d in won if d.closed_at), default=None)
            amounts = [d.amount for d in won if d.amount is not None]
            amount = sum(amounts) if amounts else None
        elif deals and all(d.is_closed for d in deals):
            outcome = "lost"
            at = max((d.closed_at for d in deals if d.closed_at), default=None)
        params.append({"b_source": source, "b_id": lead_id, "b_outcome": outcome, "b_at": at, "b_amount": amount})
    table: Table = Lead.__table__  # type: ignore[assignment]  # Core table: a plain executemany UPDATE
    session.execute(
        update(table)
        .where(
            table.c.source == bindparam("b_source"),
            table.c.crm_id == bindparam("b_id"),
            # an outcome as it was is not written again (see records.upsert_changed)
            or_(
                table.c.outcome.is_distinct_from(bindparam("b_outcome")),
                table.c.outcome_at.is_distinct_from(bindparam("b_at")),
                table.c.outcome_amount.is_distinct_from(bindparam("b_amount")),
            ),
        )
        .values(outcome=bindparam("b_outcome"), outcome_at=bindparam("b_at"), outcome_amount=bindparam("b_amount")),
        params,
    )
