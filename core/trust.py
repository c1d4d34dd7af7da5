"""Trust-but-verify: from a segment's trust level and the triggers, what automation may do.

Levels (DESIGN §5): 1 verify everything; 2 verify exceptions (auto only with no trigger and
enough confidence); 3 periodic audit (auto unless a hard trigger); 4 strategic oversight (as
3, with a smaller audit sample). Suppression is explicit policy and needs no review from level 2
on — unless a hard trigger fires: a strategic or regulated lead is never silently suppressed. At
level 1 a suppression is a decision like any other and goes to a person: a segment whose
automation has not earned trust yet must not silence leads on its own. Such a review keeps the
suppression's route ("suppressed (reason): …") and ``suppressed_by``, so the reviewer sees what
automation would have done and why.

Audit sampling is a hash of (seed, lead, content), not a random draw: the same decision is
always sampled or not, across replicas and replays, yet the sample is uniform at the rate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from operator import attrgetter

from core.model import Action, Trigger

__all__ = ["choose_action", "in_audit_sample"]

_code = attrgetter("code")  # of a Trigger


def choose_action(
    level: int,
    triggers: Sequence[Trigger],
    confidence: float,
    *,
    suppressed: bool,
    auto_confidence: float,
    named: Collection[str] = (),
) -> tuple[Action, str]:
    """The action and, in words, why. A hard trigger overrules a suppression unless it is one
    the suppression rule ``named`` (asked for)."""
    hard: list[str] = []  # a loop, not a comprehension: that is a function call per lead in 3.11
    for code, _, is_hard in triggers:
        if is_hard and not (suppressed and code in named):
            hard.append(code)
    if hard:
        what = "suppression overruled: " if suppressed else ""
        if len(hard) == 1:
            return "review", f"{what}hard trigger {hard[0]} always needs a person"
        return "review", f"{what}hard triggers {', '.join(hard)} always need a person"
    if level <= 1:
        if suppressed:
            return "review", "trust level 1: every decision is verified, a suppression too"
        return "review", "trust level 1: every decision is verified"
    if suppressed:
        return "suppress", "matches a suppression rule"
    if level == 2:
        if triggers:
            return "review", f"trust level 2 verifies exceptions: {', '.join(map(_code, triggers))}"
        if confidence < auto_confidence:
            return "review", f"trust level 2: confidence {confidence:.2f} below {auto_confidence:.2f}"
        return "auto", f"trust level 2: no exception and confidence {confidence:.2f}"
    soft = f" (soft triggers {', '.join(map(_code, triggers))} let through)" if triggers else ""
    return "auto", f"trust level {level}: no hard trigger{soft}"


def in_audit_sample(seed: str, lead_key: str, content: str, rate: float) -> bool:
    """Whether an automatic decision is sampled for a person's audit, at ``rate``."""
    if rate <= 0:
        return False
    digest = hashlib.sha256(f"{seed}\x00{lead_key}\x00{content}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate
