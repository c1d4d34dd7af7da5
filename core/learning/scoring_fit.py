"""Learning a policy's scoring section from labelled leads: new points, same explainability.

The output is an ordinary ``scoring:`` section — fit rules with integer points, intent event
points, band thresholds — so a learned score is explained by evidence items exactly like a
hand-written one, and a person can read, edit, simulate and publish it.

How:

1. **Features** are the policy's own fit rules (does the rule hold for this lead?), plus —
   when ``explore`` — candidate rules on the *same signals* the policy already uses: numeric
   cut points (``employees ≥ 100``), frequent categorical values (``industry in [retail]``)
   and frequent words for text matched by pattern (``title matches \\bmanager\\b``). The
   policy author decides which signals matter; learning refines where the lines are. Intent
   features are each event type's decayed count (the policy's half-life and window), and the
   completeness share when the policy scores completeness.
2. **Model**: ordinal logistic regression (:mod:`core.learning.ordinal`). With labels in the
   policy's bands (``cold < warm < hot``, e.g. what reviewers chose), its thresholds are the
   band boundaries; with a binary outcome (converted), it is plain logistic regression.
   The policy caps the intent sum at ``max_points``, so the model does too: when capping the
   events' summed score fits the labels better (by more than the one extra parameter costs),
   the cap is learned with the weights — a lead with three demo requests is not three times as
   hot, and a straight line through such leads bends every other intent weight.
3. **Points**: weights are scaled to the policy's point scale. Anchored on ``bands``, the
   lowest and highest band thresholds keep their values and a ``baseline`` rule carries the
   offset; anchored on ``shares`` (binary outcomes), the score keeps the current policy's
   spread and location over these leads and band thresholds keep each band's share of leads
   (so the proposal does not change how many leads are hot, only which).
4. **Pruning**: rules worth less than ``min_points`` are dropped and the model is refitted
   without them, so the proposal is as short as the evidence allows.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from core.leads import lead_as_of
from core.learning.ordinal import Array, OrdinalModel, fit_ordinal, log_loss
from core.model import Account, Lead
from core.policy.conditions import Facts, compile_predicate, field_getter
from core.policy.schema import Completeness, FitRule, Intent, Policy, Scoring

__all__ = ["Example", "RuleChange", "ScoringProposal", "lead_facts", "learn_scoring"]

_DAY = 86400.0
_WORD = re.compile(r"[a-z][a-z]{2,}")
BASELINE_LABEL = "baseline (learned offset: every lead starts here)"
Anchor = Literal["bands", "shares"]
PRIOR_WEIGHT = 4.0  # the ridge penalty's weight, in examples' worth of log-loss


@dataclass(frozen=True, slots=True)
class Example:
    """A lead as it was when decided, with its label (a class index, 0 = lowest)."""

    lead: Lead
    account: Account | None
    now: datetime
    label: int
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class RuleChange:
    """One line of the proposal: what it scores, points before and after (None: absent)."""

    what: str
    before: int | None
    after: int | None


@dataclass(frozen=True)
class ScoringProposal:
    scoring: Scoring
    changes: tuple[RuleChange, ...]
    classes: tuple[str, ...]
    examples: int
    class_counts: tuple[int, ...]
    converged: bool
    features: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class _Feature:
    kind: Literal["rule", "event", "completeness"]
    key: str  # rule description, event type or "completeness"
    rule: FitRule | None = None
    existing: bool = False


def lead_facts(lead: Lead, account: Account | None, now: datetime, free_domains: frozenset[str]) -> Facts:
    """The facts a fit rule sees for this lead (as the engine builds them).

    A stored lead carries every event synced since, also those after ``now`` (its decision):
    the demo booked after a reviewer's call or before the deal was won. Counted, they would
    teach weights from what nobody could know when deciding, so they are left out as the
    engine leaves them out (:func:`core.leads.lead_as_of`)."""
    lead = lead_as_of(lead, now)[0]
    return Facts(lead=lead, account=account, now=now, personal_email=lead.email_domain in free_domains)


def _predicate_key(rule: FitRule) -> str:
    ops = rule.predicate()
    return f"{rule.signal} " + " ".join(f"{k}={ops[k]!r}" for k in sorted(ops))


def _describe(rule: FitRule) -> str:
    ops = rule.predicate()
    shown = ", ".join(f"{k} {v}" for k, v in ops.items())
    return f"{rule.signal} {shown}" + (f" ({rule.label})" if rule.label else "")


def _nice(value: float) -> float:
    """Round a cut point to two significant digits, as a person would write it."""
    if value == 0:
        return 0.0
    digits = 1 - int(np.floor(np.log10(abs(value))))
    return float(round(value, digits))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _candidates(policy: Policy, facts: Sequence[Facts], min_support: int, extra: Sequence[str]) -> list[FitRule]:
    """Candidate rules on the signals the policy scores (and ``extra`` ones)."""
    rules = policy.scoring.fit
    signals = list(dict.fromkeys([r.signal for r in rules] + list(extra)))
    existing = {_predicate_key(r) for r in rules}
    out: list[FitRule] = []
    for signal in signals:
        getter = field_getter(signal)
        present = [v for v in (getter(f) for f in facts) if v is not None and v != ""]
        if not present:
            continue
        ops = {op for r in rules if r.signal == signal for op in r.predicate()}
        made: list[FitRule] = []
        if all(_is_number(v) for v in present):
            made = _numeric_candidates(signal, present, min_support)
        elif all(isinstance(v, str) for v in present):
            made = _text_candidates(signal, [str(v) for v in present], ops, min_support)
        out += [r for r in made if _predicate_key(r) not in existing]
        existing |= {_predicate_key(r) for r in made}
    return out


def _numeric_candidates(signal: str, values: Sequence[Any], min_support: int) -> list[FitRule]:
    """``signal ≥ cut`` at rounded deciles: their sum can draw any step function of the value."""
    numbers = np.asarray(values, dtype=np.float64)
    cuts = sorted({_nice(float(q)) for q in np.quantile(numbers, np.linspace(0.1, 0.9, 9))})
    made = []
    for c in cuts:
        above = int((numbers >= c).sum())
        if min_support <= above <= len(numbers) - min_support:
            made.append(FitRule(signal=signal, points=0, gte=c, label=f"{signal} ≥ {c:g} (learned)"))
    return made


_CATEGORICAL = frozenset({"in", "eq", "not_in", "ne"})


def _text_candidates(signal: str, texts: Sequence[str], ops: set[str], min_support: int) -> list[FitRule]:
    """Frequent words where the policy matches patterns; frequent values where it lists them."""
    made = []
    spelled: dict[str, str] = {}
    for original, _ in Counter(texts).most_common():
        spelled.setdefault(original.casefold(), original)
    if "matches" in ops or not ops & _CATEGORICAL:
        # dict.fromkeys, not set: first-seen order breaks count ties the same way in every process
        words = Counter(w for t in texts for w in dict.fromkeys(_WORD.findall(t.casefold())))
        for word, count in words.most_common(15):
            if count >= min_support:
                label = f"{signal} mentions '{word}' (learned)"
                made.append(FitRule(signal=signal, points=0, matches=f"(?i)\\b{re.escape(word)}\\b", label=label))
    if ops & _CATEGORICAL or "matches" not in ops:
        for value, count in Counter(t.casefold() for t in texts).most_common(15):
            if count >= min_support:
                shown = spelled[value]  # conditions compare case-insensitively; people read the usual spelling
                label = f"{signal} is {shown} (learned)"
                made.append(FitRule.model_validate({"signal": signal, "points": 0, "in": [shown], "label": label}))
    return made


def _event_features(intent: Intent, facts: Sequence[Facts], min_support: int) -> list[str]:
    seen: Counter[str] = Counter()
    for f in facts:
        seen.update(list(dict.fromkeys(e.type for e in f.lead.events)))
    observed = [t for t, c in seen.most_common() if c >= min_support and re.fullmatch(r"[a-z][a-z0-9_]{0,62}", t)]
    return list(dict.fromkeys([*intent.events, *observed]))


def _matrix(
    features: Sequence[_Feature], facts: Sequence[Facts], intent: Intent, known: Callable[[Facts], float]
) -> Array:
    half_life = intent.half_life_days * _DAY
    window = intent.window_days * _DAY
    checks: list[tuple[Callable[[Facts], Any] | None, Callable[[Any], bool] | None]] = []
    for feat in features:
        if feat.kind == "rule":
            assert feat.rule is not None
            checks.append((field_getter(feat.rule.signal), compile_predicate(feat.rule.predicate())))
        else:
            checks.append((None, None))
    x = np.zeros((len(facts), len(features)))
    for i, f in enumerate(facts):
        decayed: dict[str, float] = {}
        for e in f.lead.events:
            age = max((f.now - e.at).total_seconds(), 0.0)
            if age <= window:
                decayed[e.type] = decayed.get(e.type, 0.0) + 0.5 ** (age / half_life)
        for j, feat in enumerate(features):
            if feat.kind == "rule":
                getter, holds = checks[j]
                assert getter is not None and holds is not None
                x[i, j] = 1.0 if holds(getter(f)) else 0.0
            elif feat.kind == "event":
                x[i, j] = decayed.get(feat.key, 0.0)
            else:
                x[i, j] = known(f)
    return x


def _known_share(fields: Sequence[str]) -> Callable[[Facts], float]:
    def share(f: Facts) -> float:
        return sum(1 for name in fields if getattr(f.lead, name, None) not in (None, "")) / len(fields)

    return share


def learn_scoring(
    policy: Policy,
    examples: Sequence[Example],
    *,
    classes: Sequence[str],
    anchor: Anchor,
    explore: bool = True,
    extra_signals: Sequence[str] = (),
    min_support: int = 20,
    min_points: int = 2,
    l2: float | None = None,
    current_totals: Sequence[float] | None = None,
) -> ScoringProposal:
    """Propose a scoring section learned from ``examples`` (labels index ``classes``).

    ``l2`` is the ridge penalty on the mean log-loss; by default ``PRIOR_WEIGHT / n``, i.e. a
    fixed prior on the total — its pull fades as evidence grows, as it should: a fixed penalty
    on the mean kept weights shrunk however many labels arrived (with 1,500 labels, band
    agreement 0.928 against 0.944 on the simulated reviewer of ``bench/learning.py``).

    ``anchor="bands"`` needs ``classes`` to be ``cold`` followed by the policy's bands from
    lowest to highest threshold. ``anchor="shares"`` needs ``current_totals`` — each example's
    score under the current policy — to keep the score's spread and the bands' shares.
    """
    scoring = policy.scoring
    bands_low_to_high = sorted(scoring.bands.items(), key=lambda kv: kv[1])
    if anchor == "bands" and list(classes) != ["cold", *[b for b, _ in bands_low_to_high]]:
        raise ValueError("band-anchored learning needs classes cold < " + " < ".join(b for b, _ in bands_low_to_high))
    if anchor == "shares" and (current_totals is None or len(current_totals) != len(examples)):
        raise ValueError("share-anchored learning needs the current score of every example")
    free = frozenset(d.lower() for d in policy.enrichment.free_email_domains)
    facts = [lead_facts(e.lead, e.account, e.now, free) for e in examples]
    y = np.asarray([e.label for e in examples], dtype=np.int64)
    weights = np.asarray([e.weight for e in examples], dtype=np.float64)

    features = [_Feature("rule", _predicate_key(r), r, True) for r in scoring.fit]
    if explore:
        features += [
            _Feature("rule", _predicate_key(r), r) for r in _candidates(policy, facts, min_support, extra_signals)
        ]
    events = _event_features(scoring.intent, facts, min_support)
    features += [_Feature("event", t) for t in events]
    completeness = scoring.completeness
    if completeness is not None:
        features.append(_Feature("completeness", "completeness"))
    known = _known_share(completeness.fields if completeness else ["email"])
    x = _matrix(features, facts, scoring.intent, known)

    # no evidence, no change: existing rules and events too rare here keep their points, unfitted
    support = (x != 0).sum(axis=0)
    varied = x.std(axis=0) > 0
    evidence = [bool(support[j] >= min_support and varied[j]) for j in range(len(features))]
    frozen_idx = [j for j, f in enumerate(features) if not evidence[j] and (f.existing or f.kind != "rule")]
    frozen = [features[j] for j in frozen_idx]
    # what the kept points add to each lead's score, so the learned offset leaves room for it
    frozen_total = x[:, frozen_idx] @ np.asarray([_current_points(f, scoring) for f in frozen], dtype=np.float64)
    keep = [j for j in range(len(features)) if evidence[j]]
    features, x = [features[j] for j in keep], x[:, keep]
    if l2 is None:
        l2 = PRIOR_WEIGHT / max(len(examples), 1)
    model = _fit(x, y, features, classes=len(classes), l2=l2, sample_weight=weights)
    scale, offset = _scale(model, x, anchor, bands_low_to_high, current_totals)
    for _ in range(3):  # a refit can push another feature under the bar; rarely more than once
        keep = [j for j, feat in enumerate(features) if _worth_keeping(feat, scale * model.weights[j], min_points)]
        if len(keep) == len(features):
            break
        features = [features[j] for j in keep]
        x = x[:, keep]
        model = _fit(x, y, features, classes=len(classes), l2=l2, sample_weight=weights)
        scale, offset = _scale(model, x, anchor, bands_low_to_high, current_totals)
    return _proposal(
        policy, features, frozen, frozen_total, model, x, scale, offset, anchor, classes, y, current_totals
    )


def _worth_keeping(feature: _Feature, points: float, min_points: int) -> bool:
    """Rules worth too few points go. So does completeness when it would score negative: the
    policy cannot say that (points ≥ 0), and clamping it to 0 after the fit would shift every
    score by what it took away."""
    if feature.kind == "rule":
        return abs(points) >= min_points
    if feature.kind == "completeness":
        return points >= 0
    return True


@dataclass(frozen=True)
class _Fit:
    """An ordinal model of the features, its intent part capped at ``cap`` (model units) or not."""

    model: OrdinalModel  # when capped, its last weight is the cap: the column "intent at its cap"
    events: NDArray[np.bool_]  # which feature columns are intent events
    cap: float | None

    @property
    def weights(self) -> Array:
        return self.model.weights[: len(self.events)]

    @property
    def thresholds(self) -> Array:
        return self.model.thresholds

    @property
    def converged(self) -> bool:
        return self.model.converged

    def linear(self, x: Array) -> Array:
        w = self.weights
        if self.cap is None:
            return np.asarray(x @ w, dtype=np.float64)
        ev = self.events
        return np.asarray(x[:, ~ev] @ w[~ev] + np.minimum(x[:, ev] @ w[ev], self.cap), dtype=np.float64)


_CAP_STARTS = (0.6, 0.8, 0.95)  # first guesses at the cap: quantiles of the uncapped intent score
_CAP_ROUNDS = 8


def _fit(
    x: Array, y: NDArray[np.int64], features: Sequence[_Feature], *, classes: int, l2: float, sample_weight: Array
) -> _Fit:
    """The linear fit, or a capped one when it explains the labels better.

    A capped intent sum is not linear in the weights, but it is once we know which leads are
    at the cap: their event columns drop out and one indicator column carries the cap. So the
    fit alternates — guess the cap, mark the leads at it, refit, re-mark — from a few starting
    guesses, and keeps whichever model has the lowest log-loss, counting the cap as one more
    parameter (Akaike: it must gain more than one nat over all the examples)."""
    events = np.asarray([f.kind == "event" for f in features], dtype=bool)
    plain = _Fit(fit_ordinal(x, y, classes=classes, l2=l2, sample_weight=sample_weight), events, None)
    if not events.any():
        return plain
    n = float(len(y))
    best, best_loss = plain, log_loss(plain.linear(x), plain.thresholds, y, sample_weight) + 1.0 / n
    intent = x[:, events] @ plain.weights[events]
    positive = intent[intent > 0]
    if len(positive) == 0:
        return plain
    for q in _CAP_STARTS:
        start = float(np.quantile(positive, q))
        capped = _capped(x, y, events, intent, start, classes, l2, sample_weight)
        if capped is None:
            continue
        loss = log_loss(capped.linear(x), capped.thresholds, y, sample_weight)
        if loss < best_loss:
            best, best_loss = capped, loss
    return best


def _capped(
    x: Array,
    y: NDArray[np.int64],
    events: NDArray[np.bool_],
    intent: Array,
    cap: float,
    classes: int,
    l2: float,
    sample_weight: Array,
) -> _Fit | None:
    """Alternate from ``cap`` (leads marked by their ``intent`` score) until the marks settle."""
    fit: _Fit | None = None
    for _ in range(_CAP_ROUNDS):
        at_cap = intent >= cap
        if not at_cap.any() or at_cap.all():
            return fit
        design = np.where(at_cap[:, None] & events[None, :], 0.0, x)
        with_cap = np.hstack([design, at_cap[:, None].astype(np.float64)])
        model = fit_ordinal(with_cap, y, classes=classes, l2=l2, sample_weight=sample_weight)
        cap = float(model.weights[-1])
        if cap <= 0:  # "at the cap" scores no higher than no intent at all: not a cap
            return fit
        fit = _Fit(model, events, cap)
        intent = x[:, events] @ fit.weights[events]
        if np.array_equal(intent >= cap, at_cap):
            break
    return fit


def _current_points(feature: _Feature, scoring: Scoring) -> float:
    """A feature's points in the current policy (0 for one it does not score)."""
    if feature.kind == "rule":
        return float(feature.rule.points) if feature.rule is not None and feature.existing else 0.0
    if feature.kind == "event":
        return float(scoring.intent.events.get(feature.key, 0))
    return float(scoring.completeness.points) if scoring.completeness is not None else 0.0


