"""The migrations own the schema; the models must describe exactly what they create."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from core.store.db import Database
from core.store.migrate import head_revisions, require_current, upgrade
from core.store.models import Base


def test_given_the_migrations_when_listing_heads_then_there_is_exactly_one() -> None:
    assert len(head_revisions()) == 1, "parallel migrations need a merge revision"


def test_given_a_migrated_database_when_compared_with_the_models_then_nothing_differs(db: Database) -> None:
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_given_a_current_database_when_upgraded_again_then_nothing_changes(db: Database) -> None:
    assert upgrade(db) == head_revisions()
    require_current(db)
