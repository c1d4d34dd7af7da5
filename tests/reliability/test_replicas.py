"""Two ``loopgate serve`` replicas on one PostgreSQL database (the multi-replica deployment):
one scheduler leads at a time and the other takes over when it is killed; outbox rows are
claimed by one worker each; the same escalation approved at the same moment through both
replicas is decided once, its messages updated once, and the slower click told who decided."""

from __future__ import annotations

import pytest

from tests.conftest import PG_URL
from tests.reliability.harness import replicas

pytestmark = pytest.mark.skipif(
    not PG_URL, reason="replicas share one PostgreSQL database (SKIP LOCKED claims, lease row); SQLite is one process"
)


def test_given_two_replicas_when_the_leader_is_killed_and_clicks_race_then_one_leader_one_decision_one_update(
    db_url: str,
) -> None:
    report = replicas(db_url, seed=3, leads=24, races=3)

    assert report.details["leaders_before_kill"] == 1, report.line()
    assert report.details["new_leader_is_standby"] and report.details["takeover_seconds"] < 2 + 2 + 2, report.line()
    assert report.details["races"] >= 1 and report.faults_injected >= 2, report.line()
    assert (report.lost, report.duplicated, report.clobbered) == (0, 0, 0), report.line()
