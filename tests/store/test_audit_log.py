"""The audit chain detects any altered, removed or reordered event — on both databases."""

from __future__ import annotations

import io
import json
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import DBAPIError

from core.audit import GENESIS, canonical_body, chain_hash
from core.store import audit_log
from core.store.audit_log import AuditRecord
from core.store.db import Database
from core.store.models import AuditEvent, AuditHead


def _seed(db: Database, now: datetime, n: int = 5) -> None:
    with db.transaction() as s:
        audit_log.append(
            s,
            [
                AuditRecord(now + timedelta(seconds=i), "tester", "decision.made", f"lead:{i}", {"i": i, "note": "é"})
                for i in range(n)
            ],
        )


def _tamper(db: Database, sql: str) -> None:
    """What an attacker with database access would do: lift the guard, edit, restore it."""
    with db.engine.begin() as conn:
        if db.is_postgres:
            conn.exec_driver_sql("ALTER TABLE audit_events DISABLE TRIGGER USER")
        else:
            conn.exec_driver_sql("DROP TRIGGER audit_events_no_update")
            conn.exec_driver_sql("DROP TRIGGER audit_events_no_delete")
        for statement in sql.split(";"):
            conn.exec_driver_sql(statement.replace("%", "%%") if db.is_postgres else statement)
        if db.is_postgres:
            conn.exec_driver_sql("ALTER TABLE audit_events ENABLE TRIGGER USER")


def test_given_appended_events_when_verified_then_the_chain_is_intact(db: Database, now: datetime) -> None:
    _seed(db, now)
    _seed(db, now + timedelta(minutes=1), n=3)
    assert audit_log.verify(db) == (8, None)


def test_given_a_time_with_an_offset_when_appended_then_hashed_in_utc_and_the_chain_verifies(
    db: Database, now: datetime
) -> None:
    new_york = now.astimezone(timezone(timedelta(hours=-5)))  # `--now 2026-11-20T15:00:00-05:00`
    with db.transaction() as s:
        audit_log.append(s, [AuditRecord(new_york, "cli:rev", "policy.published", "policy:x")])
    assert audit_log.verify(db) == (1, None)
    with db.sessions() as s:
        body = s.execute(select(AuditEvent.body)).scalar_one()
    assert json.loads(body)["at"] == "2026-11-20T20:00:00+00:00"


def test_given_an_event_hashed_with_an_offset_before_times_were_utc_when_verified_then_intact(
    db: Database, now: datetime
) -> None:
    at = now.astimezone(timezone(timedelta(hours=-5)))
    body = canonical_body(1, at, "cli:rev", "policy.published", "policy:x", {})  # as append used to hash it
    digest = chain_hash(GENESIS, body)
    with db.transaction() as s:
        s.execute(
            insert(AuditEvent).values(
                seq=1, at=at, actor="cli:rev", kind="policy.published", subject="policy:x", body=body,
                prev_hash=GENESIS, hash=digest,
            )
        )  # fmt: skip
        s.execute(update(AuditHead).values(seq=1, hash=digest))
    assert audit_log.verify(db) == (1, None)


def test_given_an_event_when_updated_through_sql_then_the_database_refuses(db: Database, now: datetime) -> None:
    _seed(db, now)
    with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2"))
    with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 2"))


@pytest.mark.parametrize(
    ("sql", "bad_seq", "reason"),
    [
        ("UPDATE audit_events SET body = replace(body, '\"i\":2', '\"i\":9') WHERE seq = 3", 3, "altered"),
        ("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2", 2, "column 'actor'"),
        ("DELETE FROM audit_events WHERE seq = 3", 3, "removed"),
        ("DELETE FROM audit_events WHERE seq = 5", 5, "removed from the end"),
        (
            "UPDATE audit_events SET seq = -2 WHERE seq = 2;UPDATE audit_events SET seq = 2 WHERE seq = 3;"
            "UPDATE audit_events SET seq = 3 WHERE seq = -2",
            2,
            "reordered",
        ),
    ],
)
def test_given_a_tampered_chain_when_verified_then_the_first_bad_event_is_named(
    db: Database, now: datetime, sql: str, bad_seq: int, reason: str
) -> None:
    _seed(db, now)
    _tamper(db, sql)
    _checked, problem = audit_log.verify(db)
    assert problem is not None
    assert problem.seq == bad_seq, str(problem)
    assert reason in problem.reason


def test_given_events_when_exported_then_jsonl_and_csv_carry_hashes_and_respect_since(
    db: Database, now: datetime
) -> None:
    _seed(db, now)
    buf = io.StringIO()
    assert audit_log.export(db, buf, since=now + timedelta(seconds=3), fmt="jsonl") == 2
    rows = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert [r["seq"] for r in rows] == [4, 5]
    assert rows[0]["data"] == {"i": 3, "note": "é"} and len(rows[0]["hash"]) == 64
    buf = io.StringIO()
    assert audit_log.export(db, buf, since=None, fmt="csv") == 5
    header, first = buf.getvalue().splitlines()[:2]
    assert header == "seq,at,actor,kind,subject,data,prev_hash,hash"
    assert first.startswith("1,")


def test_given_concurrent_writers_when_appending_then_one_unbroken_chain(db: Database, now: datetime) -> None:
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for i in range(10):
                with db.transaction() as s:
                    audit_log.append(s, [AuditRecord(now, f"w{k}", "test", f"{k}:{i}")])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert audit_log.verify(db) == (40, None)


def test_given_kinds_when_exported_then_only_those_events_keep_their_chain_hashes(db: Database, now: datetime) -> None:
    _seed(db, now, n=3)
    with db.transaction() as s:
        audit_log.append(
            s, [AuditRecord(now, "writeback", "crm.owner_refused", "lead:salesforce:00Q1", {"owner": "005"})]
        )
    everything, only = io.StringIO(), io.StringIO()
    audit_log.export(db, everything, since=None, fmt="jsonl")
    assert audit_log.export(db, only, since=None, fmt="jsonl", kinds=["crm.owner_refused"]) == 1
    [row] = [json.loads(line) for line in only.getvalue().splitlines()]
    assert row["kind"] == "crm.owner_refused" and row == json.loads(everything.getvalue().splitlines()[-1])
