"""The unpark job (every minute): leads parked in the fallback queue because their team was off
duty or full are decided again once the team has room (:mod:`core.store.parked`).

The new decision brings its own effects — the assignment DM or the escalation, the write-back
of the new owner, the first-touch clock, which starts now, when someone can act on it."""

from __future__ import annotations

from typing import Any

from core.store.parked import unpark
from scheduler.context import SchedulerContext

__all__ = ["run_unpark"]


def run_unpark(ctx: SchedulerContext) -> dict[str, Any]:
    loaded = ctx.policy()
    # build the engine before the transaction: building it reads the store (see sla_scan)
    engine = ctx.engine(loaded)
    now = ctx.clock()
    with ctx.db.transaction() as session:
        decided = unpark(session, engine, now=now, actor=ctx.actor)
    routed = sum(1 for d in decided if d.decision.owner_kind == "rep")
    return {"decided": len(decided), "to_a_rep": routed}
