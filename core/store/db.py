"""Database engines and transactions, the same on SQLite and PostgreSQL.

SQLite is the one-machine default: WAL journal, foreign keys on, and every ``transaction()``
begins ``IMMEDIATE`` so that two writers queue on the lock instead of failing halfway with
``database is locked`` after reading stale rows; inside one process they queue in
:mod:`core.store.sqlite_gate`. ``sessions()`` is for reading only: it begins a plain deferred
transaction, which in WAL mode neither waits for a writer nor holds one up.

On PostgreSQL, rows that decide who does what (rotation state, outbox claims, the audit head)
are locked with ``FOR UPDATE``; SQLite needs no row locks because a write transaction already
holds the whole database.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Engine, Executable, Row, create_engine, event, make_url, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.errors import StoreError
from core.store import sqlite_gate
from core.store.sqlite_gate import GatedConnection, gate_for

__all__ = [
    "IN_LIMIT",
    "Database",
    "EncodedJson",
    "dialect_insert",
    "encode_json",
    "execute_many",
    "in_chunks",
    "insert_for",
    "json_text",
    "safe_url",
]

T = TypeVar("T")


def safe_url(url: str | URL) -> str:
    """The URL as it may appear in logs and errors: never with its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


class EncodedJson:
    """A value for a JSON column that is already JSON text: bound as that text, not encoded
    again. For a value the caller has to encode anyway (to hash it: a decision's contract)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def json_text(value: Any, **options: Any) -> str:
    """``json.dumps`` that always writes JSON: a NaN or ±Infinity (Python's json reads them in a
    JSONL line, a CRM field can hold one) is written as null. PostgreSQL refuses those tokens,
    so one such value in a lead's fields stopped the whole batch from being stored."""
    try:
        return json.dumps(value, allow_nan=False, **options)
    except ValueError:
        return json.dumps(_finite(value), allow_nan=False, **options)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def encode_json(value: Any) -> str:
    """The engines' JSON serializer: :class:`EncodedJson` as it is, anything else :func:`json_text`.
    (An engine without it refuses an ``EncodedJson`` as not serialisable: never double-encodes.)"""
    if type(value) is EncodedJson:
        return value.text
    return json_text(value)


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
        self.pool_size = pool_size
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise StoreError(f"LOOPGATE_DATABASE_URL uses '{self.dialect}'; loopgate supports sqlite and postgresql")
        kwargs: dict[str, Any] = {"echo": echo, "future": True, "json_serializer": encode_json}
        if self.dialect == "postgresql":
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        else:
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False, "factory": GatedConnection}
        try:
            self.engine: Engine = create_engine(parsed, **kwargs)
        except NoSuchModuleError:
            raise StoreError(
                f"LOOPGATE_DATABASE_URL: no driver for '{parsed.drivername}' "
                "(use postgresql+psycopg://… with the psycopg extra installed)"
            ) from None
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)
        # reads never write (every write goes through transaction()), so on SQLite they need no lock
        reader = self.engine.execution_options(loopgate_read_only=True)
        self.sessions = sessionmaker(reader, expire_on_commit=False, autoflush=False)
        self._writes = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._alone: Engine | None = None  # see execute_alone()

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
    def transaction(self, *, urgent: bool = False) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error.

        ``urgent`` is for the short write a person is waiting on (a Slack ack): on SQLite it
        goes before this process's other waiting writers (see :mod:`core.store.sqlite_gate`)."""
        with sqlite_gate.urgent() if urgent else nullcontext(), self._writes() as session, session.begin():
            yield session

    def execute_alone(self, statement: Executable) -> list[Row[Any]]:
        """One idempotent statement in a transaction of its own, for the write a person is
        waiting on (a Slack ack); returns its rows.

        On PostgreSQL a ``transaction()`` costs four round trips: the pool's ping, ``BEGIN``, the
        statement, ``COMMIT`` — and each wait gives the interpreter to the busy outbox worker, to
        be had back only at its next switch. One statement needs none of the other three: it
        runs in autocommit, on a connection taken without a ping. A connection that turns out to
        be dead (the server restarted) is dropped and the statement sent once more on a fresh
        one; whether the first one committed is then unknown, which is why the statement must be
        idempotent (an ``INSERT … ON CONFLICT DO NOTHING``). On SQLite, which has no round trips,
        it is an urgent ``transaction()``."""
        if not self.is_postgres:
            with self.transaction(urgent=True) as session:
                return list(session.execute(statement).all())
        if self._alone is None:
            self._alone = create_engine(
                self.url,
                future=True,
                json_serializer=encode_json,
                isolation_level="AUTOCOMMIT",
                pool_size=2,
                max_overflow=self.pool_size,
            )
        for attempt in (1, 2):
            try:
                with self._alone.connect() as conn:
                    return list(conn.execute(statement).all())
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()
        if self._alone is not None:
            self._alone.dispose()


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
            if isinstance(dbapi_conn, GatedConnection):  # writers of one process queue in it, not in sleeps
                dbapi_conn.gate = gate_for(engine.url.database)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        dbapi_conn = conn.connection.dbapi_connection
        if conn.get_execution_options().get("loopgate_read_only"):
            conn.exec_driver_sql("BEGIN")
        elif isinstance(dbapi_conn, GatedConnection):
            dbapi_conn.begin_immediate(conn.exec_driver_sql)
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def dialect_insert(session: Session, model: Any) -> Any:
    """An INSERT that knows ``ON CONFLICT`` on this session's database (both dialects have it)."""
    return insert_for(session.get_bind().dialect.name, model)


