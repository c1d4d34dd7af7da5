"""A CRM that refuses a record's owner for good (a user deactivated since the decision, an id
the CRM does not know) refuses only the owner: the record's score, band, status and other
loopgate fields are written without it, once, and the refusal is left where a person finds it
(the row's outcome, a ``crm.owner_refused`` audit event). A refusal that is not the owner's
alone still kills the row."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from connectors.hubspot.errors import refused_properties
from connectors.sync import sync_crm
from connectors.writeback import CrmWriteback
from core.engine import DecisionEngine
from core.policy import LoadedPolicy
from core.ports import CrmPort
from core.store import outbox
from core.store.db import Database
from core.store.models import AuditEvent, Decision, Lead, OutboxRow, WritebackState
from core.store.outbox import DrainReport
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

UPDATE_SF = r"/composite/sobjects$"
UPDATE_HS = r"/contacts/batch/update$"


def _drain(db: Database, engine: DecisionEngine, port: CrmPort, clock: Clock) -> DrainReport:
    return outbox.drain(db, [CrmWriteback(db, engine, {port.system: port}, clock)], "test-worker", clock)


def _decision(db: Database, crm_id: str) -> Decision:
    with db.transaction() as s:
        return s.execute(
            select(Decision).where(Decision.lead_id == crm_id).order_by(Decision.seq.desc()).limit(1)
        ).scalar_one()


def _row(db: Database, decision_pk: int) -> OutboxRow:
    with db.transaction() as s:
        rows = s.execute(select(OutboxRow).where(OutboxRow.kind == "crm.writeback")).scalars()
        return next(r for r in rows if r.payload.get("decision_pk") == decision_pk)


def _refusals(db: Database) -> dict[str, dict[str, Any]]:
    """``crm.owner_refused`` audit events: subject → data."""
    with db.transaction() as s:
        events = s.execute(select(AuditEvent).where(AuditEvent.kind == "crm.owner_refused")).scalars()
        return {e.subject or "": json.loads(e.body)["data"] for e in events}


def _owner_written(db: Database, source: str, crm_id: str) -> str | None:
    with db.transaction() as s:
        return s.execute(
            select(WritebackState.owner_written)
            .join(Lead, Lead.pk == WritebackState.lead_pk)
            .where(Lead.source == source, Lead.crm_id == crm_id)
        ).scalar_one_or_none()


def _records_sent(fake: FakeSalesforce) -> list[list[dict[str, Any]]]:
    return [c.json()["records"] for c in fake.calls(UPDATE_SF) if c.method == "PATCH"]


# --- Salesforce --------------------------------------------------------------------------------------


def _synced_salesforce_lead(
    db: Database, sf: FakeSalesforce, clock: Clock, engine: DecisionEngine, loaded: LoadedPolicy
) -> tuple[dict[str, str], str, CrmPort, Decision]:
    """One new Lead in an org with the policy's users, synced and decided: (policy rep → user
    id, the lead's id, the port, its decision)."""
    people = seed_salesforce_people(sf, loaded)
    lead = sf.create("Lead", sf_lead())
    port = salesforce_connector(sf, loaded)
    sync_crm(db, port, engine, clock=clock)
    return people, lead, port, _decision(db, lead)


