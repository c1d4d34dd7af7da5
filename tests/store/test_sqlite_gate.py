"""SQLite writers queue in the process's gate (urgent ones first), hold a lock other processes
see, and give it back however their transaction ends; readers never wait for a writer."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from core.store import outbox
from core.store.db import Database
from core.store.migrate import upgrade
from core.store.models import OutboxRow
from core.store.sqlite_gate import gate_for


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'gate.db'}")
    upgrade(database)
    yield database
    database.dispose()


def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def _keys(db: Database) -> list[str]:
    with db.sessions() as s:
        return list(s.execute(select(OutboxRow.dedupe_key).order_by(OutboxRow.pk)).scalars())


def test_given_a_writer_holding_the_gate_when_an_urgent_write_arrives_after_an_ordinary_one_then_it_goes_first(
    sqlite_db: Database, now: datetime
) -> None:
    gate = gate_for(str(sqlite_db.url.database))
    release = threading.Event()

    def holder() -> None:
        with sqlite_db.transaction() as s:
            outbox.enqueue(s, "t", "holder", {}, now=now)
            release.wait(10)

    def write(key: str, *, urgent: bool) -> None:
        with sqlite_db.transaction(urgent=urgent) as s:
            outbox.enqueue(s, "t", key, {}, now=now)

    threads = [threading.Thread(target=holder)]
    threads[0].start()
    _until(lambda: len(threads) == 1 and gate.waiting == 0 and not _is_free(sqlite_db))
    threads.append(threading.Thread(target=write, args=("ordinary",), kwargs={"urgent": False}))
    threads[1].start()
    _until(lambda: gate.waiting == 1)
    threads.append(threading.Thread(target=write, args=("urgent",), kwargs={"urgent": True}))
    threads[2].start()
    _until(lambda: gate.waiting == 2)
    release.set()
    for t in threads:
        t.join(10)
    assert _keys(sqlite_db) == ["holder", "urgent", "ordinary"]


def _is_free(db: Database) -> bool:
    """Whether another process could take the write lock now (the gate's lock file is free)."""
    fd = os.open(f"{Path(str(db.url.database)).resolve()}-gate", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def test_given_a_write_in_progress_then_other_processes_see_the_lock_and_see_it_freed_after_commit_or_error(
    sqlite_db: Database, now: datetime
) -> None:
    with sqlite_db.transaction() as s:
        outbox.enqueue(s, "t", "a", {}, now=now)
        assert not _is_free(sqlite_db)
    assert _is_free(sqlite_db)
    with pytest.raises(RuntimeError), sqlite_db.transaction() as s:
        outbox.enqueue(s, "t", "b", {}, now=now)
        raise RuntimeError("boom")
    assert _is_free(sqlite_db)
    assert gate_for(str(sqlite_db.url.database)).waiting == 0
    assert _keys(sqlite_db) == ["a"]


def test_given_a_write_in_progress_when_another_thread_reads_then_it_neither_waits_nor_sees_uncommitted_rows(
    sqlite_db: Database, now: datetime
) -> None:
    seen: list[list[str]] = []
    with sqlite_db.transaction() as s:
        outbox.enqueue(s, "t", "uncommitted", {}, now=now)
        s.flush()
        reader = threading.Thread(target=lambda: seen.append(_keys(sqlite_db)))
        reader.start()
        reader.join(5)
        assert not reader.is_alive(), "the read waited for the writer"
    assert seen == [[]]
    assert _keys(sqlite_db) == ["uncommitted"]


def test_given_one_database_file_then_every_engine_of_the_process_shares_one_gate(tmp_path: Path) -> None:
    path = tmp_path / "one.db"
    assert gate_for(str(path)) is gate_for(str(tmp_path / "." / "one.db"))
    assert gate_for(str(path)) is not gate_for(str(tmp_path / "other.db"))
