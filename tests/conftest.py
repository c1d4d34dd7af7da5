"""Shared fixtures: a migrated database per test (SQLite, or PostgreSQL when
``LOOPGATE_TEST_DATABASE_URL`` is set), a frozen clock, the example policy.

PostgreSQL runs get a database of their own per test session (created from the given URL and
dropped at the end), so parallel runs and helpers never share tables. Each test starts from
empty tables: SQLite copies a migrated template file; PostgreSQL truncates.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import settings
from sqlalchemy import create_engine, text

from core.policy import LoadedPolicy, parse_policy
from core.store.db import Database
from core.store.migrate import upgrade
from core.store.scratch import private_database

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_POLICY = ROOT / "examples" / "policy.yaml"
PG_URL = os.environ.get("LOOPGATE_TEST_DATABASE_URL")

# properties check what is computed, not how fast: hypothesis' 200 ms per-example deadline
# failed them on a busy shared machine (speed is the benchmarks' to measure)
settings.register_profile("loopgate", deadline=None)
settings.load_profile("loopgate")


def pytest_report_header() -> str:
    return f"loopgate store backend: {'postgresql (' + PG_URL + ')' if PG_URL else 'sqlite'}"


@pytest.fixture(scope="session")
def _pg_database() -> Iterator[str | None]:
    if not PG_URL:
        yield None
        return
    with private_database(PG_URL, "loopgate_t") as url:
        db = Database(url)
        upgrade(db)
        db.dispose()
        yield url


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    db.dispose()  # the last connection to close checkpoints the WAL into the file
    assert not path.with_name(path.name + "-wal").exists()
    return path


_TRUNCATE_SKIP = {"alembic_version", "audit_head"}


@pytest.fixture
def db_url(_pg_database: str | None, _sqlite_template: Path, tmp_path: Path) -> Iterator[str]:
    """URL of an empty, migrated database for this test."""
    if _pg_database is None:
        path = tmp_path / "loopgate.db"
        shutil.copy(_sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    engine = create_engine(_pg_database)
    with engine.begin() as conn:
        tables = [
            r[0]
            for r in conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
            if r[0] not in _TRUNCATE_SKIP
        ]
        conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
        conn.execute(text(f"UPDATE audit_head SET seq = 0, hash = '{'0' * 64}'"))
    engine.dispose()
    yield _pg_database


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def now() -> datetime:
    """The frozen 'now' of a test: a Friday afternoon in New York."""
    return datetime(2026, 11, 20, 20, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def example_policy() -> LoadedPolicy:
    return parse_policy(EXAMPLE_POLICY.read_text(), str(EXAMPLE_POLICY))
