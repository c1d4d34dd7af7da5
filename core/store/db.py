"""Database engines and transactions, the same on SQLite and PostgreSQL.

SQLite is the one-machine default: WAL journal, foreign keys on, and every transaction begins
``IMMEDIATE`` so that two writers queue on the lock instead of failing halfway with
``database is locked`` after reading stale rows. On PostgreSQL, rows that decide who does what
(rotation state, outbox claims, the audit head) are locked with ``FOR UPDATE``; SQLite needs
no row locks because a write transaction already holds the whole database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.errors import StoreError

__all__ = ["Database", "dialect_insert", "safe_url"]


def safe_url(url: str | URL) -> str:
    """The URL as it may appear in logs and errors: never with its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


class Database:
    """An engine plus a session factory; ``transaction()`` is the unit of work."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 5) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise StoreError(
                f"LOOPGATE_DATABASE_URL is not a database URL: {url!r} "
                "(expected e.g. sqlite:///loopgate.db or postgresql+psycopg://user@host/db)"
            ) from None
        self.url = parsed
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise StoreError(f"LOOPGATE_DATABASE_URL uses '{self.dialect}'; loopgate supports sqlite and postgresql")
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.dialect == "postgresql":
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        else:
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        try:
            self.engine: Engine = create_engine(parsed, **kwargs)
        except NoSuchModuleError:
            raise StoreError(
                f"LOOPGATE_DATABASE_URL: no driver for '{parsed.drivername}' "
                "(use postgresql+psycopg://… with the psycopg extra installed)"
            ) from None
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def check_connection(self) -> None:
        """Connect once, so a wrong URL fails with one clear line at start-up."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise StoreError(f"cannot connect to {safe_url(self.url)}: {reason}") from None

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error."""
        with self.sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # take over transaction control from the sqlite3 module so BEGIN IMMEDIATE is ours
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def dialect_insert(session: Session, model: Any) -> Any:
    """An INSERT that knows ``ON CONFLICT`` on this session's database (both dialects have it)."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)
