"""``loopgate scheduler``: run the scheduler on its own, or see what it did.

``loopgate serve`` already runs the scheduler beside the bot (one replica at a time schedules;
see :mod:`scheduler.service`); ``scheduler run`` is for deployments that keep it apart.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from sqlalchemy import select

from core.store.models import JobState
from core.store.outbox import backlog
from loopgate.cli.console import err, out
from loopgate.cli.stop_signals import StopSignals
from loopgate.logs import configure_logging
from loopgate.scheduling import scheduler_service
from loopgate.settings import load_settings
from loopgate.wiring import open_database
from scheduler.context import utcnow
from scheduler.lease import Lease

__all__ = ["register", "scheduler_app"]

scheduler_app = typer.Typer(help="The job scheduler: SLA timers, focus lists, digests, tuning.", no_args_is_help=True)


@scheduler_app.command("run")
def run(
    lease_ttl: Annotated[
        float | None,
        typer.Option(
            help="Seconds a leader's lease lasts; a standby takes over this long after it dies "
            "(default: LOOPGATE_SCHEDULER_LEASE_SECONDS, else 30).",
            min=1,
        ),
    ] = None,
) -> None:
    """Run the scheduler until SIGTERM or Ctrl-C (one replica at a time leads)."""
    settings = load_settings()
    db = open_database(settings)
    configure_logging(settings.loopgate_log_level, settings.secret_values())
    if lease_ttl is None:  # the setting serve uses too, so both kinds of deployment agree
        lease_ttl = settings.loopgate_scheduler_lease_seconds
    service = scheduler_service(settings, db, lease_ttl=timedelta(seconds=lease_ttl))
    signals = StopSignals()
    service.start()
    err.print(f"scheduler {service.holder} running (lease {lease_ttl:g}s); Ctrl-C to stop", soft_wrap=True)
    signals.wait()
    service.stop()
    db.dispose()
    err.print("scheduler stopped", soft_wrap=True)


@scheduler_app.command("status")
def status() -> None:
    """Who holds the scheduler lease, each job's last run, and the effects not done yet."""
    settings = load_settings()
    db = open_database(settings)
    lease = Lease(db, holder="status", ttl=timedelta(seconds=1), clock=utcnow)
    current = lease.current()
    out.print("lease: " + (f"{current[0]} until {current[1]:%Y-%m-%d %H:%M:%S} UTC" if current else "nobody"))
    with db.sessions() as session:
        rows = session.execute(select(JobState).order_by(JobState.job)).scalars().all()
        effects = backlog(session)
    for row in rows:
        ended = f"{row.finished_at:%Y-%m-%d %H:%M:%S}" if row.finished_at else "running"
        out.print(f"{row.job:<24} {row.status:<8} runs {row.runs:<6} last {row.started_at:%Y-%m-%d %H:%M:%S} → {ended}")
    # effects deferred for a token, permission or field never die: their age and error say so
    out.print("effects not done: " + ("none" if not effects else ""))
    for b in effects:
        since = f", oldest queued {b.oldest:%Y-%m-%d %H:%M} UTC" if b.oldest else ""
        error = f"; last error: {b.error[:160]}" if b.error else ""
        out.print(f"  {b.kind:<22} {b.waiting} waiting{since}, {b.dead} failed for good{error}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(scheduler_app, name="scheduler")
