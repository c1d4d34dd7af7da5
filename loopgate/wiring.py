"""Builds the pieces a command needs from settings: database, policy, clients.

Every command goes through here, so start-up failures look the same everywhere: one line
that says what is wrong and which setting to change.
"""

from __future__ import annotations

from pathlib import Path

from core.errors import PolicyError, PolicyProblem
from core.policy import LoadedPolicy, parse_policy
from core.store.db import Database
from core.store.migrate import require_current
from loopgate.settings import Settings

__all__ = ["open_database", "read_policy"]


def open_database(settings: Settings, *, migrated: bool = True) -> Database:
    """Connect (and, unless asked not to, insist the schema is current)."""
    db = Database(settings.loopgate_database_url)
    db.check_connection()
    if migrated:
        require_current(db)
    return db


def read_policy(path: Path) -> LoadedPolicy:
    """Read and validate a policy file; unreadable files are policy errors too."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PolicyError(str(path), [PolicyProblem(str(path), None, "", f"cannot read: {reason}")]) from None
    return parse_policy(text, str(path))
