"""The weekly audit digest as values: what a leader reads on Monday, and the arithmetic behind it.

The numbers are counted in SQL (``core.store.digest``); this module holds the report's shape,
the ISO-week calendar in the digest's time zone, and the few formulas applied to those counts:

* **Percentiles** are *discrete* (``percentile_disc``): the smallest observed value with at
  least ``q`` of the observations at or below it — the value at 1-based rank ⌈q·n⌉. The same
  definition on PostgreSQL (``percentile_disc``) and SQLite (``ORDER BY … OFFSET``).
* **PSI** (population stability index) of the week's score distribution against the previous
  four weeks, over ten 10-point bins: Σ (aᵢ − eᵢ)·ln(aᵢ/eᵢ) with shares floored at 0.0001 so an
  empty bin does not divide by zero. Below 0.1 stable, 0.1–0.25 moderate, above 0.25 a shift.
* **Lift** of a band: its conversion rate over the cohort's overall rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

__all__ = [
    "SCORE_BINS",
    "Attainment",
    "BandConversion",
    "DailyCount",
    "Digest",
    "Drift",
    "FairnessRow",
    "ReasonRow",
    "RepRow",
    "SampleItem",
    "SegmentTrust",
    "Speed",
    "drift_label",
    "last_complete_week",
    "psi",
    "rank_offset",
    "week_bounds",
    "week_label",
]

SCORE_BINS = 10  # 0–9, 10–19, … 90+
_PSI_FLOOR = 1e-4


def week_label(day: date) -> str:
    """``2026-W47`` for a date (ISO 8601 week)."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def week_bounds(label: str, timezone: str) -> tuple[datetime, datetime]:
    """Monday 00:00 to the next Monday 00:00 of ISO week ``label`` in ``timezone``, as UTC."""
    try:
        year_text, week_text = label.upper().split("-W")
        monday = date.fromisocalendar(int(year_text), int(week_text), 1)
    except ValueError:
        raise ValueError(f"'{label}' is not an ISO week like 2026-W47") from None
    zone = ZoneInfo(timezone)
    start = datetime.combine(monday, time(0), zone).astimezone(UTC)
    end = datetime.combine(monday + timedelta(days=7), time(0), zone).astimezone(UTC)
    return start, end


def last_complete_week(now: datetime, timezone: str) -> str:
    """The ISO week that ended most recently in ``timezone`` (on a Monday: last week)."""
    local = now.astimezone(ZoneInfo(timezone)).date()
    return week_label(local - timedelta(days=local.weekday() + 7))


def rank_offset(q: float, n: int) -> int:
    """0-based position of the discrete ``q`` percentile among ``n`` sorted values."""
    return max(math.ceil(q * n) - 1, 0)


def psi(expected: Sequence[int], actual: Sequence[int]) -> float | None:
    """Population stability index of ``actual`` counts against ``expected`` (same bins)."""
    total_e, total_a = sum(expected), sum(actual)
    if total_e == 0 or total_a == 0:
        return None
    value = 0.0
    for e, a in zip(expected, actual, strict=True):
        pe, pa = max(e / total_e, _PSI_FLOOR), max(a / total_a, _PSI_FLOOR)
        value += (pa - pe) * math.log(pa / pe)
    return value


def drift_label(value: float | None) -> str:
    if value is None:
        return "not enough data"
    if value < 0.1:
        return "stable"
    if value <= 0.25:
        return "moderate shift"
    return "significant shift"


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True, slots=True)
class Speed:
    """Seconds from clock start to first response, over the responses that came."""

    n: int
    median: float | None
    p90: float | None


@dataclass(frozen=True, slots=True)
class Attainment:
    """Clocks with a deadline: answered in time, late or never, still running."""

    met: int
    missed: int
    pending: int

    @property
    def rate(self) -> float | None:
        return _rate(self.met, self.met + self.missed)


@dataclass(frozen=True, slots=True)
class ReasonRow:
    code: str
    label: str
    overrides: int
    flags: int


