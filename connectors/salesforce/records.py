"""Salesforce objects → loopgate's records, and the SOQL that reads them incrementally.

Every stream reads ``SystemModstamp``-ordered pages with a ``>=`` cursor and an ``Id``
tie-break: ``WHERE SystemModstamp > :ts OR (SystemModstamp = :ts AND Id > :id)``, ordered by
``SystemModstamp, Id``. Records that share one timestamp across a page boundary are neither
skipped nor read twice, and a record changed mid-sync comes back later with its new stamp.

Objects that can be deleted or merged are read with ``queryAll``, so deletions arrive as
tombstones (``MasterRecordId`` names the winner of a merge).

A sync run starts ``lookback`` before its cursor (``SystemModstamp >= :ts - lookback``, no
tie-break), because ``SystemModstamp`` has whole seconds: a record changed after the last
sync read it but within the same second keeps the cursor's stamp and, with an ``Id`` below
the cursor's, the tie-break would skip it for good; Salesforce also stamps a change when its
transaction starts, so a slow transaction commits a stamp older than rows already read.
Re-read rows with unchanged content are stored as they are and decided nothing; a page of
re-read rows never moves the cursor back.

Campaign responses (``CampaignMember`` with ``HasResponded``) are the Salesforce intent
events. Adding or changing a member leaves the Lead's ``SystemModstamp`` as it was, so they
are a stream of their own, read like the others; a member's ``Campaign.Type`` ("Trade Show")
becomes the event type (``trade_show``) that the policy's ``scoring.intent.events`` weighs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.setup_spec import SALESFORCE_ACCOUNT_FIELDS
from core.leads import parse_time
from core.ports import AccountRecord, Cursor, DealRecord, EventRecord, LeadRecord, OwnerRecord, Page, Tombstone

__all__ = ["STREAMS", "Stream", "build_query", "campaign_event_type", "soql_datetime"]

_ID = re.compile(r"^[A-Za-z0-9]{15,18}$")

# Lead statuses that mean nobody has worked the lead yet: Salesforce's default "Open - Not
# Contacted" and the common "New"/"Open". Salesforce has no standard first-touch timestamp on
# every edition (FirstCallDateTime needs Sales Engagement), so the first sync that sees a lead
# leave these statuses dates the touch at that change's LastModifiedDate — an upper bound, so an
# SLA is never counted as met earlier than it was. The store keeps the earliest date it saw.
UNTOUCHED_STATUSES = frozenset({"open - not contacted", "new", "open"})


def soql_datetime(value: datetime) -> str:
    """A SOQL dateTime literal (second precision, UTC, unquoted)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_query(
    sobject: str,
    fields: Sequence[str],
    cursor: Cursor | None,
    where: str | None = None,
    lookback: timedelta = timedelta(0),
) -> str:
    """The incremental query for one page run, resuming strictly after ``cursor``, or from
    ``lookback`` before it (the start of a sync run)."""
    clauses = [where] if where else []
    if cursor is not None and cursor.ts is not None and lookback > timedelta(0):
        clauses.append(f"SystemModstamp >= {soql_datetime(cursor.ts - lookback)}")
    elif cursor is not None and cursor.ts is not None:
        ts = soql_datetime(cursor.ts)
        if cursor.id:
            if not _ID.match(cursor.id):
                raise ValueError(f"not a Salesforce id: {cursor.id!r}")
            clauses.append(f"(SystemModstamp > {ts} OR (SystemModstamp = {ts} AND Id > '{cursor.id}'))")
        else:
            clauses.append(f"SystemModstamp >= {ts}")
    soql = f"SELECT {', '.join(fields)} FROM {sobject}"  # noqa: S608 - fixed field names; cursor id validated
    if clauses:
        soql += " WHERE " + " AND ".join(clauses)
    return soql + " ORDER BY SystemModstamp ASC, Id ASC"


