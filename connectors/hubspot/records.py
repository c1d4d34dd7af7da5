"""HubSpot objects → loopgate's records, and the keyset windows the search API is read with.

HubSpot's search returns at most 10,000 results per query, takes one sort, and pages with an
offset over a *live* result set (a record modified mid-sync moves, and offset paging then skips
its neighbour). So every page is its own query, a window starting at the cursor: ``modified >
ts`` OR (``modified = ts`` AND the id is not one already stored at ``ts``), sorted by the
modification date. The cap is never reached, moved records are never skipped, and records that
share a timestamp across a page boundary are neither lost nor read twice. When more records
share one millisecond than one window can exclude (``NOT_IN`` takes 100 values), the stream
walks that millisecond by ``hs_object_id`` instead ("tie mode").

Search is an index that trails writes by a few seconds: a record modified just before a run's
last window can become searchable only after it, with a date below the cursor. So each run starts
a look-back before the cursor (:func:`rewind`). Reading those records again is harmless — the
store keeps each lead's content hash and decides only what changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.setup_spec import HUBSPOT_COMPANY_FIELDS
from core.leads import parse_time
from core.ports import AccountRecord, Cursor, DealRecord, LeadRecord, Tombstone

__all__ = [
    "COMPANY_PROPERTIES",
    "CONTACT_PROPERTIES",
    "DEAL_PROPERTIES",
    "INTENT_PROPERTIES",
    "MAX_EXCLUDED",
    "account_record",
    "deal_record",
    "lead_record",
    "merged_tombstones",
    "millis",
    "next_cursor",
    "rewind",
    "window",
]

MAX_EXCLUDED = 100  # values one NOT_IN filter takes

# HubSpot's own activity dates on a contact, as intent events the policy can weight (its
# ``scoring.intent.events``); each property holds the latest such activity only
INTENT_PROPERTIES = {
    "hs_email_last_click_date": "email_click",
    "hs_email_last_open_date": "email_open",
    "recent_conversion_date": "form_submission",
    "hs_analytics_last_visit_timestamp": "web_visit",
}
CONTACT_PROPERTIES = (
    "email", "firstname", "lastname", "jobtitle", "company", "website", "industry", "numemployees", "annualrevenue",
    "country", "state", "hs_analytics_source", "hubspot_owner_id", "createdate", "lastmodifieddate", "hs_object_id",
    "associatedcompanyid", "hs_merged_object_ids", "lifecyclestage", "hs_lead_status",
    "hs_lifecyclestage_opportunity_date", "hs_lifecyclestage_customer_date", "hs_sa_first_engagement_date",
    *INTENT_PROPERTIES,
)  # fmt: skip
COMPANY_PROPERTIES = (
    "name", "domain", "industry", "numberofemployees", "hubspot_owner_id", "lifecyclestage", "hs_lastmodifieddate",
    "hs_object_id", "hs_merged_object_ids", *HUBSPOT_COMPANY_FIELDS.values(),
)  # fmt: skip
DEAL_PROPERTIES = ("dealstage", "amount", "closedate", "hs_is_closed", "hs_is_closed_won", "hs_lastmodifieddate",
                   "hs_object_id", "hs_merged_object_ids")  # fmt: skip
_CONVERTED_STAGES = frozenset({"opportunity", "customer", "evangelist"})


def millis(value: datetime) -> int:
    return int(value.astimezone(UTC).timestamp() * 1000)


def rewind(cursor: Cursor | None, lag: timedelta) -> Cursor | None:
    """Where a run starts: ``lag`` before the stored cursor (a walk by id in progress resumes)."""
    if cursor is None or cursor.ts is None or lag <= timedelta(0) or "tie_after" in cursor.state:
        return cursor
    return Cursor(cursor.ts - lag)


def window(modified: str, cursor: Cursor | None) -> tuple[list[dict[str, Any]], str]:
    """(filter groups, sort property) for the next page after ``cursor``."""
    if cursor is None or cursor.ts is None:
        return [], modified
    ts = str(millis(cursor.ts))
    state = cursor.state
    if "tie_after" in state:
        eq = {"propertyName": modified, "operator": "EQ", "value": ts}
        after = {"propertyName": "hs_object_id", "operator": "GT", "value": str(state["tie_after"])}
        return [{"filters": [eq, after]}], "hs_object_id"
    seen = [str(s) for s in state.get("seen") or []]
    later = {"filters": [{"propertyName": modified, "operator": "GT", "value": ts}]}
    if state.get("ts_done"):
        return [later], modified
    if not seen:
        return [{"filters": [{"propertyName": modified, "operator": "GTE", "value": ts}]}], modified
    rest = {
        "filters": [
            {"propertyName": modified, "operator": "EQ", "value": ts},
            {"propertyName": "hs_object_id", "operator": "NOT_IN", "values": seen},
        ]
    }
    return [later, rest], modified


def modified_at(props: Mapping[str, Any], modified: str) -> datetime | None:
    return parse_time(props.get(modified))


def next_cursor(
    cursor: Cursor | None, rows: Sequence[tuple[str, datetime | None]], *, full_page: bool
) -> tuple[Cursor, bool]:
    """The cursor after a page of (id, modified) rows, and whether the stream is finished."""
    previous = cursor or Cursor()
    if "tie_after" in previous.state:
        if not full_page or not rows:
            # every record of that millisecond is stored: move past it
            return Cursor(previous.ts, None, {"ts_done": True}), False
        return Cursor(previous.ts, None, {"tie_after": rows[-1][0]}), False
    if not rows:
        return previous, True
    last_ts = rows[-1][1]
    at_last = [record_id for record_id, ts in rows if ts == last_ts]
    if last_ts == previous.ts and not previous.state.get("ts_done"):
        at_last = [*(str(s) for s in previous.state.get("seen") or []), *at_last]
    if len(at_last) > MAX_EXCLUDED and full_page:
        # too many records share this millisecond to exclude by id: walk it by id instead
        return Cursor(last_ts, None, {"tie_after": "0"}), False
    return Cursor(last_ts, None, {"seen": at_last}), not full_page


def _flag(value: Any) -> bool:
    return str(value).strip().lower() == "true"


def _number(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def lead_record(record_id: str, props: Mapping[str, Any], fields: Sequence[str]) -> LeadRecord:
    events = [{"type": kind, "at": props[name]} for name, kind in INTENT_PROPERTIES.items() if props.get(name)]
    raw = {
        "id": record_id,
        "source": "hubspot",
        "email": props.get("email"),
        "first_name": props.get("firstname"),
        "last_name": props.get("lastname"),
        "title": props.get("jobtitle"),
        "company": props.get("company"),
        "domain": props.get("website"),
        "industry": props.get("industry"),
        "employees": props.get("numemployees"),
        "annual_revenue": props.get("annualrevenue"),
        "country": props.get("country"),
        "state": props.get("state"),
        "lead_source": props.get("hs_analytics_source"),
        "owner_id": props.get("hubspot_owner_id"),
        "created_at": props.get("createdate"),
        "updated_at": props.get("lastmodifieddate"),
        "events": events,
        "fields": {"object_type": "contact", "lead_status": props.get("hs_lead_status")},
    }
    stage = str(props.get("lifecyclestage") or "").lower()
    converted_at = parse_time(props.get("hs_lifecyclestage_opportunity_date")) or parse_time(
        props.get("hs_lifecyclestage_customer_date")
    )
    return LeadRecord(
        raw=raw,
        object_type="contact",
        status=stage or None,
        converted=stage in _CONVERTED_STAGES or converted_at is not None,
        converted_at=converted_at,
        first_touch_at=parse_time(props.get("hs_sa_first_engagement_date")),
        account_id=str(props["associatedcompanyid"]) if props.get("associatedcompanyid") else None,
        loopgate={name: props.get(name) for name in fields},
    )


def account_record(record_id: str, props: Mapping[str, Any]) -> AccountRecord:
    raw = {
        "id": record_id,
        "source": "hubspot",
        "name": props.get("name"),
        "domain": props.get("domain"),
        "owner_id": props.get("hubspot_owner_id"),
        "strategic": _flag(props.get(HUBSPOT_COMPANY_FIELDS["strategic"])),
        "tier": props.get(HUBSPOT_COMPANY_FIELDS["tier"]),
        "industry": props.get("industry"),
        "employees": props.get("numberofemployees"),
        "is_customer": str(props.get("lifecyclestage") or "").lower() == "customer",
    }
    return AccountRecord(raw, parse_time(props.get("hs_lastmodifieddate")))


def deal_record(record_id: str, props: Mapping[str, Any], contact_ids: Sequence[str]) -> DealRecord:
    closed = _flag(props.get("hs_is_closed"))
    return DealRecord(
        id=record_id,
        closed=closed,
        won=_flag(props.get("hs_is_closed_won")),
        amount=_number(props.get("amount")),
        closed_at=parse_time(props.get("closedate")) if closed else None,
        stage=props.get("dealstage"),
        updated_at=parse_time(props.get("hs_lastmodifieddate")),
        lead_ids=tuple(contact_ids),
    )


def merged_tombstones(kind: str, record_id: str, props: Mapping[str, Any]) -> list[Tombstone]:
    """Records merged into this one: HubSpot lists their ids on the winner."""
    merged = str(props.get("hs_merged_object_ids") or "")
    return [Tombstone(kind, loser, record_id) for loser in merged.split(";") if loser and loser != record_id]  # type: ignore[arg-type]
