"""``loopgate scheduler status``: who holds the lease and what each job did last."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from sqlalchemy import select

from core.store import outbox
from core.store.db import Database
from core.store.models import JobState, OutboxRow, SchedulerLease
from loopgate.sandbox.hubspot import FakeHubSpot
from tests.conftest import EXAMPLE_POLICY, ROOT
from tests.loopgate.inprocess import InProcessCli

T = TypeVar("T")


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


def test_given_write_backs_waiting_for_a_permission_when_status_is_asked_then_their_age_and_error_are_shown(
    db: Database, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A write-back deferred for a missing permission waits without end and never counts as
    failed: the status page is where an admin sees it, with what it waits for."""
    cli = InProcessCli(monkeypatch, capsys, {"LOOPGATE_DATABASE_URL": db_url, "LOOPGATE_POLICY": str(EXAMPLE_POLICY)})
    assert "effects not done: none" in cli("scheduler", "status").out

    at = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    with db.transaction() as s:
        for i in range(3):
            outbox.enqueue(s, "crm.writeback", f"crm.writeback:{i}", {"decision_pk": i}, now=at + timedelta(hours=i))
        outbox.enqueue(s, "slack.escalation", "slack.escalation:9", {"decision_pk": 9}, now=at)
        rows = {r.dedupe_key: r for r in s.execute(select(OutboxRow)).scalars()}
        rows["crm.writeback:1"].last_error = "hubspot 403 MISSING_SCOPES: crm.objects.contacts.write"
        rows["crm.writeback:2"].status = "dead"
        rows["slack.escalation:9"].status = "done"
    shown = cli("scheduler", "status").out

    assert "effects not done: \n" in shown
    [line] = [line for line in shown.splitlines() if "crm.writeback" in line]
    assert "2 waiting, oldest queued 2026-11-20 09:00 UTC, 1 failed for good" in line
    assert line.endswith("last error: hubspot 403 MISSING_SCOPES: crm.objects.contacts.write")
    assert "slack.escalation" not in shown  # done: nothing to see


def _scheduler(db_url: str, **env: str) -> subprocess.Popen[str]:
    """``loopgate scheduler run`` as a deployment starts it, with these settings."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPGATE_", "SLACK_", "HUBSPOT_", "SALESFORCE_"))}
    full.update(LOOPGATE_DATABASE_URL=db_url, LOOPGATE_POLICY=str(EXAMPLE_POLICY), **env)
    return subprocess.Popen(
        [sys.executable, "-m", "loopgate", "scheduler", "run"],
        cwd=ROOT, env=full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _until(proc: subprocess.Popen[str], check: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + 60
    while (found := check()) is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert found is not None, f"the scheduler never got to {what}"
    return found


def _stopped(proc: subprocess.Popen[str]) -> str:
    """SIGTERM, as a supervisor stops it; what it printed."""
    proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=60)[1]


def test_given_the_lease_setting_when_the_scheduler_runs_then_its_lease_lasts_that_long(
    db: Database, db_url: str
) -> None:
    proc = _scheduler(db_url, LOOPGATE_SCHEDULER_LEASE_SECONDS="600")
    try:
        lease = _until(proc, lambda: _lease_row(db), "the lease")
        assert lease.expires_at - lease.acquired_at == timedelta(seconds=600)  # not the option's old 30 s
    finally:
        stderr = _stopped(proc)
    assert proc.returncode == 0 and "(lease 600s)" in stderr, stderr


def test_given_a_crm_error_quoting_its_token_when_the_scheduler_logs_it_then_the_token_is_redacted(
    db: Database, db_url: str
) -> None:
    token = "pat-na1-7f3e1c9a-0b2d-4e8f-secret"
    with FakeHubSpot(access_token=token) as hubspot:
        # a CRM's error that quotes what it was sent: the text reaches the job's failure log
        body = {"status": "error", "category": "VALIDATION_ERROR", "message": f"bad request from {token}"}
        hubspot.inject(r"/crm/", 400, times=1000, body=body)
        proc = _scheduler(db_url, HUBSPOT_ACCESS_TOKEN=token, HUBSPOT_BASE_URL=hubspot.url)
        try:
            _until(proc, lambda: _failed(db, "sync:hubspot"), "the HubSpot sync")
        finally:
            stderr = _stopped(proc)
    assert "job sync:hubspot failed" in stderr and "bad request from [redacted]" in stderr, stderr
    assert token not in stderr


def _failed(db: Database, job: str) -> JobState | None:
    with db.sessions() as s:
        state = s.get(JobState, job)
    return state if state is not None and state.status == "failed" else None


def _lease_row(db: Database) -> SchedulerLease | None:
    with db.sessions() as s:
        return s.execute(select(SchedulerLease)).scalar_one_or_none()
