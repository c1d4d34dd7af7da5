"""The CRM jobs as ``loopgate serve`` wires them, against the fake HubSpot: the scheduled sync
decides what changed (and starts its SLA clocks); the write-back worker writes the fields."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from core.policy import LoadedPolicy
from core.store import outbox
from core.store.db import Database
from core.store.models import Decision, SlaClock
from core.store.policies import publish
from loopgate import crm
from loopgate.sandbox.hubspot import FakeHubSpot
from loopgate.scheduling import ConnectorsByPolicy, scheduler_context, writeback_worker
from loopgate.settings import Settings
from scheduler.jobs import handler_for, job_specs
from tests.conftest import EXAMPLE_POLICY
from tests.connectors.builders import hs_contact, seed_hubspot_people
from tests.store.learning_builders import variant

NOW = datetime(2026, 11, 20, 20, 0, tzinfo=UTC)


def _settings(db: Database, hubspot: FakeHubSpot | None) -> Settings:
    values: dict[str, object] = {
        "loopgate_database_url": db.url.render_as_string(hide_password=False),
        "loopgate_policy": EXAMPLE_POLICY,
        "salesforce_access_token": None,
        "salesforce_username": None,
        "salesforce_client_id": None,
        "hubspot_access_token": SecretStr("pat-sandbox-token") if hubspot else None,
    }
    if hubspot is not None:
        values["hubspot_base_url"] = hubspot.url
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_given_a_hubspot_portal_when_the_sync_job_and_the_writeback_worker_run_then_leads_are_decided_and_written(
    db: Database, example_policy: LoadedPolicy
) -> None:
    with FakeHubSpot() as hubspot:
        seed_hubspot_people(hubspot, example_policy)
        ids = [hubspot.create("contacts", hs_contact()) for _ in range(3)]
        settings = _settings(db, hubspot)
        connectors = ConnectorsByPolicy(settings)
        ctx = scheduler_context(settings, db, connectors)

        assert set(ctx.crm_sync) == {"hubspot"}
        plan = {s.id: s.schedule for s in job_specs(example_policy.policy, ctx.crm_sync)}
        assert plan["sync:hubspot"] == "every 600s"  # the policy's sync.hubspot
        sync = handler_for("sync:hubspot")
        assert sync is not None
        [report] = sync(ctx)

        worker = writeback_worker(settings, db, connectors)
        assert worker is not None and worker.name == "crm-writeback"
        done = outbox.drain(db, worker.handlers, "test", lambda: datetime.now(UTC))

        contacts = [hubspot.get("contacts", i) for i in ids]

    assert (report["system"], report["leads"], report["decided"]) == ("hubspot", 3, 3)
    with db.sessions() as s:
        decisions = s.execute(select(func.count()).select_from(Decision)).scalar_one()
        started = s.execute(select(func.count()).select_from(SlaClock)).scalar_one()
    assert decisions == 3 and started == 3  # every decision started its response clock
    assert done.by_kind == {"crm.writeback": 3} and done.done == 3
    assert all(c["loopgate_status"] for c in contacts)


def test_given_a_scheduled_sync_when_it_runs_then_it_can_rebuild_its_engine_for_the_champion(
    db: Database, example_policy: LoadedPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtimes: list[crm.Runtime] = []
    monkeypatch.setattr(crm, "sync", lambda rt: runtimes.append(rt) or [])
    settings = _settings(db, None).model_copy(update={"hubspot_access_token": SecretStr("pat-sandbox-token")})
    ctx = scheduler_context(settings, db)
    ctx.crm_sync["hubspot"]()
    with db.transaction() as s:  # published while the sync runs
        publish(s, variant(example_policy, "auto_confidence: 0.55", "auto_confidence: 0.6"), now=NOW, by="t")

    [rt] = runtimes
    assert rt.engine.version == example_policy.version
    assert rt.rebuild is not None and rt.rebuild().version != example_policy.version


def test_given_no_crm_credentials_when_composing_then_there_is_no_sync_job_and_no_writeback_worker(
    db: Database,
) -> None:
    settings = _settings(db, None)
    ctx = scheduler_context(settings, db)
    assert ctx.crm_sync == {}
    assert writeback_worker(settings, db, ConnectorsByPolicy(settings)) is None