def insert_for(dialect: str, model: Any) -> Any:
    """:func:`dialect_insert` by dialect name, for a statement built before any session exists."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


IN_LIMIT = 2000  # values per ``IN (…)``: well inside SQLite's bound-parameter limit


def in_chunks(values: Sequence[T], size: int = IN_LIMIT) -> list[Sequence[T]]:
    """``values`` in slices of ``size``, one ``IN (…)`` query each."""
    return [values[i : i + size] for i in range(0, len(values), size)]


def execute_many(session: Session, statement: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """``session.execute(statement, rows)`` for an executemany without ``RETURNING``, with each
    row's DBAPI parameters built here rather than by SQLAlchemy.

    SQLAlchemy builds every row's parameters bind by bind (``construct_params``, then each
    bind's type processor, in generic code): for the ~8 rows a sync writes per lead (lead,
    decision, audit event, outbox rows, clock, marks) that was a fifth of a first sync
    (bench/sync.py, n=10,000). Here the statement is compiled once per (statement, dialect,
    row keys) — build statements once to profit — and a row becomes the tuple (SQLite) or dict
    (PostgreSQL) the driver takes in one pass, through the same processors, a processor's
    result reused while a column holds the very object of the row before (a batch's ``now``).
    The SQL and the values the driver sees are SQLAlchemy's own. Every row must have the first
    row's keys. Statements this does not take as they are (Python-side defaults to fill,
    expanding ``IN``, escaped bind names, ``RETURNING``) go to ``session.execute``."""
    if not rows:
        return
    connection = session.connection()
    plan = _bulk_plan(statement, connection.dialect, tuple(sorted(rows[0])))
    if plan is None:
        session.execute(statement, list(rows))
    else:
        connection.exec_driver_sql(plan.sql, plan.parameters(rows))


@dataclass(frozen=True, slots=True)
class _BulkPlan:
    """A compiled executemany: its SQL, and per DBAPI parameter where its value comes from."""

    sql: str
    names: tuple[str, ...]  # positional order, or the dict keys
    keys: tuple[str | None, ...]  # the row key of each parameter; None: a constant of the statement
    constants: tuple[Any, ...]  # the processed constant, where ``keys`` is None
    processors: tuple[Callable[[Any], Any] | None, ...]
    sequence: Callable[[list[Any]], Any] | None  # positional: the driver's sequence type; else dicts

    def parameters(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        keys, constants, processors = self.keys, self.constants, self.processors
        width = range(len(keys))
        seen: list[Any] = [_UNSEEN] * len(keys)  # per parameter, the last value processed …
        done: list[Any] = [None] * len(keys)  # … and what its processor made of it
        out = []
        for row in rows:
            values = []
            for i in width:
                key = keys[i]
                if key is None:
                    values.append(constants[i])
                    continue
                value = row[key]
                process = processors[i]
                if process is not None:
                    if value is not seen[i]:
                        seen[i], done[i] = value, process(value)
                    value = done[i]
                values.append(value)
            out.append(
                self.sequence(values) if self.sequence is not None else dict(zip(self.names, values, strict=True))
            )
        return out


_UNSEEN = object()


@functools.lru_cache(maxsize=256)
def _bulk_plan(statement: Any, dialect: Dialect, keys: tuple[str, ...]) -> _BulkPlan | None:
    # the plan reads the compiled statement's inner attributes, which SQLAlchemy does not
    # promise to keep: a release without one of them takes the slower, public path
    try:
        return _compile_plan(statement, dialect, keys)
    except AttributeError:
        return None


def _compile_plan(statement: Any, dialect: Dialect, keys: tuple[str, ...]) -> _BulkPlan | None:
    compiled: Any = statement.compile(dialect=dialect, column_keys=list(keys), for_executemany=True)
    if (
        compiled.insert_prefetch
        or compiled.update_prefetch
        or compiled.literal_execute_params
        or compiled.post_compile_params
        or compiled.escaped_bind_names
        or compiled.effective_returning
        or compiled.schema_translate_map
        or compiled._collected_params  # values of text() clauses, none of ours
    ):
        return None
    by_name = {name: bind for bind, name in compiled.bind_names.items()}
    names = tuple(compiled.positiontup) if compiled.positional else tuple(by_name)
    processors = compiled._bind_processors
    plan_keys: list[str | None] = []
    constants: list[Any] = []
    for name in names:
        bind = by_name[name]
        if bind.key in keys or name in keys:
            plan_keys.append(bind.key if bind.key in keys else name)
            constants.append(None)
        elif bind.required:
            return None  # SQLAlchemy says which value is missing
        else:
            value = bind.effective_value if bind.callable else bind.value
            process = processors.get(name)
            plan_keys.append(None)
            constants.append(process(value) if process is not None else value)
    return _BulkPlan(
        sql=compiled.string,
        names=names,
        keys=tuple(plan_keys),
        constants=tuple(constants),
        processors=tuple(None if k is None else processors.get(n) for n, k in zip(names, plan_keys, strict=True)),
        sequence=dialect.execute_sequence_format if compiled.positional else None,
    )
