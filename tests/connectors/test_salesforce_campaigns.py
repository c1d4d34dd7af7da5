"""Salesforce campaign responses as intent events, against the fake org: a CampaignMember is
added without touching its Lead, so it arrives by a stream of its own and still re-decides the
lead — across shared timestamps, mid-sync additions, deletions and a killed sync, with an
unchanged second run writing nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import pytest
from sqlalchemy import event, func, select

from connectors.sync import sync_crm
from core.engine import DecisionEngine
from core.leads import content_hash
from core.policy import LoadedPolicy
from core.store.db import Database
from core.store.models import Decision, Lead, LeadEvent, SyncCursor
from core.store.records import lead_value
from loopgate.sandbox.salesforce import FakeSalesforce
from tests.connectors.builders import salesforce_connector, seed_salesforce_people, sf_lead
from tests.connectors.conftest import Clock

# a VP at a mid-market software company: a strong fit, so without intent the example policy
# sees conflicting signals; a webinar response is intent it weighs (scoring.intent.events)
HIGH_FIT = {"Title": "VP Engineering"}


def _lead(db: Database, crm_id: str) -> Lead:
    with db.transaction() as s:
        return s.execute(select(Lead).where(Lead.crm_id == crm_id)).scalar_one()


def _events(db: Database) -> dict[str, list[tuple[str, str]]]:
    """Stored events per lead: (type, day), in the order the engine sees them."""
    out: dict[str, list[tuple[str, str]]] = {}
    with db.transaction() as s:
        for lead in s.execute(select(Lead).where(Lead.source == "salesforce")).scalars():
            events = lead_value(lead).events
            if events:
                out[lead.crm_id] = [(e.type, e.at.date().isoformat()) for e in events]
    return out


def _latest(db: Database, crm_id: str) -> dict[str, Any]:
    """The latest decision's contract for a lead."""
    with db.transaction() as s:
        return dict(
            s.execute(
                select(Decision.contract).where(Decision.lead_id == crm_id).order_by(Decision.seq.desc()).limit(1)
            ).scalar_one()
        )


def _decisions(db: Database) -> dict[str, int]:
    with db.transaction() as s:
        return dict(s.execute(select(Decision.lead_id, func.count()).group_by(Decision.lead_id)).all())


def _member_rows(db: Database) -> int:
    with db.transaction() as s:
        return int(s.execute(select(func.count()).select_from(LeadEvent)).scalar_one())


@contextmanager
def _row_writes(db: Database, tables: tuple[str, ...] = ("leads", "lead_events")) -> Iterator[list[str]]:
    """Statements that changed rows of ``tables`` while the block ran."""
    writes: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        head = statement.lstrip()[:80].upper()
        dml = head.startswith(("INSERT", "UPDATE", "DELETE")) and any(t.upper() in head for t in tables)
        if dml and cursor.rowcount and cursor.rowcount > 0:
            writes.append(statement.split("\n", 1)[0])

    event.listen(db.engine, "after_cursor_execute", count)
    try:
        yield writes
    finally:
        event.remove(db.engine, "after_cursor_execute", count)