@dataclass(frozen=True, slots=True)
class RepRow:
    """A reviewer: how many reviews, how many changed what automation proposed."""

    rep: str
    name: str
    reviews: int
    overrides: int

    @property
    def rate(self) -> float | None:
        return _rate(self.overrides, self.reviews)


@dataclass(frozen=True, slots=True)
class SegmentTrust:
    segment: str
    verdicts: int
    agreed: int
    level: int
    pinned: bool
    changes: tuple[str, ...] = ()

    @property
    def rate(self) -> float | None:
        return _rate(self.agreed, self.verdicts)


@dataclass(frozen=True, slots=True)
class BandConversion:
    band: str
    leads: int
    converted: int
    lift: float | None

    @property
    def rate(self) -> float | None:
        return _rate(self.converted, self.leads)


@dataclass(frozen=True, slots=True)
class Drift:
    psi: float | None
    current: tuple[int, ...]
    baseline: tuple[int, ...]

    @property
    def label(self) -> str:
        return drift_label(self.psi)


@dataclass(frozen=True, slots=True)
class FairnessRow:
    group: str
    n: int
    review: int
    suppress: int

    @property
    def review_rate(self) -> float | None:
        return _rate(self.review, self.n)

    @property
    def suppress_rate(self) -> float | None:
        return _rate(self.suppress, self.n)


@dataclass(frozen=True, slots=True)
class SampleItem:
    """An automatic decision sampled for audit (raw CRM text: escape before showing)."""

    decision_pk: int
    lead: str
    company: str | None
    owner: str
    band: str
    score: int
    segment: str
    confidence: float
    verdicts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DailyCount:
    day: date
    auto: int
    review: int
    suppress: int


@dataclass(frozen=True)
class Digest:
    """One week's audit digest. Rates are ``None`` where nothing was counted."""

    week: str
    start: datetime
    end: datetime
    timezone: str
    generated_at: datetime
    policy_version: str
    decisions: int
    actions: dict[str, int]
    speed: dict[str, Speed]
    sla: dict[str, Attainment]
    reviews: int
    overrides: int
    by_reason: list[ReasonRow]
    by_rep: list[RepRow]
    segments: list[SegmentTrust]
    conversion: list[BandConversion]
    conversion_since: datetime
    drift: Drift
    fairness_segment: list[FairnessRow]
    fairness_country: list[FairnessRow]
    sample: list[SampleItem]
    sampled_total: int
    daily: list[DailyCount] = field(default_factory=list)

    def share(self, action: str) -> float | None:
        return _rate(self.actions.get(action, 0), self.decisions)

    @property
    def override_rate(self) -> float | None:
        return _rate(self.overrides, self.reviews)

    @property
    def has_outcomes(self) -> bool:
        return any(b.converted for b in self.conversion)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (times as ISO strings), with the derived rates."""

        def plain(value: Any) -> Any:
            if isinstance(value, datetime | date):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [plain(v) for v in value]
            return value

        out: dict[str, Any] = plain(asdict(self))
        out["shares"] = {a: self.share(a) for a in ("auto", "review", "suppress")}
        out["override_rate"] = self.override_rate
        for name, attained in self.sla.items():
            out["sla"][name]["rate"] = attained.rate
        for row, data in zip(self.by_rep, out["by_rep"], strict=True):
            data["rate"] = row.rate
        for seg, data in zip(self.segments, out["segments"], strict=True):
            data["rate"] = seg.rate
        for band, data in zip(self.conversion, out["conversion"], strict=True):
            data["rate"] = band.rate
        out["drift"]["label"] = self.drift.label
        for rows, key in ((self.fairness_segment, "fairness_segment"), (self.fairness_country, "fairness_country")):
            for fair, data in zip(rows, out[key], strict=True):
                data["review_rate"], data["suppress_rate"] = fair.review_rate, fair.suppress_rate
        return out
