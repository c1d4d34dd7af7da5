"""The folder ``loopgate demo --out`` and ``loopgate serve --sandbox --sandbox-dir`` work in.

The demo replaces its store and its outputs on every run, so it must never take a folder that
holds someone's real ones (``--out .`` next to a production ``loopgate.db``). It therefore

* names its store and policy so they cannot be loopgate's defaults (``demo.db``,
  ``demo-policy.yaml``; ``sqlite:///loopgate.db`` is the default ``LOOPGATE_DATABASE_URL``);
* marks a folder it takes with :data:`MARKER`, and in a folder without the marker refuses to
  start if any file it would replace is already there (a folder that is new, empty, or holds
  only other files is taken and marked);
* holds an exclusive lock on the marker while it runs, so a second demo or sandbox on the same
  folder is refused instead of deleting the first one's live store. The operating system drops
  the lock when the process ends, however it ends: a crash leaves no stale lock.

Every refusal is a :class:`~loopgate.settings.ConfigError` naming the option: one line, exit 2.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO

from loopgate.settings import ConfigError

try:
    import fcntl
except ImportError:  # Windows has no flock: there only the marker protects the folder
    fcntl = None  # type: ignore[assignment]

__all__ = ["DB_NAME", "MARKER", "OUTPUT_NAMES", "POLICY_NAME", "DemoFolder"]

MARKER = ".loopgate-demo"
DB_NAME = "demo.db"
POLICY_NAME = "demo-policy.yaml"
DB_FILES = tuple(f"{DB_NAME}{suffix}" for suffix in ("", "-wal", "-shm", "-journal"))
OUTPUT_NAMES = ("decisions.jsonl", "audit.jsonl", "digest-chart.png", "digest.html", "report.html", "summary.json")
_OWN = (*DB_FILES, POLICY_NAME, *OUTPUT_NAMES)

_NOTE = (
    "This folder belongs to `loopgate demo` / `loopgate serve --sandbox`: each run replaces\n"
    f"{', '.join(_OWN)} here (and nothing else).\n"
)


class DemoFolder:
    """A folder taken for the demo: created or checked, marked, and locked until :meth:`release`."""

    def __init__(self, path: Path, option: str) -> None:
        self.path, self.option = path, option
        self._lock: IO[str] | None = None

    def claim(self) -> DemoFolder:
        where = f"{self.option} {self.path}"
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"{where}: is a file, not a folder; choose another {self.option}")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{where}: cannot create the folder ({exc.strerror or exc})") from None
        marker = self.path / MARKER
        if not marker.exists():
            found = [name for name in _OWN if (self.path / name).exists()]
            if found:
                raise ConfigError(
                    f"{where}: holds {', '.join(found)} the demo did not create (no {MARKER} marker); "
                    f"choose another {self.option}"
                )
        try:
            lock = marker.open("a+", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{where}: cannot write to the folder ({exc.strerror or exc})") from None
        try:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.seek(0)
            holder = next((line for line in lock.read().splitlines() if line.startswith("pid ")), "")
            lock.close()
            by = f" ({holder})" if holder else ""
            raise ConfigError(
                f"{where}: in use by another loopgate demo or sandbox{by}; choose another {self.option}"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"{_NOTE}pid {os.getpid()}\n")
        lock.flush()
        self._lock = lock
        return self

    def release(self) -> None:
        """Unlock (the marker stays: the folder is still the demo's)."""
        if self._lock is not None:
            if fcntl is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def remove_store(self) -> None:
        """Delete the previous run's store (only the demo's own files; the folder is claimed)."""
        assert self._lock is not None, "claim the folder first"
        for name in DB_FILES:
            (self.path / name).unlink(missing_ok=True)
