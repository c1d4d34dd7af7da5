"""A sync follows the published champion while it runs: a rollback made meanwhile decides the
sync's next batch, not its next run."""

from __future__ import annotations

from sqlalchemy import func, select

from connectors.sync import sync_crm
from core.engine import DecisionEngine
from core.policy import LoadedPolicy
from core.store.db import Database
from core.store.models import Decision
from core.store.policies import publish, rollback
from loopgate.sandbox.hubspot import FakeHubSpot
from tests.connectors.builders import hs_contact, hubspot_connector, seed_hubspot_people
from tests.connectors.conftest import Clock
from tests.store.learning_builders import variant


def test_given_a_rollback_while_the_sync_runs_when_the_next_batch_is_decided_then_the_restored_champion_decides(
    db: Database, hs: FakeHubSpot, clock: Clock, example_policy: LoadedPolicy
) -> None:
    good, bad = example_policy, variant(example_policy, "auto_confidence: 0.55", "auto_confidence: 0.6")
    with db.transaction() as s:
        publish(s, good, now=clock.now, by="t")
        publish(s, bad, now=clock.now, by="t")
    stale = DecisionEngine(bad)  # the sync job built its engine...
    with db.transaction() as s:  # ...then an admin rolled back, before its first batch
        rollback(s, now=clock.now, by="admin")
    seed_hubspot_people(hs, good)
    ids = [hs.create("contacts", hs_contact()) for _ in range(6)]
    rebuilt: list[str] = []

    def rebuild() -> DecisionEngine:
        rebuilt.append(good.version)
        return DecisionEngine(good)

    report = sync_crm(db, hubspot_connector(hs, good, page_size=2), stale, clock=clock, decide_batch=2, rebuild=rebuild)

    assert report.decided == len(ids) and rebuilt == [good.version]  # rebuilt once, then kept
    with db.sessions() as s:
        versions = s.execute(select(Decision.policy_version, func.count()).group_by(Decision.policy_version)).all()
    assert versions == [(good.version, len(ids))]
