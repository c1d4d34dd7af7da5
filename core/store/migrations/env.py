"""Alembic environment: runs on the connection handed over by core.store.migrate."""

from __future__ import annotations

from alembic import context

from core.store.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only through `alembic` CLI by hand
    raise RuntimeError("run migrations through `loopgate db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
