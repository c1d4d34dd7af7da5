"""Fitting calibration curves from labels, and measuring how well confidence is calibrated.

A label is a pair (raw confidence of a decision, did a person accept it). The curve is an
isotonic regression (pool-adjacent-violators): the best monotone step fit to acceptance, so
"more confident" can never mean "less likely accepted". Written here rather than imported:
PAV is thirty lines, and a runtime dependency on a machine-learning library for it would not
earn its weight.

Small blocks are unreliable (one rejection at 0.9 would say "0%"), so each block's rate is
shrunk towards the segment's overall rate by ``prior_weight`` pseudo-labels, and PAV runs
again so shrinking cannot break monotonicity. Knots sit at each block's mean raw value; the
curve is linear between knots and flat outside, so it is also smooth enough to explain.

The reliability table bins labels by the confidence that was *shown* and compares it with the
observed acceptance; the expected calibration error (ECE) is the count-weighted mean gap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from core.confidence import Curve

__all__ = [
    "Block",
    "ReliabilityBin",
    "expected_calibration_error",
    "fit_curve",
    "pool_adjacent_violators",
    "reliability",
]


@dataclass(frozen=True, slots=True)
class Block:
    """A run of raw values PAV pooled together: their mean x, fitted y and total weight."""

    x: float
    y: float
    weight: float


def pool_adjacent_violators(points: Sequence[tuple[float, float, float]]) -> list[Block]:
    """Weighted isotonic (non-decreasing) regression of ``(x, y, weight)`` points.

    Points are sorted by x; equal x values are pooled first (a function has one value per x).
    The result minimises the weighted squared error among non-decreasing fits.
    """
    merged: list[list[float]] = []  # [sum w·x, sum w·y, sum w], per distinct x
    last_x: float | None = None
    for x, y, w in sorted(points):
        if w <= 0:
            continue
        if last_x is not None and x == last_x:
            merged[-1][0] += w * x
            merged[-1][1] += w * y
            merged[-1][2] += w
        else:
            merged.append([w * x, w * y, w])
            last_x = x
    stack: list[list[float]] = []
    for block in merged:
        stack.append(block)
        # pool while the newest block's mean is below its predecessor's
        while len(stack) > 1 and stack[-1][1] / stack[-1][2] < stack[-2][1] / stack[-2][2]:
            top = stack.pop()
            stack[-1] = [stack[-1][0] + top[0], stack[-1][1] + top[1], stack[-1][2] + top[2]]
    return [Block(sx / sw, sy / sw, sw) for sx, sy, sw in stack]


def fit_curve(labels: Iterable[tuple[float, bool]], *, prior_weight: float = 2.0) -> Curve:
    """The calibration curve for ``(raw confidence, accepted)`` labels (at least one)."""
    pairs = [(min(max(float(raw), 0.0), 1.0), 1.0 if accepted else 0.0) for raw, accepted in labels]
    if not pairs:
        raise ValueError("cannot fit a calibration curve without labels")
    overall = sum(y for _, y in pairs) / len(pairs)
    blocks = pool_adjacent_violators([(x, y, 1.0) for x, y in pairs])
    shrunk = [(b.x, (b.y * b.weight + overall * prior_weight) / (b.weight + prior_weight), b.weight) for b in blocks]
    final = pool_adjacent_violators(shrunk)
    knots = tuple((round(b.x, 4), round(min(max(b.y, 0.0), 1.0), 4)) for b in final)
    return Curve(_non_decreasing(knots))


def _non_decreasing(knots: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
    """Rounding can make neighbours equal-then-smaller by 1e-4; keep the curve valid."""
    out: list[tuple[float, float]] = []
    for x, y in knots:
        if out:
            x = max(x, out[-1][0])
            y = max(y, out[-1][1])
        out.append((x, y))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    """Labels whose shown confidence fell in ``[lo, hi)``: how many, claimed vs observed."""

    lo: float
    hi: float
    n: int
    mean_confidence: float
    accept_rate: float

    @property
    def gap(self) -> float:
        return self.accept_rate - self.mean_confidence


def reliability(labels: Iterable[tuple[float, bool]], *, bins: int = 10) -> list[ReliabilityBin]:
    """Equal-width bins over [0, 1] of ``(shown confidence, accepted)``; empty bins omitted."""
    if bins < 1:
        raise ValueError("bins must be at least 1")
    sums: list[list[float]] = [[0.0, 0.0, 0.0] for _ in range(bins)]  # n, sum conf, sum accepted
    for confidence, accepted in labels:
        c = min(max(float(confidence), 0.0), 1.0)
        i = min(int(c * bins), bins - 1)
        sums[i][0] += 1
        sums[i][1] += c
        sums[i][2] += 1.0 if accepted else 0.0
    return [
        ReliabilityBin(i / bins, (i + 1) / bins, int(n), sc / n, sa / n) for i, (n, sc, sa) in enumerate(sums) if n > 0
    ]


def expected_calibration_error(table: Sequence[ReliabilityBin]) -> float | None:
    """Count-weighted mean |observed − claimed| over the bins; ``None`` without labels."""
    total = sum(b.n for b in table)
    if total == 0:
        return None
    return sum(b.n * abs(b.gap) for b in table) / total
