"""The policy file's structure, as pydantic models (DESIGN §5).

Structure only: types, required keys, value ranges, no unknown keys. What needs the whole
document — cross-references between reps, teams, queues, segments and reason codes, and the
condition language — is checked in :mod:`core.policy.semantics`, which reports with the same
paths so every error names its line. ``Policy.model_json_schema()`` is what
``loopgate policy schema`` prints.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from core.policy.durations import parse_duration
from core.salesforce_ids import salesforce_id18

__all__ = [
    "BUILTIN_TRIGGERS",
    "DEFAULT_HARD_TRIGGERS",
    "SLA_MAX",
    "WRITEBACK_KEYS",
    "CrmIds",
    "Digest",
    "Escalation",
    "FitRule",
    "NextBestActionRule",
    "Policy",
    "Queue",
    "ReasonCode",
    "Rep",
    "RoutingRule",
    "Scoring",
    "Sla",
    "Team",
    "Trust",
]

BUILTIN_TRIGGERS = (
    "strategic_account",
    "high_deal_size",
    "regulated_industry",
    "conflicting_signals",
    "score_volatility",
    "missing_data",
    "duplicate_ownership",
    "gray_zone",
    "vip",
    "customer_signal",
    "low_confidence",
)
DEFAULT_HARD_TRIGGERS = (
    "strategic_account",
    "high_deal_size",
    "regulated_industry",
    "duplicate_ownership",
    "customer_signal",
)
WRITEBACK_KEYS = (
    "score",
    "band",
    "status",
    "reason",
    "next_action",
    "segment",
    "policy_version",
    "decided_at",
)

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
SlackUser = Annotated[str, StringConstraints(pattern=r"^[UW][A-Z0-9]{2,20}$")]
SlackChannel = Annotated[str, StringConstraints(pattern=r"^[CGD][A-Z0-9]{2,20}$")]
Fraction = Annotated[float, Field(gt=0, le=1)]
Probability = Annotated[float, Field(ge=0, le=1)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ReasonUse = Literal["override", "reassign", "flag"]
Role = Literal["rep", "admin"]
_WORKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")
_REASON_USES: tuple[ReasonUse, ...] = ("override", "reassign", "flag")


def _duration(value: str) -> str:
    parse_duration(value)
    return value


Duration = Annotated[str, AfterValidator(_duration)]


def _at_most(limit: timedelta, what: str, spelled: str) -> Callable[[str], str]:
    """A duration validator refusing more than ``limit``: the scheduler and the SLA clocks add
    these lengths to times, and far beyond them leave datetime's range."""

    def check(value: str) -> str:
        if parse_duration(value) > limit:
            raise ValueError(f"{what} {value!r} is too long: at most {limit.days} days ({spelled})")
        return value

    return check


SLA_MAX = timedelta(days=365)
# a clock's plan adds its length to the decision time (and a breach step's to the deadline):
# far beyond a year that crashed the whole decide batch
SlaDuration = Annotated[str, AfterValidator(_at_most(SLA_MAX, "SLA", "365d, 52w, 8760h"))]


def _local_time(value: time) -> time:
    # these are times of day in each rep's `timezone`: an offset ("08:00Z") would be ignored
    # at best, and in working hours made every routing check fail comparing naive and aware times
    if value.tzinfo is not None:
        raise ValueError(
            f"'{value.isoformat()}' carries a time zone: write the local time ('{value:%H:%M}'), "
            "the rep's timezone says where"
        )
    return value


LocalTime = Annotated[time, AfterValidator(_local_time)]


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone '{value}' (use an IANA name like Europe/Berlin)") from None
    return value


TimeZoneName = Annotated[str, AfterValidator(_timezone)]


