"""The CRM jobs as plain functions: sync, write-back and CRM setup, built from settings.

The CLI commands, the scheduler and the demo call these; each one reads nothing but its
arguments (settings are read once by the caller). ``sync`` and ``writeback`` take an
already-open database and engine when the caller has them (the scheduler keeps both), or build
them from settings.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Literal

from sqlalchemy import select

from connectors.hubspot import HubSpotAuth, HubSpotConnector
from connectors.salesforce import SalesforceAuth, SalesforceConnector, http_session
from connectors.sync import Progress, SyncReport, sync_crm
from connectors.writeback import KIND as WRITEBACK_KIND
from connectors.writeback import CrmWriteback
from core.engine import DecisionEngine
from core.policy import LoadedPolicy
from core.ports import CrmPort
from core.store import outbox
from core.store.db import Database
from core.store.models import Decision, OutboxRow
from core.store.outbox import DrainReport, RetryPolicy
from loopgate.settings import ConfigError, Settings
from loopgate.wiring import active_engine, build_engine, deciding_policy, open_database

__all__ = [
    "CrmChoice",
    "Runtime",
    "hubspot_auth",
    "hubspot_connector",
    "open_ports",
    "requeue_dead_writebacks",
    "runtime",
    "salesforce_connector",
    "sync",
    "writeback",
]

CrmChoice = Literal["salesforce", "hubspot", "all"]
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def salesforce_connector(settings: Settings, loaded: LoadedPolicy) -> SalesforceConnector:
    creds = settings.require_salesforce()
    auth = SalesforceAuth(
        instance_url=creds.instance_url,
        access_token=creds.access_token.get_secret_value() if creds.access_token else None,
        login_url=creds.login_url,
        username=creds.username,
        password=creds.password.get_secret_value() if creds.password else None,
        security_token=creds.security_token.get_secret_value() if creds.security_token else None,
        client_id=creds.client_id,
        client_secret=creds.client_secret.get_secret_value() if creds.client_secret else None,
    )
    return SalesforceConnector(auth, http_session(creds.ca_bundle), field_map=loaded.policy.writeback.salesforce)


def hubspot_auth(settings: Settings) -> HubSpotAuth:
    """HubSpot credentials from settings: a private app's token, or an OAuth app's refresh
    credentials (with or without a current access token).

    Without an access token the connector starts with none: HubSpot answers the first call
    401, and the connector, which refreshes on 401 when it has refresh credentials, gets a
    token and repeats the call. That keeps building a connector free of I/O (the scheduler
    builds them per policy version) and a refused refresh token reported where every other
    HubSpot auth failure is (AuthExpired naming HUBSPOT_REFRESH_TOKEN)."""
    token = settings.require_hubspot_token()
    return HubSpotAuth(
        access_token=token.get_secret_value() if token is not None else "",
        base_url=settings.hubspot_base_url,
        client_id=settings.hubspot_client_id,
        client_secret=settings.hubspot_client_secret.get_secret_value() if settings.hubspot_client_secret else None,
        refresh_token=settings.hubspot_refresh_token.get_secret_value() if settings.hubspot_refresh_token else None,
    )


def hubspot_connector(settings: Settings, loaded: LoadedPolicy, *, clock: Clock = _utcnow) -> HubSpotConnector:
    return HubSpotConnector(
        hubspot_auth(settings),
        field_map=loaded.policy.writeback.hubspot,
        search_per_second=settings.hubspot_search_per_second,
        clock=clock,
    )


def open_ports(
    settings: Settings, loaded: LoadedPolicy, crm: CrmChoice = "all", *, clock: Clock = _utcnow
) -> dict[str, CrmPort]:
    """The connectors asked for. ``all`` means every CRM with credentials; none is an error
    naming the variables to set."""
    wanted = {
        "salesforce": crm in ("salesforce", "all") and (crm == "salesforce" or settings.salesforce_configured),
        "hubspot": crm in ("hubspot", "all") and (crm == "hubspot" or settings.hubspot_configured),
    }
    ports: dict[str, CrmPort] = {}
    if wanted["salesforce"]:
        ports["salesforce"] = salesforce_connector(settings, loaded)
    if wanted["hubspot"]:
        ports["hubspot"] = hubspot_connector(settings, loaded, clock=clock)
    if not ports:
        raise ConfigError(
            "no CRM is configured: set SALESFORCE_ACCESS_TOKEN (and SALESFORCE_INSTANCE_URL) or HUBSPOT_ACCESS_TOKEN "
            "(or HUBSPOT_CLIENT_ID, HUBSPOT_CLIENT_SECRET and HUBSPOT_REFRESH_TOKEN)"
        )
    return ports


@dataclass
class Runtime:
    """What the CRM jobs share: the store, the engine, the connectors and a clock; ``rebuild``
    (when the engine is the active policy's) builds it again, so a sync follows a publish,
    promote or rollback made while it runs."""

    db: Database
    engine: DecisionEngine
    ports: dict[str, CrmPort]
    clock: Clock
    rebuild: Callable[[], DecisionEngine] | None = None


def runtime(settings: Settings, crm: CrmChoice = "all", *, policy_path: str | None = None) -> Runtime:
    """Build everything from settings: the policy is ``policy_path`` when given, else the active
    one (the published champion, else ``LOOPGATE_POLICY``), with the fitted calibration."""
    db = open_database(settings)
    loaded = deciding_policy(db, settings, Path(policy_path) if policy_path else None)
    ports = open_ports(settings, loaded, crm)
    rebuild = None if policy_path else partial(active_engine, db, settings)
    return Runtime(db, build_engine(db, loaded), ports, _utcnow, rebuild)


def sync(
    rt: Runtime,
    *,
    full: bool = False,
    progress: Progress | None = None,
    only: Mapping[str, CrmPort] | None = None,
) -> list[SyncReport]:
    """Sync every connector of ``rt`` (or ``only`` these) and decide what changed."""
    return [
        sync_crm(rt.db, port, rt.engine, clock=rt.clock, full=full, progress=progress, rebuild=rt.rebuild)
        for port in (only or rt.ports).values()
    ]


def writeback(
    rt: Runtime,
    *,
    crm: CrmChoice = "all",
    worker: str | None = None,
    max_batches: int | None = None,
    policy: RetryPolicy | None = None,
) -> DrainReport:
    """Drain due ``crm.writeback`` rows into the CRMs. The rows do not say their CRM, so a
    drain for one ``crm`` claims the other's too: it hands them back untried, rather than
    counting a failed attempt against rows that are another run's to write."""
    elsewhere = () if crm == "all" else {"salesforce", "hubspot"} - {crm}
    handler = CrmWriteback(rt.db, rt.engine, rt.ports, rt.clock, elsewhere=elsewhere)
    name = worker or f"writeback@{socket.gethostname()}"
    return outbox.drain(rt.db, [handler], name, rt.clock, policy=policy, max_batches=max_batches)


def requeue_dead_writebacks(rt: Runtime, crm: CrmChoice = "all") -> int:
    """``crm.writeback`` rows given up on, back in the queue (``loopgate writeback --retry-dead``),
    for after someone fixed what failed them; only ``crm``'s (a row names its decision, whose
    lead names the CRM): the other's may still be broken. Returns how many."""
    with rt.db.transaction() as session:
        if crm == "all":
            return outbox.requeue_dead(session, [WRITEBACK_KIND], now=rt.clock())
        dead = session.execute(
            select(OutboxRow.pk, OutboxRow.payload).where(OutboxRow.kind == WRITEBACK_KIND, OutboxRow.status == "dead")
        ).all()
        decisions = {int(payload["decision_pk"]): pk for pk, payload in dead if payload.get("decision_pk") is not None}
        ours = session.execute(
            select(Decision.pk).where(Decision.pk.in_(list(decisions)), Decision.source == crm)
        ).scalars()
        return outbox.requeue_dead(session, [WRITEBACK_KIND], now=rt.clock(), pks=[decisions[d] for d in ours])
