"""``loopgate writeback``: drain the ``crm.writeback`` outbox into the CRMs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loopgate import crm as crm_jobs
from loopgate.cli.console import out
from loopgate.cli.crm_errors import crm_errors
from loopgate.settings import load_settings

__all__ = ["register"]


def writeback(
    crm: Annotated[str, typer.Option("--crm", help="salesforce, hubspot, or all configured CRMs.")] = "all",
    policy: Annotated[Path | None, typer.Option(help="Policy file (default: $LOOPGATE_POLICY).")] = None,
    max_batches: Annotated[int | None, typer.Option(help="Stop after this many batches.")] = None,
    retry_dead: Annotated[
        bool,
        typer.Option("--retry-dead", help="First put write-backs that failed for good back in the queue (once fixed)."),
    ] = False,
) -> None:
    """Write decisions (fields and owners) back to the CRMs; conflicts are recorded, not overwritten."""
    if crm not in ("salesforce", "hubspot", "all"):
        raise typer.BadParameter(f"'{crm}' is not one of salesforce, hubspot, all", param_hint="--crm")
    settings = load_settings()
    with crm_errors():
        rt = crm_jobs.runtime(settings, crm, policy_path=str(policy) if policy else None)  # type: ignore[arg-type]
        if retry_dead:
            requeued = crm_jobs.requeue_dead_writebacks(rt, crm)  # type: ignore[arg-type]
            out.print(f"write-back: {requeued} failed for good put back in the queue")
        report = crm_jobs.writeback(rt, crm=crm, max_batches=max_batches)  # type: ignore[arg-type]
    out.print(
        f"write-back: {report.done} done, {report.retried} to retry, {report.dead} failed for good"
        + (f", {report.lost_lease} taken over by another worker" if report.lost_lease else "")
    )
    if report.dead:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("writeback")(writeback)
