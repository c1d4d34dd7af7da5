"""Fixtures for connector tests: the fakes (started per test on port 0), a decision engine on
the example policy, and a clock that can be moved."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from core.engine import DecisionEngine
from core.policy import LoadedPolicy
from loopgate.sandbox.hubspot import FakeHubSpot
from loopgate.sandbox.salesforce import FakeSalesforce


class Clock:
    """A frozen clock that tests move on purpose."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock(now: datetime) -> Clock:
    return Clock(now)


@pytest.fixture
def engine(example_policy: LoadedPolicy) -> DecisionEngine:
    return DecisionEngine(example_policy)


@pytest.fixture
def sf(clock: Clock) -> Iterator[FakeSalesforce]:
    with FakeSalesforce(page_size=5, clock=clock) as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def hs(clock: Clock) -> Iterator[FakeHubSpot]:
    with FakeHubSpot(clock=clock) as fake:
        yield fake  # type: ignore[misc]
