"""Labels: what people said about automated recommendations, and how often they agreed.

Two kinds of human judgement count as agreement labels (DESIGN §3 step 7):

* a **review** of an escalation — approve is agreement; reassign and override are
  disagreement, each with a reason code;
* an **audit verdict** on a sampled automatic decision — confirm is agreement, flag is not.

Both become a :class:`Verdict`, so trust levels, calibration and reports treat them alike.
Several people may judge one decision (each leader who reads the digest may Confirm or Flag
the same sampled decision): per-person figures count every verdict, while whatever counts
*decisions* — trust levels, tuning's labelled decisions — takes one per decision
(:func:`one_per_decision`).
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
    "one_per_decision",
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


AUDIT_KINDS = frozenset({"confirm", "flag"})


def _precedence(v: Verdict) -> int:
    """Lower wins: a review, then a flag, then a confirm."""
    if v.kind not in AUDIT_KINDS:
        return 0
    return 1 if v.kind == "flag" else 2


def one_per_decision(verdicts: Iterable[Verdict]) -> list[Verdict]:
    """One verdict per judged decision, so a decision counts once however many people clicked.

    Which one stands when several people judged the same decision:

    * a **review** wins over audit verdicts: it is the answer of the person the case was
      escalated to, and the one the lead then followed (a decision has at most one review);
    * among audit verdicts a **flag wins over confirms**, whichever came first: one leader who
      saw something wrong outweighs others who saw nothing, so the automation is not promoted
      (nor kept from a demotion) on a decision a leader disputed — erring toward more human
      oversight is the safe side of the trust rules;
    * otherwise the earliest one stands.

    Verdicts without a decision (``decision_pk`` is ``None``) are kept as they are. Winners come
    in the order their decisions first appear.
    """
    slots: list[Verdict] = []
    where: dict[int, int] = {}
    for v in verdicts:
        if v.decision_pk is None:
            slots.append(v)
            continue
        i = where.get(v.decision_pk)
        if i is None:
            where[v.decision_pk] = len(slots)
            slots.append(v)
            continue
        current = slots[i]
        if (_precedence(v), v.at) < (_precedence(current), current.at):
            slots[i] = v
    return slots
