"""``loopgate demo``: the whole loop on this machine, no credentials — see :mod:`loopgate.demo`."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from loopgate.cli.console import err, out
from loopgate.demo.outputs import summary, write_outputs
from loopgate.demo.pipeline import run_demo

__all__ = ["register"]


class _Plain:
    """Progress for pipes and CI logs: one line per finished stage."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.finished: set[str] = set()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if done >= total and stage not in self.finished:
            self.finished.add(stage)
            err.print(f"[{time.perf_counter() - self.started:5.1f}s] {stage}: {done:,}", soft_wrap=True)


class _Bars:
    """Progress on a terminal: a bar per stage."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=max(total, 1))
        self.progress.update(self.tasks[stage], completed=done if total else 1, total=max(total, 1))


def _table(figures: dict[str, Any], seconds: float) -> Table:
    """Short rows, so the table fits an 80-column terminal."""
    table = Table(title="loopgate demo", show_header=True, header_style="bold")
    table.add_column("figure")
    table.add_column("value", justify="right")
    d = figures["decisions"]
    total = sum(d.values()) or 1
    table.add_row("leads (both CRMs)", f"{figures['leads']:,}")
    for action in ("auto", "review", "suppress"):
        table.add_row(f"  {action}", f"{d[action]:,} ({d[action] / total:.0%})")
    for kind, count in figures["reviews"].items():
        table.add_row(f"reviewed in Slack: {kind}", f"{count:,}")
    table.add_row("clicks refused (not allowed)", str(figures["refused_clicks"]))
    table.add_row("overrides and reassigns by reason", "")
    for code, count in figures["overrides_by_reason_code"].items():
        table.add_row(f"  {code}", str(count))
    for kind, row in figures["sla"].items():  # as the weekly digest counts them (an open clock past due is missed)
        share = "–" if row["attainment"] is None else f"{row['attainment']:.1%}"
        table.add_row(f"SLA {kind.replace('_', ' ')} met", share)
        table.add_row("  missed (late or never), running", f"{row['missed']:,}, {row['running']:,}")
    table.add_row("re-routed after a breach", str(figures["reroutes"]))
    for service, calls in figures["api_calls"].items():
        table.add_row(f"API calls: {service}", f"{calls:,}")
    table.add_row("wall time", f"{seconds:.1f} s")
    return table


def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the store, the report and the exports.")] = Path(
        "demo-out"
    ),
    leads: Annotated[int, typer.Option(help="Leads across both CRMs.", min=20, max=20000)] = 2000,
) -> None:
    """Run the whole loop on this machine, no credentials: fake Salesforce, HubSpot and Slack on
    127.0.0.1; sync both CRMs, decide, write back, post escalations; simulated reviewers click
    through Slack; SLA nudges, a breach and a re-route on an accelerated clock; the weekly
    digest. Writes decisions, the audit log, the digest chart and an HTML report to --out."""
    logging.getLogger().setLevel(logging.ERROR)  # SLA steps "run late" on purpose: the clock jumps
    started = time.perf_counter()
    if err.is_terminal:
        columns = (TextColumn("{task.description:<30}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err, transient=False) as bars:
            run = run_demo(out_dir, leads=leads, progress=_Bars(bars))
    else:
        run = run_demo(out_dir, leads=leads, progress=_Plain())
    try:
        figures = summary(run)
        paths = write_outputs(run, figures)
    finally:
        run.db.dispose()
        run.sandbox.stop()
    seconds = time.perf_counter() - started
    out.print(_table(figures, seconds))
    out.print(f"wrote {', '.join(str(p) for p in paths.values())}")
    out.print(f"open {paths['report.html']} in a browser; try it live with `loopgate serve --sandbox`")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
