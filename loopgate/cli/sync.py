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

from connectors.sync import SyncReport
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
        reports = _with_progress(rt, full) if show_progress else crm_jobs.sync(rt, full=full)
    if as_json:
        out.print(json.dumps([r.to_dict() for r in reports], indent=2))
        return
    for report in reports:
        _summary(report)


def _with_progress(rt: crm_jobs.Runtime, full: bool) -> list[SyncReport]:
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
        reports = []
        for system, port in rt.ports.items():

            def advance(stream: str, count: int, system: str = system) -> None:
                key = f"{system} {stream}"
                if key not in tasks:
                    tasks[key] = bar.add_task(key, total=None)
                bar.advance(tasks[key], count)

            reports += crm_jobs.sync(rt, full=full, progress=advance, only={system: port})
        return reports


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
