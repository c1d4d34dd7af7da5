"""Schema migrations through Alembic, configured in code (no alembic.ini to ship or find).

``upgrade`` brings a database to the newest schema; ``require_current`` is what every
command that uses the store calls first, so an old schema is one clear line, not a
``no such column`` deep inside a transaction.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from core.errors import StoreError
from core.store.db import Database

__all__ = ["current_revision", "head_revisions", "require_current", "upgrade"]

_MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def head_revisions() -> tuple[str, ...]:
    return tuple(ScriptDirectory.from_config(_config()).get_heads())


def current_revision(db: Database) -> tuple[str, ...]:
    db.check_connection()
    with db.engine.connect() as conn:
        return tuple(MigrationContext.configure(conn).get_current_heads())


def upgrade(db: Database, target: str = "heads") -> tuple[str, ...]:
    """Apply every pending migration; returns the revisions now current."""
    db.check_connection()
    cfg = _config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, target)
    return current_revision(db)


def require_current(db: Database) -> None:
    """Fail with one line when the database is not at the schema this code expects."""
    current = set(current_revision(db))
    heads = set(head_revisions())
    if current != heads:
        have = ", ".join(sorted(current)) or "empty"
        raise StoreError(
            f"database schema is at {have}, this loopgate needs {', '.join(sorted(heads))}: run `loopgate db upgrade`"
        )
