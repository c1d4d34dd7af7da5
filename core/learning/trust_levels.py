"""How a segment's trust level moves (DESIGN §5): earned by agreement, lost by disagreement.

Only verdicts that judge the automation *as it now stands* count: decisions made at the
segment's current level, by the current policy version, since the level last changed. So a
promotion is always earned at the level it leaves (1→2 and 2→3 each need their own evidence),
a demotion cannot be caused by a policy that has since been replaced, and a new policy starts
with a clean slate (its own first ``window`` verdicts can demote it quickly).

Each question is judged on the decisions it is about. A level decides which decisions the
automation makes alone; so

* **promotion** from level L counts verdicts on decisions the automation *would own at L + 1*
  (at level 1: reviewed decisions with no trigger and enough confidence; at 2: also those with
  only soft triggers; from 3: its automatic decisions, judged by audit verdicts), and
* **demotion** at level L counts verdicts on decisions it *owns at L* — its automatic
  decisions, judged by the audit sample.

Cases escalated at every level (hard triggers) judge neither: they are a person's job whatever
the trust. Counting them (as a plain "agreement of everything reviewed" would) makes a healthy
segment flap: promoted on its easy majority at level 1, demoted at level 2 by the hard cases
that are then all that is reviewed, promoted again at level 1 (seen in bench/learning.py:
mid-market changed level 11 times in 12 weeks). Which level makes a decision automatic comes
from :func:`core.trust.choose_action` — the same rule that decided it.

Rules, per the policy's ``trust`` section:

* **demote** (checked first: safety wins) when at least ``demote.window`` verdicts on owned
  decisions exist and agreement over the last ``window`` of them is below ``demote.min_agreement``;
* **promote** when at least ``promote.min_reviews`` verdicts on next-level decisions exist and
  agreement over all of them is at least ``promote.min_agreement``, up to ``max_level``;
* **cap** when the policy's ``max_level`` is below the current level, pinned or not (a pinned
  segment stays pinned, at the cap);
* a **pinned** level never moves by itself otherwise; an admin pins and unpins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from core.learning.labels import Verdict, agreement, one_per_decision
from core.model import Trigger
from core.policy.schema import Trust
from core.trust import choose_action

__all__ = ["Assessment", "LevelState", "Move", "assess", "automatic_from", "counting_verdicts"]

_HARD = Trigger("hard", "", hard=True)
_SOFT = Trigger("soft", "", hard=False)

MoveKind = Literal["promote", "demote", "cap", "pin", "unpin"]


@dataclass(frozen=True, slots=True)
class LevelState:
    """A segment's level now; ``since`` is when it last changed (``None``: never, policy start)."""

    segment: str
    level: int
    pinned: bool = False
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class Move:
    segment: str
    from_level: int
    to_level: int
    kind: MoveKind
    reason: str


@dataclass(frozen=True, slots=True)
class Assessment:
    """Where a segment stands: its evidence, the move it earned (if any), what would move it."""

    segment: str
    level: int
    pinned: bool
    verdicts: int
    agreement: float | None
    window_verdicts: int
    window_agreement: float | None
    move: Move | None
    outlook: str


def counting_verdicts(verdicts: Iterable[Verdict], state: LevelState, policy_version: str) -> list[Verdict]:
    """The verdicts that judge this segment's automation as it now stands, oldest first — one
    per decision (:func:`core.learning.labels.one_per_decision`: a review wins, then a flag
    over confirms). ``promote.min_reviews`` and ``demote.window`` count decisions judged: three
    leaders confirming the same sampled decision in the digest are one piece of evidence, not
    three, and one of them flagging it makes it a disagreement."""
    chosen = [
        v
        for v in verdicts
        if v.segment == state.segment
        and v.trust_level == state.level
        and v.policy_version == policy_version
        and (state.since is None or v.decided_at >= state.since)
    ]
    return sorted(one_per_decision(chosen), key=lambda v: (v.at, v.decision_pk or 0))