def test_given_a_campaign_response_added_after_the_lead_synced_when_synced_then_the_lead_is_decided_with_its_intent(
    db: Database, sf: FakeSalesforce, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    seed_salesforce_people(sf, example_policy)
    lead = sf.create("Lead", sf_lead(**HIGH_FIT))
    port = salesforce_connector(sf, example_policy)
    sync_crm(db, port, engine, clock=clock)
    before = _latest(db, lead)
    stamp = sf.get("Lead", lead)["SystemModstamp"]
    clock.advance(hours=1)
    webinar = sf.add_campaign("November webinar", "Webinar")
    sf.add_member(webinar, lead_id=lead, responded_on=date(2026, 11, 20))
    sf.add_member(sf.add_campaign("Newsletter", "Email"), lead_id=lead, responded=False)  # sent, not a response

    report = sync_crm(db, port, engine, clock=clock)

    assert sf.get("Lead", lead)["SystemModstamp"] == stamp  # the Lead itself never changed
    assert report.streams["campaign_members"].records == 2 and report.decided == 1
    assert _events(db) == {lead: [("webinar", "2026-11-20")]}
    after = _latest(db, lead)
    assert before["score"]["intent"] == 0 and after["score"]["intent"] > 0
    assert after["score"]["total"] > before["score"]["total"]
    assert "conflicting_signals" in [t["code"] for t in before["triggers"]]
    assert "conflicting_signals" not in [t["code"] for t in after["triggers"]]


def test_given_responses_of_every_kind_when_synced_then_types_are_snake_case_and_dated_by_first_response(
    db: Database, sf: FakeSalesforce, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    lead = sf.create("Lead", sf_lead())
    contact = sf.create("Contact", LastName="Buyer", Email="buyer@globex.com")
    show, untyped = sf.add_campaign("Expo", "Trade Show"), sf.add_campaign("Misc")
    sf.add_member(show, lead_id=lead, responded_on=date(2026, 11, 3))
    sf.add_member(untyped, contact_id=contact, FirstRespondedDate=None)  # no date: when it became a member
    converted = sf.add_campaign("Summit", "Conference")
    sf.add_member(converted, lead_id=lead, contact_id=contact, responded_on=date(2026, 11, 10))

    sync_crm(db, salesforce_connector(sf, example_policy), engine, clock=clock)

    assert _events(db) == {
        lead: [("trade_show", "2026-11-03"), ("conference", "2026-11-10")],
        contact: [("conference", "2026-11-10"), ("campaign", clock().date().isoformat())],
    }
    row = _lead(db, lead)
    assert content_hash(lead_value(row)) == row.content_hash  # write-back's re-hash agrees with the store's


def test_given_members_sharing_one_timestamp_across_pages_when_synced_then_each_event_is_stored_once(
    db: Database, sf: FakeSalesforce, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    leads = [sf.create("Lead", sf_lead()) for _ in range(4)]
    webinar = sf.add_campaign("Webinar", "Webinar")
    clock.advance(minutes=1)
    # 13 members in one second: pages of 5 split the tie twice
    members = [sf.add_member(webinar, lead_id=leads[i % 4], responded_on=date(2026, 11, 1 + i)) for i in range(13)]
    port = salesforce_connector(sf, example_policy)

    report = sync_crm(db, port, engine, clock=clock)

    assert report.streams["campaign_members"].pages == 3 and report.events == 13
    assert _member_rows(db) == 13
    assert {lead: len(events) for lead, events in _events(db).items()} == {leads[0]: 4, leads[1]: 3, leads[2]: 3,
                                                                          leads[3]: 3}  # fmt: skip
    with db.transaction() as s:
        cursor = s.get(SyncCursor, ("salesforce", "campaign_members"))
    assert cursor is not None and cursor.cursor_id == max(members)
    assert _decisions(db) == dict.fromkeys(leads, 1)  # responses are read first: each lead decided once, with them


def test_given_a_member_added_while_the_sync_pages_when_synced_then_its_event_arrives_and_none_is_lost(
    db: Database, sf: FakeSalesforce, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    leads = [sf.create("Lead", sf_lead(**HIGH_FIT)) for _ in range(12)]
    webinar = sf.add_campaign("Webinar", "Webinar")
    for lead in leads[:11]:
        sf.add_member(webinar, lead_id=lead)
    port = salesforce_connector(sf, example_policy)
    sync_crm(db, port, engine, clock=clock)
    clock.advance(minutes=5)
    for lead in leads[:11]:
        sf.touch("CampaignMember", _member_of(sf, lead))  # a system update: 11 members to page through

    added: list[str] = []

    def add_mid_sync(page: int) -> None:
        if page == 2 and not added:  # the first page of members is stored; a response comes in
            clock.advance(seconds=30)
            added.append(sf.add_member(sf.add_campaign("Summit", "Conference"), lead_id=leads[11]))

    sf.before_query_page = add_mid_sync
    sync_crm(db, port, engine, clock=clock)
    sf.before_query_page = None
    report = sync_crm(db, port, engine, clock=clock)

    events = _events(db)
    assert sorted(events) == sorted(leads)
    assert events[leads[11]] == [("conference", clock().date().isoformat())]
    assert all(len(events[lead]) == 1 for lead in leads)
    assert _decisions(db)[leads[11]] == 2 and report.decided == 1


def _member_of(sf: FakeSalesforce, lead: str) -> str:
    return next(m["Id"] for m in sf.records["CampaignMember"].values() if m["LeadId"] == lead)


def test_given_a_deleted_or_unresponded_member_when_synced_then_its_event_is_removed_and_the_lead_redecided(
    db: Database, sf: FakeSalesforce, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    gone, unresponded, kept = (sf.create("Lead", sf_lead(**HIGH_FIT)) for _ in range(3))
    webinar = sf.add_campaign("Webinar", "Webinar")
    deleted = sf.add_member(webinar, lead_id=gone)
    undone = sf.add_member(webinar, lead_id=unresponded)
    sf.add_member(webinar, lead_id=kept)
    port = salesforce_connector(sf, example_policy)
    sync_crm(db, port, engine, clock=clock)
    assert _latest(db, gone)["score"]["intent"] > 0
    clock.advance(minutes=1)
    sf.delete("CampaignMember", deleted)
    sf.update("CampaignMember", undone, Status="Sent", HasResponded=False, FirstRespondedDate=None)

    report = sync_crm(db, port, engine, clock=clock)

    assert report.tombstones == 1 and report.decided == 2
    assert set(_events(db)) == {kept}
    assert _latest(db, gone)["score"]["intent"] == 0 and _latest(db, unresponded)["score"]["intent"] == 0
    assert _decisions(db) == {gone: 2, unresponded: 2, kept: 1}


def test_given_a_sync_killed_after_storing_a_page_of_members_when_run_again_then_no_event_is_lost_or_doubled(
    db: Database, sf: FakeSalesforce, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    leads = [sf.create("Lead", sf_lead(**HIGH_FIT)) for _ in range(12)]
    port = salesforce_connector(sf, example_policy)
    sync_crm(db, port, engine, clock=clock)
    clock.advance(hours=1)
    webinar = sf.add_campaign("Webinar", "Webinar")
    for lead in leads:
        sf.add_member(webinar, lead_id=lead)

    class Killed(Exception):
        pass

    def kill_after_second_page(stream: str, _count: int) -> None:
        # runs after a page and its cursor are committed, before its leads are decided
        if stream == "campaign_members" and _member_rows(db) == 10:
            raise Killed

    with pytest.raises(Killed):
        sync_crm(db, port, engine, clock=clock, progress=kill_after_second_page, decide_batch=5)
    assert _member_rows(db) == 10 and sum(_decisions(db).values()) == 12 + 5

    report = sync_crm(db, port, engine, clock=clock)

    assert _member_rows(db) == 12
    assert all(len(events) == 1 for events in _events(db).values()) and len(_events(db)) == 12
    assert _decisions(db) == dict.fromkeys(leads, 2)  # once without the response, once with it
    assert report.decided == 7


def test_given_a_synced_org_with_responses_when_synced_again_unchanged_then_nothing_is_written_or_decided(
    db: Database, sf: FakeSalesforce, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    seed_salesforce_people(sf, example_policy)
    leads = [sf.create("Lead", sf_lead(**HIGH_FIT)) for _ in range(6)]
    webinar, show = sf.add_campaign("Webinar", "Webinar"), sf.add_campaign("Expo", "Trade Show")
    for i, lead in enumerate(leads):
        sf.add_member(webinar if i % 2 else show, lead_id=lead)
    port = salesforce_connector(sf, example_policy)
    sync_crm(db, port, engine, clock=clock)
    clock.advance(seconds=5)  # within the look-back: the members are read again

    with _row_writes(db) as incremental:
        again = sync_crm(db, port, engine, clock=clock)
    with _row_writes(db) as full:
        resync = sync_crm(db, port, engine, clock=clock, full=True)

    assert again.streams["campaign_members"].records == 6 and resync.streams["campaign_members"].records == 6
    assert incremental == [] and full == []
    assert again.decided == 0 and resync.decided == 0
    assert _decisions(db) == dict.fromkeys(leads, 1)
    clock.advance(minutes=1)
    sf.update("CampaignMember", _member_of(sf, leads[0]), FirstRespondedDate=date(2026, 11, 2))
    with _row_writes(db) as changed:
        sync_crm(db, port, engine, clock=clock)
    assert changed  # the count sees writes when there are some


def test_given_an_org_where_the_user_cannot_read_campaign_members_when_synced_then_leads_still_sync(
    db: Database, sf: FakeSalesforce, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    lead = sf.create("Lead", sf_lead())
    sf.add_member(sf.add_campaign("Webinar", "Webinar"), lead_id=lead)
    sf.hidden_objects.add("CampaignMember")

    report = sync_crm(db, salesforce_connector(sf, example_policy), engine, clock=clock)

    assert report.streams["campaign_members"].records == 0 and report.decided == 1
    assert _events(db) == {}
    with db.transaction() as s:
        assert s.get(SyncCursor, ("salesforce", "campaign_members")) is None