class Strict(BaseModel):
    """Base of every policy model: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ReasonCode(Strict):
    """A reason a person may give for overriding or reassigning (the modal's choices)."""

    code: Slug
    label: str = Field(min_length=1, max_length=75)
    # empty would be a code offered in no modal: leave the key out to offer it everywhere
    applies_to: list[ReasonUse] = Field(default_factory=lambda: list(_REASON_USES), min_length=1)


_SF_OWNER = re.compile(r"^(005|00G)[A-Za-z0-9]{12}([A-Za-z0-9]{3})?$")


class CrmIds(Strict):
    """This person's (or queue's) id in each CRM, so CRM owners map to policy reps."""

    salesforce: str | None = None
    hubspot: str | None = None

    @field_validator("salesforce")
    @classmethod
    def _salesforce_id(cls, value: str | None) -> str | None:
        if value is not None and not _SF_OWNER.match(value):
            raise ValueError(f"'{value}' is not a Salesforce User (005…) or Queue (00G…) id of 15 or 18 characters")
        if value is not None and len(value) == 18:
            # the suffix encodes the case of the first 15: a typo or a re-cased letter there
            # names another user, whom owners would silently be matched against
            expected = salesforce_id18(value[:15])[15:]
            if value[15:].upper() != expected:
                raise ValueError(
                    f"'{value}' is not a valid 18-character Salesforce id: for '{value[:15]}' the last three "
                    f"characters are '{expected}' (check for a typo or a changed letter case)"
                )
        return value

    @field_validator("hubspot")
    @classmethod
    def _hubspot_id(cls, value: str | None) -> str | None:
        if value is not None and not value.isdigit():
            raise ValueError(f"'{value}' is not a HubSpot owner id (digits only)")
        return value


class WorkingHours(Strict):
    """When a rep takes new leads, in the rep's own time zone."""

    start: LocalTime = time(9, 0)
    end: LocalTime = time(17, 0)
    days: list[Weekday] = Field(default_factory=lambda: list(_WORKDAYS))

    @field_validator("days")
    @classmethod
    def _some_day(cls, value: list[Weekday]) -> list[Weekday]:
        # the scheduler plans each rep's focus list on these days: none is a cron trigger that
        # cannot be built, and SLA clocks in business hours would never fall due
        if not value:
            raise ValueError("a rep needs at least one working day (leave 'days' out for mon–fri)")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> WorkingHours:
        if self.end <= self.start:
            raise ValueError(f"end {self.end} must be after start {self.start}")
        return self


class OutOfOffice(Strict):
    """Dates (inclusive, in the rep's time zone) when a rep takes no new leads."""

    start: date
    end: date
    note: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> OutOfOffice:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class Rep(Strict):
    """A person loopgate knows. ``rep`` takes leads; ``admin`` may act on any escalation and
    publish policy. A manager is whoever a team names as ``manager`` (roles may then be empty)."""

    id: Slug
    name: str = Field(min_length=1)
    email: str | None = None
    slack_user: SlackUser | None = None
    crm: CrmIds = Field(default_factory=CrmIds)
    team: Slug | None = None
    roles: list[Role] = Field(default_factory=lambda: list[Role](["rep"]))
    weight: int = Field(default=1, ge=0, le=100)
    daily_capacity: int | None = Field(default=None, ge=0)
    timezone: TimeZoneName = "UTC"
    working_hours: WorkingHours | None = None
    out_of_office: list[OutOfOffice] = Field(default_factory=list)


class Team(Strict):
    """A group of reps sharing a rotation, a manager and a review channel."""

    id: Slug
    name: str | None = None
    manager: Slug
    channel: SlackChannel
    method: Literal["weighted_round_robin", "round_robin"] = "weighted_round_robin"


class Queue(Strict):
    """A holding place for leads nobody should own yet (or nobody can take now)."""

    id: Slug
    name: str | None = None
    crm: CrmIds = Field(default_factory=CrmIds)
    channel: SlackChannel | None = None


class FitRule(Strict):
    """Points for a field: ``{signal: employees, between: [200, 5000], points: 25}``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    signal: str = Field(min_length=1)
    points: int = Field(ge=-100, le=100)
    label: str | None = None
    eq: Any = None
    ne: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    not_in: list[Any] | None = None
    lt: float | None = None
    lte: float | None = None
    gt: float | None = None
    gte: float | None = None
    between: tuple[float, float] | None = None
    matches: str | None = None
    exists: bool | None = None

    def predicate(self) -> dict[str, Any]:
        """The operator part, as the condition language spells it."""
        ops = self.model_dump(by_alias=True, exclude_none=True, exclude={"signal", "points", "label"})
        if "between" in ops:
            ops["between"] = list(ops["between"])
        return ops

    @model_validator(mode="after")
    def _one_operator(self) -> FitRule:
        if not self.predicate():
            raise ValueError(
                "a fit rule needs an operator: eq, ne, in, not_in, lt, lte, gt, gte, between, matches or exists"
            )
        return self


class Intent(Strict):
    """Behaviour points that fade: each event's points halve every ``half_life_days``."""

    half_life_days: float = Field(gt=0, le=365)
    window_days: float = Field(default=90, gt=0, le=3650)
    max_points: int = Field(default=60, ge=0, le=200)
    events: dict[Slug, int] = Field(min_length=1)


class Completeness(Strict):
    """Points for knowing the lead: ``points`` × share of ``fields`` that are filled in."""

    fields: list[str] = Field(min_length=1)
    points: int = Field(default=10, ge=0, le=100)


class Scoring(Strict):
    fit: list[FitRule] = Field(min_length=1)
    intent: Intent
    completeness: Completeness | None = None
    bands: dict[Slug, int] = Field(min_length=1)

    @field_validator("bands")
    @classmethod
    def _distinct_thresholds(cls, value: dict[str, int]) -> dict[str, int]:
        thresholds = list(value.values())
        if len(set(thresholds)) != len(thresholds):
            raise ValueError("two bands share a threshold")
        if "cold" in value:
            raise ValueError("'cold' is the band below every threshold; do not give it one")
        return value


Target = Literal["account_owner"] | dict[Literal["rep", "team", "queue"], str]


class RoutingRule(Strict):
    """First matching rule wins. ``to`` is ``account_owner`` or one of {rep|team|queue: id}."""

    name: Slug
    when: dict[str, Any] | None = None
    to: Target
    method: Literal["weighted_round_robin", "round_robin"] | None = None

    @field_validator("to")
    @classmethod
    def _one_target(cls, value: Target) -> Target:
        if isinstance(value, dict) and len(value) != 1:
            raise ValueError("'to' takes exactly one of rep, team or queue")
        return value


class Threshold(Strict):
    gte: float = Field(gt=0)


class RegulatedIndustries(Strict):
    industries: list[str] = Field(min_length=1)


class ConflictingSignals(Strict):
    """High fit with no intent (or the reverse): the score hides a disagreement."""

    fit_gte: int = 50
    intent_lte: int = 5
    intent_gte: int | None = None
    fit_lte: int | None = None


class ScoreVolatility(Strict):
    delta_gte: int = Field(gt=0)
    within: Duration = "24h"


class MissingData(Strict):
    required: list[str] = Field(min_length=1)


class GrayZone(Strict):
    width: int = Field(gt=0, le=50)


class WhenCondition(Strict):
    when: dict[str, Any]
    detail: str | None = None


class CustomerSignal(Strict):
    """Events that mean "a person should pause automation": out of office, not now, support."""

    events: list[Slug] = Field(min_length=1)
    within: Duration = "14d"


class LowConfidence(Strict):
    below: Probability


class CustomTrigger(Strict):
    code: Slug
    when: dict[str, Any]
    detail: str = Field(min_length=1)
    hard: bool = False


class Escalation(Strict):
    """Which situations need a person. A trigger left out is off."""

    strategic_account: WhenCondition | bool | None = None
    high_deal_size: Threshold | None = None
    regulated_industry: RegulatedIndustries | None = None
    conflicting_signals: ConflictingSignals | None = None
    score_volatility: ScoreVolatility | None = None
    missing_data: MissingData | None = None
    duplicate_ownership: bool = False
    gray_zone: GrayZone | None = None
    vip: WhenCondition | None = None
    customer_signal: CustomerSignal | None = None
    low_confidence: LowConfidence | None = None
    custom: list[CustomTrigger] = Field(default_factory=list)
    hard: list[Slug] = Field(default_factory=lambda: list(DEFAULT_HARD_TRIGGERS))


class SuppressRule(Strict):
    """Leads nobody should be pinged about: not routed (no rotation slot is spent), fields still
    written to the CRM. ``queue`` parks them in a queue; without it the owner is left as is."""

    when: dict[str, Any]
    reason: Slug
    queue: Slug | None = None


class NextBestActionRule(Strict):
    """First match wins; ``label`` may use {placeholders} (see the example policy)."""

    when: dict[str, Any] | None = None
    code: Slug
    label: str = Field(min_length=1, max_length=150)


class BreachStep(Strict):
    """One step after the deadline passes; ``after`` is measured from the breach (none = at once),
    at most 365 days."""

    after: SlaDuration | None = None
    do: Literal["nudge_owner", "notify_manager", "reroute"]


class Sla(Strict):
    """Clocks: first touch by band, review of escalations, and what happens when late.

    Every SLA duration (``first_touch``, ``review``, ``on_breach[].after``) is at most 365 days
    as written (``365d``, ``52w``, ``8760h``): no response is worth waiting longer for. With
    ``business_hours`` each must also fall due within five years of every rep's working hours
    (checked in :mod:`core.policy.semantics`; every rep has a working day, see WorkingHours).
    """

    first_touch: dict[Slug, SlaDuration] = Field(default_factory=dict)
    review: SlaDuration | None = None
    nudge_at: list[Fraction] = Field(default_factory=lambda: [0.5])
    on_breach: list[BreachStep] = Field(default_factory=list)
    business_hours: bool = False

    @field_validator("nudge_at")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if value != sorted(set(value)):
            raise ValueError("nudge_at fractions must be distinct and increasing")
        return value


_LEVEL_4_SAMPLE_DIVISOR = 3  # a single audit_sample rate, at level 4 (see Trust)


class TrustPromote(Strict):
    min_reviews: int = Field(default=50, ge=1)
    min_agreement: Probability = 0.8


class TrustDemote(Strict):
    window: int = Field(default=20, ge=1)
    min_agreement: Probability = 0.7


class Trust(Strict):
    """Trust-but-verify levels per segment (1 verify everything … 4 strategic oversight).

    ``audit_sample`` is the share of automatic decisions sampled for the leaders' audit: a map
    per level (``{2: 0.2, 3: 0.15, 4: 0.05}``; a level not named is not sampled), or one rate.
    One rate samples levels 2 and 3 at that rate and level 4 at **a third** of it (0.15 → 0.05),
    because DESIGN §5 gives level 4 "a lower sample" than level 3 without a figure, and a third
    is the ratio the example policy's own map uses between 3 and 4. Level 1 reviews everything,
    so there is nothing automatic to sample.
    """

    default_level: int = Field(default=2, ge=1, le=4)
    segments: dict[str, Annotated[int, Field(ge=1, le=4)]] = Field(default_factory=dict)
    auto_confidence: Probability = 0.6
    promote: TrustPromote = Field(default_factory=TrustPromote)
    demote: TrustDemote = Field(default_factory=TrustDemote)
    max_level: int = Field(default=4, ge=1, le=4)
    audit_sample: Probability | dict[int, Probability] = 0.15
    seed: str = "loopgate"

    def sample_rate(self, level: int) -> float:
        """The share of automatic decisions sampled for audit at a trust level (see the class
        docstring: a single rate is cut to a third at level 4)."""
        if isinstance(self.audit_sample, dict):
            return self.audit_sample.get(level, 0.0)
        if level < 2:
            return 0.0
        return self.audit_sample / _LEVEL_4_SAMPLE_DIVISOR if level >= 4 else self.audit_sample


class Writeback(Strict):
    """What loopgate writes into each CRM: owner (if ``owner``), and these fields."""

    owner: bool = True
    salesforce: dict[str, str] = Field(default_factory=dict)
    hubspot: dict[str, str] = Field(default_factory=dict)

    @field_validator("salesforce", "hubspot")
    @classmethod
    def _known_keys(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(WRITEBACK_KEYS))
        if unknown:
            raise ValueError(f"unknown write-back key(s) {', '.join(unknown)}; use {', '.join(WRITEBACK_KEYS)}")
        return value


class Digest(Strict):
    channel: SlackChannel
    weekly: str = "mon 08:00"
    timezone: TimeZoneName = "UTC"

    @field_validator("weekly")
    @classmethod
    def _weekly(cls, value: str) -> str:
        if not re.match(r"^(mon|tue|wed|thu|fri|sat|sun) ([01]\d|2[0-3]):[0-5]\d$", value):
            raise ValueError(f"'{value}' is not a weekly slot like 'mon 08:00'")
        return value


SYNC_MAX = timedelta(days=7)
# the scheduler adds the interval to each run's time: beyond datetime's range the sync job
# died after its first run, and a CRM a week stale is no lead routing
SyncInterval = Annotated[str, AfterValidator(_at_most(SYNC_MAX, "sync interval", "7d, 1w, 168h"))]


class Sync(Strict):
    interval: SyncInterval = "5m"
    salesforce: SyncInterval | None = None
    hubspot: SyncInterval | None = None


class Notifications(Strict):
    dm_owner_on_review: bool = True
    focus_list_at: LocalTime | None = time(8, 30)


FREE_EMAIL_DOMAINS = (
    "gmail.com", "googlemail.com", "yahoo.com", "hotmail.com", "outlook.com", "live.com", "icloud.com",
    "me.com", "aol.com", "proton.me", "protonmail.com", "gmx.de", "web.de", "mail.ru", "qq.com", "163.com",
)  # fmt: skip


class Enrichment(Strict):
    """How leads are matched to accounts: personal mail domains never match a company."""

    free_email_domains: list[str] = Field(default_factory=lambda: list(FREE_EMAIL_DOMAINS))


class Policy(Strict):
    """A whole loopgate policy. Applied whole or not at all."""

    name: str = "loopgate policy"
    reason_codes: list[ReasonCode] = Field(min_length=1)
    reps: list[Rep] = Field(min_length=1)
    teams: list[Team] = Field(min_length=1)
    queues: list[Queue] = Field(default_factory=list)
    segments: dict[Slug, dict[str, Any]] = Field(default_factory=dict)
    default_segment: Slug = "other"
    enrichment: Enrichment = Field(default_factory=Enrichment)
    scoring: Scoring
    routing: list[RoutingRule] = Field(min_length=1)
    fallback_queue: Slug
    keep_owner: bool = True
    escalation: Escalation = Field(default_factory=Escalation)
    suppress: list[SuppressRule] = Field(default_factory=list)
    next_best_action: list[NextBestActionRule] = Field(min_length=1)
    sla: Sla = Field(default_factory=Sla)
    trust: Trust = Field(default_factory=Trust)
    writeback: Writeback = Field(default_factory=Writeback)
    digest: Digest | None = None
    sync: Sync = Field(default_factory=Sync)
    notifications: Notifications = Field(default_factory=Notifications)
