"""The scheduled jobs: what runs when (from the policy), and the one entry point APScheduler
calls.

=================  ==========================================================  ===================
job id             what                                                        when
=================  ==========================================================  ===================
``sla_scan``       settle answered SLA clocks, carry out due nudges/breach     every minute
                   steps (:mod:`scheduler.sla_scan`)
``focus:<person>`` the person's daily focus list (:mod:`scheduler.focus`)      ``notifications.
                                                                               focus_list_at``,
                                                                               their zone & days
``digest``         the weekly audit digest (:mod:`scheduler.digest`)           ``digest.weekly`` in
                                                                               ``digest.timezone``
``tuning``         the monthly tuning report for the month just ended          the 1st, 06:00
``calibration``    refit calibration curves                                    nightly, 02:30
``trust``          recompute trust levels when new verdicts arrived            every 5 minutes
``sync:<crm>``     sync a CRM and decide what changed                          ``sync.<crm>`` or
                                                                               ``sync.interval``
``policy_watch``   re-read the active policy; re-plan jobs when it changed     every minute
``unpark``         decide again leads parked in the fallback queue while their  every minute
                   team was off duty or full (:mod:`scheduler.unpark`)
=================  ==========================================================  ===================

Monthly and nightly times are in the digest's time zone (UTC without a digest). Outbox effects
(Slack posts, CRM write-back) are not scheduled jobs: every ``loopgate serve`` replica drains
the outbox continuously (:mod:`loopgate.outbox_worker`), which shares the rows safely.

APScheduler stores jobs pickled, so the stored callable is :func:`run` with the job id; it runs
the job with the live scheduler of this process (:func:`activate`). Job ids are stable, so a
restarted or newly elected scheduler finds its jobs — and their missed run times — in the store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core.policy.durations import parse_duration
from core.policy.schema import Policy
from scheduler.context import SchedulerContext
from scheduler.digest import run_weekly_digest
from scheduler.focus import focus_people, run_focus_list, working_days
from scheduler.learning_jobs import run_monthly_tuning, run_nightly_calibration, run_trust_recompute
from scheduler.sla_scan import run_sla_scan
from scheduler.unpark import run_unpark

__all__ = ["JobSpec", "Runner", "activate", "deactivate", "handler_for", "job_specs", "run"]

log = logging.getLogger(__name__)

SLA_SCAN_EVERY = timedelta(minutes=1)
TRUST_EVERY = timedelta(minutes=5)
POLICY_WATCH_EVERY = timedelta(minutes=1)
UNPARK_EVERY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job as planned from the policy. ``schedule`` is a readable fingerprint of the trigger:
    a stored job whose schedule is unchanged keeps its (possibly missed) next run time."""

    id: str
    trigger: BaseTrigger
    schedule: str
    interval: bool = False


def _interval(job_id: str, every: timedelta) -> JobSpec:
    seconds = max(int(every.total_seconds()), 1)
    return JobSpec(job_id, IntervalTrigger(seconds=seconds), f"every {seconds}s", interval=True)


def _cron(job_id: str, timezone: str, **fields: Any) -> JobSpec:
    readable = " ".join(f"{k}={v}" for k, v in sorted(fields.items()))
    return JobSpec(job_id, CronTrigger(timezone=timezone, **fields), f"cron {readable} {timezone}")


def job_specs(policy: Policy, crm: Iterable[str] = ()) -> list[JobSpec]:
    """Every job the policy asks for (see the module docstring)."""
    zone = policy.digest.timezone if policy.digest else "UTC"
    specs = [
        _interval("sla_scan", SLA_SCAN_EVERY),
        _interval("trust", TRUST_EVERY),
        _interval("policy_watch", POLICY_WATCH_EVERY),
        _interval("unpark", UNPARK_EVERY),
        _cron("calibration", zone, hour=2, minute=30),
        _cron("tuning", zone, day=1, hour=6, minute=0),
    ]
    if policy.digest is not None:
        day, at = policy.digest.weekly.split()
        hour, minute = (int(part) for part in at.split(":"))
        specs.append(_cron("digest", policy.digest.timezone, day_of_week=day, hour=hour, minute=minute))
    at_time = policy.notifications.focus_list_at
    if at_time is not None:
        for person in focus_people(policy):
            days = ",".join(working_days(person))
            specs.append(
                _cron(f"focus:{person.id}", person.timezone, day_of_week=days, hour=at_time.hour, minute=at_time.minute)
            )
    for source in crm:
        every = getattr(policy.sync, source, None) or policy.sync.interval
        specs.append(_interval(f"sync:{source}", parse_duration(every)))
    return specs


def _sync(ctx: SchedulerContext, source: str) -> Any:
    sync = ctx.crm_sync.get(source)
    if sync is None:
        return {"skipped": f"{source} is not configured"}
    return sync()


_HANDLERS: dict[str, Callable[[SchedulerContext, str], Any]] = {
    "sla_scan": lambda ctx, _: run_sla_scan(ctx).as_dict(),
    "unpark": lambda ctx, _: run_unpark(ctx),
    "focus": run_focus_list,
    "digest": lambda ctx, _: run_weekly_digest(ctx),
    "tuning": lambda ctx, _: run_monthly_tuning(ctx),
    "calibration": lambda ctx, _: run_nightly_calibration(ctx),
    "trust": lambda ctx, _: run_trust_recompute(ctx),
    "sync": _sync,
}


def handler_for(job_id: str) -> Callable[[SchedulerContext], Any] | None:
    """The function that runs ``job_id`` with a context (``None`` for unknown ids)."""
    kind, _, argument = job_id.partition(":")
    handler = _HANDLERS.get(kind)
    if handler is None:
        return None
    return lambda ctx: handler(ctx, argument)


class Runner(Protocol):
    def execute(self, job_id: str) -> None: ...


_ACTIVE: list[Runner] = []


def activate(runner: Runner) -> None:
    """Make ``runner`` the one that runs this process's scheduled jobs (the elected scheduler)."""
    if runner not in _ACTIVE:
        _ACTIVE.append(runner)


def deactivate(runner: Runner) -> None:
    if runner in _ACTIVE:
        _ACTIVE.remove(runner)


def run(job_id: str) -> None:
    """The callable APScheduler stores for every job (importable, pickled by reference)."""
    if not _ACTIVE:
        log.warning("job %s fired with no active scheduler in this process; ignored", job_id)
        return
    _ACTIVE[-1].execute(job_id)