def _scale(
    model: _Fit,
    x: Array,
    anchor: Anchor,
    bands: list[tuple[str, int]],
    current: Sequence[float] | None,
) -> tuple[float, float]:
    """Points per unit of the model's score, and the offset (the baseline rule's points)."""
    eta = model.linear(x)
    if anchor == "bands" and len(bands) >= 2:
        lo, hi = model.thresholds[0], model.thresholds[-1]
        scale = (bands[-1][1] - bands[0][1]) / max(float(hi - lo), 1e-9)
        return scale, bands[0][1] - scale * float(lo)
    if anchor == "bands":
        # one band: keep its threshold, and the spread that makes one logit ≈ 10 points
        scale = 10.0
        return scale, bands[0][1] - scale * float(model.thresholds[0])
    assert current is not None
    spread = float(np.std(eta))
    scale = float(np.std(np.asarray(current))) / spread if spread > 0 else 1.0
    return scale, float(np.mean(np.asarray(current))) - scale * float(np.mean(eta))


def _proposal(
    policy: Policy,
    features: Sequence[_Feature],
    frozen: Sequence[_Feature],
    frozen_total: Array,
    model: _Fit,
    x: Array,
    scale: float,
    offset: float,
    anchor: Anchor,
    classes: Sequence[str],
    y: NDArray[np.int64],
    current: Sequence[float] | None,
) -> ScoringProposal:
    scoring = policy.scoring
    points = [round(max(min(scale * float(w), 100.0), -100.0)) for w in model.weights]
    fit, events, completeness_points, notes = _as_points(features, frozen, points, scoring)
    if not events:
        events[next(iter(scoring.intent.events))] = 0
        notes.append("no event type carried weight")
    # the policy's own rules keep their order; learned ones follow
    order = {_predicate_key(r): i for i, r in enumerate(scoring.fit)}
    fit.sort(key=lambda r: order.get(_predicate_key(r), len(order)))
    kept = float(frozen_total.mean()) if len(frozen_total) else 0.0
    wanted = offset - kept
    baseline = round(max(min(wanted, 100.0), -100.0))
    if round(wanted) != baseline:
        notes.append(f"baseline offset {wanted:.0f} clipped to {baseline}; thresholds adjusted")
    if baseline:
        fit.insert(0, FitRule(signal="id", points=baseline, exists=True, label=BASELINE_LABEL))
    if not fit:
        fit.append(FitRule(signal="id", points=0, exists=True, label=BASELINE_LABEL))

    totals = scale * model.linear(x) + baseline + frozen_total
    if anchor == "bands":
        thresholds = [round(scale * float(t) + baseline + kept) for t in model.thresholds]
        names = list(classes[1:])
    else:
        assert current is not None
        thresholds, names = _share_thresholds(scoring.bands, np.asarray(current), totals)
    bands = _distinct(dict(zip(names, thresholds, strict=True)))
    max_points = _intent_cap(model, scale, features, points, x, scoring.intent.max_points, events)
    if model.cap is not None:
        notes.append(f"intent learned to level off at {max_points} points")
    intent = scoring.intent.model_copy(update={"events": events, "max_points": max_points})
    completeness = scoring.completeness
    if completeness is not None and completeness_points is not None:
        completeness = Completeness(fields=completeness.fields, points=completeness_points)
    new = Scoring(fit=fit, intent=intent, completeness=completeness, bands=bands)
    changes = _changes(scoring, new)
    return ScoringProposal(
        scoring=new,
        changes=tuple(changes),
        classes=tuple(classes),
        examples=len(y),
        class_counts=tuple(int(c) for c in np.bincount(y, minlength=len(classes))),
        converged=model.converged,
        features=len(features),
        notes=tuple(notes),
    )


