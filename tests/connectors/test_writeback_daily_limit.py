"""HubSpot's daily API limit does not reset for hours: write-back rows that hit it wait an
hour rather than the seconds of a rolling limit, so the outbox does not keep spending calls
against a spent limit."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from connectors.sync import sync_crm
from connectors.writeback import CrmWriteback
from core.engine import DecisionEngine
from core.policy import LoadedPolicy
from core.store import outbox
from core.store.db import Database
from core.store.models import OutboxRow
from loopgate.sandbox.hubspot import FakeHubSpot
from tests.connectors.builders import fast_retry, hs_contact, hubspot_connector, seed_hubspot_people
from tests.connectors.conftest import Clock

DAILY_LIMIT = {
    "status": "error",
    "message": "You have reached your daily limit.",
    "errorType": "RATE_LIMIT",
    "correlationId": "c0ffee",
    "policyName": "DAILY",
}


def test_given_hubspots_daily_limit_is_spent_when_written_back_then_the_rows_wait_an_hour(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    seed_hubspot_people(hs, example_policy)
    contacts = [hs.create("contacts", hs_contact()) for _ in range(2)]
    port = hubspot_connector(hs, example_policy, clock=clock, retry=fast_retry(attempts=1))
    sync_crm(db, port, engine, clock=clock)
    hs.inject(r"/batch/update$", 429, times=1, body=DAILY_LIMIT, method="POST")

    report = outbox.drain(db, [CrmWriteback(db, engine, {"hubspot": port}, clock)], "w", clock)

    assert (report.done, report.retried, report.dead) == (0, 2, 0)
    with db.transaction() as s:
        rows = list(s.execute(select(OutboxRow).where(OutboxRow.kind == "crm.writeback")).scalars())
    assert [row.available_at for row in rows] == [clock.now + timedelta(hours=1)] * len(contacts)
    assert all("429" in (row.last_error or "") and "DAILY" in (row.last_error or "") for row in rows)
    assert not any(hs.get("contacts", c).get("loopgate_score") for c in contacts)
