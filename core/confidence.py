"""Calibrated confidence: what a raw confidence means in reviewer acceptance, per segment.

The score's raw confidence (``core.scoring``) ranks leads by how sure the score is of itself;
people decide whether it is right. A :class:`Calibration` maps raw confidence to the observed
probability that a reviewer accepts the recommendation, per segment, as a monotone
piecewise-linear curve (knots fitted from labels by ``core.learning.calibration``). A segment
with too few labels of its own uses the ``pooled`` curve (fitted on every segment's labels);
without any labels the raw value is used, so the engine never needs a calibration to run.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["Calibration", "Curve"]


@dataclass(frozen=True, slots=True)
class Curve:
    """Monotone knots ``(raw, calibrated)``, sorted by raw; linear between, flat outside."""

    knots: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        xs = [x for x, _ in self.knots]
        ys = [y for _, y in self.knots]
        if not self.knots or xs != sorted(xs) or ys != sorted(ys):
            raise ValueError("a calibration curve needs knots increasing in both raw and calibrated value")
        if any(not 0 <= v <= 1 for v in xs + ys):
            raise ValueError("calibration knots must lie in [0, 1]")

    def __call__(self, raw: float) -> float:
        xs = [x for x, _ in self.knots]
        i = bisect_right(xs, raw)
        if i == 0:
            return self.knots[0][1]
        if i == len(self.knots):
            return self.knots[-1][1]
        (x0, y0), (x1, y1) = self.knots[i - 1], self.knots[i]
        return y0 if x1 == x0 else y0 + (y1 - y0) * (raw - x0) / (x1 - x0)

    @classmethod
    def from_pairs(cls, pairs: Sequence[Sequence[float]]) -> Curve:
        return cls(tuple((float(x), float(y)) for x, y in pairs))


@dataclass(frozen=True, slots=True)
class Calibration:
    """Curves per segment; a segment without a curve uses ``pooled``, else its raw confidence."""

    curves: Mapping[str, Curve] = field(default_factory=dict)
    version: str = "raw"
    pooled: Curve | None = None

    def curve_for(self, segment: str) -> Curve | None:
        """The curve that calibrates this segment (its own, else the pooled one), if any."""
        return self.curves.get(segment, self.pooled)

    def apply(self, segment: str, raw: float) -> float:
        """The calibrated confidence shown for a raw confidence in this segment."""
        curve = self.curve_for(segment)
        return raw if curve is None else round(curve(raw), 2)
