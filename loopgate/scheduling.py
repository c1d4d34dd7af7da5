"""Composition of the scheduler and the CRM effects from settings: the job context (database,
active policy, engine, clock, CRM sync jobs), the service that elects one scheduler among
replicas, and the worker that writes decisions back to the CRMs.

Used by ``loopgate serve`` (everything beside the bot) and ``loopgate scheduler run`` (the
scheduler alone). The policy and the engine are read per job run and per write-back batch
(``active_policy``, ``build_engine``), so publishes and calibration refits take effect without
a restart.

**CRM sync** is a scheduled job per configured CRM (``sync:salesforce``, ``sync:hubspot``) at the
policy's ``sync.<crm>`` or ``sync.interval``, run by the elected scheduler only: a sync walks a
cursor, and two replicas walking it at once would only double the API calls.

**CRM write-back** is not a scheduled job: every ``serve`` replica runs a write-back worker —
an :class:`loopgate.outbox_worker.OutboxWorker` of its own for ``crm.writeback`` — that drains
the rows as they come (claims with ``SKIP LOCKED``, so replicas share them). Its own thread, not
the Slack worker's: a batch of thousands of CRM writes (tens of seconds) must not hold up the
escalations posted behind it, and a scheduled drain would add up to an interval of latency and
funnel every CRM write through the one elected replica.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from functools import partial
from typing import Any

from connectors.writeback import CrmWriteback
from core.policy import LoadedPolicy
from core.ports import CrmPort
from core.store.db import Database
from core.store.outbox import OutboxItem, Outcome
from loopgate import crm
from loopgate.outbox_worker import OutboxWorker
from loopgate.settings import Settings
from loopgate.wiring import active_engine, active_policy, build_engine
from scheduler.context import Clock, SchedulerContext, utcnow
from scheduler.service import SchedulerService

__all__ = ["ActiveWriteback", "ConnectorsByPolicy", "crm_sync_jobs", "scheduler_context", "scheduler_service",
           "writeback_worker"]  # fmt: skip


def configured_crms(settings: Settings) -> list[str]:
    """The CRMs with credentials in the environment."""
    return [
        name
        for name, on in (("salesforce", settings.salesforce_configured), ("hubspot", settings.hubspot_configured))
        if on
    ]


class ConnectorsByPolicy:
    """CRM connectors for the active policy, built once per policy version (their write-back
    field maps come from the policy; building them per run would log in to the CRM each time)."""

    def __init__(self, settings: Settings, clock: Clock = utcnow) -> None:
        self.settings, self.clock = settings, clock
        self._ports: dict[tuple[str, str], dict[str, CrmPort]] = {}
        self._lock = threading.Lock()

    def get(self, loaded: LoadedPolicy, which: crm.CrmChoice = "all") -> dict[str, CrmPort]:
        key = (loaded.version, which)
        with self._lock:
            if key not in self._ports:
                self._ports = {k: v for k, v in self._ports.items() if k[0] == loaded.version}
                self._ports[key] = crm.open_ports(self.settings, loaded, which, clock=self.clock)
            return self._ports[key]


def _report(value: Any) -> Any:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) else value


def crm_sync_jobs(
    settings: Settings, db: Database, connectors: ConnectorsByPolicy, clock: Clock = utcnow
) -> dict[str, Callable[[], Any]]:
    """One sync function per configured CRM: sync it and decide what changed, with the engine of
    the active policy at the time of the run."""

    def job(source: crm.CrmChoice) -> Callable[[], Any]:
        def run() -> list[Any]:
            loaded = active_policy(db, settings)
            rebuild = partial(active_engine, db, settings)  # the sync follows the champion
            runtime = crm.Runtime(db, build_engine(db, loaded), connectors.get(loaded, source), clock, rebuild)
            return [_report(r) for r in crm.sync(runtime)]

        return run

    sources: dict[str, crm.CrmChoice] = {"salesforce": "salesforce", "hubspot": "hubspot"}
    return {source: job(sources[source]) for source in configured_crms(settings)}


def scheduler_context(
    settings: Settings, db: Database, connectors: ConnectorsByPolicy | None = None
) -> SchedulerContext:
    """What every job is given, with a sync job per configured CRM."""
    return SchedulerContext(
        db,
        policy=lambda: active_policy(db, settings),
        engine=lambda loaded: build_engine(db, loaded),
        crm_sync=crm_sync_jobs(settings, db, connectors or ConnectorsByPolicy(settings)),
    )


def scheduler_service(
    settings: Settings,
    db: Database,
    *,
    lease_ttl: timedelta | None = None,
    connectors: ConnectorsByPolicy | None = None,
) -> SchedulerService:
    """The scheduler service; its lease lives ``lease_ttl`` (default LOOPGATE_SCHEDULER_LEASE_SECONDS)."""
    ttl = lease_ttl if lease_ttl is not None else timedelta(seconds=settings.loopgate_scheduler_lease_seconds)
    return SchedulerService(scheduler_context(settings, db, connectors), lease_ttl=ttl)


class ActiveWriteback:
    """The ``crm.writeback`` handler with the active policy's engine and connectors, looked up
    per batch (:class:`connectors.writeback.CrmWriteback` does the work)."""

    kinds: tuple[str, ...] = ("crm.writeback",)

    def __init__(
        self,
        settings: Settings,
        db: Database,
        connectors: ConnectorsByPolicy,
        clock: Clock = utcnow,
        *,
        batch_size: int = 4000,
    ) -> None:
        self.settings, self.db, self.connectors, self.clock = settings, db, connectors, clock
        self.batch_size = batch_size

    def perform(self, items: Sequence[OutboxItem]) -> Mapping[int, Outcome]:
        loaded = active_policy(self.db, self.settings)
        handler = CrmWriteback(self.db, build_engine(self.db, loaded), self.connectors.get(loaded), self.clock)
        return handler.perform(items)


def writeback_worker(
    settings: Settings, db: Database, connectors: ConnectorsByPolicy, *, poll: float = 1.0, clock: Clock = utcnow
) -> OutboxWorker | None:
    """The write-back worker ``serve`` runs on every replica, or ``None`` without a configured CRM
    (rows then wait for ``loopgate writeback``)."""
    if not configured_crms(settings):
        return None
    worker = OutboxWorker(
        db,
        [ActiveWriteback(settings, db, connectors, clock)],
        clock=clock,
        poll=poll,
        policy=settings.outbox_retry_policy(),
    )
    worker.name = "crm-writeback"
    return worker
