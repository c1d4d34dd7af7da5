"""Round-robin state in the database: the rotation port's production adapter.

The first assignment for a team in a transaction locks its ``rotation_state`` row (``FOR
UPDATE``; SQLite's write lock does the same), and the lock is held until commit, so two
deciders can never hand out the same slot: each slot is also a ``(team, seq)`` row with a
unique key. A batch meets its teams in whatever order its leads route, so on PostgreSQL the
first of those locks is preceded by one transaction-scoped advisory lock that every decider
takes: two batches reaching two teams in opposite order wait for each other instead of
deadlocking (batches that share a team were serialised by its row anyway).

Within the transaction the state is kept in memory and written once by
:meth:`StoreRotation.flush`, so a batch of a thousand leads costs a handful of queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.orm import Session

from core.routing import Candidate, fair_pick
from core.store.db import dialect_insert
from core.store.models import RepLoad, RotationAssignment, RotationState

__all__ = ["ROTATION_LOCK", "StoreRotation"]

ROTATION_LOCK = 0x6C6F6F7067617465  # "loopgate": the advisory lock key deciders share on PostgreSQL


@dataclass
class _Team:
    seq: int
    lags: dict[str, float]
    dirty: bool = False


@dataclass
class StoreRotation:
    """Implements :class:`core.routing.RotationPort` inside one session's transaction."""

    session: Session
    _teams: dict[str, _Team] = field(default_factory=dict)
    _loads: dict[tuple[str, str], int] = field(default_factory=dict)
    _dirty_loads: set[tuple[str, str]] = field(default_factory=set)
    _assignments: list[dict[str, Any]] = field(default_factory=list)

    def _team(self, team: str, now: datetime) -> _Team:
        state = self._teams.get(team)
        if state is None:
            if not self._teams and self.session.get_bind().dialect.name == "postgresql":
                self.session.execute(select(func.pg_advisory_xact_lock(ROTATION_LOCK)))
            ins = dialect_insert(self.session, RotationState)
            self.session.execute(
                ins.values(team=team, seq=0, lags={}, updated_at=now).on_conflict_do_nothing(index_elements=["team"])
            )
            row = self.session.execute(
                select(RotationState.seq, RotationState.lags).where(RotationState.team == team).with_for_update()
            ).one()
            state = self._teams[team] = _Team(row.seq, {k: float(v) for k, v in (row.lags or {}).items()})
        return state

    def load(self, rep: str, local_day: str) -> int:
        key = (rep, local_day)
        if key not in self._loads:
            count = self.session.execute(
                select(RepLoad.count).where(RepLoad.rep == rep, RepLoad.day == local_day)
            ).scalar_one_or_none()
            self._loads[key] = count or 0
        return self._loads[key]

    def assign(self, team: str, candidates: Sequence[Candidate], lead_key: str, now: datetime) -> Candidate | None:
        state = self._team(team, now)  # lock first: loads are only read under the team's lock
        open_ = [c for c in candidates if c.daily_capacity is None or self.load(c.rep, c.local_day) < c.daily_capacity]
        if not open_:
            return None
        chosen = fair_pick(state.lags, open_)
        state.seq += 1
        state.dirty = True
        key = (chosen.rep, chosen.local_day)
        self._loads[key] = self.load(*key) + 1
        self._dirty_loads.add(key)
        self._assignments.append({"team": team, "seq": state.seq, "rep": chosen.rep, "lead_key": lead_key, "at": now})
        return chosen

    def flush(self, now: datetime) -> None:
        """Write lags, sequence numbers, assignments and loads (before commit)."""
        for team, state in self._teams.items():
            if state.dirty:
                self.session.execute(
                    update(RotationState)
                    .where(RotationState.team == team)
                    .values(seq=state.seq, lags=state.lags, updated_at=now)
                )
                state.dirty = False
        if self._assignments:
            table: Table = RotationAssignment.__table__  # type: ignore[assignment]  # the Core table
            self.session.execute(insert(table), self._assignments)  # Core executemany
            self._assignments = []
        if self._dirty_loads:
            ins = dialect_insert(self.session, RepLoad)
            rows = [{"rep": r, "day": d, "count": self._loads[(r, d)]} for r, d in sorted(self._dirty_loads)]
            self.session.execute(
                ins.on_conflict_do_update(index_elements=["rep", "day"], set_={"count": ins.excluded["count"]}), rows
            )
            self._dirty_loads.clear()
