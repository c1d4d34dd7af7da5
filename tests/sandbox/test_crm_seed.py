"""The seeded sandbox org is one the engine decides every way: auto, review and suppress."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from connectors.sync import sync_crm
from core.engine import DecisionEngine
from core.policy import LoadedPolicy
from core.store.db import Database
from core.store.models import Decision, Owner
from loopgate.sandbox.crm_seed import seed_hubspot, seed_salesforce
from loopgate.sandbox.hubspot import FakeHubSpot
from loopgate.sandbox.salesforce import FakeSalesforce
from tests.connectors.builders import hubspot_connector, salesforce_connector


def test_given_seeded_fakes_when_synced_then_every_action_occurs_and_people_are_known(
    db: Database, example_policy: LoadedPolicy
) -> None:
    engine = DecisionEngine(example_policy)
    clock = lambda: datetime(2026, 11, 20, 20, tzinfo=UTC)  # noqa: E731
    with FakeSalesforce() as sf, FakeHubSpot() as hs:
        people = seed_salesforce(sf, example_policy.policy, leads=150, accounts=20)
        owners = seed_hubspot(hs, example_policy.policy, contacts=150, companies=20)
        sync_crm(db, salesforce_connector(sf, example_policy), engine, clock=clock)
        sync_crm(db, hubspot_connector(hs, example_policy), engine, clock=clock)

    with db.transaction() as s:
        actions = dict(s.execute(select(Decision.action, func.count()).group_by(Decision.action)).all())
        known = s.execute(select(func.count()).select_from(Owner)).scalar_one()
    assert set(actions) == {"auto", "review", "suppress"} and sum(actions.values()) == 300
    assert set(people) >= {"ana", "ben", "cy", "dana", "eli", "nurture", "unassigned"} and set(owners) >= {"ana"}
    assert known == len(people) + len(owners)
