"""Domain values shared by every part of loopgate.

These are plain immutable values rather than pydantic models: the engine builds and reads
millions of them per minute, and everything that crosses a trust boundary (policy files, CRM
payloads, Slack requests) is validated at that boundary before it becomes one of these. The
small values built several times per lead (events, evidence, triggers, score, route) are
NamedTuples, which construct about twice as fast as frozen dataclasses.
Where one is built for every lead, ``tuple.__new__(Cls, (values…))`` builds it: the same value
as ``Cls(values…)`` without the Python-level ``__new__`` a NamedTuple class has (a third of the
cost). Every field is given, defaults included: a tuple of the wrong length is not checked.
The JSON shape of :class:`Decision` is the decision contract of DESIGN §4; `to_dict` is the
single place that defines it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import datetime
from keyword import iskeyword
from typing import Any, Literal, NamedTuple, TypeVar

__all__ = [
    "ACTIONS",
    "Account",
    "Action",
    "Decision",
    "DuplicateRecord",
    "Event",
    "Evidence",
    "Lead",
    "NextBestAction",
    "PriorScore",
    "Route",
    "Score",
    "Trigger",
    "positional_builder",
]

_T = TypeVar("_T")

Action = Literal["auto", "review", "suppress"]
ACTIONS: tuple[Action, ...] = ("auto", "review", "suppress")


class Event(NamedTuple):
    """Something the lead did (`demo_request`, `pricing_page`, `not_now`…) at a moment."""

    type: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Lead:
    """A lead or contact, normalised from the CRM or from JSONL input.

    Missing or malformed values are ``None``; what was malformed is listed in ``problems``
    (field name → what was wrong) so that the engine can cite it as missing data.
    """

    id: str
    source: str = "unknown"
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    title: str | None = None
    company: str | None = None
    domain: str | None = None
    industry: str | None = None
    employees: int | None = None
    annual_revenue: float | None = None
    country: str | None = None
    state: str | None = None
    lead_source: str | None = None
    estimated_deal_size: float | None = None
    owner_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    events: tuple[Event, ...] = ()
    fields: dict[str, Any] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    email_domain: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # derived once: conditions and account matching read it for every rule
        if self.email and "@" in self.email:
            object.__setattr__(self, "email_domain", self.email.rsplit("@", 1)[1].lower() or None)

    @property
    def name(self) -> str:
        parts = [p for p in (self.first_name, self.last_name) if p]
        return " ".join(parts) if parts else (self.email or self.id)


@dataclass(frozen=True, slots=True)
class Account:
    """A CRM account (Salesforce Account, HubSpot company) a lead can be matched to."""

    id: str
    source: str = "unknown"
    name: str | None = None
    domain: str | None = None
    owner_id: str | None = None
    strategic: bool = False
    tier: str | None = None
    industry: str | None = None
    employees: int | None = None
    is_customer: bool = False
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PriorScore:
    """The lead's previous stored score, for the volatility trigger."""

    total: int
    at: datetime


@dataclass(frozen=True, slots=True)
class DuplicateRecord:
    """The same person found in another CRM (or another record), with its owner."""

    source: str
    id: str
    owner_id: str | None
    owner_rep: str | None


class Evidence(NamedTuple):
    """One contribution to the score: every point of a total is one of these."""

    signal: str
    value: Any
    points: int
    rule: str

    def to_dict(self) -> dict[str, Any]:
        return {"signal": self.signal, "value": self.value, "points": self.points, "rule": self.rule}


class Score(NamedTuple):
    """``confidence`` is what people see (calibrated); ``raw_confidence`` is the score's own
    uncalibrated value, kept so that calibration can be refitted from labelled decisions."""

    fit: int
    intent: int
    completeness: int
    total: int
    band: str
    confidence: float
    raw_confidence: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "fit": self.fit,
            "intent": self.intent,
            "completeness": self.completeness,
            "total": self.total,
            "band": self.band,
            "confidence": self.confidence,
        }
        if self.raw_confidence is not None:
            out["raw_confidence"] = self.raw_confidence
        return out


class Trigger(NamedTuple):
    """Why a person must look: a stable code, a human-readable detail, and whether it is hard
    (reviewed at every trust level) or soft (trusted segments may let it pass)."""

    code: str
    detail: str
    hard: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "detail": self.detail, "hard": self.hard}