def _intent_cap(
    model: _Fit,
    scale: float,
    features: Sequence[_Feature],
    points: Sequence[int],
    x: Array,
    current: int,
    events: dict[str, int],
) -> int:
    """``max_points``: the learned cap, or — when the labels show no saturation — one that the
    learned points do not reach on these leads (the current cap might, and bend the fit)."""
    if model.cap is not None:
        return min(max(round(scale * model.cap), 1), 200)
    per_event = np.asarray([p if f.kind == "event" else 0 for f, p in zip(features, points, strict=True)])
    most = float((x @ per_event).max()) if len(x) else 0.0
    return min(max(current, max(events.values(), default=0), int(np.ceil(most))), 200)


def _as_points(
    features: Sequence[_Feature], frozen: Sequence[_Feature], points: Sequence[int], scoring: Scoring
) -> tuple[list[FitRule], dict[str, int], int | None, list[str]]:
    """Learned points back into rules, event points and completeness points; ``frozen``
    features (too little evidence to move) keep theirs."""
    notes: list[str] = []
    fit: list[FitRule] = []
    events: dict[str, int] = {}
    completeness_points: int | None = None
    for feat, p in zip(features, points, strict=True):
        if feat.kind == "rule":
            assert feat.rule is not None
            if p != 0:
                fit.append(feat.rule.model_copy(update={"points": p}))
        elif feat.kind == "event":
            if p != 0:
                events[feat.key] = p
        else:
            completeness_points = min(p, 100)
    for feat in frozen:
        if feat.kind == "rule" and feat.rule is not None:
            fit.append(feat.rule)
        elif feat.kind == "event":
            events[feat.key] = scoring.intent.events.get(feat.key, 0)
        elif scoring.completeness is not None:
            completeness_points = scoring.completeness.points
    if frozen:
        notes.append(f"{len(frozen)} rule(s)/event(s) seen on fewer than the minimum leads kept their points")
    if scoring.completeness is not None and completeness_points is None:
        completeness_points = 0  # fitted out: it would have scored negative
        notes.append("completeness would score negative; it scores 0 and the rest was refitted without it")
    return fit, events, completeness_points, notes


