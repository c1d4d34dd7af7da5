"""``loopgate audit``: verify the hash chain, export events."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated

import typer

from core.store import audit_log
from loopgate.cli.console import err, out
from loopgate.settings import load_settings
from loopgate.wiring import open_database

__all__ = ["register"]

audit_app = typer.Typer(help="The append-only audit log.", no_args_is_help=True)


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


@audit_app.command("verify")
def verify() -> None:
    """Check every event's hash; exit 1 naming the first altered, removed or reordered event."""
    db = open_database(load_settings())
    checked, problem = audit_log.verify(db)
    if problem is not None:
        err.print(f"audit chain BROKEN after {checked} good events: {problem}")
        raise typer.Exit(1)
    out.print(f"audit chain intact: {checked} events verified")


@audit_app.command("export")
def export(
    since: Annotated[
        str | None, typer.Option(help="Only events at or after this date (YYYY-MM-DD) or ISO time.")
    ] = None,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="jsonl or csv.")] = ExportFormat.jsonl,
    kind: Annotated[
        list[str] | None,
        typer.Option(help="Only events of this kind (repeatable), e.g. crm.owner_refused, decision.reviewed."),
    ] = None,
) -> None:
    """Write audit events to stdout, with their hashes (for auditors and BI tools)."""
    db = open_database(load_settings())
    count = audit_log.export(db, sys.stdout, since=_parse_since(since), fmt=fmt.value, kinds=kind or ())
    err.print(f"{count} events exported")


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"'{value}' is not a date (YYYY-MM-DD) or ISO time", param_hint="--since") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
