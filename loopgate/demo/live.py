"""``loopgate serve --sandbox``: the bot, the CRM write-back worker and the scheduler, as
``loopgate serve`` runs them, against the sandbox services in real time — and the sandbox web
page, where a person plays the reviewers (:mod:`loopgate.sandbox.web`).

The org is seeded smaller than the demo's (a page of escalations, not hundreds) and synced
once at start, so the page has something to show at once (with this week's digest so far in
the leaders' channel); after that the scheduler syncs both CRMs at the demo policy's interval
(30 s), so a lead added from the page shows up.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from core.digest import week_label
from core.policy import LoadedPolicy
from core.sla import PolicySlaClock
from core.store.db import Database
from core.store.digest import weekly_digest
from loopgate import crm
from loopgate.demo.sandbox import Sandbox
from loopgate.runtime import Runtime, Service, compose
from loopgate.sandbox.demo_org import seed_demo_org
from loopgate.sandbox.web import SandboxWeb
from loopgate.scheduling import ConnectorsByPolicy, scheduler_service, writeback_worker
from loopgate.settings import ConfigError
from loopgate.wiring import build_engine
from scheduler.digest import queue_digest, render_digest

__all__ = ["LiveSandbox"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class LiveSandbox:
    """Build with :meth:`start`, end with :meth:`stop`; :attr:`url` is the page."""

    def __init__(
        self,
        workdir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        leads: int = 120,
        scheduler: bool = True,
        poll: float = 0.2,
        latency: float = 0.0,
        sync_interval: str | None = None,
    ) -> None:
        """``poll``: the outbox workers' idle poll; ``latency``: added to every CRM call;
        ``sync_interval``: instead of the demo policy's (``bench/speed_to_lead.py``)."""
        self.workdir, self.host, self.port, self.leads, self.with_scheduler = workdir, host, port, leads, scheduler
        self.poll = poll
        self.sandbox = Sandbox(
            workdir, _utcnow, option="--sandbox-dir", today=_utcnow().date(), latency=latency,
            sync_interval=sync_interval,
        )  # fmt: skip
        self.runtime: Runtime | None = None
        self.db: Database | None = None
        self.web: SandboxWeb | None = None

    @property
    def url(self) -> str:
        assert self.web is not None
        return self.web.url

    def start(self) -> LiveSandbox:
        """Bind the page's port first, so a port in use is one line before anything is seeded;
        a start that fails stops what it started (and frees the folder)."""
        sb = self.sandbox.start()
        try:
            self._start(sb)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, sb: Sandbox) -> None:
        loaded = sb.loaded
        self.web = SandboxWeb(sb.slack, sb.salesforce, sb.hubspot, people=_people(loaded), host=self.host,
                              port=self.port)  # fmt: skip
        try:
            self.web.start()
        except (OSError, OverflowError) as exc:
            self.web = None
            raise ConfigError(
                f"cannot listen on {self.host}:{self.port} ({exc}): choose another --port or --host"
            ) from None
        started = _utcnow() - timedelta(minutes=5)
        seed_demo_org(sb.salesforce, sb.hubspot, loaded.policy, leads=self.leads, start=started)
        db = self.db = sb.fresh_database()
        settings = sb.settings()
        connectors = ConnectorsByPolicy(settings)
        services: list[Service] = []
        writeback = writeback_worker(settings, db, connectors, poll=self.poll)
        if writeback is not None:
            services.append(writeback)
        if self.with_scheduler:
            services.append(scheduler_service(settings, db, connectors=connectors))
        self.runtime = compose(
            settings, db, loaded, port=0, poll=self.poll, services=services, review_clock_for=PolicySlaClock
        )
        sb.slack.request_url = f"{self.runtime.front.url}/slack/events"
        # the first sync before anything runs, so the page opens on decided leads
        crm.sync(crm.Runtime(db, build_engine(db, loaded), connectors.get(loaded), _utcnow))
        self._post_digest_so_far(db)
        self.runtime.start()

    def _post_digest_so_far(self, db: Database) -> None:
        """Queue this week's digest so far for the leaders' channel (the Monday job posts only
        complete weeks, and a fresh sandbox has none): its chart and its audit sample with
        Confirm / Flag… are then on the page at once, posted by the real outbox worker."""
        loaded = self.sandbox.loaded
        config = loaded.policy.digest
        if config is None:
            return
        now = _utcnow()
        week = week_label(now.astimezone(ZoneInfo(config.timezone)).date())
        with db.transaction() as session:
            d = weekly_digest(session, loaded, week=week, now=now, timezone=config.timezone)
            queue_digest(session, loaded, d, render_digest(d, loaded), channel=config.channel)

    def stop(self) -> None:
        try:
            if self.web is not None:
                self.web.stop()
            if self.runtime is not None:
                self.runtime.stop()
            elif self.db is not None:
                self.db.dispose()
        finally:
            self.sandbox.stop()


def _people(loaded: LoadedPolicy) -> dict[str, str]:
    """CRM owner ids → names, for the page's CRM records."""
    people: dict[str, str] = {}
    for rep in loaded.policy.reps:
        for owner_id in (rep.crm.salesforce, rep.crm.hubspot):
            if owner_id:
                people[owner_id[:15] if len(owner_id) >= 15 else owner_id] = rep.name
    for queue in loaded.policy.queues:
        if queue.crm.salesforce:
            people[queue.crm.salesforce[:15]] = f"{queue.name or queue.id} (queue)"
    return people
