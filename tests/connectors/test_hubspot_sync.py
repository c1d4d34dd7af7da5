"""HubSpot sync against the fake portal: the 10,000-results cap, records sharing a millisecond,
records moving mid-sync, merges and deletions, deals and a killed sync resumed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from connectors.sync import sync_crm
from core.engine import DecisionEngine
from core.policy import LoadedPolicy
from core.store.db import Database
from core.store.models import Account, Deal, Decision, Lead
from loopgate.sandbox.hubspot import FakeHubSpot
from tests.connectors.builders import hs_contact, hubspot_connector, seed_hubspot_people
from tests.connectors.conftest import Clock


def _leads(db: Database) -> dict[str, Lead]:
    with db.transaction() as s:
        return {lead.crm_id: lead for lead in s.execute(select(Lead).where(Lead.source == "hubspot")).scalars()}


def _decisions_per_lead(db: Database) -> dict[str, int]:
    with db.transaction() as s:
        return dict(s.execute(select(Decision.lead_id, func.count()).group_by(Decision.lead_id)).all())


def test_given_more_contacts_than_one_search_may_return_when_synced_then_all_are_stored_once(
    db: Database, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    # the cap scaled down: 30 results per query, 7 per page, 80 contacts
    with FakeHubSpot(search_total_cap=30, clock=clock) as hs:
        ids = [hs.create("contacts", hs_contact(), modified=clock.advance(seconds=1)) for _ in range(80)]
        port = hubspot_connector(hs, example_policy, page_size=7)

        report = sync_crm(db, port, engine, clock=clock)

        assert sorted(_leads(db)) == sorted(ids)
        assert _decisions_per_lead(db) == dict.fromkeys(ids, 1)
        assert report.streams["contacts"].pages == 12  # ⌈80 / 7⌉: windows never re-read a record
        assert all(c.status == 200 for c in hs.calls("/search"))


def test_given_contacts_sharing_one_millisecond_across_pages_when_synced_then_none_is_lost_or_doubled(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    at = clock.now
    ids = [hs.create("contacts", hs_contact(), modified=at + timedelta(milliseconds=i // 9)) for i in range(40)]
    port = hubspot_connector(hs, example_policy, page_size=4)

    report = sync_crm(db, port, engine, clock=clock)

    assert sorted(_leads(db)) == sorted(ids)
    assert report.streams["contacts"].records == 40 and report.decided == 40


def test_given_more_contacts_in_one_millisecond_than_a_window_can_exclude_when_synced_then_they_are_walked_by_id(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    at = clock.now
    ids = [hs.create("contacts", hs_contact(), modified=at) for _ in range(130)]  # an import: one stamp
    later = hs.create("contacts", hs_contact(), modified=at + timedelta(seconds=1))
    port = hubspot_connector(hs, example_policy, page_size=60)

    sync_crm(db, port, engine, clock=clock)

    assert sorted(_leads(db)) == sorted([*ids, later])
    assert _decisions_per_lead(db) == dict.fromkeys([*ids, later], 1)
    assert any('"hs_object_id", "direction"' in c.body.decode() for c in hs.calls("/search"))


def test_given_contacts_modified_while_the_sync_pages_when_synced_then_no_neighbour_is_skipped(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    ids = [hs.create("contacts", hs_contact(), modified=clock.advance(seconds=1)) for _ in range(20)]
    port = hubspot_connector(hs, example_policy, page_size=5)

    def move_a_read_record(search: int) -> None:
        if search == 3:  # offset paging would now skip a record; keyset windows must not
            hs.update("contacts", ids[1], jobtitle="Chief Executive Officer", modified=clock.advance(seconds=60))

    hs.before_search = move_a_read_record
    sync_crm(db, port, engine, clock=clock)

    leads = _leads(db)
    assert sorted(leads) == sorted(ids)
    assert leads[ids[1]].title == "Chief Executive Officer"


def test_given_merged_and_deleted_records_when_synced_then_they_are_marked(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    winner, loser, gone = (hs.create("contacts", hs_contact()) for _ in range(3))
    company = hs.create("companies", name="Gone Inc", domain="gone.com")
    port = hubspot_connector(hs, example_policy, clock=clock)
    sync_crm(db, port, engine, clock=clock)
    clock.advance(hours=2)  # archived records are listed at most hourly
    hs.merge("contacts", winner, loser)
    hs.archive("contacts", gone)
    hs.archive("companies", company)

    sync_crm(db, port, engine, clock=clock)

    leads = _leads(db)
    assert leads[loser].is_deleted and leads[loser].merged_into == winner
    assert leads[gone].is_deleted and not leads[winner].is_deleted
    with db.transaction() as s:
        assert s.execute(select(Account.is_deleted).where(Account.crm_id == company)).scalar_one()


def test_given_a_recent_archive_scan_when_synced_again_then_archived_lists_are_not_read(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    port = hubspot_connector(hs, example_policy, clock=clock)
    sync_crm(db, port, engine, clock=clock)
    hs.reset_log()
    clock.advance(minutes=10)

    sync_crm(db, port, engine, clock=clock)

    assert hs.calls(r"/crm/v3/objects/(contacts|companies)$") == []


def test_given_deals_won_and_lost_when_synced_then_contacts_carry_the_outcome(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    buyer = hs.create("contacts", hs_contact(lifecyclestage="customer",
                                             hs_lifecyclestage_customer_date="2026-11-18T10:00:00.000Z"))  # fmt: skip
    loser = hs.create("contacts", hs_contact())
    won = hs.create("deals", dealname="Won", hs_is_closed="true", hs_is_closed_won="true", amount="1200.5",
                    closedate="2026-11-18T10:00:00.000Z")  # fmt: skip
    lost = hs.create("deals", dealname="Lost", hs_is_closed="true", hs_is_closed_won="false",
                     closedate="2026-11-10T10:00:00.000Z")  # fmt: skip
    hs.associate(won, buyer)
    hs.associate(lost, loser)
    port = hubspot_connector(hs, example_policy, clock=clock)

    sync_crm(db, port, engine, clock=clock)

    leads = _leads(db)
    assert leads[buyer].converted and leads[buyer].outcome == "won" and leads[buyer].outcome_amount == 1200.5
    assert leads[loser].outcome == "lost" and not leads[loser].converted


def test_given_a_won_deal_deleted_in_hubspot_when_synced_then_it_no_longer_counts_as_the_contacts_outcome(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    buyer = hs.create("contacts", hs_contact())
    won = hs.create("deals", dealname="Won", hs_is_closed="true", hs_is_closed_won="true", amount="900",
                    closedate="2026-11-18T10:00:00.000Z")  # fmt: skip
    hs.associate(won, buyer)
    port = hubspot_connector(hs, example_policy, clock=clock)
    sync_crm(db, port, engine, clock=clock)
    assert _leads(db)[buyer].outcome == "won"
    clock.advance(hours=2)  # archived records are listed at most hourly
    hs.archive("deals", won)

    sync_crm(db, port, engine, clock=clock)

    lead = _leads(db)[buyer]
    assert (lead.outcome, lead.outcome_at, lead.outcome_amount) == (None, None, None)
    with db.transaction() as s:
        assert s.execute(select(Deal.is_deleted).where(Deal.crm_id == won)).scalar_one()


def test_given_a_sync_killed_after_storing_a_page_when_run_again_then_nothing_is_lost_or_decided_twice(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    seed_hubspot_people(hs, example_policy)
    ids = [hs.create("contacts", hs_contact(hubspot_owner_id="101"), modified=clock.advance(seconds=1))
           for _ in range(15)]  # fmt: skip
    port = hubspot_connector(hs, example_policy, page_size=4, clock=clock)

    class Killed(Exception):
        pass

    def kill(stream: str, _count: int) -> None:
        if stream == "contacts" and len(_leads(db)) == 8:
            raise Killed

    with pytest.raises(Killed):
        sync_crm(db, port, engine, clock=clock, progress=kill)
    sync_crm(db, port, engine, clock=clock)

    assert sorted(_leads(db)) == sorted(ids)
    assert _decisions_per_lead(db) == dict.fromkeys(ids, 1)


def test_given_a_contact_that_became_searchable_only_after_the_last_sync_when_synced_again_then_it_is_found(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    seed_hubspot_people(hs, example_policy)
    early = [hs.create("contacts", hs_contact(), modified=clock.advance(seconds=1)) for _ in range(5)]
    port = hubspot_connector(hs, example_policy, clock=clock)
    sync_crm(db, port, engine, clock=clock)
    # search lag: modified 10 s before the stored cursor, searchable only now
    late = hs.create("contacts", hs_contact(), modified=clock.now - timedelta(seconds=10))

    report = sync_crm(db, port, engine, clock=clock)

    assert sorted(_leads(db)) == sorted([*early, late])
    assert _decisions_per_lead(db) == dict.fromkeys([*early, late], 1)  # the look-back decides nothing again
    assert report.decided == 1


def test_given_a_contact_of_a_company_when_synced_then_it_is_linked_to_it(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    company = hs.create("companies", name="Initech", domain="initech.com", numberofemployees="900",
                        loopgate_strategic="true", loopgate_tier="tier1", hubspot_owner_id="104")  # fmt: skip
    contact = hs.create("contacts", hs_contact(associatedcompanyid=company, email="peter@initech.com"))

    sync_crm(db, hubspot_connector(hs, example_policy, clock=clock), engine, clock=clock)

    lead = _leads(db)[contact]
    with db.transaction() as s:
        account = s.get(Account, lead.account_pk)
    assert account is not None and account.crm_id == company and account.strategic and account.tier == "tier1"


def test_given_a_search_answer_with_numbers_and_booleans_when_read_then_they_are_text_as_the_client_would_give(
    hs: FakeHubSpot, clock: Clock, example_policy: LoadedPolicy
) -> None:
    contact = hs.create("contacts", hs_contact(numemployees="1200", annualrevenue="2500000.5", hs_lead_status="True"))
    port = hubspot_connector(hs, example_policy, clock=clock)
    as_text = [r.raw for page in port.read("contacts", None) for r in page.leads]

    # the search answers below carry JSON numbers and booleans (HubSpot sends text)
    hs.objects["contacts"][contact]["properties"].update(
        numemployees=1200, annualrevenue=2500000.5, hs_lead_status=True
    )
    as_json = [r.raw for page in port.read("contacts", None) for r in page.leads]

    assert as_json == as_text and len(as_text) == 1


def test_given_pages_smaller_than_a_decide_batch_when_synced_then_leads_are_decided_in_full_batches_then_the_rest(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    ids = [hs.create("contacts", hs_contact(), modified=clock.advance(seconds=1)) for _ in range(23)]
    decided_when_read: list[int] = []

    def progress(stream: str, _records: int) -> None:
        if stream == "contacts":
            decided_when_read.append(sum(_decisions_per_lead(db).values()))

    port = hubspot_connector(hs, example_policy, page_size=7, clock=clock)
    report = sync_crm(db, port, engine, clock=clock, decide_batch=10, progress=progress, read_ahead=False)

    # progress is told of a page after it is stored, before what it completes is decided
    assert decided_when_read == [0, 0, 10, 20]
    assert _decisions_per_lead(db) == dict.fromkeys(ids, 1) and report.decided == 23


def test_given_contacts_with_hubspot_activity_dates_when_synced_then_they_are_intent_events_the_policy_scores(
    db: Database, clock: Clock, example_policy: LoadedPolicy
) -> None:
    from core.policy import parse_policy
    from loopgate.sandbox.hubspot import hubspot_time

    text = example_policy.text.replace("email_click: 2}", "email_click: 2, form_submission: 20, web_visit: 3}")
    assert text != example_policy.text
    policy = parse_policy(text)
    an_hour_ago = hubspot_time(clock() - timedelta(hours=1))
    with FakeHubSpot(clock=clock) as hs:
        seed_hubspot_people(hs, policy)
        active = hs.create("contacts", hs_contact(recent_conversion_date=an_hour_ago,
                                                  recent_conversion_event_name="Demo request form",
                                                  hs_analytics_last_visit_timestamp=an_hour_ago,
                                                  hs_email_last_open_date=an_hour_ago))  # fmt: skip
        quiet = hs.create("contacts", hs_contact())
        sync_crm(db, hubspot_connector(hs, policy), DecisionEngine(policy), clock=clock)

    leads = _leads(db)
    assert sorted(e["type"] for e in leads[active].data["events"]) == ["email_open", "form_submission", "web_visit"]
    assert leads[quiet].data["events"] == []
    with db.transaction() as s:
        contracts = dict(s.execute(select(Decision.lead_id, Decision.contract)).all())
    intent = {lead: contract["score"]["intent"] for lead, contract in contracts.items()}
    assert intent[active] == 23 and intent[quiet] == 0  # 20 + 3, each an hour old; opens score nothing here


@pytest.mark.parametrize("stage", ["opportunity", "customer", "evangelist"])
def test_given_a_contact_past_the_lead_stages_when_synced_then_it_is_stored_converted_and_not_decided(
    db: Database, hs: FakeHubSpot, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock, stage: str
) -> None:
    seed_hubspot_people(hs, example_policy)
    customer = hs.create("contacts", hs_contact(lifecyclestage=stage))
    fresh = hs.create("contacts", hs_contact())
    port = hubspot_connector(hs, example_policy, clock=clock)

    report = sync_crm(db, port, engine, clock=clock)

    assert _leads(db)[customer].converted
    assert _decisions_per_lead(db) == {fresh: 1} and report.decided == 1


def test_given_hubspot_dates_as_epoch_milliseconds_when_synced_then_they_are_read_as_such_not_as_compact_iso(
    db: Database, hs: FakeHubSpot, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    millis = "1788050942014"  # 2026-08-30T00:49:02.014Z; datetime.fromisoformat reads 1788-05-09 20:14
    contact = hs.create("contacts", hs_contact(hs_sa_first_engagement_date=millis, recent_conversion_date=millis))

    sync_crm(db, hubspot_connector(hs, example_policy, clock=clock), engine, clock=clock)

    lead = _leads(db)[contact]
    assert lead.first_touch_at is not None and lead.first_touch_at.isoformat() == "2026-08-30T00:49:02.014000+00:00"
    assert [e["at"] for e in lead.data["events"]] == ["2026-08-30T00:49:02.014000+00:00"]