def _time(value: Any) -> datetime | None:
    if isinstance(value, str) and len(value) == 10:  # a date field: midnight UTC
        value = f"{value}T00:00:00Z"
    return parse_time(value)


@dataclass(frozen=True, slots=True)
class Stream:
    """How to read one object: its fields, whether deleted rows matter, and how rows map."""

    name: str
    sobject: str
    fields: tuple[str, ...]
    deleted: bool
    where: str | None
    to_page: Callable[[str, Sequence[Mapping[str, Any]], Cursor, Sequence[str]], Page]
    optional: bool = False  # an org may not let the user read it: skipped, not an error

    def query(self, cursor: Cursor | None, extra_fields: Sequence[str] = (), lookback: timedelta = timedelta(0)) -> str:
        return build_query(self.sobject, [*self.fields, *extra_fields], cursor, self.where, lookback)


def _cursor_after(rows: Sequence[Mapping[str, Any]], previous: Cursor) -> Cursor:
    if not rows:
        return previous
    last = rows[-1]
    after = Cursor(_time(last["SystemModstamp"]), str(last["Id"]))
    behind = (
        previous.ts is not None
        and after.ts is not None
        and (after.ts, after.id or "") <= (previous.ts, previous.id or "")
    )
    return previous if behind else after  # rows re-read by the lookback never move the cursor back


