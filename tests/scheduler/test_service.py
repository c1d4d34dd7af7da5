"""The scheduler service: one leader among replicas, failover, the persistent job store and
catching up after downtime (coalesced, audited).

Elections are driven round by round (``tick()``) with a lease clock moved by hand; APScheduler
itself runs for real, so jobs it finds due fire at once and are awaited with a short timeout.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from core.store.db import Database
from core.store.models import AuditEvent, JobState, OutboxRow, SchedulerLease, apscheduler_jobs
from scheduler.jobs import job_specs
from scheduler.service import SchedulerService
from tests.bot.conftest import Clock
from tests.scheduler.conftest import context, sla_policy

POLICY = sla_policy(digest={"channel": "C0LEAD", "weekly": "mon 08:00", "timezone": "America/New_York"})
TTL = timedelta(seconds=30)
POLICY_ZONE = ZoneInfo("America/New_York")


@pytest.fixture
def services(db: Database, clock: Clock) -> Iterator[Callable[[str, Clock], SchedulerService]]:
    made: list[SchedulerService] = []

    def make(holder: str, lease_clock: Clock) -> SchedulerService:
        service = SchedulerService(context(db, POLICY, clock), holder=holder, lease_ttl=TTL, lease_clock=lease_clock)
        made.append(service)
        return service

    yield make
    for service in made:
        service.stop()


def _wait(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _holder(db: Database) -> str:
    with db.sessions() as s:
        return s.execute(select(SchedulerLease.holder)).scalar_one()


def _stored_jobs(db: Database) -> dict[str, float]:
    with db.sessions() as s:
        return {row.id: row.next_run_time for row in s.execute(select(apscheduler_jobs))}


def _state(db: Database, job: str) -> JobState | None:
    with db.sessions() as s:
        return s.get(JobState, job)


def test_given_two_replicas_when_they_campaign_then_exactly_one_schedules_until_its_lease_lapses(
    db: Database, services: Callable[[str, Clock], SchedulerService]
) -> None:
    lease_clock = Clock(datetime.now(UTC))
    a, b = services("a", lease_clock), services("b", lease_clock)

    a.tick()
    b.tick()
    assert (a.leader, b.leader, _holder(db)) == (True, False, "a")
    assert set(_stored_jobs(db)) == {spec.id for spec in job_specs(POLICY.policy)}
    _wait(lambda: (state := _state(db, "sla_scan")) is not None and state.status == "ok")

    for _ in range(3):  # the leader renews every round; the standby keeps standing by
        lease_clock.advance(seconds=10)
        a.tick()
        b.tick()
        assert (a.leader, b.leader) == (True, False)

    lease_clock.advance(seconds=31)  # "a" stopped renewing (a paused or dead process)
    b.tick()
    assert (b.leader, _holder(db)) == (True, "b")
    a.tick()  # when "a" comes back it finds the lease gone and stops scheduling
    assert (a.leader, b.leader) == (False, True)
    _wait(lambda: (state := _state(db, "sla_scan")) is not None and state.holder == "b")


def test_given_a_leader_stops_cleanly_when_the_standby_campaigns_then_it_takes_over_at_once(
    db: Database, services: Callable[[str, Clock], SchedulerService]
) -> None:
    lease_clock = Clock(datetime.now(UTC))
    a, b = services("a", lease_clock), services("b", lease_clock)
    a.tick()
    b.tick()
    a.stop()  # releases the lease
    b.tick()
    assert (a.leader, b.leader, _holder(db)) == (False, True, "b")


def test_given_a_lease_when_renewed_then_only_its_holder_extends_it_and_nobody_takes_it_that_way(
    db: Database,
) -> None:
    """``renew`` is what a stopping leader calls while its jobs finish: it must never take a lease
    it lost (nor one that is free), only extend its own."""
    from scheduler.lease import Lease

    lease_clock = Clock(datetime.now(UTC))
    a = Lease(db, holder="a", ttl=TTL, clock=lease_clock)
    b = Lease(db, holder="b", ttl=TTL, clock=lease_clock)
    assert a.renew() is None  # no lease yet: renewing does not take it
    assert a.acquire() is not None

    lease_clock.advance(seconds=31)  # expired, but nobody took it over: still a's to extend
    assert a.renew() == lease_clock() + TTL and a.held()
    lease_clock.advance(seconds=31)
    assert b.acquire() is not None
    assert a.renew() is None and (_holder(db), b.held()) == ("b", True)


def test_given_a_run_of_a_job_still_going_when_the_job_fires_again_then_it_is_skipped_until_that_run_ends(
    db: Database, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """The fence behind re-leading in one process (see ``SchedulerService.execute``): per job,
    not per service — other jobs run meanwhile — and only while the earlier run lasts."""
    import threading

    calls, release = [0], threading.Event()

    def slow_sync() -> dict[str, int]:
        calls[0] += 1
        release.wait(10)
        return {"pages": 1}

    ctx = context(db, POLICY, clock)
    ctx.crm_sync = {"salesforce": slow_sync}
    service = SchedulerService(ctx, holder="a", lease_ttl=TTL, lease_clock=Clock(datetime.now(UTC)))
    assert service.lease.acquire() is not None  # the fence checks the lease; no APScheduler needed here
    first = threading.Thread(target=service.execute, args=["sync:salesforce"])
    first.start()
    try:
        _wait(lambda: calls[0] == 1)
        service.execute("sync:salesforce")  # fired again (a new APScheduler) while the first runs
        service.execute("sla_scan")
        assert calls[0] == 1 and "sync:salesforce not run: its previous run" in caplog.text
        scan = _state(db, "sla_scan")
        assert scan is not None and scan.status == "ok"
    finally:
        release.set()
        first.join(10)

    service.execute("sync:salesforce")

    state = _state(db, "sync:salesforce")
    assert calls[0] == 2 and state is not None and (state.status, state.runs) == ("ok", 2)


def test_given_the_scheduler_was_down_over_two_digest_slots_when_one_starts_then_the_digest_runs_once(
    db: Database, services: Callable[[str, Clock], SchedulerService], clock: Clock
) -> None:
    lease_clock = Clock(datetime.now(UTC))
    first = services("first", lease_clock)
    first.tick()
    first.stop()
    # downtime: the stored digest job was due 15 days ago and nobody ran it since
    due_since = datetime.now(UTC) - timedelta(days=15)
    with db.transaction() as s:  # as APScheduler's store keeps it: the column and the pickled job
        stored = s.execute(select(apscheduler_jobs.c.job_state).where(apscheduler_jobs.c.id == "digest")).scalar_one()
        job = pickle.loads(stored)  # noqa: S301 - our own test database
        job["next_run_time"] = due_since
        s.execute(
            update(apscheduler_jobs)
            .where(apscheduler_jobs.c.id == "digest")
            .values(next_run_time=due_since.timestamp(), job_state=pickle.dumps(job))
        )
    mondays = sum(
        1
        for d in range(16)
        if (at := (due_since + timedelta(days=d)).astimezone(POLICY_ZONE)).weekday() == 0
        and due_since < at.replace(hour=8, minute=0, second=0, microsecond=0) <= datetime.now(UTC)
    )

    second = services("second", lease_clock)
    second.tick()

    state = _wait(lambda: (s := _state(db, "digest")) is not None and s.status != "running" and s)
    assert state.status == "ok", state.detail
    assert state.runs == 1 and state.holder == "second"
    # coalesced: APScheduler stores the next run (in the future) and does not run the missed ones
    _wait(lambda: _stored_jobs(db)["digest"] > datetime.now(UTC).timestamp())
    assert _state(db, "digest").runs == 1  # type: ignore[union-attr]
    with db.sessions() as s:
        [event] = s.execute(select(AuditEvent).where(AuditEvent.kind == "scheduler.catch_up")).scalars().all()
        posted = s.execute(select(OutboxRow.dedupe_key).where(OutboxRow.dedupe_key.like("digest:%"))).scalars().all()
    assert event.subject == "job:digest" and f'"missed_runs":{1 + mondays}' in event.body
    assert sorted(posted) == ["digest:2026-W46:chart", "digest:2026-W46:summary"]  # the clock's last complete week
