"""What the listeners and the notifier share: the store, the policy's rules and the clocks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.accepted import AcceptedClicks
from bot.sla import PolicyReviewClock, ReviewClock
from core.policy import LoadedPolicy
from core.review import ReviewRules
from core.store.db import Database

__all__ = ["BotContext"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _nothing() -> None:
    return None


@dataclass
class BotContext:
    """``wake_outbox`` is called after a review is recorded, so the worker in the same process
    updates the messages at once instead of at its next poll; ``accepted`` hands each click's
    ack outcome to its lazy function (see :mod:`bot.accepted`)."""

    db: Database
    policy: LoadedPolicy
    clock: Callable[[], datetime] = _utcnow
    review_clock: ReviewClock | None = None
    wake_outbox: Callable[[], None] = _nothing
    rules: ReviewRules = field(init=False)
    accepted: AcceptedClicks = field(init=False, default_factory=AcceptedClicks)

    def __post_init__(self) -> None:
        self.rules = ReviewRules(self.policy.policy)
        if self.review_clock is None:
            self.review_clock = PolicyReviewClock(self.policy.policy)

    @property
    def sla(self) -> ReviewClock:
        assert self.review_clock is not None
        return self.review_clock
