"""Throwaway PostgreSQL databases for tests and benchmarks: a private database on a given server,
created empty and dropped afterwards (with any connections left open), so parallel runs and
helpers never share tables."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, make_url, text

__all__ = ["private_database"]


@contextmanager
def private_database(server_url: str, prefix: str = "loopgate_scratch") -> Iterator[str]:
    """The URL of a new, empty database on ``server_url``'s server, dropped on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