def _share_thresholds(
    bands: dict[str, int],
    current: Array,
    totals: Array,
) -> tuple[list[int], list[str]]:
    """Thresholds on the new score that keep each band's share of these leads."""
    names, thresholds = [], []
    for name, threshold in sorted(bands.items(), key=lambda kv: kv[1]):
        share = float((current >= threshold).mean())
        cut = (
            float(np.quantile(totals, 1 - share))
            if 0 < share < 1
            else (float(totals.max()) + 1 if share == 0 else float(totals.min()))
        )
        names.append(name)
        thresholds.append(round(cut))
    return thresholds, names


def _distinct(bands: dict[str, int]) -> dict[str, int]:
    """Band thresholds must differ; nudge equal ones up by a point (highest band last)."""
    out: dict[str, int] = {}
    last: int | None = None
    for name, value in sorted(bands.items(), key=lambda kv: kv[1]):
        if last is not None and value <= last:
            value = last + 1
        out[name] = value
        last = value
    return out


def _changes(old: Scoring, new: Scoring) -> list[RuleChange]:
    before = {_predicate_key(r): r for r in old.fit}
    after = {_predicate_key(r): r for r in new.fit}
    out: list[RuleChange] = []
    for key, rule in before.items():
        now = after.get(key)
        out.append(RuleChange(_describe(rule), rule.points, now.points if now else None))
    for key, rule in after.items():
        if key not in before:
            out.append(RuleChange(_describe(rule), None, rule.points))
    for event in dict.fromkeys([*old.intent.events, *new.intent.events]):
        out.append(RuleChange(f"intent event {event}", old.intent.events.get(event), new.intent.events.get(event)))
    if old.completeness is not None or new.completeness is not None:
        out.append(
            RuleChange(
                "completeness",
                old.completeness.points if old.completeness else None,
                new.completeness.points if new.completeness else None,
            )
        )
    if old.intent.max_points != new.intent.max_points:
        out.append(RuleChange("intent cap (max_points)", old.intent.max_points, new.intent.max_points))
    for band in dict.fromkeys([*old.bands, *new.bands]):
        out.append(RuleChange(f"band threshold {band}", old.bands.get(band), new.bands.get(band)))
    return out
