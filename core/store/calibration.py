"""Calibration curves in the store: fit them from verdicts, load the one in use, report.

**Who calls refit**: :func:`refit_calibration` is a plain function of a session; the
scheduler runs it nightly (and ``loopgate trust recompute`` runs it on demand). The runtime
builds its engine with :func:`load_calibration` (``loopgate.wiring.build_engine``), so a refit
takes effect the next time an engine is built.

What is fitted: per segment, the probability that a person accepts the recommendation
(review approved, audit confirmed) as a function of the decision's *raw* confidence, from
verdicts answered in the last ``window_days``. Labels of the current champion version are
preferred; a segment with fewer than ``min_labels`` of those uses every version's labels in
the window; one with fewer still has no curve of its own and uses the pooled curve.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.confidence import Calibration, Curve
from core.learning.calibration import ReliabilityBin, expected_calibration_error, fit_curve, reliability
from core.learning.labels import Verdict
from core.store import audit_log
from core.store.audit_log import AuditRecord
from core.store.labels import verdicts
from core.store.models import CalibrationCurve

__all__ = [
    "POOLED",
    "CalibrationFit",
    "SegmentReliability",
    "calibration_report",
    "load_calibration",
    "refit_calibration",
]

POOLED = "*"


@dataclass(frozen=True)
class CalibrationFit:
    """What a refit stored: the fit number and, per segment, labels and ECE before/after."""

    fit: int | None
    segments: dict[str, tuple[int, float | None, float | None]]  # labels, ece raw, ece fitted (in sample)
    skipped: dict[str, int]  # segments with too few labels: how many they had


def load_calibration(session: Session) -> Calibration:
    """The newest fitted calibration (raw confidence if nothing was ever fitted)."""
    fit = session.execute(select(func.max(CalibrationCurve.fit))).scalar_one_or_none()
    if fit is None:
        return Calibration()
    rows = session.execute(select(CalibrationCurve).where(CalibrationCurve.fit == fit)).scalars().all()
    curves = {r.segment: Curve.from_pairs(r.knots) for r in rows}
    pooled = curves.pop(POOLED, None)
    return Calibration(curves=curves, version=f"fit-{fit}", pooled=pooled)


def _labels(found: Sequence[Verdict]) -> list[tuple[float, bool]]:
    return [(v.raw_confidence, v.agree) for v in found if v.raw_confidence is not None]


def refit_calibration(
    session: Session,
    *,
    now: datetime,
    policy_version: str,
    window_days: int = 56,
    min_labels: int = 30,
    actor: str = "loopgate",
) -> CalibrationFit:
    """Fit and store new curves from recent verdicts (audited); nothing is stored when no
    segment — and not the pool — has ``min_labels``."""
    found = [v for v in verdicts(session, since=now - timedelta(days=window_days)) if v.raw_confidence is not None]
    by_segment: dict[str, list[Verdict]] = {}
    for v in found:
        by_segment.setdefault(v.segment, []).append(v)
    chosen: dict[str, list[tuple[float, bool]]] = {}
    skipped: dict[str, int] = {}
    for segment, mine in sorted(by_segment.items()):
        current = [v for v in mine if v.policy_version == policy_version]
        labels = _labels(current if len(current) >= min_labels else mine)
        if len(labels) >= min_labels:
            chosen[segment] = labels
        else:
            skipped[segment] = len(labels)
    pooled = _labels(found)
    if len(pooled) >= min_labels:
        chosen[POOLED] = pooled
    if not chosen:
        return CalibrationFit(None, {}, skipped)

    fit = (session.execute(select(func.max(CalibrationCurve.fit))).scalar_one_or_none() or 0) + 1
    summary: dict[str, tuple[int, float | None, float | None]] = {}
    for segment, labels in chosen.items():
        curve = fit_curve(labels)
        ece_raw = expected_calibration_error(reliability(labels))
        ece_fit = expected_calibration_error(reliability([(curve(x), y) for x, y in labels]))
        session.add(
            CalibrationCurve(
                fit=fit,
                segment=segment,
                knots=[list(k) for k in curve.knots],
                labels=len(labels),
                accept_rate=sum(y for _, y in labels) / len(labels),
                ece_raw=ece_raw,
                ece_fitted=ece_fit,
                policy_version=policy_version,
                fitted_at=now,
            )
        )
        summary[segment] = (len(labels), ece_raw, ece_fit)
    session.flush()
    audit_log.append(
        session,
        [
            AuditRecord(
                now,
                actor,
                "calibration.fitted",
                f"calibration:fit-{fit}",
                {"segments": {s: {"labels": n, "ece_raw": a, "ece_fitted": b} for s, (n, a, b) in summary.items()}},
            )
        ],
    )
    return CalibrationFit(fit, summary, skipped)


@dataclass(frozen=True)
class SegmentReliability:
    """How well the confidence people were shown matched what they then did, per segment."""

    segment: str
    labels: int
    shown: list[ReliabilityBin]  # confidence as shown at decision time (out of sample)
    raw: list[ReliabilityBin]  # the score's raw confidence
    current: list[ReliabilityBin]  # the calibration in use now, applied to the raw value

    @property
    def ece_shown(self) -> float | None:
        return expected_calibration_error(self.shown)

    @property
    def ece_raw(self) -> float | None:
        return expected_calibration_error(self.raw)

    @property
    def ece_current(self) -> float | None:
        return expected_calibration_error(self.current)


def calibration_report(session: Session, *, since: datetime, bins: int = 10) -> list[SegmentReliability]:
    """Reliability tables per segment (and ``*`` for all) over verdicts answered since ``since``.

    ``shown`` is the honest figure: each decision's confidence was computed before its label
    existed. ``current`` applies today's curves to the same labels, which were (partly) used
    to fit them, so it flatters.
    """
    calibration = load_calibration(session)
    found = verdicts(session, since=since)
    groups: dict[str, list[Verdict]] = {POOLED: found}
    for v in found:
        groups.setdefault(v.segment, []).append(v)
    out = []
    for segment, mine in sorted(groups.items(), key=lambda kv: (kv[0] == POOLED, kv[0])):
        shown = [(v.confidence, v.agree) for v in mine if v.confidence is not None]
        raw = _labels(mine)
        current = [(calibration.apply(v.segment, x), y) for v, (x, y) in zip(_with_raw(mine), raw, strict=True)]
        out.append(
            SegmentReliability(
                segment=segment,
                labels=len(mine),
                shown=reliability(shown, bins=bins),
                raw=reliability(raw, bins=bins),
                current=reliability(current, bins=bins),
            )
        )
    return out


def _with_raw(found: Sequence[Verdict]) -> list[Verdict]:
    return [v for v in found if v.raw_confidence is not None]
