"""``loopgate serve``: the Slack bot and the background workers, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import faulthandler
import logging
from pathlib import Path
from typing import Annotated

import typer

from core.sla import PolicySlaClock
from loopgate.cli.console import err
from loopgate.cli.stop_signals import StopSignals
from loopgate.logs import configure_logging
from loopgate.runtime import Service, compose
from loopgate.scheduling import ConnectorsByPolicy, scheduler_service, writeback_worker
from loopgate.settings import load_settings
from loopgate.wiring import deciding_policy, open_database

__all__ = ["register"]

# longer than a clean stop takes (the front waits 10 s for requests in flight), shorter than a
# supervisor's grace period before SIGKILL (Kubernetes: 30 s)
STOP_REPORT_SECONDS = 15


def serve(
    host: Annotated[str, typer.Option(envvar="LOOPGATE_HOST", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(envvar="LOOPGATE_PORT", help="Port (0 picks a free one).", min=0, max=65535)
    ] = 3000,
    policy: Annotated[
        Path | None, typer.Option(help="Policy file (default: the published champion, else $LOOPGATE_POLICY).")
    ] = None,
    outbox: Annotated[
        bool,
        typer.Option(
            "--outbox/--no-outbox",
            help="Run the outbox worker in this process: record acknowledged clicks, post and update Slack messages.",
        ),
    ] = True,
    poll: Annotated[float, typer.Option(help="Seconds between outbox polls when idle.", min=0.05)] = 1.0,
    scheduler: Annotated[
        bool,
        typer.Option(
            "--scheduler/--no-scheduler",
            help="Also run the scheduler (CRM sync, SLA timers, focus lists, digest); one replica at a time leads.",
        ),
    ] = True,
    sandbox: Annotated[
        bool,
        typer.Option(
            "--sandbox",
            help="No credentials: run against local fake Salesforce, HubSpot and Slack, and serve a web page "
            "(http://HOST:PORT) showing the Slack channel, the modals and the CRM records.",
        ),
    ] = False,
    sandbox_leads: Annotated[int, typer.Option(help="With --sandbox: leads to seed.", min=10)] = 120,
    sandbox_dir: Annotated[Path, typer.Option(help="With --sandbox: folder for its store.")] = Path("demo-out/sandbox"),
) -> None:
    """Run the Slack bot: HTTP on HOST:PORT (/slack/events, /healthz), or Socket Mode when
    SLACK_APP_TOKEN is set; the outbox worker posts escalations and updates; with a CRM configured
    a second worker writes decisions back to it; the scheduler runs CRM sync, SLA timers, focus
    lists, the weekly digest and the learning jobs (on one replica at a time). With --sandbox, all
    of it against local fake services, played from a web page."""
    if sandbox:
        _serve_sandbox(host, port, sandbox_dir, sandbox_leads, scheduler)
        return
    settings = load_settings()
    settings.require_slack()  # before anything else, so a missing token is the one line shown
    db = open_database(settings)
    # the bot follows the published champion (people, teams, reason codes; a promote or rollback
    # reaches it within LOOPGATE_POLICY_FOLLOW_SECONDS); the scheduler and the write-back worker
    # re-read the active policy per run. An explicit --policy file is used as given.
    loaded = deciding_policy(db, settings, policy)
    configure_logging(settings.loopgate_log_level, settings.secret_values())
    connectors = ConnectorsByPolicy(settings)
    writeback = writeback_worker(settings, db, connectors, poll=poll) if outbox else None
    services: list[Service] = [writeback] if writeback is not None else []
    if scheduler:
        services.append(scheduler_service(settings, db, connectors=connectors))
    runtime = compose(
        settings,
        db,
        loaded,
        host=host,
        port=port,
        outbox=outbox,
        poll=poll,
        services=services,
        review_clock_for=PolicySlaClock,
        follow_champion=None if policy is not None else settings.loopgate_policy_follow_seconds,
    )
    signals = StopSignals()
    runtime.start()
    where = f"{runtime.front.url}/slack/events" if runtime.mode == "http" else "Socket Mode"
    err.print(
        f"loopgate serving {where} (health {runtime.front.url}/healthz); "
        f"outbox worker {'on' if outbox else 'off'}; CRM write-back {'on' if writeback else 'off'}; "
        f"scheduler {'campaigning' if scheduler else 'off'}; "
        f"policy {loaded.version}",
        soft_wrap=True,
    )
    signals.wait()
    err.print("stopping: finishing requests and effects in flight", soft_wrap=True)
    # a stop that hangs leaves the supervisor only SIGKILL; first say where every thread is
    faulthandler.dump_traceback_later(STOP_REPORT_SECONDS, exit=False)
    try:
        runtime.stop()
    finally:
        faulthandler.cancel_dump_traceback_later()
    err.print("stopped", soft_wrap=True)


def _serve_sandbox(host: str, port: int, workdir: Path, leads: int, scheduler: bool) -> None:
    from loopgate.demo.live import LiveSandbox

    logging.getLogger().setLevel(logging.WARNING)
    signals = StopSignals()
    live = LiveSandbox(workdir, host=host, port=port, leads=leads, scheduler=scheduler).start()
    err.print(f"loopgate sandbox serving {live.url} (fake Salesforce, HubSpot and Slack; store in {workdir})",
              soft_wrap=True)  # fmt: skip
    signals.wait()
    err.print("stopping", soft_wrap=True)
    live.stop()
    err.print("stopped", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
