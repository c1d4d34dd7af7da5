"""The scheduler service ``loopgate serve`` runs on every replica: it campaigns for the lease,
and only the holder runs APScheduler.

**Election** (:class:`scheduler.lease.Lease`): every ``poll`` seconds (a third of the lease's
time to live) each replica tries to take or renew the lease. The holder starts a
``BackgroundScheduler`` on the persistent job store; the others stand by and take over within
``ttl + poll`` when the holder dies (30 s + 10 s by default). A holder that cannot renew before
its lease runs out shuts its scheduler down by itself, and every job checks the lease before it
starts — so two APScheduler instances never work the same job store, even with a paused
process or a lost database connection. A clean stop keeps renewing the lease until its running
jobs have finished, then releases it, so the standby takes over at once but never alongside
them.

**Persistence and catching up**: jobs live in ``apscheduler_jobs`` (``SQLAlchemyJobStore``)
with ``coalesce=True``, ``max_instances=1`` and ``misfire_grace_time=None``: a run missed while
no scheduler was up runs once when one is, however late. When a scheduler takes over it plans
the jobs from the active policy (:func:`scheduler.jobs.job_specs`): a stored job whose schedule
is unchanged keeps its stored next run time (so missed runs are kept), and each such catch-up
is logged and audited (``scheduler.catch_up``: the job, when it was due, how many runs were
coalesced into one). Interval jobs (the SLA scan, trust, sync) run at once on taking over: the
previous leader may have died in the middle of one. Nothing a job does depends on the run being
on time: each derives its due work from the database (due SLA steps, unposted weeks, unclaimed
months) and claims it there, so a coalesced run does all of it, once.

**Job runs** are recorded in ``scheduler_jobs_state`` (holder, start, end, status, result) for
``loopgate scheduler status``; a job that raises is logged and recorded as failed and runs
again at its next time. A job never runs twice at once in one process, even across a step-down
and a new term (:meth:`SchedulerService.execute`).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.util import undefined
from sqlalchemy import select

from core.store import audit_log
from core.store.audit_log import AuditRecord
from core.store.db import Database, dialect_insert
from core.store.models import JobState
from scheduler import jobs
from scheduler.context import SchedulerContext, utcnow
from scheduler.lease import Lease, holder_id

__all__ = ["DEFAULT_TTL", "SchedulerService"]

log = logging.getLogger(__name__)

DEFAULT_TTL = timedelta(seconds=30)
LATE = timedelta(minutes=1)  # a stored run this far in the past is reported as caught up
JOB_TABLE = "apscheduler_jobs"


class _Scheduler(BackgroundScheduler):  # type: ignore[misc]
    """APScheduler 3's loop runs ``_process_jobs`` once more after ``shutdown()`` (the wake-up
    that ends the loop). With the executors gone, due jobs are not submitted — but their next
    run time is still advanced, so a run due at that moment would be lost until its next slot
    (a week, for the digest). Once stopped, process nothing: the next leader runs it."""

    def _process_jobs(self) -> float | None:
        if self.state == STATE_STOPPED:
            return None
        result: float | None = super()._process_jobs()
        return result


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


class SchedulerService:
    """``name``/``start()``/``stop()``: a :class:`loopgate.runtime.Service`."""

    name = "scheduler"

    def __init__(
        self,
        ctx: SchedulerContext,
        *,
        holder: str | None = None,
        lease_ttl: timedelta = DEFAULT_TTL,
        poll: float | None = None,
        lease_clock: Callable[[], datetime] = utcnow,
        threads: int = 3,
    ) -> None:
        self.ctx = ctx
        self.holder = holder or holder_id()
        self.lease_clock = lease_clock
        self.lease = Lease(ctx.db, holder=self.holder, ttl=lease_ttl, clock=lease_clock)
        self.poll = poll if poll is not None else lease_ttl.total_seconds() / 3
        self.threads = threads
        self._aps: _Scheduler | None = None
        self._held_until: datetime | None = None
        self._planned: str | None = None
        self._lock = threading.RLock()
        self._job_guards: dict[str, threading.Lock] = {}  # one run per job at a time (execute)
        self._guards_lock = threading.Lock()
        self._renewing = threading.Lock()  # a drain's renewal and the release never interleave (stop)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the service ----------------------------------------------------------------------------

    @property
    def leader(self) -> bool:
        return self._aps is not None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="scheduler-lease", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop campaigning, shut APScheduler down (waiting for running jobs), give the lease up.

        The lease is still renewed, every ``poll``, until the shutdown has waited for the jobs
        that are running, and released only then. Were it left to lapse meanwhile, a standby
        would take it while our jobs still run and — as every leader does on taking over —
        start the interval jobs at once: a CRM sync outliving the lease on a rolling deploy ran
        twice at the same time.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        drained = threading.Event()
        renewer = threading.Thread(target=self._renew_until, args=(drained,), name="scheduler-lease-drain", daemon=True)
        if self._aps is not None:
            renewer.start()
        try:
            self._step_down("shutting down", wait=True)
        finally:
            drained.set()
            if renewer.ident is not None:
                renewer.join(timeout)
            with self._renewing:  # a renewal still under way (a slow database) ends first, or
                try:  # it would take the lease back after the release: the standby waits a TTL
                    self.lease.release()
                except Exception:
                    log.exception("could not release the scheduler lease; it expires on its own")

    def _renew_until(self, drained: threading.Event) -> None:
        """Renew the lease every ``poll`` until ``drained`` is set (see :meth:`stop`)."""
        while not drained.wait(self.poll):
            with self._renewing:
                if drained.is_set():
                    return
                if not self._renew_once():
                    return

    def _renew_once(self) -> bool:
        """One renewal while draining; ``False`` once the lease is lost."""
        try:
            if self.lease.renew() is None:
                log.warning(
                    "scheduler %s lost its lease while waiting for running jobs: another replica "
                    "may run them again (they are idempotent)",
                    self.holder,
                )
                return False
        except Exception:  # a database hiccup: the lease may still outlive it; try next round
            log.exception("could not renew the scheduler lease while waiting for running jobs")
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the election must outlive a database hiccup
                log.exception("scheduler lease round failed; retrying in %.0fs", self.poll)
            self._stop.wait(self.poll)

    def tick(self) -> None:
        """One election round: renew or take the lease, start or stop scheduling accordingly."""
        with self._lock:
            if self._aps is not None and self._held_until is not None and self.lease_clock() >= self._held_until:
                self._step_down("the lease ran out before it could be renewed")
            try:
                until = self.lease.acquire()
            except Exception:
                log.exception("could not reach the database to renew the scheduler lease")
                return
            if until is None:
                if self._aps is not None:
                    self._step_down("another replica holds the lease")
                return
            self._held_until = until
            if self._aps is None:
                self._lead()

    # --- leading --------------------------------------------------------------------------------

    def _lead(self) -> None:
        # the job store gets an engine of its own: APScheduler disposes it on shutdown
        store = Database(self.ctx.db.url.render_as_string(hide_password=False), pool_size=2)
        aps = _Scheduler(
            timezone="UTC",
            jobstores={"default": SQLAlchemyJobStore(engine=store.engine, tablename=JOB_TABLE)},
            executors={"default": ThreadPoolExecutor(self.threads)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        aps.add_listener(self._on_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        aps.start(paused=True)
        jobs.activate(self)
        try:
            self._plan(aps, catching_up=True)
        except Exception:
            jobs.deactivate(self)
            aps.shutdown(wait=False)
            raise
        aps.resume()
        self._aps = aps
        log.info("scheduler %s is the leader (lease until %s)", self.holder, self._held_until)

    def _step_down(self, why: str, *, wait: bool = False) -> None:
        with self._lock:
            aps, self._aps = self._aps, None
            self._held_until = None
        # outside the lock: a running job (policy_watch) may need it to finish
        if aps is not None:
            log.warning("scheduler %s stops scheduling: %s", self.holder, why)
            aps.shutdown(wait=wait)
            jobs.deactivate(self)

    def _plan(self, aps: _Scheduler, *, catching_up: bool) -> None:
        """Make the stored jobs match the active policy (see the module docstring)."""
        loaded = self.ctx.policy()
        specs = jobs.job_specs(loaded.policy, sorted(self.ctx.crm_sync))
        now = utcnow()  # APScheduler fires on the wall clock; the jobs themselves read ctx.clock
        stored = {job.id: job for job in aps.get_jobs()}
        caught_up: list[dict[str, Any]] = []
        for spec in specs:
            job = stored.pop(spec.id, None)
            if job is not None and job.name == spec.schedule:
                if spec.interval:
                    job.modify(next_run_time=now)
                elif catching_up and job.next_run_time is not None and job.next_run_time < now - LATE:
                    caught_up.append(self._missed(job, now))
                continue
            aps.add_job(
                jobs.run,
                trigger=spec.trigger,
                args=[spec.id],
                id=spec.id,
                name=spec.schedule,
                replace_existing=True,
                next_run_time=now if spec.interval else undefined,
            )
        for gone in stored:
            aps.remove_job(gone)
        self._planned = loaded.version
        if caught_up:
            for entry in caught_up:
                log.warning(
                    "job %s was due at %s while no scheduler ran: %s missed run(s) coalesced into one, now",
                    entry["job"],
                    entry["due_since"],
                    entry["missed_runs"],
                )
            with self.ctx.db.transaction() as session:
                audit_log.append(
                    session,
                    [
                        AuditRecord(self.ctx.clock(), self.holder, "scheduler.catch_up", f"job:{e['job']}", e)
                        for e in caught_up
                    ],
                )

    @staticmethod
    def _missed(job: Any, now: datetime) -> dict[str, Any]:
        count, at = 0, job.next_run_time
        while at is not None and at <= now and count < 10_000:
            count += 1
            at = job.trigger.get_next_fire_time(at, now)
        return {"job": job.id, "due_since": job.next_run_time.isoformat(), "missed_runs": count, "runs_now": 1}

    def _on_event(self, event: JobEvent) -> None:
        log.warning("job %s: APScheduler event %s (the next run does its work)", event.job_id, event.code)

    # --- running a job (called by scheduler.jobs.run) -------------------------------------------

    def execute(self, job_id: str) -> None:
        """Run one job, unless a run of it started by this service is still going.

        APScheduler's ``max_instances=1`` holds per scheduler instance only. After missed
        renewals this service steps down with ``shutdown(wait=False)`` — its running jobs carry
        on — and may lead again the next round with a new APScheduler, which runs every interval
        job at once: the same sync twice at the same time. So each job id has a lock here,
        across the APScheduler instances this service leads with; a run that finds it taken is
        skipped (logged) and the next run does its work. The lock belongs to the service (one
        per ``loopgate serve`` process), not to the module, so replicas simulated in one test
        process still show their overlaps.
        """
        with self._guards_lock:
            guard = self._job_guards.setdefault(job_id, threading.Lock())
        if not guard.acquire(blocking=False):
            log.warning("job %s not run: its previous run in this process is still going", job_id)
            return
        try:
            self._execute(job_id)
        finally:
            guard.release()

    def _execute(self, job_id: str) -> None:
        if job_id == "policy_watch":
            self._watch()
            return
        handler = jobs.handler_for(job_id)
        if handler is None:
            log.error("unknown job %s in the job store; ignored", job_id)
            return
        if not self.lease.held():
            log.warning("job %s not run: %s no longer holds the scheduler lease", job_id, self.holder)
            return
        self._record(job_id, status="running")
        try:
            result = handler(self.ctx)
            status = "ok"
        except Exception as exc:  # one failing job must not stop the others; it runs again next time
            log.exception("job %s failed", job_id)
            result, status = {"error": f"{type(exc).__name__}: {exc}"[:2000]}, "failed"
        self._record(job_id, status=status, detail=result)

    def _watch(self) -> None:
        version = self.ctx.policy().version
        if version == self._planned or not self._lock.acquire(timeout=5):
            return  # unchanged, or the scheduler is changing hands: the next watch looks again
        try:
            if self._aps is not None:
                log.info("active policy is now %s (was %s): re-planning jobs", version, self._planned)
                self._plan(self._aps, catching_up=False)
        finally:
            self._lock.release()

    def _record(self, job_id: str, *, status: str, detail: Any = None) -> None:
        now = self.ctx.clock()
        with self.ctx.db.transaction() as session:
            row = session.execute(select(JobState).where(JobState.job == job_id).with_for_update()).scalar_one_or_none()
            if row is None:
                session.execute(
                    dialect_insert(session, JobState)
                    .values(job=job_id, holder=self.holder, started_at=now, status=status, runs=0, detail={})
                    .on_conflict_do_nothing(index_elements=["job"])
                )
                row = session.execute(select(JobState).where(JobState.job == job_id)).scalar_one()
            row.holder = self.holder
            if status == "running":
                row.started_at, row.finished_at, row.runs = now, None, row.runs + 1
            else:
                row.finished_at = now
                row.detail = _jsonable(detail if isinstance(detail, dict) else {"result": detail})
            row.status = status
