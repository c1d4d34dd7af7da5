"""The error root of core, and the errors people see about their policy.

::

    CoreError
    ├── PolicyError        a policy file is invalid (carries every problem, with file and line)
    └── StoreError         the database is unreachable, misconfigured or out of date
        └── ConcurrentUpdate  someone else changed the row first (callers re-read and retry)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConcurrentUpdate", "CoreError", "PolicyError", "PolicyProblem", "StoreError"]


class CoreError(Exception):
    """Root of loopgate's domain errors."""


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where} {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PolicyError(CoreError):
    """A policy that must not be applied. ``problems`` lists all of them, in document order."""

    def __init__(self, source: str, problems: list[PolicyProblem]) -> None:
        self.source = source
        self.problems = sorted(problems, key=lambda p: (p.line or 0, p.path))
        super().__init__("\n".join(str(p) for p in self.problems))


class StoreError(CoreError):
    """The store cannot do what was asked (bad URL, unreachable, schema not upgraded…)."""


class ConcurrentUpdate(StoreError):
    """Another worker changed the same row first."""
