"""When a review is due, and how that reads for the person who owns it.

SLA timers (nudges, breach steps, business hours) belong to the scheduler. The bot computes
due times behind the :class:`ReviewClock` protocol: the default here is the simple one — the
decision time plus the policy's ``sla.review`` — and ``loopgate serve`` hands the bot the
scheduler's :class:`core.sla.PolicySlaClock`, which pauses outside the owner's working hours
when the policy says so, without touching any message builder.
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
