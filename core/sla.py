"""SLA arithmetic: when a response is due, and the plan of steps around the deadline.

Pure: every function takes the times it needs and returns values. The scheduler stores the
plan (``core.store.sla_clocks``) when the decision is made and later only compares ``now``
with the stored times.

**Which clock** (:func:`clock_kind`): an escalation (``review``) runs the review SLA — the
person's decision in Slack is the first response; a lead assigned automatically to a rep runs
the first-touch SLA of its band — the owner's first activity seen in the CRM. Suppressed
leads and leads parked in a queue have nobody to answer, so no clock.

**Working hours** (``sla.business_hours: true``): the clock only runs inside the owner's
working hours in the owner's time zone (their ``working_hours``, else 09:00–17:00 Monday to
Friday). A 2 h SLA started Friday 16:00 is due Monday 10:00. Durations written in days or
weeks count *working* days: with 09:00–17:00 hours ``2d`` is 16 working hours, so a lead
assigned Friday 16:00 is due Tuesday 16:00 (not 48 working hours later). Out-of-office days do not pause
the clock on purpose: an absent owner should breach and be re-routed, not freeze the lead.
Owners who are not reps (queues) run on the wall clock. An SLA long in hours on a rep with few
working hours could fall due decades out: the loader rejects one that :func:`reach` puts beyond
:data:`REACH_MAX` (see ``core.policy.semantics``), so planning never runs out of calendar.

**The plan** (:func:`plan`): a nudge to the owner at each ``nudge_at`` fraction of the SLA,
the breach at the deadline (recorded; it sends nothing itself), then the ``on_breach`` steps
in order, each ``after`` the breach (working time too, when business hours apply: a re-route
at 3 am helps nobody). Steps are keyed (``nudge:0.5``, ``breach``, ``breach:1:reroute``) so
each is carried out once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from core.policy.durations import parse_duration
from core.policy.schema import Policy, Rep, WorkingHours

__all__ = [
    "REACH_MAX",
    "ClockKind",
    "PolicySlaClock",
    "Step",
    "WorkingWindow",
    "add_working_time",
    "clock_kind",
    "plan",
    "reach",
    "sla_length",
    "sla_window",
    "window_for",
]

ClockKind = Literal["first_touch", "review"]
StepAction = Literal["nudge_owner", "breach", "notify_manager", "reroute"]
_STEP_ACTIONS: tuple[StepAction, ...] = ("nudge_owner", "breach", "notify_manager", "reroute")

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MAX_DAYS = 3660  # a window with no open day would loop forever; policies cannot express one, but be safe
# how far a policy's SLA may reach in calendar time: half of what add_working_time searches, so
# reach()'s estimate (whole open weeks, daylight-saving days aside) stays safely inside it
REACH_MAX = timedelta(days=5 * 365)


@dataclass(frozen=True, slots=True)
class WorkingWindow:
    """Open hours on given weekdays (0 = Monday) in one time zone."""

    timezone: str
    start: time
    end: time
    days: frozenset[int]

    @classmethod
    def of(cls, timezone: str, hours: WorkingHours) -> WorkingWindow:
        return cls(timezone, hours.start, hours.end, frozenset(_DAYS.index(d) for d in hours.days))


def add_working_time(start: datetime, amount: timedelta, window: WorkingWindow | None) -> datetime:
    """``start`` + ``amount`` counting only open hours of ``window`` (all hours when ``None``).

    A start outside open hours begins counting at the next opening. Arithmetic is done in UTC,
    so a daylight-saving change inside an open day counts real elapsed time.
    """
    if window is None:
        return start + amount
    if not window.days:
        raise ValueError("a working window needs at least one open day")
    zone = ZoneInfo(window.timezone)
    remaining = amount
    cursor = start.astimezone(UTC)
    day = start.astimezone(zone).date()
    for _ in range(_MAX_DAYS):
        if day.weekday() in window.days:
            opens = datetime.combine(day, window.start, zone).astimezone(UTC)
            closes = datetime.combine(day, window.end, zone).astimezone(UTC)
            begin = max(cursor, opens)
            if begin < closes:
                available = closes - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
        day += timedelta(days=1)
    raise ValueError(f"no working time found within {_MAX_DAYS} days")  # pragma: no cover - see _MAX_DAYS


def window_for(rep: Rep | None) -> WorkingWindow | None:
    """The hours a rep's SLA clock runs in when business hours apply (``None``: always)."""
    if rep is None:
        return None
    return WorkingWindow.of(rep.timezone, rep.working_hours or WorkingHours())


