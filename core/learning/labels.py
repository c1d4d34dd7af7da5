"""Labels: what people said about automated recommendations, and how often they agreed.

Two kinds of human judgement count as agreement labels (DESIGN §3 step 7):

* a **review** of an escalation — approve is agreement; reassign and override are
  disagreement, each with a reason code;
* an **audit verdict** on a sampled automatic decision — confirm is agreement, flag is not.

Both become a :class:`Verdict`, so trust levels, calibration and reports treat them alike.
CRM outcomes (converted, won/lost) are a different kind of label — about the lead, not about
the recommendation — and are carried beside verdicts in :class:`Outcome`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

__all__ = [
    "AGREEING_KINDS",
    "Agreement",
    "LabelledDecision",
    "Outcome",
    "Verdict",
    "agreement",
    "agreement_by",
]

AGREEING_KINDS = frozenset({"approve", "confirm"})

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Verdict:
    """One person's judgement of one recommendation (a review or an audit verdict)."""

    at: datetime  # when the person answered
    decided_at: datetime  # when the automation recommended
    segment: str
    reviewer: str
    kind: str  # approve | reassign | override | confirm | flag
    agree: bool
    trust_level: int  # the segment's level when the decision was made
    policy_version: str
    reason_code: str | None = None
    raw_confidence: float | None = None  # the decision's uncalibrated confidence, if recorded
    confidence: float | None = None  # the confidence that was shown
    decision_pk: int | None = None
    # what the decision looked like to the trust rules: did a hard or a soft trigger fire, was it
    # suppressed — so trust can tell "automation's own calls" from cases every level escalates
    hard_trigger: bool = False
    soft_trigger: bool = False
    suppressed: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the CRM later said about a lead: converted, and won or lost."""

    converted: bool
    won: bool | None = None  # None: no closed deal yet

    @property
    def positive(self) -> bool:
        return self.converted or self.won is True


@dataclass(frozen=True, slots=True)
class LabelledDecision:
    """An acting decision (its contract) with what people and the CRM later said about it."""

    decision_pk: int
    lead_pk: int
    decided_at: datetime
    contract: dict[str, Any]
    verdict: Verdict | None
    human_band: str | None  # the band a person chose or confirmed (None: no band judgement)
    human_owner: str | None  # the owner a person chose or confirmed
    outcome: Outcome | None  # None: nothing known yet


@dataclass(frozen=True, slots=True)
class Agreement:
    """How many verdicts, and how many agreed."""

    n: int
    agreed: int

    @property
    def rate(self) -> float | None:
        return self.agreed / self.n if self.n else None


def agreement(verdicts: Iterable[Verdict]) -> Agreement:
    """Agreement over these verdicts."""
    n = agreed = 0
    for v in verdicts:
        n += 1
        agreed += v.agree
    return Agreement(n, agreed)


def agreement_by(verdicts: Iterable[Verdict], key: Callable[[Verdict], K]) -> dict[K, Agreement]:
    """Agreement per key (segment, reviewer, reason…), keys in first-seen order."""
    counts: dict[K, list[int]] = {}
    for v in verdicts:
        c = counts.setdefault(key(v), [0, 0])
        c[0] += 1
        c[1] += v.agree
    return {k: Agreement(n, a) for k, (n, a) in counts.items()}
