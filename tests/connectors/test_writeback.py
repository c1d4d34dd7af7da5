"""Write-back through the outbox into the fake CRMs: batch caps, equal values skipped, per-record
failures retried alone, conflicts recorded and re-decided, stale and deleted records left alone."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from connectors.sync import sync_crm
from connectors.writeback import CrmWriteback
from core.engine import DecisionEngine
from core.policy import LoadedPolicy
from core.ports import CrmPort
from core.review import ReviewChange, ReviewRules
from core.store import outbox
from core.store.db import Database
from core.store.models import AuditEvent, CrmConflict, Decision, Lead, OutboxRow
from core.store.outbox import DrainReport
from core.store.reviews import ReviewRequest, record_review
from loopgate import crm as crm_jobs
from loopgate.sandbox.hubspot import FakeHubSpot
from loopgate.sandbox.salesforce import FakeSalesforce
from tests.connectors.builders import (
    hs_contact,
    hubspot_connector,
    salesforce_connector,
    seed_hubspot_people,
    seed_salesforce_people,
    sf_lead,
)
from tests.connectors.conftest import Clock


def _drain(db: Database, engine: DecisionEngine, port: CrmPort, clock: Clock) -> DrainReport:
    handler = CrmWriteback(db, engine, {port.system: port}, clock)
    return outbox.drain(db, [handler], "test-worker", clock)


def _rows(db: Database) -> list[OutboxRow]:
    with db.transaction() as s:
        return list(s.execute(select(OutboxRow).where(OutboxRow.kind == "crm.writeback")).scalars())


def _decision(db: Database, crm_id: str) -> Decision:
    with db.transaction() as s:
        return s.execute(
            select(Decision).where(Decision.lead_id == crm_id).order_by(Decision.seq.desc()).limit(1)
        ).scalar_one()


def _batch_sizes(fake: FakeSalesforce | FakeHubSpot, path: str, key: str) -> list[int]:
    return [len(c.json()[key]) for c in fake.calls(path) if c.method in ("PATCH", "POST")]


def test_given_250_salesforce_decisions_when_written_back_then_two_collection_calls_carry_them(
    db: Database, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    with FakeSalesforce(page_size=2000, clock=clock) as sf:
        seed_salesforce_people(sf, example_policy)
        ids = [sf.create("Lead", sf_lead()) for _ in range(250)]
        port = salesforce_connector(sf, example_policy)
        sync_crm(db, port, engine, clock=clock)

        report = _drain(db, engine, port, clock)

        assert report.done == 250 and report.dead == 0
        assert _batch_sizes(sf, r"/composite/sobjects$", "records") == [200, 50]
        assert all(c.json()["allOrNone"] is False for c in sf.calls(r"/composite/sobjects$"))
        scores = {sf.get("Lead", i)["Loopgate_Score__c"] for i in ids}
        assert None not in scores
        statuses = {sf.get("Lead", i)["Loopgate_Status__c"] for i in ids}
        assert statuses <= {"auto_assigned", "needs_review", "reviewed", "suppressed"}


def test_given_150_hubspot_decisions_when_written_back_then_batches_hold_at_most_100(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    seed_hubspot_people(hs, example_policy)
    ids = [hs.create("contacts", hs_contact()) for _ in range(150)]
    port = hubspot_connector(hs, example_policy, clock=clock)
    sync_crm(db, port, engine, clock=clock)

    report = _drain(db, engine, port, clock)

    assert report.done == 150
    assert sorted(_batch_sizes(hs, r"/contacts/batch/update", "inputs")) == [50, 100]
    assert all(hs.get("contacts", i)["loopgate_score"] for i in ids)


def test_given_values_already_in_the_crm_when_the_same_decision_is_written_again_then_no_update_call(
    db: Database, sf: FakeSalesforce, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    seed_salesforce_people(sf, example_policy)
    lead = sf.create("Lead", sf_lead())
    port = salesforce_connector(sf, example_policy)
    sync_crm(db, port, engine, clock=clock)
    _drain(db, engine, port, clock)
    sync_crm(db, port, engine, clock=clock)  # reads loopgate's own values back
    sf.reset_log()
    pk = _decision(db, lead).pk
    with db.transaction() as s:
        outbox.enqueue(s, "crm.writeback", f"crm.writeback:{pk}:again", {"decision_pk": pk}, now=clock())

    report = _drain(db, engine, port, clock)

    assert report.done == 1
    assert sf.calls(r"/composite/sobjects") == []


def test_given_one_record_locked_when_written_back_then_only_that_row_is_retried_and_later_succeeds(
    db: Database, sf: FakeSalesforce, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    seed_salesforce_people(sf, example_policy)
    ids = [sf.create("Lead", sf_lead()) for _ in range(3)]
    port = salesforce_connector(sf, example_policy)
    sync_crm(db, port, engine, clock=clock)
    sf.fail_record(ids[1], "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")

    first = _drain(db, engine, port, clock)
    clock.advance(minutes=5)
    second = _drain(db, engine, port, clock)

    assert (first.done, first.retried) == (2, 1)
    assert (second.done, second.retried) == (1, 0)
    assert sf.get("Lead", ids[1])["Loopgate_Score__c"] is not None
    assert len(sf.calls(r"/composite/sobjects$")[-1].json()["records"]) == 1  # the retry carried one record


def test_given_a_record_the_crm_refuses_for_good_when_written_back_then_its_row_is_dead_and_the_rest_done(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    seed_hubspot_people(hs, example_policy)
    ids = [hs.create("contacts", hs_contact()) for _ in range(3)]
    port = hubspot_connector(hs, example_policy, clock=clock)
    sync_crm(db, port, engine, clock=clock)
    hs.fail_record(ids[0], "VALIDATION_ERROR", "loopgate_band: value too long")

    report = _drain(db, engine, port, clock)

    assert (report.done, report.dead) == (2, 1)
    dead = [r for r in _rows(db) if r.status == "dead"]
    assert len(dead) == 1 and "VALIDATION_ERROR" in (dead[0].last_error or "")


def test_given_a_person_changed_the_owner_since_the_decision_when_written_back_then_nothing_is_overwritten(
    db: Database, sf: FakeSalesforce, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    people = seed_salesforce_people(sf, example_policy)
    lead = sf.create("Lead", sf_lead())
    port = salesforce_connector(sf, example_policy)
    sync_crm(db, port, engine, clock=clock)
    decided = _decision(db, lead)
    assert decided.action == "auto" and decided.final_owner in people  # routed to a rep
    human = people["eli"] if decided.final_owner != "eli" else people["dana"]
    sf.update("Lead", lead, OwnerId=human)  # a person reassigns it before write-back runs
    clock.advance(minutes=1)

    report = _drain(db, engine, port, clock)

    assert (report.done, report.dead) == (2, 0)  # the stale decision's row, then the re-decision's
    assert sf.get("Lead", lead)["OwnerId"] == human
    with db.transaction() as s:
        conflict = s.execute(select(CrmConflict)).scalar_one()
        kinds = list(s.execute(select(AuditEvent.kind).where(AuditEvent.kind == "crm.conflict")).scalars())
        redecision = s.get(Decision, conflict.redecision_pk)
        stored = s.execute(select(Lead).where(Lead.crm_id == lead)).scalar_one()
    assert conflict.decision_pk == decided.pk and conflict.owner_found == human
    assert kinds == ["crm.conflict"]
    assert redecision is not None and redecision.cause == "conflict" and redecision.crm_owner_before == human
    assert redecision.final_owner in ("eli", "dana")  # keep_owner: the person's rep stays
    assert stored.owner_id == human and stored.decided_hash == stored.content_hash
    # the re-decision's fields were written; its owner write was a no-op
    assert sf.get("Lead", lead)["Loopgate_Score__c"] is not None
    written = [c.json()["records"][0] for c in sf.calls(r"/composite/sobjects$")]
    assert len(written) == 1 and "OwnerId" not in written[0]


def test_given_loopgate_itself_wrote_the_owner_when_a_later_decision_is_written_then_it_is_not_a_conflict(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    seed_hubspot_people(hs, example_policy)
    contact = hs.create("contacts", hs_contact())
    port = hubspot_connector(hs, example_policy, clock=clock)
    sync_crm(db, port, engine, clock=clock)
    _drain(db, engine, port, clock)
    owner = hs.get("contacts", contact)["hubspot_owner_id"]
    assert owner  # loopgate assigned it
    clock.advance(hours=1)
    hs.update("contacts", contact, jobtitle="Chief Technology Officer")
    sync_crm(db, port, engine, clock=clock)

    _drain(db, engine, port, clock)

    with db.transaction() as s:
        assert s.execute(select(CrmConflict)).first() is None
    assert hs.get("contacts", contact)["hubspot_owner_id"] == owner


def test_given_a_superseded_decision_when_its_row_is_drained_then_nothing_is_written(
    db: Database, sf: FakeSalesforce, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    seed_salesforce_people(sf, example_policy)  # the newer decision's owner exists: one call writes it
    lead = sf.create("Lead", sf_lead())
    port = salesforce_connector(sf, example_policy)
    sync_crm(db, port, engine, clock=clock)
    clock.advance(minutes=1)
    sf.update("Lead", lead, Title="Intern")  # changes the decision before the first is written
    sync_crm(db, port, engine, clock=clock)

    _drain(db, engine, port, clock)

    results = [r.result or {} for r in _rows(db)]
    assert sum(1 for r in results if "superseded" in str(r.get("skipped", ""))) == 1
    assert len(sf.calls(r"/composite/sobjects$")) == 1
    assert len(sf.calls(r"/composite/sobjects$")[0].json()["records"]) == 1


def test_given_a_record_deleted_in_the_crm_when_written_back_then_the_row_is_done_without_a_write(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    contact = hs.create("contacts", hs_contact())
    port = hubspot_connector(hs, example_policy, clock=clock)
    sync_crm(db, port, engine, clock=clock)
    hs.archive("contacts", contact)

    report = _drain(db, engine, port, clock)

    assert (report.done, report.dead, report.retried) == (1, 0, 0)
    assert "no longer exists" in str(_rows(db)[0].result)


def _escalated(
    db: Database, sf: FakeSalesforce, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> tuple[str, CrmPort, Decision]:
    """A synced, written-back lead waiting for a person (regulated industry): (id, port, decision)."""
    lead = sf.create("Lead", sf_lead(Industry="banking"))
    port = salesforce_connector(sf, example_policy)
    sync_crm(db, port, engine, clock=clock)
    _drain(db, engine, port, clock)
    decided = _decision(db, lead)
    assert decided.state == "pending_review"
    return lead, port, decided


def test_given_a_reviewed_decision_when_its_review_row_is_drained_then_the_reviewers_owner_is_written(
    db: Database, sf: FakeSalesforce, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    people = seed_salesforce_people(sf, example_policy)
    lead, port, decided = _escalated(db, sf, clock, engine, example_policy)
    assert sf.get("Lead", lead)["Loopgate_Status__c"] == "needs_review" and sf.get("Lead", lead)["OwnerId"] is None
    with db.transaction() as s:  # what the bot does when a person reassigns it to Cy
        s.execute(
            update(Decision)
            .where(Decision.pk == decided.pk)
            .values(state="reviewed", final_owner="cy", final_action="auto")
        )
        outbox.enqueue(s, "crm.writeback", f"crm.writeback:{decided.pk}:review", {"decision_pk": decided.pk},
                       now=clock())  # fmt: skip

    _drain(db, engine, port, clock)

    record: dict[str, Any] = sf.get("Lead", lead)
    assert record["OwnerId"] == people["cy"] and record["Loopgate_Status__c"] == "reviewed"


def test_given_an_override_with_a_new_band_when_written_back_then_the_crm_shows_the_persons_band_and_reason(
    db: Database, sf: FakeSalesforce, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    seed_salesforce_people(sf, example_policy)
    lead, port, decided = _escalated(db, sf, clock, engine, example_policy)
    band = next(b for b in example_policy.policy.scoring.bands if b != decided.band)
    rules = ReviewRules(example_policy.policy)
    with db.transaction() as s:  # an admin overrides it, as the bot's modal does
        change = ReviewChange("override", reason_code="data_quality", band=band)
        record_review(s, rules, ReviewRequest(decided.pk, "U01REV", "rev", change), now=clock())

    _drain(db, engine, port, clock)

    record: dict[str, Any] = sf.get("Lead", lead)
    assert record["Loopgate_Status__c"] == "reviewed"
    assert record["Loopgate_Band__c"] == band != decided.band
    assert record["Loopgate_Reason__c"].startswith("reviewer: override (data_quality); regulated_industry")


def test_given_the_crm_took_the_owner_but_its_answer_was_lost_when_synced_again_then_the_lead_is_not_decided_again(
    db: Database, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    """HubSpot applies the batch and the answer never arrives (every try): write-back cannot
    record the write, exactly as when the process dies right after the call. The next sync reads
    loopgate's own owner back. Without the owner stored before the write, that read was a new
    change: the lead was decided again (a reviewed escalation re-opened)."""
    with FakeHubSpot(clock=clock) as hs:
        seed_hubspot_people(hs, example_policy)
        record = hs.create("contacts", hs_contact())
        port = hubspot_connector(hs, example_policy)
        sync_crm(db, port, engine, clock=clock)
        first = _decision(db, record)
        assert first.action == "auto" and first.final_owner

        hs.inject(r"/batch/update$", 504, times=4, method="POST", after_applying=True)  # fast_retry: 4 tries
        clock.advance(minutes=1)  # the write stamps the record later than the sync cursor
        lost = _drain(db, engine, port, clock)
        assert lost.done == 0 and lost.retried == 1
        assert hs.get("contacts", record)["hubspot_owner_id"]  # the CRM has loopgate's owner

        clock.advance(minutes=1)
        sync_crm(db, port, engine, clock=clock)
        assert _decision(db, record).pk == first.pk  # read back as loopgate's own change
        report = _drain(db, engine, port, clock)  # the repeated row finds everything written
        assert (report.done, report.dead, report.retried) == (1, 0, 0)
        assert _decision(db, record).pk == first.pk


def _refused_owner_write(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> tuple[str, CrmPort, Decision, dict[str, str]]:
    """A contact decided "auto" whose write-back (owner included) HubSpot refused for good:
    (id, port, decision, policy id → owner id). The rep was told; the CRM has no owner."""
    people = seed_hubspot_people(hs, example_policy)
    contact = hs.create("contacts", hs_contact())
    port = hubspot_connector(hs, example_policy, clock=clock)
    sync_crm(db, port, engine, clock=clock)
    decided = _decision(db, contact)
    assert decided.action == "auto" and decided.final_owner in people
    hs.fail_record(contact, "VALIDATION_ERROR", "loopgate_band: value too long")
    assert _drain(db, engine, port, clock).dead == 1
    assert not hs.get("contacts", contact).get("hubspot_owner_id")
    return contact, port, decided, people


def test_given_an_owner_write_the_crm_refused_when_a_person_then_sets_that_owner_then_it_is_decided_as_their_change(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    contact, port, first, people = _refused_owner_write(db, hs, clock, engine, example_policy)
    clock.advance(minutes=5)
    hs.update("contacts", contact, hubspot_owner_id=people[first.final_owner or ""])  # the rep takes it by hand

    sync_crm(db, port, engine, clock=clock)

    again = _decision(db, contact)
    assert again.pk != first.pk and again.cause == "changed"  # not mistaken for loopgate's own write
    assert again.crm_owner_before == people[first.final_owner or ""]


def test_given_an_owner_write_the_crm_refused_when_a_person_sets_that_owner_before_a_newer_write_then_it_is_kept(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    contact, port, first, people = _refused_owner_write(db, hs, clock, engine, example_policy)
    clock.advance(minutes=5)
    hs.update("contacts", contact, lastname="Smith-Jones")  # decided again, by the rotation
    sync_crm(db, port, engine, clock=clock)
    second = _decision(db, contact)
    assert second.pk != first.pk and second.final_owner not in (None, first.final_owner)
    mine = people[first.final_owner or ""]
    hs.update("contacts", contact, hubspot_owner_id=mine)  # the first rep takes it by hand before write-back
    clock.advance(minutes=1)

    _drain(db, engine, port, clock)

    assert hs.get("contacts", contact)["hubspot_owner_id"] == mine
    with db.transaction() as s:
        conflict = s.execute(select(CrmConflict)).scalar_one()
    assert (conflict.decision_pk, conflict.owner_found) == (second.pk, mine)


def test_given_rows_of_both_crms_when_one_crm_is_written_back_then_the_others_rows_wait_without_losing_an_attempt(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    with FakeSalesforce(page_size=2000, clock=clock) as sf:
        seed_salesforce_people(sf, example_policy)
        seed_hubspot_people(hs, example_policy)
        sf.create("Lead", sf_lead())
        contact = hs.create("contacts", hs_contact())
        ports: dict[str, CrmPort] = {
            "salesforce": salesforce_connector(sf, example_policy),
            "hubspot": hubspot_connector(hs, example_policy, clock=clock),
        }
        for port in ports.values():
            sync_crm(db, port, engine, clock=clock)

        for _ in range(12):  # `loopgate writeback --crm salesforce` by cron, more runs than a row's attempts
            crm_jobs.writeback(
                crm_jobs.Runtime(db, engine, {"salesforce": ports["salesforce"]}, clock), crm="salesforce"
            )
            clock.advance(minutes=15)
        [waiting] = [r for r in _rows(db) if r.status != "done"]
        assert (waiting.status, waiting.attempts, waiting.last_error) == ("pending", 0, None)

        report = crm_jobs.writeback(crm_jobs.Runtime(db, engine, {"hubspot": ports["hubspot"]}, clock), crm="hubspot")
        assert (report.done, report.dead) == (1, 0)
        assert hs.get("contacts", contact)["loopgate_status"] == "auto_assigned"


def test_given_a_rep_deactivated_in_salesforce_when_leads_are_synced_then_nobody_routes_to_them_and_all_are_written(
    db: Database, sf: FakeSalesforce, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    people = seed_salesforce_people(sf, example_policy)
    sf.update("User", people["ana"], IsActive=False)  # Ana left; the policy still names her
    owned = sf.create("Lead", sf_lead(OwnerId=people["ana"]))  # hers: kept with her unless she is gone
    fresh = [sf.create("Lead", sf_lead()) for _ in range(5)]
    port = salesforce_connector(sf, example_policy)
    sync_crm(db, port, engine, clock=clock)

    decisions = {crm_id: _decision(db, crm_id) for crm_id in [owned, *fresh]}
    assert "ana" not in {d.final_owner for d in decisions.values()}
    assert "Ana Ruiz inactive in salesforce" in decisions[owned].contract["route"]["detail"]
    clock.advance(minutes=1)
    report = _drain(db, engine, port, clock)

    assert (report.done, report.dead) == (6, 0)
    assert all(sf.get("Lead", crm_id)["Loopgate_Score__c"] is not None for crm_id in decisions)


def test_given_an_archived_hubspot_owner_when_contacts_are_synced_then_the_rotation_skips_them(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    people = seed_hubspot_people(hs, example_policy)
    hs.owners[people["ana"]]["archived"] = True  # her HubSpot user was deactivated
    contacts = [hs.create("contacts", hs_contact()) for _ in range(4)]
    port = hubspot_connector(hs, example_policy, clock=clock)
    sync_crm(db, port, engine, clock=clock)
    clock.advance(minutes=1)

    report = _drain(db, engine, port, clock)

    assert (report.done, report.dead) == (4, 0)
    assert people["ana"] not in {hs.get("contacts", c).get("hubspot_owner_id") for c in contacts}


def test_given_a_salesforce_contact_routed_to_a_queue_when_written_back_then_its_fields_land_and_its_owner_stays(
    db: Database, sf: FakeSalesforce, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    seed_salesforce_people(sf, example_policy)
    account = sf.create("Account", Name="Some Co", Website="someco.com", NumberOfEmployees=800, Industry="software")
    contact = sf.create("Contact", FirstName="Jo", LastName="Student", Email="jo@someco.com", Title="Intern",
                        AccountId=account, MailingCountry="US", LeadSource="marketplace")  # fmt: skip
    port = salesforce_connector(sf, example_policy)
    sync_crm(db, port, engine, clock=clock)
    assert _decision(db, contact).final_owner == "nurture"  # the policy's queue for marketplace leads
    clock.advance(minutes=1)

    report = _drain(db, engine, port, clock)

    assert (report.done, report.dead) == (1, 0)
    record = sf.get("Contact", contact)
    assert record["OwnerId"] is None and record["Loopgate_Status__c"] == "suppressed"


def test_given_a_lead_converted_since_the_sync_when_written_back_then_the_row_is_done_and_the_lead_known_converted(
    db: Database, sf: FakeSalesforce, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    seed_salesforce_people(sf, example_policy)
    lead = sf.create("Lead", sf_lead())
    port = salesforce_connector(sf, example_policy)
    sync_crm(db, port, engine, clock=clock)
    sf.update("Lead", lead, IsConverted=True, Status="Closed - Converted")  # a rep converts it meanwhile
    clock.advance(minutes=1)

    report = _drain(db, engine, port, clock)

    assert (report.done, report.dead) == (1, 0)
    (row,) = _rows(db)
    assert "converted" in row.result["skipped"] and "CANNOT_UPDATE_CONVERTED_LEAD" in row.result["skipped"]
    with db.transaction() as s:
        assert s.execute(select(Lead.converted).where(Lead.crm_id == lead)).scalar_one()
