"""Column types and JSON binding: what they bind is what SQLAlchemy would have bound, faster."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import DateTime, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from core.store.db import Database, EncodedJson, encode_json, json_text
from core.store.models import OutboxRow, UtcDateTime

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)

TIMES = [
    datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC),
    datetime(2026, 3, 1, 9, 30, tzinfo=UTC),  # no microseconds: still written with six zeros
    datetime(5, 1, 2, tzinfo=UTC),  # a year below 1000 is zero-padded
    datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),  # another zone
    datetime.fromisoformat("2026-03-01T09:30:00+00:00"),
]


@pytest.mark.parametrize("value", TIMES, ids=str)
def test_given_an_aware_time_when_bound_for_sqlite_then_the_text_is_the_dialects_own(value: datetime) -> None:
    dialect = sqlite.dialect()
    reference = DateTime()._cached_bind_processor(dialect)
    assert reference is not None
    expected = reference(value.astimezone(UTC).replace(tzinfo=None))

    bound = UtcDateTime()._cached_bind_processor(dialect)

    assert bound is not None
    assert bound(value) == expected
    assert bound(None) is None


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()], ids=["sqlite", "postgresql"])
def test_given_a_naive_time_when_bound_then_it_is_refused(dialect: object) -> None:
    bound = UtcDateTime()._cached_bind_processor(dialect)  # type: ignore[arg-type]
    assert bound is not None
    with pytest.raises(ValueError, match="naive datetime"):
        bound(datetime(2026, 3, 1, 9, 30))


def test_given_encoded_json_when_stored_then_bound_as_its_text_and_read_back_as_the_value(db: Database) -> None:
    with db.transaction() as s:
        s.execute(
            insert(OutboxRow.__table__),  # type: ignore[arg-type]
            [{"kind": "k", "dedupe_key": "k:1", "payload": EncodedJson('{"b":[1,2],"a":"é"}'),
              "available_at": NOW, "created_at": NOW}],
        )  # fmt: skip
    with db.sessions() as s:
        assert s.execute(select(OutboxRow.payload)).scalar_one() == {"a": "é", "b": [1, 2]}


def test_given_an_engine_without_the_serializer_when_given_encoded_json_then_it_refuses_it() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        json.dumps(EncodedJson("{}"))
    assert encode_json(EncodedJson('{"a":1}')) == '{"a":1}'
    assert encode_json({"a": 1}) == '{"a": 1}'


def test_given_nan_or_infinity_in_a_json_value_when_stored_then_null_on_both_databases(db: Database) -> None:
    # Python's json reads NaN and Infinity in a JSONL line and a CRM field can hold one, but
    # they are not JSON: PostgreSQL refused the row and with it the batch it was in
    payload = {"fields": {"score": float("inf"), "list": [float("nan"), 1.5], "ok": 2}, "t": (float("-inf"),)}
    with db.transaction() as s:
        s.execute(
            insert(OutboxRow.__table__),  # type: ignore[arg-type]
            [{"kind": "k", "dedupe_key": "k:nan", "payload": payload, "available_at": NOW, "created_at": NOW}],
        )
    with db.sessions() as s:
        stored = s.execute(select(OutboxRow.payload)).scalar_one()
    assert stored == {"fields": {"score": None, "list": [None, 1.5], "ok": 2}, "t": [None]}
    assert json_text({"a": float("nan")}, sort_keys=True) == '{"a": null}'
