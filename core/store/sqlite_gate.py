"""One queue per process for SQLite's single write lock, where the work a person waits on goes first.

SQLite lets one transaction write at a time (loopgate begins every transaction ``IMMEDIATE``).
Threads that find the lock taken do not queue: SQLite's busy handler puts them to sleep for
1, 2, 5 … up to 100 ms and lets them try again, so under a burst a waiter can sleep through
many free moments while later arrivals win — a Slack ack that should take milliseconds took a
second with eight clicks in flight. Inside one process we can do better: threads wait on a
condition for the gate (no sleeping through free moments), and a transaction begun under
:func:`urgent` — the durable insert a Slack ack makes before it answers — is let in before
every ordinary one that is still waiting. Between processes on the same file (replicas of
``loopgate serve``, a CLI run beside them) the one thread each process lets through then takes
an exclusive ``flock`` on a file beside the database: the kernel wakes the next process the
moment the lock is free, where SQLite's busy handler would have it sleep.

A thread that already holds the gate and begins a second transaction (on another connection)
is not queued again: it meets SQLite's own lock, exactly as it would without the gate.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows has no flock: there processes meet in SQLite's busy handler
    fcntl = None  # type: ignore[assignment]

__all__ = ["GatedConnection", "WriteGate", "gate_for", "urgent"]

_urgent: ContextVar[bool] = ContextVar("loopgate_sqlite_urgent", default=False)


@contextmanager
def urgent() -> Iterator[None]:
    """Transactions begun inside this block jump the process's queue of waiting writers."""
    token = _urgent.set(True)
    try:
        yield
    finally:
        _urgent.reset(token)


class WriteGate:
    """A lock that lets urgent waiters in first and knows which thread holds it."""

    def __init__(self, lock_file: str | None = None) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._holder: int | None = None
        self._urgent_waiting = 0
        self._waiting = 0
        self._fd = _open_lock_file(lock_file) if lock_file else None

    def acquire(self) -> bool:
        """Take the gate; False (and nothing taken) if this thread holds it already."""
        me = threading.get_ident()
        urgent = _urgent.get()
        with self._cond:
            if self._holder == me:
                return False
            self._waiting += 1
            if urgent:
                self._urgent_waiting += 1
            try:
                while self._holder is not None or (not urgent and self._urgent_waiting):
                    self._cond.wait()
            finally:
                self._waiting -= 1
                if urgent:
                    self._urgent_waiting -= 1
            self._holder = me
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)  # blocks in the kernel, without the GIL
            except BaseException:
                self._let_go()
                raise
        return True

    @property
    def waiting(self) -> int:
        """Threads of this process waiting for the gate now."""
        with self._cond:
            return self._waiting

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._let_go()

    def _let_go(self) -> None:
        with self._cond:
            self._holder = None
            self._cond.notify_all()


_gates: dict[tuple[int, str], WriteGate] = {}
_gates_lock = threading.Lock()


def gate_for(database: str) -> WriteGate:
    """The one gate of this process for a database file, however many engines open it (a forked
    child gets its own: an inherited lock file would be the parent's lock, not a second one)."""
    path = str(Path(database).resolve())
    key = (os.getpid(), path)
    with _gates_lock:
        if key not in _gates:
            _gates[key] = WriteGate(f"{path}-gate" if fcntl is not None else None)
        return _gates[key]


def _open_lock_file(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:  # a read-only folder: the in-process queue still works, SQLite does the rest
        return None


class GatedConnection(sqlite3.Connection):
    """A sqlite3 connection that gives the gate back when its transaction ends.

    SQLAlchemy ends every transaction (and resets every connection returned to its pool) with
    the DB-API ``commit``/``rollback``, so releasing here covers each way out, errors included.
    """

    gate: WriteGate | None = None
    holds_gate = False

    def begin_immediate(self, execute: Callable[[str], Any]) -> None:
        """Wait for the gate, then ``BEGIN IMMEDIATE`` through ``execute``."""
        if self.gate is not None and not self.holds_gate:
            self.holds_gate = self.gate.acquire()
        try:
            execute("BEGIN IMMEDIATE")
        except BaseException:
            self._give_back()
            raise

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._give_back()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._give_back()

    def _give_back(self) -> None:
        if self.holds_gate and self.gate is not None:
            self.holds_gate = False
            self.gate.release()
