"""``execute_many`` builds the DBAPI parameters itself: what lands in the tables must be exactly
what ``session.execute(statement, rows)`` would have stored, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, cast, select, update
from sqlalchemy import Text as TextType

from core.store.db import Database, EncodedJson, _bulk_plan, execute_many, insert_for
from core.store.models import OutboxRow

OUTBOX: Table = OutboxRow.__table__  # type: ignore[assignment]


def _rows(prefix: str, now: datetime) -> list[dict[str, Any]]:
    later = now + timedelta(minutes=5)
    payloads: list[Any] = [{"decision_pk": 1}, None, {"nested": [1, 2.5, None, "Zoë"]}, EncodedJson('{"a": 1}'), []]
    return [
        {
            "kind": "crm.writeback",
            "dedupe_key": f"{prefix}:{i}",
            "payload": payload,
            "status": "pending",
            "attempts": i,
            "available_at": now if i % 2 else later,  # the same object row after row, and not
            "created_at": now,
            "result": None if i % 2 else {"ok": True},
        }
        for i, payload in enumerate(payloads)
    ]


def _stored(db: Database) -> dict[str, tuple[Any, ...]]:
    columns = [c for c in OUTBOX.c if c.name not in ("pk", "dedupe_key")]
    # JSON as the database holds it (its text on SQLite), not as read back and decoded
    texts = [cast(c, TextType) if c.name in ("payload", "result") else c for c in columns]
    with db.sessions() as session:
        rows = session.execute(select(OUTBOX.c.dedupe_key, *texts).order_by(OUTBOX.c.dedupe_key)).all()
    return {row[0].split(":", 1)[1] + ":" + row[0].split(":", 1)[0]: tuple(row[1:]) for row in rows}


def test_given_rows_of_every_kind_of_value_when_inserted_by_execute_many_then_stored_as_sqlalchemy_stores_them(
    db: Database, now: datetime
) -> None:
    statement = insert_for(db.dialect, OUTBOX).on_conflict_do_nothing(index_elements=["dedupe_key"])
    with db.transaction() as session:
        keys = tuple(sorted(_rows("fast", now)[0]))
        assert _bulk_plan(statement, session.get_bind().dialect, keys) is not None  # not SQLAlchemy's own path
        execute_many(session, statement, _rows("fast", now))
        session.execute(statement, _rows("orm", now))
        execute_many(session, statement, _rows("fast", now))  # conflicts: nothing more

    stored = _stored(db)
    assert len(stored) == 10
    for i in range(5):
        assert stored[f"{i}:fast"] == stored[f"{i}:orm"]


def test_given_an_update_with_a_constant_when_run_by_execute_many_then_the_constant_and_the_values_are_bound(
    db: Database, now: datetime
) -> None:
    with db.transaction() as session:
        session.execute(insert_for(db.dialect, OUTBOX), _rows("fast", now) + _rows("orm", now))
    statement = (
        update(OUTBOX)
        .where(OUTBOX.c.dedupe_key == bindparam("b_key"))
        .values(status="done", done_at=bindparam("b_at"), last_error=bindparam("b_error"))
    )

    def params(prefix: str) -> list[dict[str, Any]]:
        return [{"b_key": f"{prefix}:{i}", "b_at": now, "b_error": f"e{i}" if i else None} for i in range(5)]

    with db.transaction() as session:
        assert _bulk_plan(statement, session.get_bind().dialect, ("b_at", "b_error", "b_key")) is not None
        execute_many(session, statement, params("fast"))
        session.execute(statement, params("orm"))

    stored = _stored(db)
    for i in range(5):
        assert stored[f"{i}:fast"] == stored[f"{i}:orm"]
        assert stored[f"{i}:fast"][2] == "done"


def test_given_rows_leaving_python_defaults_to_fill_when_inserted_by_execute_many_then_the_defaults_apply(
    db: Database, now: datetime
) -> None:
    rows = [
        {"kind": "k", "dedupe_key": f"d:{i}", "payload": {}, "available_at": now, "created_at": now} for i in range(3)
    ]
    with db.transaction() as session:
        execute_many(session, insert_for(db.dialect, OUTBOX), rows)  # status and attempts: the models' defaults

    with db.sessions() as session:
        assert session.execute(select(OUTBOX.c.status, OUTBOX.c.attempts)).all() == [("pending", 0)] * 3


def test_given_a_sqlalchemy_without_the_inner_attributes_when_executing_many_then_the_public_path_stores_the_rows(
    db: Database, now: datetime, monkeypatch: Any
) -> None:
    import core.store.db as db_module

    def missing(*_: Any) -> None:
        raise AttributeError("'SQLCompiler' object has no attribute '_bind_processors'")

    monkeypatch.setattr(db_module, "_compile_plan", missing)
    _bulk_plan.cache_clear()
    statement = insert_for(db.dialect, OUTBOX).on_conflict_do_nothing(index_elements=["dedupe_key"])
    try:
        with db.transaction() as session:
            execute_many(session, statement, _rows("slow", now))
    finally:
        _bulk_plan.cache_clear()
    assert len(_stored(db)) == len(_rows("slow", now))
