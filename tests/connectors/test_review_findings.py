"""Regressions found in review of the connectors: each test reproduces one bug, fixed since,
against the fake CRMs; its docstring names what went wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from sqlalchemy import select

from connectors.errors import RateLimited, retry_after_seconds
from connectors.sync import sync_crm
from connectors.writeback import CrmWriteback
from core.engine import DecisionEngine
from core.policy import LoadedPolicy
from core.ports import Cursor, DealRecord, LeadRecord, Page
from core.store import outbox
from core.store.db import Database
from core.store.decide import DecideRequest, decide_leads
from core.store.ingest import apply_page
from core.store.models import CrmConflict, Deal, Decision, Lead, OutboxRow, WritebackState
from loopgate.sandbox.hubspot import FakeHubSpot
from loopgate.sandbox.salesforce import FakeSalesforce
from tests.connectors.builders import (
    Sleeps,
    fast_retry,
    hs_contact,
    hubspot_connector,
    salesforce_connector,
    seed_hubspot_people,
    seed_salesforce_people,
    sf_lead,
)
from tests.connectors.conftest import Clock


def _lead(db: Database, source: str, crm_id: str) -> Lead:
    with db.transaction() as s:
        return s.execute(select(Lead).where(Lead.source == source, Lead.crm_id == crm_id)).scalar_one()


def _latest_decision(db: Database, crm_id: str) -> Decision:
    with db.transaction() as s:
        return s.execute(
            select(Decision).where(Decision.lead_id == crm_id).order_by(Decision.seq.desc()).limit(1)
        ).scalar_one()


def test_given_two_won_hubspot_deals_merged_when_synced_then_the_loser_no_longer_counts(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    """connectors/hubspot/connector.py:312 — a deals page carries no merge tombstones
    (DEAL_PROPERTIES lacks hs_merged_object_ids, records.py:65), so a deal merged away stays
    live in the store and keeps counting as its contacts' outcome."""
    buyer = hs.create("contacts", hs_contact())
    closed = {"hs_is_closed": "true", "hs_is_closed_won": "true", "closedate": "2026-11-18T10:00:00.000Z"}
    winner = hs.create("deals", dealname="Deal", amount="5000", **closed)
    loser = hs.create("deals", dealname="Deal (duplicate)", amount="3000", **closed)
    hs.associate(winner, buyer)
    hs.associate(loser, buyer)
    port = hubspot_connector(hs, example_policy, clock=clock)
    sync_crm(db, port, engine, clock=clock)
    assert _lead(db, "hubspot", buyer).outcome_amount == 8000  # two deals, both won

    clock.advance(hours=2)  # past the hourly archived scan too
    hs.merge("deals", winner, loser)  # a person merges the duplicate into the real deal
    sync_crm(db, port, engine, clock=clock)

    with db.transaction() as s:
        loser_deleted = s.execute(select(Deal.is_deleted).where(Deal.crm_id == loser)).scalar_one()
    assert loser_deleted, "the merged-away deal is still live in the store"
    assert _lead(db, "hubspot", buyer).outcome_amount == 5000


