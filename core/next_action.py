"""Next-best-action: the policy's rules turned into a concrete instruction for the owner.

"Call within 15 min: requested a demo 4 min ago" beats "hot lead": the label names what to do
and the fact that makes it urgent. Placeholders are filled from the lead and its decision; the
event placeholders use the events the matching rule asked about, when it asked about any. A
rule on ``trigger: customer_signal`` asks about the policy's customer-signal events: its
"Pause sequences: {latest_event}" must name the "not now" that fired the trigger, not a click
that came after it.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from core.escalation import format_age
from core.model import Event, Evidence, NextBestAction, Trigger
from core.policy.codegen import compile_first_match
from core.policy.conditions import Check, Facts, compile_condition, named_triggers, positive_mentions
from core.policy.schema import NextBestActionRule

__all__ = ["ActionPlanner", "describe_evidence"]

_MAX_LABEL = 150
_new = tuple.__new__


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


def _event_types(when: Mapping[str, Any] | None, signal_events: frozenset[str]) -> frozenset[str]:
    """The event types a rule's event placeholders describe (empty: any event). The rule's
    ``event`` conditions name them, wherever they sit (``all: [{event: …}]`` too); a rule that
    holds only when ``customer_signal`` fired is about the events that fire it
    (``escalation.customer_signal.events``)."""
    types: set[str] = set()
    for event in positive_mentions(when, "event"):
        if isinstance(event, Mapping):
            types.update([event["type"]] if "type" in event else event.get("in", []))
    if types:
        return frozenset(types)
    return signal_events if named_triggers(when) == {"customer_signal"} else frozenset()


@dataclass(frozen=True, slots=True)
class _Rule:
    when: Check | None
    code: str
    label: str
    event_types: frozenset[str]
    placeholders: frozenset[str]
    fillers: tuple[tuple[str, Placeholder], ...] = ()  # (name, how to fill it) per placeholder
    # the label as (literal text, filler or None) pieces, when every placeholder is a plain
    # {name}: joined per lead instead of a dict of values and format_map
    pieces: tuple[tuple[str, Placeholder | None], ...] | None = None


class ActionPlanner:
    """The next_best_action section of a policy, compiled once. ``signal_events``: the
    customer-signal trigger's event types (none when the policy has no such trigger)."""

    def __init__(self, rules: list[NextBestActionRule], signal_events: Collection[str] = ()) -> None:
        signals = frozenset(signal_events)
        self.rules = []
        for r in rules:
            placeholders = frozenset(f for _, f, _, _ in string.Formatter().parse(r.label) if f)
            self.rules.append(
                _Rule(
                    compile_condition(r.when) if r.when else None,
                    r.code,
                    r.label,
                    _event_types(r.when, signals),
                    placeholders,
                    tuple((name, _PLACEHOLDERS[name]) for name in sorted(placeholders)),
                    _pieces(r.label),
                )
            )
        # first match wins: the rules' conditions as one generated function
        self._first_rule = compile_first_match([r.when or None for r in rules], "next_best_action")

    def plan(
        self,
        facts: Facts,
        evidence: tuple[Evidence, ...],
        triggers: tuple[Trigger, ...],
        owner_name: str,
    ) -> NextBestAction:
        i = self._first_rule(facts, 0)
        if i < 0:
            raise AssertionError("the policy guarantees a final rule without 'when'")
        rule = self.rules[i]
        # NextBestAction(...) without the NamedTuple's Python-level __new__ (see core.model)
        return _new(NextBestAction, (rule.code, self._label(rule, facts, evidence, triggers, owner_name)))

    @staticmethod
    def _label(
        rule: _Rule,
        facts: Facts,
        evidence: tuple[Evidence, ...],
        triggers: tuple[Trigger, ...],
        owner_name: str,
    ) -> str:
        if not rule.placeholders:
            return rule.label
        if rule.pieces is not None:  # what format_map makes of plain {name} fields, built directly
            parts: list[str] = []
            for literal, fill in rule.pieces:
                parts.append(literal)
                if fill is not None:
                    parts.append(fill(rule, facts, evidence, triggers, owner_name))
            text = "".join(parts).strip()
        else:
            # placeholder names were validated against LABEL_PLACEHOLDERS when the policy loaded,
            # so format_map only ever looks up plain names; lead text is inserted, not interpreted
            values = {name: fill(rule, facts, evidence, triggers, owner_name) for name, fill in rule.fillers}
            text = rule.label.format_map(values).strip()
        return text if len(text) <= _MAX_LABEL else text[: _MAX_LABEL - 1] + "…"


def _pieces(label: str) -> tuple[tuple[str, Placeholder | None], ...] | None:
    """The label split at its placeholders, or None when one has a format spec or conversion
    (``{score:>3}``, ``{name!r}``): the loader refuses those, and a policy built without it
    gets what ``format_map`` makes of them."""
    pieces: list[tuple[str, Placeholder | None]] = []
    for literal, name, spec, conversion in string.Formatter().parse(label):
        if name is not None and (spec or conversion or name not in _PLACEHOLDERS):
            return None
        pieces.append((literal, None if name is None else _PLACEHOLDERS[name]))
    return tuple(pieces)


def _latest(rule: _Rule, facts: Facts) -> Event | None:
    for event in reversed(facts.lead.events):
        if not rule.event_types or event.type in rule.event_types:
            return event
    return None


_NOT_A_SIGNAL = frozenset({"completeness", "intent.cap", "events.future"})  # bookkeeping, not buying signals


def _top_signal(evidence: tuple[Evidence, ...]) -> str:
    top: Evidence | None = None
    for item in evidence:  # the first item with the most (positive) points, as max() picks
        # "strong fit (10 × 4/4 fields known)" is no reason to call anybody
        if item.points > 0 and (top is None or item.points > top.points) and item.signal not in _NOT_A_SIGNAL:
            top = item
    return describe_evidence(top) if top else "no strong signal yet"


def _latest_event(rule: _Rule, facts: Facts) -> str:
    latest = _latest(rule, facts)
    return latest.type.replace("_", " ") if latest else "no recent activity"


def _latest_event_ago(rule: _Rule, facts: Facts) -> str:
    latest = _latest(rule, facts)
    return format_age(facts.now - latest.at) if latest else ""


Placeholder = Callable[[_Rule, Facts, tuple[Evidence, ...], tuple[Trigger, ...], str], str]
_PLACEHOLDERS: dict[str, Placeholder] = {
    "name": lambda r, f, e, t, o: f.lead.name,
    "company": lambda r, f, e, t, o: f.lead.company or "their company",
    "title": lambda r, f, e, t, o: f.lead.title or "",
    "band": lambda r, f, e, t, o: f.score.band if f.score else "",
    "score": lambda r, f, e, t, o: str(f.score.total) if f.score else "",
    "segment": lambda r, f, e, t, o: f.segment or "",
    "owner": lambda r, f, e, t, o: o,
    "top_signal": lambda r, f, e, t, o: _top_signal(e),
    "latest_event": lambda r, f, e, t, o: _latest_event(r, f),
    "latest_event_ago": lambda r, f, e, t, o: _latest_event_ago(r, f),
    "triggers": lambda r, f, e, t, o: ", ".join(x.code.replace("_", " ") for x in t) or "none",
}
