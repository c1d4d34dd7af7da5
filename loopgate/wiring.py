"""Builds the pieces a command needs from settings: database, policy, clients.

Every command goes through here, so start-up failures look the same everywhere: one line
that says what is wrong and which setting to change.

What the runtime decides with (for the bot, the connectors, the scheduler):

* :func:`active_policy` — the published champion; without one, the ``LOOPGATE_POLICY`` file.
* :func:`build_engine` — a :class:`DecisionEngine` for that policy with the newest fitted
  calibration from the store. Build it once per batch/job (it is cheap) so that a publish,
  promote, rollback or calibration refit takes effect on the next batch without a restart.
  A published challenger needs nothing from callers: ``decide_pending`` shadows it itself.
* :func:`active_engine` — both at once; a CRM sync is given it to build its engine again when
  the champion changes while it runs (``connectors.sync``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from core.engine import DecisionEngine
from core.errors import PolicyError, PolicyProblem, StoreError
from core.policy import LoadedPolicy, parse_policy
from core.store.calibration import load_calibration
from core.store.db import Database
from core.store.migrate import require_current
from core.store.policies import champion, load_stored
from loopgate.settings import ConfigError, Settings

__all__ = [
    "active_engine",
    "active_policy",
    "build_engine",
    "deciding_policy",
    "open_database",
    "read_policy",
]

log = logging.getLogger(__name__)


def open_database(settings: Settings, *, migrated: bool = True) -> Database:
    """Connect (and, unless asked not to, insist the schema is current).

    A SQLite file that isn't there is refused before connecting: connecting would create an
    empty file (and its lock file) in whatever folder the command was run from by mistake."""
    if migrated:
        _require_sqlite_file(settings.loopgate_database_url)
    db = Database(settings.loopgate_database_url)
    db.check_connection()
    if migrated:
        require_current(db)
    return db


def _require_sqlite_file(url: str) -> None:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # Database() says what is wrong with it
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:" or path.startswith("file:"):
        return
    if not Path(path).exists():
        raise StoreError(f"no loopgate database at {path}: run `loopgate db upgrade` to create it")


def read_policy(path: Path, *, setting: str | None = None) -> LoadedPolicy:
    """Read and validate a policy file; unreadable files are policy errors too — or, when the
    path came from ``setting`` (``LOOPGATE_POLICY``), a configuration error naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if setting is not None:
            raise ConfigError(f"{setting}: cannot read {path}: {reason}") from None
        raise PolicyError(str(path), [PolicyProblem(str(path), None, "", f"cannot read: {reason}")]) from None
    return parse_policy(text, str(path))


def active_policy(db: Database, settings: Settings) -> LoadedPolicy:
    """The policy that decides now: the published champion, else the ``LOOPGATE_POLICY`` file.

    When both exist and differ, the champion wins and a warning says so (a file edited
    without publishing must not silently take effect, nor be silently ignored).
    """
    with db.sessions() as session:
        version = champion(session)
        published = load_stored(session, version) if version is not None else None
    path = settings.loopgate_policy
    if published is None:
        if path is None:
            raise ConfigError(
                "no policy: none is published (`loopgate policy publish FILE`) and LOOPGATE_POLICY is not set"
            )
        return read_policy(path, setting="LOOPGATE_POLICY")
    if path is not None:
        try:
            local = read_policy(path)
        except PolicyError as exc:
            log.warning(
                "LOOPGATE_POLICY %s is invalid (%s); deciding with the published champion %s",
                path,
                exc.problems[0] if exc.problems else exc,
                published.version,
            )
        else:
            if local.version != published.version:
                log.warning(
                    "LOOPGATE_POLICY %s (version %s) differs from the published champion %s; deciding with the "
                    "champion — publish the file with `loopgate policy publish` to use it",
                    path,
                    local.version,
                    published.version,
                )
    return published


def deciding_policy(db: Database, settings: Settings, explicit: Path | None = None) -> LoadedPolicy:
    """The policy a command decides with: ``--policy`` when given (an explicit choice, e.g. a
    dry run of a file), else the active one (:func:`active_policy`)."""
    return read_policy(explicit) if explicit is not None else active_policy(db, settings)


def build_engine(db: Database, loaded: LoadedPolicy) -> DecisionEngine:
    """A decision engine for ``loaded`` with the newest calibration fitted from labels."""
    with db.sessions() as session:
        calibration = load_calibration(session)
    return DecisionEngine(loaded, calibration=calibration)


def active_engine(db: Database, settings: Settings) -> DecisionEngine:
    """The engine of the active policy (:func:`active_policy`, :func:`build_engine`)."""
    return build_engine(db, active_policy(db, settings))
