"""Fit, intent with decay, and completeness → a score whose every point is explained.

Each contribution is an :class:`Evidence` item with integer points; the total is their sum,
so "why 72?" always has an answer that adds up. Intent points halve every ``half_life_days``
(``now`` is given, never read), older events than ``window_days`` count for nothing, and the
intent cap is itself an evidence item (negative points), so the sum still holds.

Confidence here is the *raw* confidence — how sure the score is of itself: the share of known
fields and the distance from the nearest band threshold. Calibration against what reviewers
actually accept (``core.confidence``) turns it into the probability that is shown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

from core.model import Evidence, Lead
from core.policy.codegen import PROLOGUE, SourceBuilder
from core.policy.conditions import Facts, compile_predicate, field_getter
from core.policy.schema import FitRule, Scoring

__all__ = ["ScoreParts", "Scorer", "band_for"]

_DAY = 86400.0
_MARGIN_SCALE = 15.0  # points from a threshold at which the band is "clearly" decided
_MARGIN_CAP = int(_MARGIN_SCALE)  # the distance beyond which the margin no longer grows
_CONFIDENCE_FIELDS = ("email", "company", "title", "country", "employees", "industry")


class ScoreParts(NamedTuple):
    """A score before calibration: components, total, band, evidence, raw confidence.

    A NamedTuple like the other per-lead values of ``core.model``: built once per lead."""

    fit: int
    intent: int
    completeness: int
    total: int
    band: str
    raw_confidence: float
    known_share: float
    evidence: tuple[Evidence, ...]


def band_for(total: int, bands: list[tuple[str, int]]) -> str:
    """The first band (highest threshold first) the total reaches; ``cold`` below all."""
    for name, threshold in bands:
        if total >= threshold:
            return name
    return "cold"


@dataclass(frozen=True, slots=True)
class _FitCheck:
    signal: str
    points: int
    rule: str
    value_of: Callable[[Facts], Any]
    holds: Callable[[Any], bool]


def _number(value: Any) -> str:
    """1000000.0 → ``1,000,000``; 0.5 → ``0.5`` (a policy's numbers are read as floats)."""
    if isinstance(value, float) and value.is_integer():
        return f"{int(value):,}"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _describe(rule: FitRule) -> str:
    if rule.label:
        return f"fit.{rule.signal}: {rule.label}"
    ops = rule.predicate()
    parts = []
    for op, arg in ops.items():
        if op == "between":
            parts.append(f"{_number(arg[0])}–{_number(arg[1])}")
        elif op in ("in", "not_in"):
            shown = ", ".join(str(a) for a in arg[:4]) + (", …" if len(arg) > 4 else "")
            parts.append(f"{'in' if op == 'in' else 'not in'} [{shown}]")
        elif op == "matches":
            parts.append("matches pattern")
        else:
            symbol = {"lt": "<", "lte": "≤", "gt": ">", "gte": "≥", "eq": "=", "ne": "≠"}.get(op, op)
            parts.append(f"{symbol} {_number(arg)}")
    return f"fit.{rule.signal} {' '.join(parts)}"


class Scorer:
    """The scoring section of a policy, compiled once."""

    def __init__(self, scoring: Scoring) -> None:
        self._fit = [
            _FitCheck(
                rule.signal,
                rule.points,
                _describe(rule),
                field_getter(rule.signal),
                compile_predicate(rule.predicate()),
            )
            for rule in scoring.fit
        ]
        self._fit_points = _compile_fit(scoring.fit, [c.rule for c in self._fit])
        intent = scoring.intent
        self._event_points = dict(intent.events)
        # evidence names and rule texts per event type, built once instead of per lead
        self._event_text = {
            kind: (f"intent.{kind}", f"intent.{kind}: {pts} pts each, half-life {intent.half_life_days:g} d")
            for kind, pts in intent.events.items()
        }
        self._half_life = intent.half_life_days * _DAY
        self._window = intent.window_days * _DAY
        self._max_intent = intent.max_points
        self._completeness = scoring.completeness
        names = scoring.completeness.fields if scoring.completeness else _CONFIDENCE_FIELDS
        getter = attrgetter(*names)  # one C call for all the fields ("" never survives normalize)
        self._known_fields: Callable[[Lead], tuple[Any, ...]] = (
            getter if len(names) > 1 else (lambda lead: (getter(lead),))
        )
        self.bands = sorted(scoring.bands.items(), key=lambda kv: -kv[1])
        # completeness depends only on how many of the fields are known: one entry per count,
        # with its evidence item built once (evidence items are immutable, so they are shared)
        self._completeness_by_known = [self._complete(known, len(names)) for known in range(len(names) + 1)]
        # raw confidence depends on the share of known fields and on the distance to the nearest
        # band threshold, capped at the margin scale; points and thresholds are whole numbers,
        # so that distance is 0..14 or the cap: every value is computed here once, per lead a lookup
        self._raw_confidence = [
            [_raw_confidence(share, distance) for distance in range(_MARGIN_CAP + 1)]
            for share, _, _ in self._completeness_by_known
        ]

    def score(self, facts: Facts) -> ScoreParts:
        evidence: list[Evidence] = []
        fit = self._fit_points(facts, evidence)
        lead = facts.lead
        intent = self._intent(lead, facts.now, evidence) if lead.events else 0
        values = self._known_fields(lead)
        known = len(values) - values.count(None)
        known_share, completeness, item = self._completeness_by_known[known]
        if item is not None:
            evidence.append(item)
        total = fit + intent + completeness
        band: str | None = None
        distance = _MARGIN_CAP  # to the nearest threshold; beyond the scale it no longer matters
        for name, threshold in self.bands:  # highest first: the first one reached is the band
            gap = total - threshold
            if gap >= 0:
                if band is None:
                    band = name
            else:
                gap = -gap
            if gap < distance:
                distance = gap
        raw_confidence = self._raw_confidence[known][distance]
        # tuple.__new__: the NamedTuple without its Python-level __new__ (see core.model)
        return _new(
            ScoreParts,
            (fit, intent, completeness, total, band or "cold", raw_confidence, known_share, tuple(evidence)),
        )

    def _intent(self, lead: Lead, now: datetime, evidence: list[Evidence]) -> int:
        if not lead.events:
            return 0
        decayed: dict[str, float] = {}
        counts: dict[str, int] = {}
        points_of = self._event_points
        half_life, window = self._half_life, self._window
        for kind, at in lead.events:  # an Event is a (type, at) tuple: unpacking reads both at once
            base = points_of.get(kind)
            if base is None:
                continue
            age = (now - at).total_seconds()
            if age < 0.0:
                age = 0.0
            if age > window:
                continue
            if kind in decayed:
                decayed[kind] += base * 0.5 ** (age / half_life)
                counts[kind] += 1
            else:
                decayed[kind] = base * 0.5 ** (age / half_life)
                counts[kind] = 1
        if not decayed:
            return 0
        total = 0
        # highest first, ties in first-seen order (reverse keeps a sort stable); the key is C code
        ranked = sorted(decayed.items(), key=_points, reverse=True) if len(decayed) > 1 else decayed.items()
        for kind, value in ranked:
            points = round(value)
            if points == 0:
                continue
            total += points
            signal, rule = self._event_text[kind]
            evidence.append(_new(Evidence, (signal, counts[kind], points, rule)))
        if total > self._max_intent:
            evidence.append(
                Evidence("intent.cap", total, self._max_intent - total, f"intent capped at {self._max_intent}")
            )
            total = self._max_intent
        return total

    def _complete(self, known: int, of: int) -> tuple[float, int, Evidence | None]:
        """Share of known fields, completeness points and their evidence, for ``known`` of ``of``."""
        share = known / of
        if self._completeness is None or self._completeness.points == 0:
            return share, 0, None
        points = round(self._completeness.points * share)
        if not points:
            return share, 0, None
        rule = f"completeness: {self._completeness.points} × {known}/{of} fields known"
        return share, points, Evidence("completeness", f"{known}/{of}", points, rule)


def _raw_confidence(known_share: float, distance: int) -> float:
    """Raw confidence, never 1.0: an uncalibrated score has not earned certainty (calibration
    may grant it). ``distance`` is the points to the nearest band threshold."""
    margin = distance / _MARGIN_SCALE
    if margin > 1.0:
        margin = 1.0
    return round(0.15 + 0.45 * known_share + 0.35 * margin, 2)


def _compile_fit(rules: list[FitRule], texts: list[str]) -> Callable[[Facts, list[Evidence]], int]:
    """The fit rules as one generated function ``fit(facts, evidence) -> points``: for each
    rule in order, if its check holds, its points are added and its evidence appended — what
    a loop over :class:`_FitCheck` rows does (``value_of`` for the value, ``holds`` for the
    test), with each field read and test inline (see ``core.policy.codegen``)."""
    b = SourceBuilder()
    b.namespace.update(_Evidence=Evidence, _shown=_shown, _new=tuple.__new__)
    for line in PROLOGUE:
        b.line(line)
    b.line("fit = 0")
    for rule, text in zip(rules, texts, strict=True):
        points = b.const(rule.points)
        predicate = rule.predicate()
        b.line(f"if {b.field_check(rule.signal, predicate)}:")  # every field check binds the value to v
        if not _numeric_only(predicate):  # a number that passed a comparison is never long text
            b.line("if isinstance(v, str) and len(v) > 80:", 2)
            b.line("v = _shown(v)", 3)
        b.line(f"fit += {points}", 2)
        b.line(f"evidence.append(_new(_Evidence, ({b.const(rule.signal)}, v, {points}, {b.const(text)})))", 2)
    b.line("return fit")
    return b.build("fit_points", "facts, evidence")


_new = tuple.__new__


def _numeric_only(predicate: Any) -> bool:
    """Whether only a number can satisfy the predicate (a comparison, or equality with a number)."""
    if isinstance(predicate, Mapping):
        return any(op in ("lt", "lte", "gt", "gte", "between") for op in predicate)
    return isinstance(predicate, int | float) and not isinstance(predicate, bool)


_points = itemgetter(1)  # of a (kind, decayed points) item


def _shown(value: Any) -> Any:
    """Evidence values are for people: long text is shortened, numbers stay numbers."""
    if isinstance(value, str) and len(value) > 80:
        return value[:77] + "…"
    return value
