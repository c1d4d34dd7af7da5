"""The learning jobs (issue 7's functions, on the scheduler's clock):

* **trust** (every 5 minutes): ``recompute_trust`` once new reviews or audit verdicts have
  landed since the last run, or the policy it runs under changed (a new ``trust.max_level``
  caps levels at once, a new version starts counting afresh) — the check is a ``count(*)`` and
  a ``max(pk)`` per table and the policy's version against a watermark kept in
  ``scheduler_periods`` (written with the recompute), so quiet periods cost nothing and a
  demotion takes effect within minutes of the review that earned it (see
  :func:`run_trust_recompute` for why the count);
* **calibration** (nightly): ``refit_calibration`` once per local night;
* **tuning** (the 1st of each month): ``monthly_tuning`` for the month just ended, once per
  month (it stores, audits and announces the report itself).

Nightly and monthly work is claimed per period (``scheduler_periods``) in the same transaction,
so a second run — a coalesced catch-up, a second scheduler — does nothing; a run that comes
after downtime still does the period's work (the calibration of the night, the report of the
month) and says so in the audit log.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from core.store.calibration import refit_calibration
from core.store.models import AuditVerdict, Review
from core.store.periods import claim_period, period_detail, set_period_detail
from core.store.trust_state import recompute_trust
from core.store.tuning import monthly_tuning, previous_month, report_zone
from scheduler.context import SchedulerContext

__all__ = ["run_monthly_tuning", "run_nightly_calibration", "run_trust_recompute"]


def run_trust_recompute(ctx: SchedulerContext) -> dict[str, Any]:
    """Recompute trust levels if any review or audit verdict arrived, or the policy changed,
    since the last recompute.

    "Arrived" is judged by each table's row count as well as its highest pk. The highest pk
    alone misses rows committed out of pk order: on PostgreSQL a sequence hands out pks when
    rows are inserted, not when they commit, so two bot replicas recording verdicts at once can
    commit pk 5 before pk 4. A run between the two commits marks "max 5", and pk 4 becoming
    visible later leaves the max at 5 — its verdict (maybe the demotion it completes) would wait
    for some unrelated later verdict. Reviews and verdicts are only ever inserted (never updated
    or deleted), so every commit raises its table's count, whatever its pk. The mark is read
    before the recompute in the same transaction: under READ COMMITTED a row committing in
    between is counted by the recompute but not the mark, which costs one extra recompute on
    the next run, never a missed one.
    """
    loaded = ctx.policy()
    now = ctx.clock()
    with ctx.db.transaction() as session:
        reviews = session.execute(select(func.count(), func.max(Review.pk))).one()
        audits = session.execute(select(func.count(), func.max(AuditVerdict.pk))).one()
        mark = [reviews[0], reviews[1] or 0, audits[0], audits[1] or 0, loaded.version]
        seen = (period_detail(session, "trust", "watermark") or {}).get("mark")
        if seen == mark:
            return {"recomputed": False, "watermark": mark}
        moves = recompute_trust(session, loaded, now=now, actor=ctx.actor)
        set_period_detail(session, "trust", "watermark", {"mark": mark}, now=now)
    return {
        "recomputed": True,
        "watermark": mark,
        "moves": [{"segment": m.segment, "kind": m.kind, "from": m.from_level, "to": m.to_level} for m in moves],
    }


def run_nightly_calibration(ctx: SchedulerContext) -> dict[str, Any]:
    """Refit calibration curves once per night (the digest's time zone)."""
    loaded = ctx.policy()
    now = ctx.clock()
    night = now.astimezone(report_zone(ctx.policy())).date().isoformat()
    with ctx.db.transaction() as session:
        if not claim_period(session, "calibration", night, now=now):
            return {"skipped": f"already refitted for {night}"}
        fit = refit_calibration(session, now=now, policy_version=loaded.version, actor=ctx.actor)
    return {"night": night, "fit": fit.fit, "segments": sorted(fit.segments), "skipped_segments": fit.skipped}


def run_monthly_tuning(ctx: SchedulerContext) -> dict[str, Any]:
    """The tuning report for the month just ended, once (stored, audited and announced)."""
    loaded = ctx.policy()
    now = ctx.clock()
    month = previous_month(now, report_zone(loaded))
    engine = ctx.engine(loaded)
    with ctx.db.transaction() as session:
        if not claim_period(session, "tuning", month, now=now):
            return {"skipped": f"the report for {month} exists"}
        result = monthly_tuning(session, loaded, engine, month=month, now=now, actor=ctx.actor)
    return {
        "month": month,
        "decisions": result.report.get("decisions"),
        "challenger": result.challenger.version if result.challenger else None,
    }
