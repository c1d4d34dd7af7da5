"""Which clicks this process's acks stored in the click inbox, for the lazy work that follows.

Bolt starts a click's lazy function at the same moment as its ack function, in another thread.
Left alone, the lazy function raced the ack: it could record a review whose ack then failed
(Slack told the person "that didn't work" while the lead was approved), and its long
transaction could take the write lock just before the ack's one-row insert and make the ack
wait for it. So the lazy function first waits here for its ack to settle: it records only
clicks whose inbox row was stored, after that row is stored.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

__all__ = ["AcceptedClicks"]


class AcceptedClicks:
    """Outcomes of acks by inbox key; bounded, because a lazy function that gave up waiting
    never takes its entry (the click's row, if stored, goes to the inbox worker)."""

    def __init__(self, keep: int = 4096) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._settled: OrderedDict[str, bool] = OrderedDict()
        self._keep = keep

    def settle(self, key: str, stored: bool) -> None:
        with self._cond:
            self._settled[key] = stored
            self._settled.move_to_end(key)
            while len(self._settled) > self._keep:
                self._settled.popitem(last=False)
            self._cond.notify_all()

    def wait(self, key: str, timeout: float) -> bool | None:
        """True once the click is stored, False if its ack failed, None if not known in time."""
        with self._cond:
            if not self._cond.wait_for(lambda: key in self._settled, timeout):
                return None
            return self._settled.pop(key)
