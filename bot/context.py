"""What the listeners and the notifier share: the store, the policy's rules and the clocks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.sla import PolicyReviewClock, ReviewClock
from core.policy import LoadedPolicy, Policy
from core.review import ReviewRules
from core.store.db import Database

__all__ = ["BotContext"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _nothing() -> None:
    return None


def _at_once(work: Callable[[], None]) -> None:
    work()


@dataclass
class BotContext:
    """``wake_clicks`` is called after an ack stores a click, ``wake_outbox`` after a review is
    recorded, so the workers in the same process act at once instead of at their next poll.
    ``later`` runs work that must not hold up the ack (Bolt answers Slack only when a listener
    returns): ``loopgate serve`` hands it to the lazy listeners' pool; without one it runs at
    once. :meth:`adopt` switches to another policy (a promote or rollback) while the bot runs."""

    db: Database
    policy: LoadedPolicy
    clock: Callable[[], datetime] = _utcnow
    review_clock_for: Callable[[Policy], ReviewClock] = PolicyReviewClock
    wake_outbox: Callable[[], None] = _nothing
    wake_clicks: Callable[[], None] = _nothing
    later: Callable[[Callable[[], None]], None] = _at_once
    rules: ReviewRules = field(init=False)
    review_clock: ReviewClock = field(init=False)

    def __post_init__(self) -> None:
        self.adopt(self.policy)

    def adopt(self, loaded: LoadedPolicy) -> None:
        """Act on ``loaded`` from now on: who may act, reason codes, review deadlines."""
        self.rules, self.review_clock = ReviewRules(loaded.policy), self.review_clock_for(loaded.policy)
        self.policy = loaded
