"""A write-back row that comes due after a newer decision of its lead was already written is
skipped: it must not put the older decision's owner and values back into the CRM. (Rows of
one batch are deduplicated in memory; this is the case across drains, e.g. a row retried
after a rate limit while the lead changed and was decided and written again.)"""

from __future__ import annotations

from sqlalchemy import select

from connectors.sync import sync_crm
from connectors.writeback import CrmWriteback
from core.engine import DecisionEngine
from core.policy import LoadedPolicy
from core.store import outbox
from core.store.db import Database
from core.store.models import Decision, OutboxRow
from loopgate.sandbox.salesforce import FakeSalesforce
from tests.connectors.builders import fast_retry, salesforce_connector, seed_salesforce_people, sf_lead
from tests.connectors.conftest import Clock


def _decisions(db: Database, crm_id: str) -> list[Decision]:
    with db.transaction() as s:
        return list(s.execute(select(Decision).where(Decision.lead_id == crm_id).order_by(Decision.seq)).scalars())


def _row(db: Database, decision_pk: int) -> OutboxRow:
    with db.transaction() as s:
        rows = s.execute(select(OutboxRow).where(OutboxRow.kind == "crm.writeback")).scalars()
        return next(r for r in rows if r.payload.get("decision_pk") == decision_pk)


def test_given_a_newer_decision_already_written_when_the_older_decisions_row_comes_due_then_nothing_is_written(
    db: Database, sf: FakeSalesforce, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    people = seed_salesforce_people(sf, example_policy)
    lead = sf.create("Lead", sf_lead())
    port = salesforce_connector(sf, example_policy, retry=fast_retry(attempts=1))
    write = CrmWriteback(db, engine, {"salesforce": port}, clock)
    sync_crm(db, port, engine, clock=clock)
    sf.inject(r"/composite/sobjects$", 429, headers={"Retry-After": "3600"})
    assert outbox.drain(db, [write], "w", clock).retried == 1  # the first decision's row waits an hour

    clock.advance(minutes=1)
    sf.update("Lead", lead, Title="Intern")  # decided again: suppressed, parked in nurture
    sync_crm(db, port, engine, clock=clock)
    older, newer = _decisions(db, lead)
    assert older.action == "auto" and older.final_owner in people
    assert newer.action == "suppress" and newer.final_owner == "nurture"
    assert outbox.drain(db, [write], "w", clock).done == 1  # only the newer row is due
    written = sf.get("Lead", lead)
    assert written["OwnerId"] == people["nurture"] and written["Loopgate_Status__c"] == "suppressed"
    sf.reset_log()

    clock.advance(hours=1, minutes=1)
    report = outbox.drain(db, [write], "w", clock)  # the older row, on its own

    assert (report.done, report.retried, report.dead) == (1, 0, 0)
    assert (_row(db, older.pk).result or {}).get("skipped") == "superseded by a newer decision"
    assert sf.calls(r"/composite/sobjects") == []
    assert sf.get("Lead", lead) == written
