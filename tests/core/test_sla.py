"""SLA arithmetic: working hours pause the clock; the plan orders nudges, breach and steps."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from core.policy.schema import SLA_MAX
from core.sla import (
    REACH_MAX,
    PolicySlaClock,
    WorkingWindow,
    add_working_time,
    clock_kind,
    plan,
    reach,
    sla_length,
)
from tests.builders import make_policy

NY_9_TO_5 = WorkingWindow("America/New_York", time(9), time(17), frozenset(range(5)))


def ny(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    """A New York wall time in 2026 as UTC (EST: UTC-5 in November, EDT: UTC-4 in March)."""
    offset = 5 if month in (11, 12, 1, 2) or (month == 3 and day < 8) else 4
    return datetime(2026, month, day, hour + offset, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "amount", "due"),
    [
        (ny(20, 10), timedelta(hours=2), ny(20, 12)),  # inside one day
        (ny(20, 16), timedelta(hours=2), ny(23, 10)),  # Friday 16:00 + 2 h → Monday 10:00
        (ny(21, 11), timedelta(minutes=15), ny(23, 9, 15)),  # Saturday: starts Monday at opening
        (ny(19, 7), timedelta(hours=1), ny(19, 10)),  # before opening
        (ny(19, 17), timedelta(hours=8), ny(20, 17)),  # at closing: the whole next day
        (ny(20, 16), timedelta(hours=48), ny(30, 16)),  # 48 working hours = six 8-hour days
    ],
)
def test_given_business_hours_when_adding_time_then_closed_hours_do_not_count(
    start: datetime, amount: timedelta, due: datetime
) -> None:
    assert add_working_time(start, amount, NY_9_TO_5) == due


def test_given_a_daylight_saving_change_when_adding_working_time_then_local_opening_hours_are_kept() -> None:
    # US clocks go forward on Sunday 8 March 2026; Friday 16:00 EST + 2 h = Monday 10:00 EDT
    assert add_working_time(ny(6, 16, month=3), timedelta(hours=2), NY_9_TO_5) == ny(9, 10, month=3)


def test_given_no_window_when_adding_time_then_it_is_wall_clock() -> None:
    assert add_working_time(ny(20, 16), timedelta(hours=2), None) == ny(20, 18)


def test_given_decisions_when_choosing_clocks_then_reviews_and_rep_assignments_get_one_and_others_none() -> None:
    assert clock_kind("review", "queue") == "review"
    assert clock_kind("auto", "rep") == "first_touch"
    assert clock_kind("auto", "queue") is None
    assert clock_kind("suppress", "rep") is None


def test_given_business_hours_when_planning_then_nudges_breach_and_steps_follow_working_time() -> None:
    policy = make_policy(
        sla={
            "review": "2h",
            "nudge_at": [0.5, 1.0],
            "on_breach": [
                {"do": "nudge_owner"},
                {"after": "1h", "do": "notify_manager"},
                {"after": "2h", "do": "reroute"},
            ],
            "business_hours": True,
        }
    ).policy
    due, steps = plan(policy, ny(20, 15, 30), "2h", NY_9_TO_5)
    assert due == ny(23, 9, 30)
    assert [(s.key, s.at) for s in steps] == [
        ("nudge:0.5", ny(20, 16, 30)),
        ("nudge:1", ny(23, 9, 30)),
        ("breach", ny(23, 9, 30)),
        ("breach:0:nudge_owner", ny(23, 9, 30)),
        ("breach:1:notify_manager", ny(23, 10, 30)),
        ("breach:2:reroute", ny(23, 11, 30)),
    ]


def test_given_business_hours_off_when_planning_then_the_owner_window_is_ignored() -> None:
    policy = make_policy(sla={"review": "2h", "nudge_at": [0.5]}).policy
    due, steps = plan(policy, ny(20, 16), "2h", NY_9_TO_5)
    assert due == ny(20, 18) and [s.at for s in steps] == [ny(20, 17), ny(20, 18)]


def test_given_a_rep_without_working_hours_when_the_review_clock_applies_business_hours_then_9_to_5_weekdays() -> None:
    reps = [{"id": "ana", "name": "Ana", "team": "mm", "timezone": "America/New_York"},
            {"id": "lee", "name": "Lee", "roles": ["admin"]}]  # fmt: skip
    policy = make_policy(reps=reps, sla={"review": "2h", "business_hours": True}).policy
    clock = PolicySlaClock(policy)
    assert clock.due_at(ny(20, 16), "hot", "ana") == ny(23, 10)
    assert clock.due_at(ny(20, 16), "hot", "unassigned") == ny(20, 18)  # a queue: wall clock
    assert PolicySlaClock(make_policy().policy).due_at(ny(20, 16), "hot", "ana") is None


def test_given_business_hours_when_an_sla_is_written_in_days_then_it_counts_working_days() -> None:
    assert sla_length("2d", NY_9_TO_5) == timedelta(hours=16)
    assert sla_length("1w", NY_9_TO_5) == timedelta(hours=40)
    assert sla_length("48h", NY_9_TO_5) == timedelta(hours=48)
    assert sla_length("2d", None) == timedelta(days=2)
    policy = make_policy(sla={"first_touch": {"cold": "2d"}, "nudge_at": [0.5], "business_hours": True}).policy
    due, steps = plan(policy, ny(20, 16), "2d", NY_9_TO_5)
    assert due == ny(24, 16)  # Friday 16:00 → Tuesday 16:00
    assert steps[0].at == ny(23, 16)  # half-way: one working day


@pytest.mark.parametrize("longest", [f"{SLA_MAX.days}d", f"{SLA_MAX.days * 24}h"])
@pytest.mark.parametrize("window", [None, NY_9_TO_5])
def test_given_the_longest_slas_a_policy_may_set_when_planning_then_every_step_has_a_date(
    longest: str, window: WorkingWindow | None
) -> None:
    sla = {"review": longest, "on_breach": [{"after": longest, "do": "reroute"}], "business_hours": True}
    policy = make_policy(sla=sla).policy
    due, steps = plan(policy, ny(20, 16), longest, window)
    assert due > ny(20, 16) + timedelta(days=364)
    assert steps[-1].key == "breach:0:reroute" and steps[-1].at > due + timedelta(days=364)


def test_given_an_hour_a_week_when_an_sla_reaches_as_far_as_a_policy_may_then_planning_finds_its_deadline() -> None:
    monday_9_to_10 = WorkingWindow("America/New_York", time(9), time(10), frozenset({0}))
    longest = f"{int(REACH_MAX / timedelta(weeks=1)) - 1}h"  # one working hour a week
    assert reach(longest, monday_9_to_10) <= REACH_MAX < reach(f"{int(longest[:-1]) + 1}h", monday_9_to_10)
    policy = make_policy(sla={"review": longest, "business_hours": True}).policy
    due, _ = plan(policy, ny(20, 16), longest, monday_9_to_10)
    assert due - ny(20, 16) <= REACH_MAX
