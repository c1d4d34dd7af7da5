"""Salesforce sync against the fake org: cursors, ties, changes mid-sync, deletions, merges,
outcomes, owners, and a killed sync resumed — nothing lost, nothing doubled."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from connectors.errors import BadRequest, Unavailable
from connectors.sync import sync_crm
from core.engine import DecisionEngine
from core.policy import LoadedPolicy
from core.store.db import Database
from core.store.models import Account, Decision, Lead, OutboxRow, Owner, SyncCursor
from loopgate.sandbox.salesforce import FakeSalesforce
from tests.connectors.builders import salesforce_connector, seed_salesforce_people, sf_lead
from tests.connectors.conftest import Clock


def _leads(db: Database) -> dict[str, Lead]:
    with db.transaction() as s:
        return {lead.crm_id: lead for lead in s.execute(select(Lead).where(Lead.source == "salesforce")).scalars()}


def _lead_cursor_id(db: Database) -> str | None:
    with db.transaction() as s:
        cursor = s.get(SyncCursor, ("salesforce", "leads"))
    return cursor.cursor_id if cursor is not None else None


def _decisions_per_lead(db: Database) -> dict[str, int]:
    with db.transaction() as s:
        rows = s.execute(select(Decision.lead_id, func.count()).group_by(Decision.lead_id)).all()
    return dict(rows)


def test_given_records_sharing_one_timestamp_across_pages_when_synced_then_each_is_stored_and_decided_once(
    db: Database, sf: FakeSalesforce, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    seed_salesforce_people(sf, example_policy)
    # 13 leads in one second: pages of 5 split the tie twice
    ids = [sf.create("Lead", sf_lead()) for _ in range(13)]
    port = salesforce_connector(sf, example_policy)

    report = sync_crm(db, port, engine, clock=clock)

    assert sorted(_leads(db)) == sorted(ids)
    assert _decisions_per_lead(db) == dict.fromkeys(ids, 1)
    assert report.streams["leads"].pages == 3 and report.decided == 13
    assert _lead_cursor_id(db) == max(ids)


def test_given_a_synced_org_when_synced_again_then_only_changed_records_are_read_and_decided(
    db: Database, sf: FakeSalesforce, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    ids = [sf.create("Lead", sf_lead()) for _ in range(5)]
    clock.advance(minutes=1)
    ids.append(sf.create("Lead", sf_lead()))  # the newest: the cursor ends on its stamp
    port = salesforce_connector(sf, example_policy)
    sync_crm(db, port, engine, clock=clock)
    clock.advance(minutes=5)
    sf.update("Lead", ids[2], Title="Chief Technology Officer")
    sf.touch("Lead", ids[4])  # a system update: new stamp, same content

    report = sync_crm(db, port, engine, clock=clock)

    # the two changed, and the one stamped within the lookback before the cursor, read again
    assert report.streams["leads"].records == 3
    assert report.decided == 1
    assert _decisions_per_lead(db)[ids[2]] == 2 and _decisions_per_lead(db)[ids[4]] == 1
    assert _leads(db)[ids[2]].title == "Chief Technology Officer"


def test_given_records_changing_while_the_sync_pages_when_synced_then_the_latest_values_win_and_none_is_lost(
    db: Database, sf: FakeSalesforce, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    ids = [sf.create("Lead", sf_lead()) for _ in range(12)]
    port = salesforce_connector(sf, example_policy)

    def edit_mid_sync(page: int) -> None:
        if page == 2:  # the first page is stored; change a record already read and one not yet read
            clock.advance(seconds=30)
            sf.update("Lead", ids[0], Title="Head of Platform")
            sf.update("Lead", ids[11], Title="Director of IT")

    sf.before_query_page = edit_mid_sync
    sync_crm(db, port, engine, clock=clock)
    sf.before_query_page = None
    sync_crm(db, port, engine, clock=clock)

    leads = _leads(db)
    assert sorted(leads) == sorted(ids)
    assert leads[ids[0]].title == "Head of Platform"
    assert leads[ids[11]].title == "Director of IT"


def test_given_deleted_and_merged_records_when_synced_then_they_are_marked_and_not_decided_again(
    db: Database, sf: FakeSalesforce, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    winner, loser, gone, kept = (sf.create("Lead", sf_lead()) for _ in range(4))
    port = salesforce_connector(sf, example_policy)
    sync_crm(db, port, engine, clock=clock)
    clock.advance(minutes=1)
    sf.merge("Lead", winner, loser)
    sf.delete("Lead", gone)

    report = sync_crm(db, port, engine, clock=clock)

    leads = _leads(db)
    assert leads[loser].is_deleted and leads[loser].merged_into == winner
    assert leads[gone].is_deleted and leads[gone].merged_into is None
    assert not leads[winner].is_deleted and not leads[kept].is_deleted
    assert report.tombstones == 2 and report.decided == 0


def test_given_a_converted_lead_and_a_won_opportunity_when_synced_then_the_outcome_is_stored(
    db: Database, sf: FakeSalesforce, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    contact = sf.create("Contact", LastName="Buyer", Email="buyer@won.com")
    lost_contact = sf.create("Contact", LastName="Other", Email="other@lost.com")
    opp = sf.create("Opportunity", Name="Big deal", StageName="Closed Won", IsClosed=True, IsWon=True,
                    Amount=48000, CloseDate="2026-11-18", ContactId=contact)  # fmt: skip
    sf.create("Opportunity", Name="Nope", StageName="Closed Lost", IsClosed=True, IsWon=False, CloseDate="2026-11-10",
              ContactId=lost_contact)  # fmt: skip
    lead = sf.create("Lead", sf_lead(IsConverted=True, ConvertedDate="2026-11-02", ConvertedOpportunityId=opp))
    port = salesforce_connector(sf, example_policy)

    sync_crm(db, port, engine, clock=clock)

    leads = _leads(db)
    assert leads[lead].converted and leads[lead].outcome == "won" and leads[lead].outcome_amount == 48000
    assert leads[contact].outcome == "won" and leads[contact].outcome_at is not None
    assert leads[contact].outcome_at.date().isoformat() == "2026-11-18"
    assert leads[lost_contact].outcome == "lost"


def test_given_an_org_with_historical_converted_leads_when_first_synced_then_they_are_stored_but_handed_to_nobody(
    db: Database, sf: FakeSalesforce, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    seed_salesforce_people(sf, example_policy)
    converted = [sf.create("Lead", sf_lead(IsConverted=True, Status="Closed - Converted")) for _ in range(6)]
    fresh = sf.create("Lead", sf_lead())
    port = salesforce_connector(sf, example_policy)

    report = sync_crm(db, port, engine, clock=clock)

    leads = _leads(db)
    assert all(leads[c].converted for c in converted)  # kept: they are outcomes to learn from
    assert _decisions_per_lead(db) == {fresh: 1}  # routed, counted against capacity, DMed: only the new one
    assert report.decided == 1
    with db.sessions() as s:
        effects = s.execute(select(OutboxRow.dedupe_key)).scalars().all()
    assert effects and all(key.endswith(f":{_decision_pk(db, fresh)}") for key in effects)


def _decision_pk(db: Database, crm_id: str) -> int:
    with db.sessions() as s:
        return s.execute(select(Decision.pk).where(Decision.lead_id == crm_id)).scalar_one()


def test_given_owners_outside_the_policy_when_synced_then_they_are_reported_by_name_not_guessed(
    db: Database, sf: FakeSalesforce, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    people = seed_salesforce_people(sf, example_policy)
    stranger = sf.add_user("Pat Stranger")
    sf.create("Lead", sf_lead(OwnerId=stranger))
    sf.create("Lead", sf_lead(OwnerId=stranger))
    sf.create("Lead", sf_lead(OwnerId=people["ana"]))
    sf.create("Lead", sf_lead(OwnerId=people["nurture"]))
    port = salesforce_connector(sf, example_policy)

    report = sync_crm(db, port, engine, clock=clock)

    assert report.unknown_owners == {stranger: ("Pat Stranger", 2)}
    with db.transaction() as s:
        kinds = dict(s.execute(select(Owner.crm_id, Owner.kind)).all())
    assert kinds[people["nurture"]] == "queue" and kinds[stranger] == "user"


def test_given_a_sync_killed_after_storing_a_page_when_run_again_then_nothing_is_lost_or_decided_twice(
    db: Database, sf: FakeSalesforce, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    ids = [sf.create("Lead", sf_lead()) for _ in range(12)]
    port = salesforce_connector(sf, example_policy)

    class Killed(Exception):
        pass

    def kill_after_second_page(stream: str, _count: int) -> None:
        # runs after a page and its cursor are committed, before its leads are decided
        if stream == "leads" and len(_leads(db)) == 10:
            raise Killed

    with pytest.raises(Killed):
        # a decide batch of one page (5): the first page is decided before the kill, the second not
        sync_crm(db, port, engine, clock=clock, progress=kill_after_second_page, decide_batch=5)
    assert len(_leads(db)) == 10 and sum(_decisions_per_lead(db).values()) == 5

    sync_crm(db, port, engine, clock=clock)

    assert sorted(_leads(db)) == sorted(ids)
    assert _decisions_per_lead(db) == dict.fromkeys(ids, 1)


def test_given_the_api_failing_mid_sync_when_retried_later_then_it_resumes_from_the_last_page(
    db: Database, sf: FakeSalesforce, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    ids = [sf.create("Lead", sf_lead()) for _ in range(12)]
    port = salesforce_connector(sf, example_policy)
    down = [{"errorCode": "SERVER_UNAVAILABLE", "message": "down"}]
    # from the third page on, every attempt the connector makes (4) fails
    sf.before_query_page = lambda page: sf.inject(r"/queryAll/", 503, times=4, body=down) if page == 2 else None
    with pytest.raises(Unavailable):
        sync_crm(db, port, engine, clock=clock)
    stored = len(_leads(db))
    sf.before_query_page = None
    sf.reset_log()

    sync_crm(db, port, engine, clock=clock)

    assert stored == 10 and sorted(_leads(db)) == sorted(ids)
    assert _decisions_per_lead(db) == dict.fromkeys(ids, 1)
    lead_queries = [c for c in sf.calls(r"/query") if "FROM Lead" in (c.query.get("q") or [""])[0]]
    assert "SystemModstamp >=" in lead_queries[0].query["q"][0]  # resumed near the stored cursor, not from the start


def test_given_a_lead_edited_in_the_second_the_sync_read_it_when_synced_again_then_the_edit_is_not_lost(
    db: Database, sf: FakeSalesforce, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    # SystemModstamp has whole seconds: the edit keeps the cursor's stamp, and its Id is below
    # the cursor's, so "SystemModstamp = :ts AND Id > :id" alone would skip it for good
    seed_salesforce_people(sf, example_policy)
    ids = [sf.create("Lead", sf_lead()) for _ in range(3)]
    port = salesforce_connector(sf, example_policy)
    sync_crm(db, port, engine, clock=clock)
    sf.update("Lead", ids[0], Title="VP Sales")  # the same second: the clock has not moved

    report = sync_crm(db, port, engine, clock=clock)

    assert _leads(db)[ids[0]].title == "VP Sales"
    assert report.decided == 1 and _decisions_per_lead(db)[ids[0]] == 2
    assert _lead_cursor_id(db) == max(ids)  # re-reading never moves it back


def test_given_an_expired_query_locator_when_paging_then_the_query_restarts_from_the_cursor(
    db: Database, sf: FakeSalesforce, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    ids = [sf.create("Lead", sf_lead()) for _ in range(12)]
    port = salesforce_connector(sf, example_policy)
    sf.before_query_page = lambda page: sf.expire_query_cursors() if page == 2 else None

    sync_crm(db, port, engine, clock=clock)

    assert sorted(_leads(db)) == sorted(ids)
    assert _decisions_per_lead(db) == dict.fromkeys(ids, 1)


def test_given_a_locator_expiring_inside_the_look_back_when_resumed_then_a_same_second_edit_is_still_read(
    db: Database, sf: FakeSalesforce, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    ids = [sf.create("Lead", sf_lead()) for _ in range(12)]  # one second: the cursor is (T, max id)
    port = salesforce_connector(sf, example_policy)
    sync_crm(db, port, engine, clock=clock)
    sf.update("Lead", ids[7], Title="VP Sales")  # the same second, a lower Id: only the look-back sees it
    clock.advance(seconds=60)
    sf.create("Lead", sf_lead())
    expired: list[int] = []

    def expire_once(page: int) -> None:
        if page == 2 and not expired:
            expired.append(page)
            sf.expire_query_cursors()

    sf.before_query_page = expire_once
    sync_crm(db, port, engine, clock=clock)

    assert expired and _leads(db)[ids[7]].title == "VP Sales"


def test_given_a_locator_that_keeps_expiring_when_paging_then_the_sync_gives_up_instead_of_looping(
    db: Database, sf: FakeSalesforce, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    for _ in range(12):
        sf.create("Lead", sf_lead())
    port = salesforce_connector(sf, example_policy)
    sync_crm(db, port, engine, clock=clock)
    clock.advance(seconds=60)
    sf.create("Lead", sf_lead())
    sf.before_query_page = lambda page: sf.expire_query_cursors() if page == 2 else None  # every time

    with pytest.raises(BadRequest, match="invalid query locator"):
        sync_crm(db, port, engine, clock=clock)  # re-reading its look-back: no page moves the cursor


def test_given_a_full_resync_when_nothing_changed_then_nothing_is_decided_again(
    db: Database, sf: FakeSalesforce, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    for _ in range(6):
        sf.create("Lead", sf_lead())
    sf.create("Account", Name="Acme", Website="acme.com", Loopgate_Strategic__c=True, Loopgate_Tier__c="tier1")
    port = salesforce_connector(sf, example_policy)
    sync_crm(db, port, engine, clock=clock)

    report = sync_crm(db, port, engine, clock=clock, full=True)

    assert report.leads == 6 and report.accounts == 1 and report.decided == 0


def test_given_a_full_resync_when_nothing_changed_then_no_stored_row_is_rewritten(
    db: Database, sf: FakeSalesforce, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    seed_salesforce_people(sf, example_policy)
    ids = [sf.create("Lead", sf_lead()) for _ in range(4)]
    sf.create("Account", Name="Acme", Website="acme.com", Loopgate_Strategic__c=True, Loopgate_Tier__c="tier1")
    port = salesforce_connector(sf, example_policy)
    sync_crm(db, port, engine, clock=clock)
    first = clock()
    clock.advance(hours=1)
    sf.update("Lead", ids[1], Title="Chief Technology Officer")

    sync_crm(db, port, engine, clock=clock, full=True)

    # synced_at is when the stored copy last changed: only the edited lead was written again
    written = {crm_id: lead.synced_at for crm_id, lead in _leads(db).items()}
    assert written[ids[1]] == clock()
    assert all(at == first for crm_id, at in written.items() if crm_id != ids[1])
    with db.transaction() as s:
        assert set(s.execute(select(Account.synced_at)).scalars()) == {first}
        assert set(s.execute(select(Owner.synced_at)).scalars()) == {first}
    assert _leads(db)[ids[1]].title == "Chief Technology Officer"


def test_given_a_rep_working_a_lead_when_synced_then_the_first_touch_is_dated_once(
    db: Database, sf: FakeSalesforce, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    untouched, worked = sf.create("Lead", sf_lead()), sf.create("Lead", sf_lead())
    port = salesforce_connector(sf, example_policy)
    sync_crm(db, port, engine, clock=clock)
    assert _leads(db)[worked].first_touch_at is None
    touched_at = clock.advance(minutes=7)
    sf.update("Lead", worked, Status="Working - Contacted")
    sync_crm(db, port, engine, clock=clock)
    clock.advance(hours=3)
    sf.update("Lead", worked, Title="Chief Technology Officer")  # a later edit is not a first touch

    sync_crm(db, port, engine, clock=clock)

    leads = _leads(db)
    assert leads[worked].first_touch_at is not None
    assert leads[worked].first_touch_at.replace(tzinfo=None) == touched_at.replace(tzinfo=None, microsecond=0)
    assert leads[untouched].first_touch_at is None


def test_given_a_contact_of_a_strategic_account_when_synced_then_it_is_linked_and_decided_with_the_account(
    db: Database, sf: FakeSalesforce, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    people = seed_salesforce_people(sf, example_policy)
    account = sf.create("Account", Name="Globex", Website="https://www.globex.com", NumberOfEmployees=3000,
                        Industry="software", OwnerId=people["dana"], Loopgate_Strategic__c=True)  # fmt: skip
    contact = sf.create("Contact", FirstName="Hank", LastName="Scorpio", Email="hank@globex.com", Title="CEO",
                        AccountId=account, MailingCountry="United States")  # fmt: skip

    sync_crm(db, salesforce_connector(sf, example_policy), engine, clock=clock)

    lead = _leads(db)[contact]
    assert (lead.object_type, lead.company, lead.domain, lead.employees, lead.country) == (
        "Contact", "Globex", "globex.com", 3000, "US"
    )  # fmt: skip
    with db.transaction() as s:
        linked = s.get(Account, lead.account_pk)
        decision = s.execute(select(Decision).where(Decision.lead_id == contact)).scalar_one()
    assert linked is not None and linked.crm_id == account and linked.strategic
    assert decision.owner == "dana" and "strategic_account" in decision.trigger_codes
