"""The demo's simulated reviewers act like people who read the modal's answer: a refused
reassignment (an owner out of office) is tried again with someone else, not counted as done."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from bot import ids
from loopgate.demo.live import LiveSandbox
from loopgate.demo.reviewers import Crowd
from tests.demo.escalations import is_reviewed

T = TypeVar("T")
AWAY = "cy"  # out of office for the whole demo week (demo_policy.yaml; serve --sandbox moves it to today)


def test_given_a_reviewer_who_first_picks_a_rep_out_of_office_when_reassigning_then_they_pick_another_and_it_is_done(
    live: LiveSandbox,
) -> None:
    assert live.db is not None
    crowd = Crowd(live.runtime, live.sandbox.slack, live.db)
    escalation = live.sandbox.slack.wait_until(lambda: [e for e in crowd.pending() if e.team == "mm"], timeout=20)[0]
    picks: list[str] = []
    choose = crowd.rng.choice

    def first_the_absent_rep(options: Sequence[T]) -> T:
        if AWAY in options and not picks:
            picks.append(AWAY)
            return AWAY
        return choose(options)

    crowd.rng.choice = first_the_absent_rep
    manager = crowd._deciders(escalation)[-1]

    crowd._modal(manager, ids.REASSIGN, escalation)

    assert picks == [AWAY]  # the modal offered the absent rep, and the reviewer tried them first
    live.sandbox.slack.wait_until(lambda: is_reviewed(live.db, escalation.decision_pk), timeout=20)
    assert crowd.tally.kinds["reassign"] == 1