def clock_kind(action: str, owner_kind: str) -> ClockKind | None:
    """Which response clock a decision starts (see the module docstring)."""
    if action == "review":
        return "review"
    if action == "auto" and owner_kind == "rep":
        return "first_touch"
    return None


def sla_window(policy: Policy, kind: ClockKind, band: str) -> str | None:
    """The SLA's length for this clock as the policy writes it (``15m``), or ``None``."""
    sla = policy.sla
    return sla.review if kind == "review" else sla.first_touch.get(band)


def sla_length(text: str, window: WorkingWindow | None) -> timedelta:
    """How much clock time ``text`` is: wall time, or working time when a window applies —
    where a day (``d``) is one working day (the window's open hours) and a week five."""
    amount = parse_duration(text)
    unit = text.strip()[-1:]
    if window is None or unit not in ("d", "w"):
        return amount
    opens, closes = (datetime.combine(datetime.min.date(), t) for t in (window.start, window.end))
    days = amount / timedelta(days=1) if unit == "d" else amount / timedelta(weeks=1) * len(window.days)
    return (closes - opens) * days


def reach(text: str, window: WorkingWindow) -> timedelta:
    """About how much calendar time a clock of ``text`` takes in ``window``: the weeks its open
    hours need, plus one for a start mid-week. A window with no open day never gets there."""
    opens, closes = (datetime.combine(datetime.min.date(), t) for t in (window.start, window.end))
    per_week = (closes - opens) * len(window.days)
    if not per_week:
        return timedelta.max
    return timedelta(weeks=sla_length(text, window) / per_week + 1)


@dataclass(frozen=True, slots=True)
class Step:
    """One thing to do at ``at``; ``key`` is unique within a clock."""

    key: str
    at: datetime
    do: StepAction

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "at": self.at.isoformat(), "do": self.do}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Step:
        do = next((a for a in _STEP_ACTIONS if a == data.get("do")), None)
        if do is None:
            raise ValueError(f"unknown SLA step action {data.get('do')!r}")
        return cls(data["key"], datetime.fromisoformat(data["at"]), do)


def _fraction_key(fraction: float) -> str:
    return f"nudge:{fraction:g}"


def plan(
    policy: Policy, started_at: datetime, length_text: str, window: WorkingWindow | None
) -> tuple[datetime, list[Step]]:
    """The deadline and every step of a clock of ``length_text`` (``15m``, ``2d``) started at
    ``started_at`` (see the module doc).

    Steps come out in time order; at the same moment nudges come before the breach and the
    breach before its steps, as the policy lists them.
    """
    sla = policy.sla
    window = window if sla.business_hours else None
    length = sla_length(length_text, window)
    due = add_working_time(started_at, length, window)
    ordered: list[tuple[datetime, int, Step]] = []
    for fraction in sla.nudge_at:
        at = add_working_time(started_at, length * fraction, window)
        ordered.append((at, 0, Step(_fraction_key(fraction), at, "nudge_owner")))
    ordered.append((due, 1, Step("breach", due, "breach")))
    for index, step in enumerate(sla.on_breach):
        at = add_working_time(due, sla_length(step.after, window), window) if step.after else due
        ordered.append((at, 2 + index, Step(f"breach:{index}:{step.do}", at, step.do)))
    ordered.sort(key=lambda item: (item[0], item[1]))
    return due, [step for _, _, step in ordered]


class PolicySlaClock:
    """When a review is due, working hours included: the :class:`bot.sla.ReviewClock` the
    scheduler hands the bot, so App Home and escalation messages show the deadline the
    scheduler enforces."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.reps = {r.id: r for r in policy.reps}

    def due_at(self, decided_at: datetime, band: str, owner: str | None) -> datetime | None:
        """The review deadline of a decision made at ``decided_at`` for ``owner``."""
        text = self.policy.sla.review
        if text is None:
            return None
        window = window_for(self.reps.get(owner or "")) if self.policy.sla.business_hours else None
        return add_working_time(decided_at, sla_length(text, window), window)
