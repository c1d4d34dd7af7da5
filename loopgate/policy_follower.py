"""``loopgate serve`` follows the published champion while it runs.

The scheduler's jobs read the active policy at every run, but the bot read it once at start:
after a ``policy promote`` or ``policy rollback`` the Slack side kept the old people, reason
codes and review deadlines until someone restarted it — on every replica. The follower reads
the champion's version every ``every`` seconds and, when it changed, hands the new policy to
whatever renders or checks with it. A policy given with ``serve --policy FILE`` is an explicit
choice and is not followed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from core.policy import LoadedPolicy
from core.store.db import Database
from core.store.policies import champion, load_stored

__all__ = ["PolicyFollower"]

log = logging.getLogger(__name__)


class PolicyFollower:
    name = "policy-follower"

    def __init__(
        self,
        db: Database,
        current: LoadedPolicy,
        adopters: Sequence[Callable[[LoadedPolicy], None]],
        *,
        every: float = 30.0,
    ) -> None:
        self.db, self.current, self.adopters, self.every = db, current, list(adopters), every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> LoadedPolicy | None:
        """Adopt the champion if it is not the policy in use; returns it when it was adopted."""
        with self.db.sessions() as session:
            version = champion(session)
            if version is None or version == self.current.version:
                return None
            loaded = load_stored(session, version)  # validated whole again; raises if it no longer is
        for adopt in self.adopters:
            adopt(loaded)
        log.warning("serve now acts on the published policy %s (was %s)", loaded.version, self.current.version)
        self.current = loaded
        return loaded

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def poll(self) -> None:
        """One :meth:`check`; if it fails (the database away for a moment, a stored version that
        no longer validates) the policy in use stays, and the next poll tries again."""
        try:
            self.check()
        except Exception:
            log.exception("reading the published policy failed; keeping %s", self.current.version)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.poll()