def test_given_the_rep_deactivated_since_the_decision_when_written_back_then_the_fields_land_without_the_owner(
    db: Database, sf: FakeSalesforce, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    people, lead, port, decided = _synced_salesforce_lead(db, sf, clock, engine, example_policy)
    assert decided.action == "auto" and decided.final_owner in people
    owner = people[decided.final_owner or ""]
    sf.update("User", owner, IsActive=False)  # the rep leaves before write-back runs
    clock.advance(minutes=1)

    report = _drain(db, engine, port, clock)

    assert (report.done, report.dead) == (1, 0)
    record = sf.get("Lead", lead)
    assert record["OwnerId"] is None
    assert record["Loopgate_Score__c"] == decided.score_total and record["Loopgate_Status__c"] == "auto_assigned"
    assert record["Loopgate_Band__c"] == decided.band and record["Loopgate_Next_Action__c"]
    first, again = _records_sent(sf)  # once with the owner, once without: no more
    assert first[0]["OwnerId"] == owner and "OwnerId" not in again[0]
    result = _row(db, decided.pk).result or {}
    assert result["owner_refused"]["owner"] == owner and result["owner_refused"]["person"] == decided.final_owner
    assert result["owner_refused"]["error"].startswith("INACTIVE_OWNER_OR_USER: operation performed with inactive")
    assert "Loopgate_Score__c" in result["written"] and "OwnerId" not in result["written"]
    event = _refusals(db)[f"lead:salesforce:{lead}"]
    assert (event["decision"], event["owner"], event["person"]) == (decided.pk, owner, decided.final_owner)
    assert "INACTIVE_OWNER_OR_USER" in event["error"] and "Loopgate_Score__c" in event["written"]
    assert _owner_written(db, "salesforce", lead) is None  # the refused owner is not taken for loopgate's


def test_given_owners_unknown_to_the_org_and_a_refusal_not_only_the_owners_when_written_back_then_only_that_one_dies(
    db: Database, sf: FakeSalesforce, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    """No user of the policy exists in this org: every owner is ``INVALID_CROSS_REFERENCE_KEY``
    on ``OwnerId``. One record is also refused on a loopgate field: that is not the owner's
    refusal, and its row dies as before."""
    leads = [sf.create("Lead", sf_lead()) for _ in range(3)]
    port = salesforce_connector(sf, example_policy)
    sync_crm(db, port, engine, clock=clock)
    assert all(_decision(db, lead).final_owner for lead in leads)
    sf.fail_record(leads[2], "FIELD_CUSTOM_VALIDATION_EXCEPTION", "owner and band disagree",
                   fields=("OwnerId", "Loopgate_Band__c"))  # fmt: skip

    report = _drain(db, engine, port, clock)

    assert (report.done, report.dead) == (2, 1)
    assert all(sf.get("Lead", lead)["Loopgate_Score__c"] is not None for lead in leads[:2])
    assert sf.get("Lead", leads[2])["Loopgate_Score__c"] is None
    assert [len(records) for records in _records_sent(sf)] == [3, 2]  # one retry call, for the two
    dead = _row(db, _decision(db, leads[2]).pk)
    assert dead.status == "dead" and "FIELD_CUSTOM_VALIDATION_EXCEPTION" in (dead.last_error or "")
    refusals = _refusals(db)
    assert set(refusals) == {f"lead:salesforce:{lead}" for lead in leads[:2]}
    assert all(e["error"] == "INVALID_CROSS_REFERENCE_KEY: invalid cross reference id" for e in refusals.values())
    assert all(_owner_written(db, "salesforce", lead) is None for lead in leads)


def test_given_the_record_is_refused_again_without_its_owner_when_written_back_then_it_dies_after_one_retry(
    db: Database, sf: FakeSalesforce, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    people, lead, port, decided = _synced_salesforce_lead(db, sf, clock, engine, example_policy)
    owner = people[decided.final_owner or ""]
    sf.fail_record(lead, "INACTIVE_OWNER_OR_USER", "operation performed with inactive user", times=5)

    report = _drain(db, engine, port, clock)

    assert (report.done, report.dead) == (0, 1)
    assert len(_records_sent(sf)) == 2  # with the owner, then without it; never a third
    row = _row(db, decided.pk)
    assert row.status == "dead" and f"written without owner {owner}, which was refused" in (row.last_error or "")
    assert _owner_written(db, "salesforce", lead) is None


# --- HubSpot -----------------------------------------------------------------------------------------


def test_given_the_owner_archived_since_the_decision_when_written_back_then_the_fields_land_and_a_person_can_take_it(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    people = seed_hubspot_people(hs, example_policy)
    contact = hs.create("contacts", hs_contact())
    port = hubspot_connector(hs, example_policy, clock=clock)
    sync_crm(db, port, engine, clock=clock)
    first = _decision(db, contact)
    owner = people[first.final_owner or ""]
    hs.owners[owner]["archived"] = True  # the rep's HubSpot user is deactivated before write-back
    clock.advance(minutes=1)

    report = _drain(db, engine, port, clock)

    assert (report.done, report.dead) == (1, 0)
    record = hs.get("contacts", contact)
    assert not record.get("hubspot_owner_id")
    assert record["loopgate_status"] == "auto_assigned" and record["loopgate_score"] == str(first.score_total)
    assert len(hs.calls(UPDATE_HS)) == 2
    refused = (_row(db, first.pk).result or {})["owner_refused"]
    assert refused["owner"] == owner and f"{owner} is not a valid owner id" in refused["error"]
    assert _refusals(db)[f"lead:hubspot:{contact}"]["owner"] == owner
    assert _owner_written(db, "hubspot", contact) is None

    hs.owners[owner]["archived"] = False  # reactivated; the rep then takes the contact by hand
    clock.advance(minutes=5)
    hs.update("contacts", contact, hubspot_owner_id=owner)
    sync_crm(db, port, engine, clock=clock)

    again = _decision(db, contact)
    assert again.pk != first.pk and again.cause == "changed"  # the person's change, not loopgate's write
    assert again.crm_owner_before == owner


def test_given_hubspot_refusing_the_whole_batch_for_one_owner_when_written_back_then_every_record_is_written(
    db: Database, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    with FakeHubSpot(clock=clock, invalid_values_fail_batch=True) as hs:
        people = seed_hubspot_people(hs, example_policy)
        contacts = [hs.create("contacts", hs_contact()) for _ in range(4)]
        port = hubspot_connector(hs, example_policy, clock=clock)
        sync_crm(db, port, engine, clock=clock)
        owners = {c: people[_decision(db, c).final_owner or ""] for c in contacts}
        gone = owners[contacts[0]]
        hs.owners[gone]["archived"] = True
        clock.advance(minutes=1)

        report = _drain(db, engine, port, clock)

        assert (report.done, report.dead) == (4, 0)
        assert all(hs.get("contacts", c)["loopgate_score"] for c in contacts)
        kept = {c: hs.get("contacts", c).get("hubspot_owner_id") for c in contacts}
        assert kept == {c: (None if owners[c] == gone else owners[c]) for c in contacts}
        refusals = _refusals(db)
        assert {s for s, e in refusals.items() if e["owner"] == gone} == {
            f"lead:hubspot:{c}" for c in contacts if owners[c] == gone
        }
        assert all("INVALID_OWNER_ID" in e["error"] for e in refusals.values())


def test_given_hubspot_error_details_naming_the_property_when_read_then_those_properties_are_refused() -> None:
    detail = {
        "status": "error",
        "category": "VALIDATION_ERROR",
        "message": "One or more validation errors occurred",
        "context": {"ids": ["101"]},
        "errors": [{"message": "7 is not a valid owner id", "code": "INVALID_OWNER_ID",
                    "context": {"propertyName": ["hubspot_owner_id"]}}],
    }  # fmt: skip
    embedded = {
        "message": 'Property values were not valid: [{"isValid":false,"message":"7 is not a valid owner id",'
        '"error":"INVALID_OWNER_ID","name":"hubspot_owner_id"},{"isValid":false,"name":"loopgate_band"}]'
    }

    assert refused_properties(detail) == ("hubspot_owner_id",)
    assert refused_properties(embedded) == ("hubspot_owner_id", "loopgate_band")
    assert refused_properties({"message": "loopgate_band: value too long"}) == ()
