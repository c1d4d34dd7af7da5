"""``loopgate db``: create or upgrade the schema."""

from __future__ import annotations

import typer

from core.store.db import safe_url
from core.store.migrate import current_revision, head_revisions, upgrade
from loopgate.cli.console import out
from loopgate.settings import load_settings
from loopgate.wiring import open_database

__all__ = ["register"]

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the schema or bring it to the newest version (safe to run again)."""
    settings = load_settings()
    db = open_database(settings, migrated=False)
    before = current_revision(db)
    after = upgrade(db)
    state = "already current" if before == after else f"upgraded from {', '.join(before) or 'empty'}"
    out.print(f"{safe_url(db.url)}: schema {', '.join(after)} ({state})")


@db_app.command("current")
def db_current() -> None:
    """Show the schema version of the database and of this code."""
    settings = load_settings()
    db = open_database(settings, migrated=False)
    have, want = current_revision(db), head_revisions()
    out.print(f"database: {', '.join(have) or 'empty'}; code: {', '.join(want)}")
    if set(have) != set(want):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
