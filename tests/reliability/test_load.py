"""Load, short form: 60 signed Approve clicks per second for 5 s over two ``serve`` replicas
(``bench/chaos.py`` runs 200/s for 30 s): every click acknowledged within 3 s, applied once, and
its messages updated once. The rate leaves room for the other test workers sharing the CPUs in
CI: at 100/s a run next to them once had 2 of 500 clicks answered after 3 s."""

from __future__ import annotations

from tests.reliability.harness import load


def test_given_two_replicas_when_60_clicks_a_second_arrive_then_all_acked_within_3s_and_applied_once(
    db_url: str,
) -> None:
    report = load(db_url, rate=60, seconds=5)

    assert report.details["acked"] == 300 and report.details["acked_over_3s"] == 0, report.line()
    assert report.details["reviews"] == 300, report.line()
    assert (report.lost, report.duplicated, report.clobbered) == (0, 0, 0), report.line()
    assert report.details["p99_ms"] < 3000
