"""Next-best-action: the policy's rules turned into a concrete instruction for the owner.

"Call within 15 min: requested a demo 4 min ago" beats "hot lead": the label names what to do
and the fact that makes it urgent. Placeholders are filled from the lead and its decision; the
event placeholders use the events the matching rule asked about, when it asked about any.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.escalation import format_age
from core.model import Evidence, NextBestAction, Trigger
from core.policy.conditions import Check, Facts, compile_condition
from core.policy.schema import NextBestActionRule

__all__ = ["ActionPlanner", "describe_evidence"]

_MAX_LABEL = 150


def describe_evidence(item: Evidence) -> str:
    """One piece of evidence as a phrase: ``demo request ×2``, ``title VP Sales``."""
    if item.signal.startswith("intent."):
        kind = item.signal.removeprefix("intent.").replace("_", " ")
        count = f" ×{item.value}" if isinstance(item.value, int) and item.value > 1 else ""
        return f"{kind}{count}"
    if ": " in item.rule:  # a labelled fit rule
        return item.rule.split(": ", 1)[1]
    signal = item.signal.replace("account.", "account ").replace("_", " ")
    return f"{signal} {item.value}"


def _event_types(when: Mapping[str, Any] | None) -> frozenset[str]:
    if not when or not isinstance(when.get("event"), Mapping):
        return frozenset()
    event = when["event"]
    return frozenset([event["type"]] if "type" in event else event.get("in", []))


@dataclass(frozen=True, slots=True)
class _Rule:
    when: Check | None
    code: str
    label: str
    event_types: frozenset[str]


class _SafeDict(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


class ActionPlanner:
    """The next_best_action section of a policy, compiled once."""

    def __init__(self, rules: list[NextBestActionRule]) -> None:
        self.rules = [
            _Rule(compile_condition(r.when) if r.when else None, r.code, r.label, _event_types(r.when)) for r in rules
        ]
        self._formatter = string.Formatter()

    def plan(
        self,
        facts: Facts,
        evidence: tuple[Evidence, ...],
        triggers: tuple[Trigger, ...],
        owner_name: str,
    ) -> NextBestAction:
        for rule in self.rules:
            if rule.when is None or rule.when(facts):
                return NextBestAction(rule.code, self._label(rule, facts, evidence, triggers, owner_name))
        raise AssertionError("the policy guarantees a final rule without 'when'")

    def _label(
        self,
        rule: _Rule,
        facts: Facts,
        evidence: tuple[Evidence, ...],
        triggers: tuple[Trigger, ...],
        owner_name: str,
    ) -> str:
        lead, score = facts.lead, facts.score
        events = [e for e in lead.events if not rule.event_types or e.type in rule.event_types]
        latest = events[-1] if events else None
        top = max((e for e in evidence if e.points > 0), key=lambda e: e.points, default=None)
        values = _SafeDict(
            name=lead.name,
            company=lead.company or "their company",
            title=lead.title or "",
            band=score.band if score else "",
            score=str(score.total) if score else "",
            segment=facts.segment or "",
            owner=owner_name,
            top_signal=describe_evidence(top) if top else "no strong signal yet",
            latest_event=latest.type.replace("_", " ") if latest else "no recent activity",
            latest_event_ago=format_age(facts.now - latest.at) if latest else "",
            triggers=", ".join(t.code.replace("_", " ") for t in triggers) or "none",
        )
        text = self._formatter.vformat(rule.label, (), values).strip()
        return text if len(text) <= _MAX_LABEL else text[: _MAX_LABEL - 1] + "…"
