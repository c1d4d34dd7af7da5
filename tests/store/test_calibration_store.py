"""Calibration fitted from verdicts, stored, used by the runtime engine, and reported."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from core.policy import LoadedPolicy
from core.store.calibration import calibration_report, load_calibration, refit_calibration
from core.store.db import Database
from core.store.models import AuditEvent, CalibrationCurve, Decision
from loopgate.wiring import build_engine
from tests.store.learning_builders import add_review, decide_leads_at, lead_input


def _labelled(db: Database, loaded: LoadedPolicy, now: datetime, n: int) -> list[float]:
    """n smb decisions with varied raw confidence; people accept only the confident ones."""
    raws = []
    for i in range(n):
        gaps = {k: None for k in ("title", "industry", "company")[: i % 4]}
        raws.append(lead_input(i, at=now, employees=30 + (i * 7) % 160, **gaps))
    decided = decide_leads_at(db, build_engine(db, loaded), raws, now=now)
    confidences = []
    with db.transaction() as s:
        for i, d in enumerate(decided):
            raw = d.decision.score.raw_confidence
            assert raw is not None
            confidences.append(raw)
            add_review(s, d.decision_pk, agree=raw >= 0.7, at=now + timedelta(minutes=i))
    return confidences


def test_given_verdicts_when_refitted_then_curves_are_stored_and_the_engine_uses_them(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    raws = _labelled(db, example_policy, now, 80)
    assert min(raws) < 0.7 <= max(raws)
    with db.transaction() as s:
        fit = refit_calibration(s, now=now + timedelta(days=1), policy_version=example_policy.version)
    assert fit.fit == 1 and set(fit.segments) == {"smb", "*"}
    labels, ece_raw, ece_fitted = fit.segments["smb"]
    assert labels == 80 and ece_fitted is not None and ece_raw is not None and ece_fitted < ece_raw
    with db.sessions() as s:
        calibration = load_calibration(s)
        assert s.execute(select(AuditEvent.kind).where(AuditEvent.kind == "calibration.fitted")).first()
    assert calibration.version == "fit-1" and calibration.pooled is not None
    low, high = calibration.apply("smb", min(raws)), calibration.apply("smb", max(raws))
    assert low < 0.4 and high > 0.7  # it learned that only confident recommendations are accepted
    engine = build_engine(db, example_policy)
    assert engine.calibration.version == "fit-1"
    decided = decide_leads_at(db, engine, [lead_input(500, at=now, employees=50)], now=now + timedelta(days=1))
    score = decided[0].decision.score
    assert score.raw_confidence is not None
    assert score.confidence == calibration.apply("smb", score.raw_confidence)


def test_given_too_few_labels_when_refitted_then_nothing_is_stored(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    _labelled(db, example_policy, now, 5)
    with db.transaction() as s:
        fit = refit_calibration(s, now=now + timedelta(days=1), policy_version=example_policy.version)
    assert fit.fit is None and fit.skipped == {"smb": 5}
    with db.sessions() as s:
        assert s.execute(select(CalibrationCurve)).first() is None
        assert load_calibration(s).version == "raw"


def test_given_labels_when_reported_then_the_shown_confidence_is_judged_out_of_sample(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    _labelled(db, example_policy, now, 60)
    with db.transaction() as s:
        refit_calibration(s, now=now + timedelta(days=1), policy_version=example_policy.version)
    with db.sessions() as s:
        report = {r.segment: r for r in calibration_report(s, since=now - timedelta(days=1))}
        shown = s.execute(select(Decision.confidence)).scalars().all()
    smb = report["smb"]
    assert smb.labels == 60 and sum(b.n for b in smb.shown) == 60
    # decisions were shown raw confidence (nothing fitted yet): shown and raw agree
    assert smb.ece_shown == smb.ece_raw
    assert smb.ece_current is not None and smb.ece_raw is not None and smb.ece_current < smb.ece_raw
    assert len(shown) == 60
    assert report["*"].labels == 60


def test_given_nothing_fitted_when_building_an_engine_then_raw_confidence_is_used(
    db: Database, example_policy: LoadedPolicy
) -> None:
    assert build_engine(db, example_policy).calibration.version == "raw"
