"""``loopgate sync``: pull changed leads, accounts, owners and deals from the CRMs and decide.

On a terminal a progress line per stream shows records as they arrive; the summary goes to
stdout (``--json`` for machines). CRM owner ids that no rep or queue of the policy claims are
listed, so they can be added to ``reps[].crm`` — loopgate never guesses who they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from connectors.errors import ConnectorError
from connectors.sync import SyncReport
from core.ports import CrmPort
from loopgate import crm as crm_jobs
from loopgate.cli.console import err, out
from loopgate.cli.crm_errors import crm_errors
from loopgate.settings import load_settings

__all__ = ["register"]


def sync(
    crm: Annotated[str, typer.Option("--crm", help="salesforce, hubspot, or all configured CRMs.")] = "all",
    full: Annotated[bool, typer.Option("--full", help="Read everything again, not only changes.")] = False,
    policy: Annotated[Path | None, typer.Option(help="Policy file (default: $LOOPGATE_POLICY).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reports as JSON.")] = False,
) -> None:
    """Sync the CRMs incrementally and decide new or changed leads."""
    if crm not in ("salesforce", "hubspot", "all"):
        raise typer.BadParameter(f"'{crm}' is not one of salesforce, hubspot, all", param_hint="--crm")
    settings = load_settings()
    with crm_errors():
        rt = crm_jobs.runtime(settings, crm, policy_path=str(policy) if policy else None)  # type: ignore[arg-type]
    show_progress = err.is_terminal and not as_json
    reports: list[SyncReport] = []
    failed: dict[str, str] = {}
    # each CRM on its own: Salesforce down is no reason to leave HubSpot's leads unrouted
    for system, port in rt.ports.items():
        try:
            reports += (
                _with_progress(rt, full, system, port)
                if show_progress
                else crm_jobs.sync(rt, full=full, only={system: port})
            )
        except ConnectorError as exc:
            failed[system] = str(exc)
            err.print(f"error: {exc}")
    if as_json:
        out.print(json.dumps([r.to_dict() for r in reports] + [{"system": s, "error": e} for s, e in failed.items()],
                             indent=2))  # fmt: skip
    else:
        for report in reports:
            _summary(report)
    if failed:
        raise typer.Exit(2)


def _with_progress(rt: crm_jobs.Runtime, full: bool, system: str, port: CrmPort) -> list[SyncReport]:
    console = Console(stderr=True)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed} records"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def advance(stream: str, count: int) -> None:
            key = f"{system} {stream}"
            if key not in tasks:
                tasks[key] = bar.add_task(key, total=None)
            bar.advance(tasks[key], count)

        return crm_jobs.sync(rt, full=full, progress=advance, only={system: port})


def _summary(report: SyncReport) -> None:
    # event records (Salesforce campaign members) only where the CRM has them
    events = f"{report.events} campaign members, " if report.events else ""
    out.print(
        f"{report.system}: {report.leads} leads, {report.accounts} accounts, {report.owners} owners, "
        f"{report.deals} deals, {events}{report.tombstones} deleted or merged; {report.decided} decided "
        f"({report.seconds:.1f} s)"
    )
    if report.rejected:
        out.print(f"  {len(report.rejected)} records could not be stored (see the log), e.g. {report.rejected[0]}")
    if report.unknown_owners:
        out.print(
            f"  {len(report.unknown_owners)} CRM owner(s) are not in the policy (add them to reps[].crm or "
            "queues[].crm to route by them):"
        )
        for owner_id, (name, leads) in list(report.unknown_owners.items())[:10]:
            out.print(f"    {owner_id} {name or '(unknown name)'}: {leads} lead(s)")


def register(app: typer.Typer) -> None:
    app.command("sync")(sync)