def _loopgate_values(row: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    return {name: row.get(name) for name in names}


def _first_touch(row: Mapping[str, Any]) -> datetime | None:
    status = str(row.get("Status") or "").strip().lower()
    if not status or (status in UNTOUCHED_STATUSES and not row.get("IsConverted")):
        return None
    return _time(row.get("LastModifiedDate"))


def _lead_page(stream: str, rows: Sequence[Mapping[str, Any]], cursor: Cursor, names: Sequence[str]) -> Page:
    leads, tombstones = [], []
    for r in rows:
        if r.get("IsDeleted"):
            tombstones.append(Tombstone("lead", r["Id"], r.get("MasterRecordId")))
            continue
        raw = {
            "id": r["Id"],
            "source": "salesforce",
            "email": r.get("Email"),
            "first_name": r.get("FirstName"),
            "last_name": r.get("LastName"),
            "title": r.get("Title"),
            "company": r.get("Company"),
            "domain": r.get("Website"),
            "industry": r.get("Industry"),
            "employees": r.get("NumberOfEmployees"),
            "annual_revenue": r.get("AnnualRevenue"),
            "country": r.get("Country"),
            "state": r.get("State"),
            "lead_source": r.get("LeadSource"),
            "owner_id": r.get("OwnerId"),
            "created_at": r.get("CreatedDate"),
            "updated_at": r.get("LastModifiedDate"),
            "fields": {"object_type": "Lead", "rating": r.get("Rating")},
        }
        leads.append(
            LeadRecord(
                raw=raw,
                object_type="Lead",
                status=r.get("Status"),
                converted=bool(r.get("IsConverted")),
                converted_at=_time(r.get("ConvertedDate")),
                first_touch_at=_first_touch(r),
                account_id=r.get("ConvertedAccountId"),
                deal_ids=(r["ConvertedOpportunityId"],) if r.get("ConvertedOpportunityId") else (),
                loopgate=_loopgate_values(r, names),
            )
        )
    return Page(stream, _cursor_after(rows, cursor), leads=leads, tombstones=tombstones)


def _contact_page(stream: str, rows: Sequence[Mapping[str, Any]], cursor: Cursor, names: Sequence[str]) -> Page:
    leads, tombstones = [], []
    for r in rows:
        if r.get("IsDeleted"):
            tombstones.append(Tombstone("lead", r["Id"], r.get("MasterRecordId")))
            continue
        account = r.get("Account") or {}
        raw = {
            "id": r["Id"],
            "source": "salesforce",
            "email": r.get("Email"),
            "first_name": r.get("FirstName"),
            "last_name": r.get("LastName"),
            "title": r.get("Title"),
            "company": account.get("Name"),
            "domain": account.get("Website"),
            "industry": account.get("Industry"),
            "employees": account.get("NumberOfEmployees"),
            "country": r.get("MailingCountry"),
            "state": r.get("MailingState"),
            "lead_source": r.get("LeadSource"),
            "owner_id": r.get("OwnerId"),
            "created_at": r.get("CreatedDate"),
            "updated_at": r.get("LastModifiedDate"),
            "fields": {"object_type": "Contact", "department": r.get("Department")},
        }
        leads.append(
            LeadRecord(
                raw=raw, object_type="Contact", account_id=r.get("AccountId"), loopgate=_loopgate_values(r, names)
            )
        )
    return Page(stream, _cursor_after(rows, cursor), leads=leads, tombstones=tombstones)


def _account_page(stream: str, rows: Sequence[Mapping[str, Any]], cursor: Cursor, _names: Sequence[str]) -> Page:
    accounts, tombstones = [], []
    for r in rows:
        if r.get("IsDeleted"):
            tombstones.append(Tombstone("account", r["Id"], r.get("MasterRecordId")))
            continue
        raw = {
            "id": r["Id"],
            "source": "salesforce",
            "name": r.get("Name"),
            "domain": r.get("Website"),
            "owner_id": r.get("OwnerId"),
            "strategic": r.get(SALESFORCE_ACCOUNT_FIELDS["strategic"]),
            "tier": r.get(SALESFORCE_ACCOUNT_FIELDS["tier"]),
            "industry": r.get("Industry"),
            "employees": r.get("NumberOfEmployees"),
            "is_customer": "customer" in str(r.get("Type") or "").lower(),
            "fields": {"type": r.get("Type")},
        }
        accounts.append(AccountRecord(raw, _time(r.get("LastModifiedDate"))))
    return Page(stream, _cursor_after(rows, cursor), accounts=accounts, tombstones=tombstones)


def _opportunity_page(stream: str, rows: Sequence[Mapping[str, Any]], cursor: Cursor, _names: Sequence[str]) -> Page:
    deals, tombstones = [], []
    for r in rows:
        if r.get("IsDeleted"):
            tombstones.append(Tombstone("deal", r["Id"]))
            continue
        amount = r.get("Amount")
        deals.append(
            DealRecord(
                id=r["Id"],
                closed=bool(r.get("IsClosed")),
                won=bool(r.get("IsWon")),
                amount=float(amount) if isinstance(amount, int | float) else None,
                closed_at=_time(r.get("CloseDate")) if r.get("IsClosed") else None,
                stage=r.get("StageName"),
                updated_at=_time(r.get("LastModifiedDate")),
                lead_ids=(r["ContactId"],) if r.get("ContactId") else (),
            )
        )
    return Page(stream, _cursor_after(rows, cursor), deals=deals, tombstones=tombstones)


def campaign_event_type(campaign_type: Any) -> str:
    """A campaign's ``Type`` as an intent event type: snake_case ("Trade Show" → ``trade_show``,
    "Banner Ads" → ``banner_ads``); a campaign without a type is a plain ``campaign``."""
    text = _NOT_WORD.sub("_", str(campaign_type or "").strip().lower()).strip("_")
    return text[:64] or "campaign"


_NOT_WORD = re.compile(r"[^a-z0-9]+")


def _campaign_member_page(
    stream: str, rows: Sequence[Mapping[str, Any]], cursor: Cursor, _names: Sequence[str]
) -> Page:
    events, tombstones = [], []
    for r in rows:
        if r.get("IsDeleted"):
            tombstones.append(Tombstone("event", r["Id"]))
            continue
        # a converted lead's member names the lead and the contact it became: the event is both's
        lead_ids = tuple(dict.fromkeys(str(i) for i in (r.get("LeadId"), r.get("ContactId")) if i))
        at = _time(r.get("FirstRespondedDate")) or _time(r.get("CreatedDate"))
        if not r.get("HasResponded") or at is None:
            events.append(EventRecord(r["Id"], lead_ids))  # a member, not (or no longer) a response
            continue
        campaign = r.get("Campaign") or {}
        events.append(EventRecord(r["Id"], lead_ids, campaign_event_type(campaign.get("Type")), at))
    return Page(stream, _cursor_after(rows, cursor), events=events, tombstones=tombstones)


def _user_page(stream: str, rows: Sequence[Mapping[str, Any]], cursor: Cursor, _names: Sequence[str]) -> Page:
    owners = [OwnerRecord(r["Id"], "user", r.get("Name"), r.get("Email"), bool(r.get("IsActive", True))) for r in rows]
    return Page(stream, _cursor_after(rows, cursor), owners=owners)


def _queue_page(stream: str, rows: Sequence[Mapping[str, Any]], cursor: Cursor, _names: Sequence[str]) -> Page:
    owners = [OwnerRecord(r["Id"], "queue", r.get("Name"), r.get("Email")) for r in rows]
    return Page(stream, _cursor_after(rows, cursor), owners=owners)


_LIFECYCLE = ("Id", "SystemModstamp", "CreatedDate", "LastModifiedDate")
STREAMS: dict[str, Stream] = {
    "users": Stream("users", "User", ("Id", "Name", "Email", "IsActive", "SystemModstamp"), False, None, _user_page),
    "queues": Stream(
        "queues", "Group", ("Id", "Name", "Email", "SystemModstamp"), False, "Type = 'Queue'", _queue_page
    ),
    "accounts": Stream(
        "accounts",
        "Account",
        (
            *_LIFECYCLE,
            "IsDeleted",
            "MasterRecordId",
            "Name",
            "Website",
            "Industry",
            "NumberOfEmployees",
            "Type",
            "OwnerId",
            *SALESFORCE_ACCOUNT_FIELDS.values(),
        ),
        True,
        None,
        _account_page,
    ),
    "leads": Stream(
        "leads",
        "Lead",
        (
            *_LIFECYCLE,
            "IsDeleted",
            "MasterRecordId",
            "FirstName",
            "LastName",
            "Email",
            "Title",
            "Company",
            "Website",
            "Industry",
            "NumberOfEmployees",
            "AnnualRevenue",
            "Country",
            "State",
            "LeadSource",
            "Status",
            "Rating",
            "OwnerId",
            "IsConverted",
            "ConvertedDate",
            "ConvertedAccountId",
            "ConvertedOpportunityId",
        ),
        True,
        None,
        _lead_page,
    ),
    "contacts": Stream(
        "contacts",
        "Contact",
        (
            *_LIFECYCLE,
            "IsDeleted",
            "MasterRecordId",
            "FirstName",
            "LastName",
            "Email",
            "Title",
            "AccountId",
            "Account.Name",
            "Account.Website",
            "Account.Industry",
            "Account.NumberOfEmployees",
            "MailingCountry",
            "MailingState",
            "LeadSource",
            "Department",
            "OwnerId",
        ),
        True,
        None,
        _contact_page,
    ),
    "opportunities": Stream(
        "opportunities",
        "Opportunity",
        (*_LIFECYCLE, "IsDeleted", "StageName", "IsClosed", "IsWon", "Amount", "CloseDate", "ContactId"),
        True,
        None,
        _opportunity_page,
    ),
    "campaign_members": Stream(
        "campaign_members",
        "CampaignMember",
        (
            "Id",
            "SystemModstamp",
            "CreatedDate",
            "IsDeleted",
            "LeadId",
            "ContactId",
            "CampaignId",
            "Status",
            "HasResponded",
            "FirstRespondedDate",
            "Campaign.Type",
        ),
        True,
        None,
        _campaign_member_page,
        optional=True,
    ),
}
# lead objects carry the loopgate write-back fields in their queries
LEAD_OBJECTS = {"leads": "Lead", "contacts": "Contact"}
