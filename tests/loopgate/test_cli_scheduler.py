"""``loopgate scheduler status``: who holds the lease and what each job did last."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.store.db import Database
from core.store.models import JobState, SchedulerLease
from tests.conftest import EXAMPLE_POLICY
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
