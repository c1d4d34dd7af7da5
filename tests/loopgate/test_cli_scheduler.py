"""``loopgate scheduler status``: who holds the lease and what each job did last."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from core.store.db import Database
from core.store.models import JobState, SchedulerLease
from tests.conftest import EXAMPLE_POLICY, ROOT
from tests.loopgate.inprocess import InProcessCli


def test_given_a_leader_and_job_runs_when_status_is_asked_then_both_are_shown(
    db: Database, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = InProcessCli(monkeypatch, capsys, {"LOOPGATE_DATABASE_URL": db_url, "LOOPGATE_POLICY": str(EXAMPLE_POLICY)})
    assert "lease: nobody" in cli("scheduler", "status").out

    at = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    with db.transaction() as s:
        s.add(
            SchedulerLease(
                name="scheduler", holder="host-a:42:abc", expires_at=at + timedelta(seconds=30), acquired_at=at
            )
        )
        s.add(
            JobState(
                job="sla_scan", holder="host-a:42:abc", started_at=at, finished_at=at, status="ok", runs=7, detail={}
            )
        )
    shown = cli("scheduler", "status")
    assert shown.code == 0
    assert "lease: host-a:42:abc until 2026-11-23 13:00:30 UTC" in shown.out
    assert "sla_scan" in shown.out and "runs 7" in shown.out


def test_given_the_lease_setting_when_the_scheduler_runs_then_its_lease_lasts_that_long(
    db: Database, db_url: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPGATE_", "SLACK_", "HUBSPOT_", "SALESFORCE_"))}
    env.update(
        LOOPGATE_DATABASE_URL=db_url, LOOPGATE_POLICY=str(EXAMPLE_POLICY), LOOPGATE_SCHEDULER_LEASE_SECONDS="600"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "loopgate", "scheduler", "run"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while (lease := _lease_row(db)) is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert lease is not None, "the scheduler never took the lease"
        assert lease.expires_at - lease.acquired_at == timedelta(seconds=600)  # not the option's old 30 s
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "(lease 600s)" in stderr, stderr


def _lease_row(db: Database) -> SchedulerLease | None:
    with db.sessions() as s:
        return s.execute(select(SchedulerLease)).scalar_one_or_none()