def test_given_two_distinct_won_deals_of_equal_amount_and_date_when_synced_then_both_count(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    """core/store/ingest.py:277-280 — refresh_outcomes selects (lead, is_closed, is_won, amount,
    closed_at) with DISTINCT and no deal id, so two different deals that happen to have the same
    amount and close date collapse into one: the won amount is undercounted."""
    buyer = hs.create("contacts", hs_contact())
    closed = {"hs_is_closed": "true", "hs_is_closed_won": "true", "closedate": "2026-11-18T00:00:00.000Z"}
    licence = hs.create("deals", dealname="Licence", amount="5000", **closed)
    services = hs.create("deals", dealname="Onboarding services", amount="5000", **closed)
    hs.associate(licence, buyer)
    hs.associate(services, buyer)
    port = hubspot_connector(hs, example_policy, clock=clock)

    sync_crm(db, port, engine, clock=clock)

    assert _lead(db, "hubspot", buyer).outcome_amount == 10000


def test_given_one_won_deal_linked_from_both_sides_when_stored_then_it_counts_once(db: Database, clock: Clock) -> None:
    """The edge of the fix above: a deal reported by the lead (a converted lead's opportunity)
    and by the deal itself (its contacts) is two links to one deal, and its amount counts once."""
    deal = DealRecord("006D1", closed=True, won=True, amount=5000, closed_at=clock(), lead_ids=("00QL1",))
    lead = LeadRecord({"id": "00QL1", "email": "a@b.com", "company": "B"}, "Lead", deal_ids=("006D1",))
    with db.transaction() as s:
        apply_page(s, "salesforce", Page("leads", Cursor(), leads=[lead], deals=[deal]), now=clock())

    assert _lead(db, "salesforce", "00QL1").outcome_amount == 5000


def test_given_salesforces_daily_allowance_spent_for_half_a_day_when_drained_hourly_then_no_write_back_dies(
    db: Database, sf: FakeSalesforce, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    """connectors/writeback.py:660-662 with core/store/outbox.py:270 — a daily limit settles the
    rows as Retry(1 h), and Retry counts an attempt: after max_attempts (10) hourly tries the
    decision's write-back is dead for good, though nothing was wrong with it. Salesforce's
    allowance is a rolling 24 h (the usage guard holds for as long), so a busy org loses writes."""
    seed_salesforce_people(sf, example_policy)
    lead = sf.create("Lead", sf_lead())
    port = salesforce_connector(sf, example_policy)
    sync_crm(db, port, engine, clock=clock)
    sf.api_limit = sf.api_used  # the org's 24 h allowance is now spent (403 REQUEST_LIMIT_EXCEEDED)
    handler = CrmWriteback(db, engine, {"salesforce": port}, clock)

    for _ in range(12):  # twelve hours of hourly drains while the allowance is spent
        outbox.drain(db, [handler], "w", clock)
        clock.advance(hours=1, seconds=1)
    sf.api_limit = None  # the allowance frees up
    outbox.drain(db, [handler], "w", clock)

    with db.transaction() as s:
        row = s.execute(select(OutboxRow).where(OutboxRow.kind == "crm.writeback")).scalar_one()
    assert row.status != "dead", row.last_error
    assert sf.get("Lead", lead)["Loopgate_Score__c"] is not None


def test_given_a_429_whose_retry_after_is_an_http_date_when_reading_salesforce_then_the_date_is_honoured(
    sf: FakeSalesforce, example_policy: LoadedPolicy
) -> None:
    """connectors/salesforce/errors.py:68-74 — Retry-After may be an HTTP-date (RFC 9110);
    it is parsed as seconds only, so a gateway asking for two minutes gets the next call after
    the backoff's ~0.5 s (here 0.01 s), and the attempts are spent hammering it."""
    sf.create("Lead", sf_lead())
    until = format_datetime(datetime.now(UTC) + timedelta(minutes=2), usegmt=True)
    sf.inject(r"/queryAll/", 429, times=2, body="Too Many Requests", headers={"Retry-After": until})
    sleeps = Sleeps()

    try:
        list(salesforce_connector(sf, example_policy, retry=fast_retry(sleeps)).read("leads", None))
        asked: float | None = None
    except RateLimited as exc:  # more than max_wait: handed up with the wait, also fine
        asked = exc.retry_after
        assert asked is not None and asked > 100

    if asked is None:
        assert sleeps and min(sleeps) > 100, f"called again after {sleeps} s, not after the date asked"


def test_given_a_hubspot_429_whose_retry_after_is_a_near_http_date_when_reading_then_that_wait_is_slept(
    hs: FakeHubSpot, example_policy: LoadedPolicy
) -> None:
    """The same for HubSpot (connectors/hubspot/errors.py), within the wait one call may take:
    the date's distance is slept, not HubSpot's ten-second window."""
    hs.create("contacts", hs_contact())
    until = format_datetime(datetime.now(UTC) + timedelta(seconds=45), usegmt=True)
    limited = {"status": "error", "message": "too many", "policyName": "TEN_SECONDLY_ROLLING"}
    hs.inject(r"/search", 429, times=1, body=limited, headers={"Retry-After": until})
    sleeps = Sleeps()

    pages = list(hubspot_connector(hs, example_policy, retry=fast_retry(sleeps)).read("contacts", None))

    assert len(pages) == 1 and len(sleeps) == 1 and 40 < sleeps[0] <= 45


def test_given_retry_after_values_when_read_then_seconds_and_dates_are_waits_and_the_rest_is_left_to_backoff() -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("120", now) == 120.0
    assert retry_after_seconds("Fri, 20 Nov 2026 12:02:00 GMT", now) == 120.0
    assert retry_after_seconds("Fri, 20 Nov 2026 12:02:00 -0000", now) == 120.0  # no zone said: UTC
    assert retry_after_seconds("Fri, 20 Nov 2026 11:00:00 GMT", now) == 0.0  # already past: go now
    assert retry_after_seconds("-5", now) == 0.0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


def test_given_an_owner_write_that_died_of_retries_when_a_person_then_sets_that_owner_then_it_is_their_change(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    """connectors/writeback.py:364-384 (line 378) — the owner stored by _intend_owners is put back only
    when this perform settles the row Dead; a row that dies because the outbox ran out of
    attempts (every try Retry: 5xx, rate limits, an outage) keeps the phantom owner_written.
    A person who later picks that owner by hand is then taken for loopgate itself
    (ingest._own_owner_changes): the lead is not decided again and the loopgate fields, never
    written, stay unwritten — unlike the same write refused outright (test_writeback.py:332)."""
    people = seed_hubspot_people(hs, example_policy)
    contact = hs.create("contacts", hs_contact())
    port = hubspot_connector(hs, example_policy, clock=clock, retry=fast_retry(attempts=1))
    sync_crm(db, port, engine, clock=clock)
    first = _latest_decision(db, contact)
    assert first.action == "auto" and first.final_owner in people
    # an outage outlasting the row's attempts and its 48 h (an outage is not given up sooner)
    hs.inject(r"/batch/update$", 503, times=1000, method="POST")
    handler = CrmWriteback(db, engine, {"hubspot": port}, clock)
    for _ in range(50):
        outbox.drain(db, [handler], "w", clock)
        clock.advance(hours=1)
    with db.transaction() as s:
        assert s.execute(select(OutboxRow.status).where(OutboxRow.kind == "crm.writeback")).scalar_one() == "dead"
    assert not hs.get("contacts", contact).get("hubspot_owner_id")  # never written

    hs.update("contacts", contact, hubspot_owner_id=people[first.final_owner or ""])  # the rep takes it by hand
    sync_crm(db, port, engine, clock=clock)

    again = _latest_decision(db, contact)
    assert again.pk != first.pk, "the person's change was taken for loopgate's own write"


def test_given_an_owner_write_waiting_for_credentials_when_a_person_sets_that_owner_then_it_is_their_change(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    """The edge of the fix above: a row waiting (not dead) for a revoked token, for hours
    now, must not claim the owner it has not written either."""
    people = seed_hubspot_people(hs, example_policy)
    contact = hs.create("contacts", hs_contact())
    port = hubspot_connector(hs, example_policy, clock=clock, retry=fast_retry(attempts=1))
    sync_crm(db, port, engine, clock=clock)
    first = _latest_decision(db, contact)
    hs.inject(r"/batch/update$", 401, times=1000, method="POST", body={"status": "error", "message": "expired",
                                                                     "category": "EXPIRED_AUTHENTICATION"})  # fmt: skip
    handler = CrmWriteback(db, engine, {"hubspot": port}, clock)
    outbox.drain(db, [handler], "w", clock)
    with db.transaction() as s:
        assert s.execute(select(OutboxRow.status).where(OutboxRow.kind == "crm.writeback")).scalar_one() == "pending"

    clock.advance(hours=3)
    hs.update("contacts", contact, hubspot_owner_id=people[first.final_owner or ""])  # the rep takes it by hand
    sync_crm(db, port, engine, clock=clock)

    assert _latest_decision(db, contact).pk != first.pk, "the person's change was taken for loopgate's own write"


def test_given_a_person_hands_a_lead_back_to_the_rep_loopgate_once_wrote_when_synced_then_it_is_their_change(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    """core/store/ingest.py:181-200 (_own_owner_changes) — owner_written is what loopgate wrote
    for *some* earlier decision, never cleared when later decisions write no owner. Rep A
    (loopgate's pick) hands the lead to B, loopgate re-decides and keeps B; B hands it back to
    A: the sync takes A for loopgate's own write and does not decide again, so the stored
    decision (its SLA nudges, App Home queue, audit) keeps naming B while the CRM says A."""
    people = seed_hubspot_people(hs, example_policy)
    contact = hs.create("contacts", hs_contact())
    port = hubspot_connector(hs, example_policy, clock=clock)
    sync_crm(db, port, engine, clock=clock)
    handler = CrmWriteback(db, engine, {"hubspot": port}, clock)
    outbox.drain(db, [handler], "w", clock)
    first = _latest_decision(db, contact)
    rep_a = hs.get("contacts", contact)["hubspot_owner_id"]
    assert rep_a == people[first.final_owner or ""]
    rep_b = next(crm for person, crm in people.items() if crm != rep_a and person != first.final_owner)

    clock.advance(minutes=5)
    hs.update("contacts", contact, hubspot_owner_id=rep_b)  # A hands it to B
    sync_crm(db, port, engine, clock=clock)
    outbox.drain(db, [handler], "w", clock)
    second = _latest_decision(db, contact)
    assert second.pk != first.pk and second.crm_owner_before == rep_b  # decided again: B's now

    clock.advance(minutes=5)
    hs.update("contacts", contact, hubspot_owner_id=rep_a)  # B hands it back to A
    sync_crm(db, port, engine, clock=clock)

    third = _latest_decision(db, contact)
    assert third.pk != second.pk, (
        f"not decided again: decision {second.pk} still names {second.final_owner}, the CRM owner is {rep_a}"
    )


def test_given_a_person_sets_the_owner_loopgate_once_wrote_after_a_newer_decision_when_written_back_then_it_is_kept(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    """core/writeback.py:195-200 (is_conflict) with connectors/writeback.py:310-316 — a current
    owner equal to owner_written is never a conflict, but owner_written may be what loopgate
    wrote for an *older* decision. Loopgate gave the lead to A; a person parked it with an
    owner outside the policy; loopgate decided again (C). Before that write, a person gives it
    back to A: the owner check takes A for loopgate's own write and overwrites the person's A."""
    people = seed_hubspot_people(hs, example_policy)
    outsider = hs.add_owner("999", "parking@example.com", "Parking", "Lot")
    contact = hs.create("contacts", hs_contact())
    port = hubspot_connector(hs, example_policy, clock=clock)
    sync_crm(db, port, engine, clock=clock)
    handler = CrmWriteback(db, engine, {"hubspot": port}, clock)
    outbox.drain(db, [handler], "w", clock)
    rep_a = hs.get("contacts", contact)["hubspot_owner_id"]
    assert rep_a in people.values()

    clock.advance(minutes=5)
    hs.update("contacts", contact, hubspot_owner_id=outsider)  # parked outside the policy's reps
    sync_crm(db, port, engine, clock=clock)
    second = _latest_decision(db, contact)
    assert second.crm_owner_before == outsider and people.get(second.final_owner or "") not in (None, rep_a)
    hs.update("contacts", contact, hubspot_owner_id=rep_a)  # a person gives it back to A before write-back
    clock.advance(minutes=1)

    outbox.drain(db, [handler], "w", clock)

    assert hs.get("contacts", contact)["hubspot_owner_id"] == rep_a, "the person's owner was overwritten"


def test_given_an_expired_hubspot_token_over_a_few_hours_when_drained_then_write_backs_wait_for_credentials(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    """connectors/writeback.py:663-664 with core/store/outbox.py:270 — the same root cause as
    the daily limit: AuthExpired/Forbidden/CrmSetupMissing settle as Retry(15 min), each
    counting an attempt, so a token that expired at 18:00 has killed every pending write-back
    by 20:30 (test_faults.py:347 checks only the first drain: "wait for credentials, not die")."""
    seed_hubspot_people(hs, example_policy)
    contact = hs.create("contacts", hs_contact())
    port = hubspot_connector(hs, example_policy, clock=clock)
    sync_crm(db, port, engine, clock=clock)
    hs.expire_token("pat-sandbox-token")  # a private-app token revoked; an admin fixes it next morning
    handler = CrmWriteback(db, engine, {"hubspot": port}, clock)
    for _ in range(12):  # three hours of drains
        outbox.drain(db, [handler], "w", clock)
        clock.advance(minutes=15, seconds=1)

    with db.transaction() as s:
        row = s.execute(select(OutboxRow).where(OutboxRow.kind == "crm.writeback")).scalar_one()
    assert row.status != "dead", f"dead after {row.attempts} attempts: {row.last_error}"
    assert not hs.get("contacts", contact).get("loopgate_status")


def test_given_a_one_hour_salesforce_outage_when_the_worker_drains_every_minute_then_no_write_back_dies(
    db: Database, sf: FakeSalesforce, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    """core/store/outbox.py:270 (RetryPolicy max_attempts=10, base 5 s, cap 30 min) — an
    Unavailable write-back is retried after 5, 10, 20… s: the tenth attempt comes ~20-45 min
    after the first, so a CRM maintenance window of an hour kills every pending write-back for
    good (no tool re-drives dead rows, and no later sync re-queues an unchanged lead)."""
    seed_salesforce_people(sf, example_policy)
    lead = sf.create("Lead", sf_lead())
    port = salesforce_connector(sf, example_policy, retry=fast_retry(attempts=1))
    sync_crm(db, port, engine, clock=clock)
    handler = CrmWriteback(db, engine, {"salesforce": port}, clock)
    sf.inject(r"/composite/sobjects", 503, times=1000, body=[{"errorCode": "SERVER_UNAVAILABLE",
                                                              "message": "maintenance"}])  # fmt: skip
    for _ in range(60):  # the outbox worker polls; one hour of maintenance
        outbox.drain(db, [handler], "w", clock)
        clock.advance(minutes=1)
    sf._faults.clear()  # Salesforce is back
    clock.advance(minutes=30)  # the outbox backoff's cap: the row's next try is at most this far off
    outbox.drain(db, [handler], "w", clock)

    with db.transaction() as s:
        row = s.execute(select(OutboxRow).where(OutboxRow.kind == "crm.writeback")).scalar_one()
    assert row.status != "dead", f"dead after {row.attempts} attempts: {row.last_error}"
    assert sf.get("Lead", lead)["Loopgate_Score__c"] is not None


def test_given_a_sync_page_read_before_loopgates_owner_write_when_stored_after_it_then_the_write_is_still_loopgates(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    """A sync reads a page (its read-ahead thread, a slow page) before the write-back gives the
    contact its owner and stores it after: the owner it read (none) is older than loopgate's
    write, not a person replacing it. Forgotten, loopgate's own write was later taken for a
    person's change: a conflict, and the lead handed back to the rep a re-route took it from."""
    people = seed_hubspot_people(hs, example_policy)
    contact = hs.create("contacts", hs_contact())
    port = hubspot_connector(hs, example_policy, clock=clock)
    sync_crm(db, port, engine, clock=clock)  # decision 1: ana, write-back queued
    clock.advance(minutes=1)
    stale = [p for p in port.read("contacts", None) if p.leads]  # read now: no owner yet
    handler = CrmWriteback(db, engine, {"hubspot": port}, clock)
    outbox.drain(db, [handler], "w", clock)  # the owner is written
    owner = hs.get("contacts", contact)["hubspot_owner_id"]
    assert owner in people.values()
    with db.transaction() as s:
        for page in stale:
            apply_page(s, "hubspot", page, now=clock())
    with db.transaction() as s:
        lead = s.execute(select(Lead).where(Lead.crm_id == contact)).scalar_one()
        assert s.get(WritebackState, lead.pk).owner_written == owner, "loopgate's own write was forgotten"
        # before the next sync, an SLA re-route takes the lead away from ana
        decide_leads(s, engine, [DecideRequest(lead, "reroute", "test:reroute", frozenset({"ana"}))], now=clock())
    clock.advance(minutes=1)
    outbox.drain(db, [handler], "w", clock)
    with db.transaction() as s:
        conflicts = s.execute(select(CrmConflict)).scalars().all()
        causes = s.execute(select(Decision.cause).order_by(Decision.pk)).scalars().all()
    assert not conflicts and causes == ["new", "reroute"], (conflicts, causes)
    assert hs.get("contacts", contact)["hubspot_owner_id"] != owner  # the re-route's owner was written
