"""When a review is due, and how that reads for the person who owns it.

SLA timers (nudges, breach steps, business hours) belong to the scheduler; until it provides
its own clock the bot computes the due time the simple way — the decision time plus the
policy's ``sla.review`` — behind the :class:`ReviewClock` protocol, so the scheduler can hand
the bot a clock that knows about working hours without touching any message builder.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from core.policy.durations import parse_duration
from core.policy.schema import Policy

__all__ = ["PolicyReviewClock", "ReviewClock", "local_time"]


class ReviewClock(Protocol):
    def due_at(self, decided_at: datetime, band: str, owner: str | None) -> datetime | None:
        """When a person must have decided, or ``None`` if the policy sets no review SLA."""
        ...


class PolicyReviewClock:
    """Decision time + ``sla.review`` (wall-clock; ``business_hours`` is the scheduler's job)."""

    def __init__(self, policy: Policy) -> None:
        self.window = parse_duration(policy.sla.review) if policy.sla.review else None

    def due_at(self, decided_at: datetime, band: str, owner: str | None) -> datetime | None:
        return decided_at + self.window if self.window is not None else None


def local_time(at: datetime, timezone: str) -> str:
    """``4:00 PM EST, Fri 20 Nov`` in the given IANA zone."""
    local = at.astimezone(ZoneInfo(timezone))
    hour = local.strftime("%I").lstrip("0") or "12"
    return f"{hour}:{local:%M %p} {local.tzname()}, {local:%a} {local.day} {local:%b}"