class Route(NamedTuple):
    """Where routing sent the lead, which rule decided, and how."""

    rule: str
    method: str
    owner: str | None
    owner_kind: Literal["rep", "queue", "none"]
    detail: str
    team: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "method": self.method,
            "team": self.team,
            "detail": self.detail,
        }


class NextBestAction(NamedTuple):
    code: str
    label: str

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "label": self.label}


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one lead: what to do, who owns it, and why — the decision contract."""

    lead_id: str
    source: str
    action: Action
    owner: str | None
    owner_kind: Literal["rep", "queue", "none"]
    route: Route
    segment: str
    score: Score
    triggers: tuple[Trigger, ...]
    evidence: tuple[Evidence, ...]
    next_best_action: NextBestAction
    trust_level: int
    audit_sample: bool
    suppressed_by: str | None
    policy_version: str
    decided_at: datetime
    explanation: str = ""

    def to_dict(self) -> dict[str, Any]:
        score = self.score
        return {
            "lead_id": self.lead_id,
            "source": self.source,
            "action": self.action,
            "owner": self.owner,
            "owner_kind": self.owner_kind,
            "route": self.route.to_dict(),
            "segment": self.segment,
            "score": score.to_dict(),
            "triggers": [{"code": t.code, "detail": t.detail, "hard": t.hard} for t in self.triggers],
            "evidence": [
                {"signal": e.signal, "value": e.value, "points": e.points, "rule": e.rule} for e in self.evidence
            ],
            "next_best_action": self.next_best_action.to_dict(),
            "trust_level": self.trust_level,
            "audit_sample": self.audit_sample,
            "suppressed_by": self.suppressed_by,
            "explanation": self.explanation,
            "policy_version": self.policy_version,
            "decided_at": self.decided_at.isoformat(),
        }


def positional_builder(cls: type[_T]) -> Callable[..., _T]:
    """``cls(*values)`` for a frozen slotted dataclass, with a value for every field (derived
    ones included) in field order, at a fraction of the cost: the frozen ``__init__`` gets
    past its own guard with ``object.__setattr__`` per field (a global, an attribute and a call
    each), and that was most of building a :class:`Lead` or :class:`Decision` once per lead.
    The object is the same, and as frozen, as the class builds; ``__post_init__`` is not
    called, so the caller passes derived fields itself (a test holds builder and class equal
    field by field).

    How: the fields are stored into a plain (not frozen) twin class with the very same slots,
    whose attribute stores the interpreter does inline (a slot store is no call at all), and
    the finished object then becomes a ``cls``: Python allows that ``__class__`` change only
    between classes of the same memory layout, which two classes of the same slots on the
    same base are (checked once, here). Setting each slot through its descriptor's
    ``__set__`` instead, as this did before, is a call through a method wrapper per field:
    about 3x the time for a lead's 22 fields.

    The function is generated the way ``dataclasses`` generates ``__init__``: its source is
    made only of the class's own field names (identifiers of this module, checked), one
    ``obj.<name> = <name>`` line each."""
    names = [f.name for f in dataclass_fields(cls)]  # type: ignore[arg-type]
    if not all(name.isidentifier() and not iskeyword(name) for name in names):
        raise ValueError(f"{cls.__name__}: field names must be identifiers")
    if cls.__bases__ != (object,) or tuple(getattr(cls, "__slots__", ())) != tuple(names):
        raise ValueError(f"{cls.__name__}: a slotted dataclass on object, one slot per field, is needed")
    twin = type(f"_{cls.__name__}Fields", (), {"__slots__": tuple(names)})
    probe: Any = object.__new__(twin)
    probe.__class__ = cls  # raises TypeError here, not per lead, should the layouts differ
    namespace: dict[str, Any] = {"_new": object.__new__, "_twin": twin, "_cls": cls}
    body = "".join(f"    obj.{name} = {name}\n" for name in names)
    source = (
        f"def build_{cls.__name__}({', '.join(names)}):\n    obj = _new(_twin)\n{body}"
        "    obj.__class__ = _cls\n    return obj\n"
    )
    exec(compile(source, f"<builder {cls.__name__}>", "exec"), namespace)  # noqa: S102 - field names only
    build: Callable[..., _T] = namespace[f"build_{cls.__name__}"]
    return build
