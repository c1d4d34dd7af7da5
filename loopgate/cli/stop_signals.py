"""Waiting in the main thread for SIGTERM or Ctrl-C, for the long-running commands.

Linux hands a process's signal to any of its threads that does not block it, and CPython runs
the Python handler only when the main thread next executes bytecode. A main thread parked in
``Event.wait()`` without a timeout can therefore sleep through SIGTERM for good — ``serve`` did,
about once in thirty runs on a loaded machine, until the supervisor's SIGKILL. So the handler
only records the signal (taking a lock in a handler can deadlock against the code it
interrupted, ``Event.set`` included) and the main thread looks every ``poll`` seconds.
"""

from __future__ import annotations

import signal
import time
from types import FrameType

__all__ = ["StopSignals"]


class StopSignals:
    """Installed at construction, so a signal during start-up is not lost; :meth:`wait` returns
    the first signal received (at once if it came before)."""

    watched = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received: int | None = None
        for signum in self.watched:
            signal.signal(signum, self._record)

    def _record(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum

    def wait(self, poll: float = 0.2) -> int:
        while self.received is None:
            time.sleep(poll)
        return self.received
