"""Storing leads: the stored record and its content hash come from one encoding, and must be
exactly what :func:`core.leads.content_hash` and :func:`core.leads.lead_record` say."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from core.leads import content_hash, lead_record, normalize_lead
from core.store.db import Database
from core.store.models import Lead
from core.store.records import LeadRow, lead_value, upsert_leads

AWKWARD: dict[str, dict[str, Any]] = {
    "plain": {"id": "L1", "email": "ana@acme.com", "company": "Acme", "employees": 450, "country": "US"},
    "unicode": {"id": "L2", "first_name": "Zoë", "company": "Société Générale ✓", "title": 'Directeur "IT"'},
    "problems": {"id": "L3", "employees": "lots", "email": "not-an-email", "created_at": "yesterday"},
    "events_and_fields": {
        "id": "L4",
        "updated_at": "2026-11-20T10:00:00Z",
        "events": [{"type": "pricing_page", "at": "2026-11-19T10:00:00Z"}],
        "fields": {"Rating": "Hot", "nested": {"a": [1, 2.5, None, True]}},
    },
    "looks_like_nan": {"id": "L5", "company": "NaN Labs", "title": "Head of Infinity"},
    "nan_in_fields": {"id": "L6", "fields": {"score": math.nan, "cap": math.inf}},
    "nul": {"id": "L7", "company": "Ac\x00me", "fields": {"note": "a\x00b"}},
    "escaped_nul_text": {"id": "L8", "company": "back\\u0000slash"},
}


@pytest.mark.parametrize("raw", list(AWKWARD.values()), ids=list(AWKWARD))
def test_given_an_awkward_lead_when_stored_then_its_hash_and_record_are_the_cores_own(
    db: Database, now: datetime, raw: dict[str, Any]
) -> None:
    lead = normalize_lead({**raw, "source": "import"})

    with db.transaction() as session:
        upsert_leads(session, [LeadRow(lead)], now=now)
    with db.transaction() as session:
        row = session.execute(select(Lead).where(Lead.crm_id == raw["id"])).scalar_one()

    assert row.content_hash == content_hash(lead)
    # the stored record reads back as the lead (NaN as null, NUL dropped: what the database can hold)
    assert content_hash(lead_value(row)) == content_hash(normalize_lead(row.data))
    expected = lead_record(lead)
    if raw["id"] in ("L6", "L7"):
        assert set(row.data) == set(expected)
    else:
        assert row.data == expected


def test_given_a_lead_contacted_from_slack_when_the_crm_logs_an_earlier_first_touch_then_the_earliest_is_kept(
    db: Database, now: datetime
) -> None:
    lead = normalize_lead({"id": "L1", "source": "import", "company": "Acme"})
    clicked = now + timedelta(minutes=5)  # "I contacted them" stores the click's time
    with db.transaction() as session:
        upsert_leads(session, [LeadRow(lead)], now=now)
        session.execute(update(Lead).values(first_touch_at=clicked))

    for seen in (now + timedelta(minutes=2), now + timedelta(minutes=9)):  # the call, then a later email
        with db.transaction() as session:
            upsert_leads(session, [LeadRow(lead, {"first_touch_at": seen})], now=now)

    with db.sessions() as session:
        stored = session.execute(select(Lead.first_touch_at).where(Lead.crm_id == "L1")).scalar_one()
    assert stored == now + timedelta(minutes=2)


def test_given_a_lead_with_unreadable_values_when_stored_and_read_back_then_its_problems_come_back_too(
    db: Database, now: datetime
) -> None:
    # the stored record holds the cleaned values: read again, "n/a" was simply no email, and a
    # stored lead's "missing email" lost the reason the CRM's value was not used
    raw = {"id": "P1", "source": "salesforce", "email": "n/a", "employees": "lots", "company": "Acme"}
    fresh = normalize_lead(raw)
    with db.transaction() as session:
        upsert_leads(session, [LeadRow(fresh)], now=now)
    with db.sessions() as session:
        stored = lead_value(session.scalars(select(Lead)).one())
    assert stored.problems == fresh.problems and set(stored.problems) == {"email", "employees"}
    assert stored == fresh
