"""Two scheduler processes on one database: only one schedules; when it is killed (SIGKILL: no
goodbye, the lease simply stops being renewed) the other takes over within the lease time.

Short form for CI: a 2-second lease. The leader is a real ``loopgate scheduler run`` process;
the standby runs in the test process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from core.engine import DecisionEngine
from core.policy import LoadedPolicy
from core.store.db import Database
from core.store.models import JobState, SchedulerLease
from scheduler.context import SchedulerContext
from scheduler.service import SchedulerService
from tests.conftest import EXAMPLE_POLICY, ROOT

TTL = timedelta(seconds=2)


def _until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _lease(db: Database) -> tuple[str, Any] | None:
    with db.sessions() as s:
        row = s.execute(select(SchedulerLease.holder, SchedulerLease.expires_at)).first()
    return (row.holder, row.expires_at) if row else None


def _ran_by(db: Database, job: str) -> str | None:
    with db.sessions() as s:
        state = s.get(JobState, job)
    return state.holder if state is not None and state.status == "ok" else None


def test_given_two_scheduler_processes_when_the_leader_is_killed_then_the_standby_takes_over_within_the_lease(
    db: Database, db_url: str, example_policy: LoadedPolicy
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPGATE_", "SLACK_", "HUBSPOT_", "SALESFORCE_"))}
    env.update(LOOPGATE_DATABASE_URL=db_url, LOOPGATE_POLICY=str(EXAMPLE_POLICY), LOOPGATE_LOG_LEVEL="WARNING")
    leader = subprocess.Popen(
        [sys.executable, "-m", "loopgate", "scheduler", "run", "--lease-ttl", str(TTL.total_seconds())],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    standby = SchedulerService(
        SchedulerContext(db, policy=lambda: example_policy, engine=DecisionEngine), lease_ttl=TTL, poll=0.5
    )
    try:
        holder, _ = _until(lambda: _lease(db), 30, "the first process to take the lease")
        assert _until(lambda: _ran_by(db, "sla_scan") == holder, 15, "the leader's first SLA scan")
        standby.start()
        for _ in range(15):  # 3 s: several renewals of a 2 s lease, and the standby never leads
            assert not standby.leader
            assert _lease(db)[0] == holder  # type: ignore[index]
            time.sleep(0.2)

        leader.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        leader.wait(10)
        _until(lambda: standby.leader, 10, "the standby to take over")
        took = time.monotonic() - killed
        assert took < TTL.total_seconds() + 2 * 0.5 + 1.0  # the lease's time to live, two polls, slack
        assert _lease(db)[0] == standby.holder  # type: ignore[index]
        assert _until(lambda: _ran_by(db, "sla_scan") == standby.holder, 10, "the new leader's SLA scan")
    finally:
        standby.stop()
        if leader.poll() is None:
            leader.kill()
            leader.wait(10)
        assert leader.stderr is not None
        leader.stderr.close()