def automatic_from(verdict: Verdict, auto_confidence: float) -> int | None:
    """The lowest trust level at which the judged decision would have been automatic."""
    triggers = [t for t, fired in ((_HARD, verdict.hard_trigger), (_SOFT, verdict.soft_trigger)) if fired]
    confidence = 1.0 if verdict.confidence is None else verdict.confidence
    for level in (1, 2, 3, 4):
        action, _ = choose_action(
            level, triggers, confidence, suppressed=verdict.suppressed, auto_confidence=auto_confidence
        )
        if action == "auto":
            return level
    return None


def _owned_at(counted: Sequence[Verdict], level: int, auto_confidence: float) -> list[Verdict]:
    """Verdicts on decisions the automation makes alone at ``level``."""
    out = []
    for v in counted:
        start = automatic_from(v, auto_confidence)
        if start is not None and start <= level:
            out.append(v)
    return out


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def assess(state: LevelState, counted: Sequence[Verdict], trust: Trust) -> Assessment:
    """Judge one segment from its counting verdicts (see :func:`counting_verdicts`)."""
    promote, demote = trust.promote, trust.demote
    overall = agreement(_owned_at(counted, min(state.level + 1, 4), trust.auto_confidence))
    window = agreement(_owned_at(counted, state.level, trust.auto_confidence)[-demote.window :])
    move: Move | None = None
    level = state.level
    if level > trust.max_level:  # before the pin: an admin's pin never outranks the policy's cap
        pin = " (stays pinned)" if state.pinned else ""
        move = Move(state.segment, level, trust.max_level, "cap", f"the policy's max_level is {trust.max_level}{pin}")
        outlook = move.reason
    elif state.pinned:
        outlook = f"pinned at {level} by an admin: does not move until unpinned"
    elif level > 1 and window.n >= demote.window and (window.rate or 0.0) < demote.min_agreement:
        move = Move(
            state.segment,
            level,
            level - 1,
            "demote",
            f"agreement {_pct(window.rate)} over the last {window.n} verdicts on its automatic decisions "
            f"is below {_pct(demote.min_agreement)}",
        )
        outlook = move.reason
    elif (
        level < trust.max_level and overall.n >= promote.min_reviews and (overall.rate or 0.0) >= promote.min_agreement
    ):
        move = Move(
            state.segment,
            level,
            level + 1,
            "promote",
            f"agreement {_pct(overall.rate)} over {overall.n} verdicts on decisions it would own at level "
            f"{level + 1} reached {_pct(promote.min_agreement)}",
        )
        outlook = move.reason
    else:
        outlook = _outlook(level, overall.n, overall.rate, window.n, window.rate, trust)
    return Assessment(
        segment=state.segment,
        level=move.to_level if move else level,
        pinned=state.pinned,
        verdicts=overall.n,
        agreement=overall.rate,
        window_verdicts=window.n,
        window_agreement=window.rate,
        move=move,
        outlook=outlook,
    )


def _outlook(level: int, n: int, rate: float | None, window_n: int, window_rate: float | None, trust: Trust) -> str:
    """What it takes to move, in words a RevOps admin can act on."""
    promote, demote = trust.promote, trust.demote
    parts: list[str] = []
    if level < trust.max_level:
        need = max(promote.min_reviews - n, 0)
        target = f"≥ {_pct(promote.min_agreement)} agreement"
        if need:
            parts.append(f"promote to {level + 1} after {need} more verdicts with {target} (now {_pct(rate)} over {n})")
        else:
            parts.append(
                f"promote to {level + 1} once agreement reaches {_pct(promote.min_agreement)} (now {_pct(rate)})"
            )
    else:
        parts.append(f"at the policy's max_level {trust.max_level}")
    if level > 1:
        if window_n < demote.window:
            parts.append(
                f"demote to {level - 1} if agreement over the last {demote.window} verdicts falls below "
                f"{_pct(demote.min_agreement)} ({window_n} so far)"
            )
        else:
            parts.append(
                f"demote to {level - 1} if agreement over the last {demote.window} falls below "
                f"{_pct(demote.min_agreement)} (now {_pct(window_rate)})"
            )
    return "; ".join(parts)
