"""The learning jobs on the scheduler's clock: trust after new verdicts only, calibration once a
night, the tuning report once a month — however many times (or where) the job runs."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from core.review import ReviewChange, ReviewRules
from core.store.db import Database
from core.store.decide import trust_levels
from core.store.models import AuditEvent, TrustState, TuningReport
from core.store.reviews import ReviewRequest, record_review
from core.store.trust_state import pin, unpin
from scheduler.learning_jobs import run_monthly_tuning, run_nightly_calibration, run_trust_recompute
from tests.builders import LeadBuilder, decide
from tests.scheduler.conftest import Clock, context, sla_policy
from tests.store.learning_builders import add_audit_verdict

POLICY = sla_policy(digest={"channel": "C0LEAD", "timezone": "America/New_York"})


def test_given_no_new_verdicts_when_trust_runs_again_then_it_does_not_recompute_until_a_review_lands(
    db: Database, clock: Clock
) -> None:
    pk = decide(db, POLICY, [LeadBuilder("00Q5e00000T0001").raw(clock.at)], clock.at)["00Q5e00000T0001"]
    ctx = context(db, POLICY, clock)

    assert run_trust_recompute(ctx)["recomputed"] is True
    assert run_trust_recompute(ctx)["recomputed"] is False
    with db.transaction() as s:
        record_review(
            s, ReviewRules(POLICY.policy), ReviewRequest(pk, "U0LEE", "lee", ReviewChange("approve")), now=clock.at
        )
    assert run_trust_recompute(ctx)["recomputed"] is True
    assert run_trust_recompute(ctx)["recomputed"] is False


def test_given_a_verdict_lands_below_the_highest_pk_when_trust_runs_then_it_recomputes(
    db: Database, clock: Clock
) -> None:
    """On PostgreSQL a writer that took a lower pk can commit after one with a higher pk: the
    row a run did not see then lands *below* the max pk it marked (explicit pks stand in for
    that race here, on every database)."""
    pk = decide(db, POLICY, [LeadBuilder("00Q5e00000T0003").raw(clock.at)], clock.at)["00Q5e00000T0003"]
    ctx = context(db, POLICY, clock)
    with db.transaction() as s:
        add_audit_verdict(s, pk, confirm=True, at=clock.at, reviewer="lee", pk=100)
    assert run_trust_recompute(ctx)["recomputed"] is True

    with db.transaction() as s:
        add_audit_verdict(s, pk, confirm=False, at=clock.at, reviewer="mo", pk=50)

    assert run_trust_recompute(ctx)["recomputed"] is True
    assert run_trust_recompute(ctx)["recomputed"] is False


def test_given_a_new_policy_lowers_max_level_when_trust_runs_without_new_verdicts_then_pinned_and_stored_levels_are_capped(
    db: Database, clock: Clock
) -> None:
    ctx = context(db, POLICY, clock)
    with db.transaction() as s:
        pin(s, POLICY, "smb", 4, now=clock.at, by="admin")
        pin(s, POLICY, "enterprise", 4, now=clock.at, by="admin")
        unpin(s, POLICY, "enterprise", now=clock.at, by="admin")
    assert run_trust_recompute(ctx)["moves"] == []
    lowered = sla_policy(digest={"channel": "C0LEAD", "timezone": "America/New_York"}, trust={"max_level": 2})
    ctx.policy = lambda: lowered
    clock.advance(minutes=5)

    result = run_trust_recompute(ctx)

    assert result["recomputed"] is True
    assert sorted((m["segment"], m["kind"], m["to"]) for m in result["moves"]) == [
        ("enterprise", "cap", 2),
        ("smb", "cap", 2),
    ]
    with db.sessions() as s:
        assert trust_levels(s) == {"enterprise": 2, "smb": 2}
        assert s.execute(select(TrustState.pinned).where(TrustState.segment == "smb")).scalar_one() is True


def test_given_the_monthly_job_runs_twice_when_the_month_has_a_report_then_the_second_run_does_nothing(
    db: Database, clock: Clock
) -> None:
    decide(db, POLICY, [LeadBuilder("00Q5e00000T0002").raw(clock.at)], clock.at)
    clock.at = datetime(2026, 12, 1, 11, 0, tzinfo=UTC)  # 06:00 on the 1st in New York
    ctx = context(db, POLICY, clock)

    first = run_monthly_tuning(ctx)
    second = run_monthly_tuning(ctx)

    assert first["month"] == "2026-11" and second == {"skipped": "the report for 2026-11 exists"}
    with db.sessions() as s:
        assert s.execute(select(TuningReport.month)).scalars().all() == ["2026-11"]
        reported = s.execute(select(func.count()).where(AuditEvent.kind == "tuning.reported")).scalar_one()
    assert reported == 1


def test_given_a_digest_in_tokyo_when_the_monthly_job_fires_on_the_1st_then_it_reports_the_month_just_ended(
    db: Database, clock: Clock
) -> None:
    tokyo = sla_policy(digest={"channel": "C0LEAD", "timezone": "Asia/Tokyo"})
    clock.at = datetime(2026, 11, 30, 21, 0, tzinfo=UTC)  # Dec 1, 06:00 in Tokyo: the job's slot there

    result = run_monthly_tuning(context(db, tokyo, clock))

    assert result["month"] == "2026-11"
    with db.sessions() as s:
        report = s.execute(select(TuningReport.report)).scalar_one()
    assert report["period"] == {"since": "2026-10-31T15:00:00+00:00", "until": "2026-11-30T15:00:00+00:00"}


def test_given_the_nightly_refit_when_it_runs_twice_in_one_night_then_only_the_first_refits(
    db: Database, clock: Clock
) -> None:
    ctx = context(db, POLICY, clock)
    clock.at = datetime(2026, 11, 21, 7, 30, tzinfo=UTC)  # 02:30 in New York
    first = run_nightly_calibration(ctx)
    clock.advance(minutes=20)
    second = run_nightly_calibration(ctx)
    clock.advance(days=1)
    third = run_nightly_calibration(ctx)

    assert first["night"] == "2026-11-21" and first["fit"] is None  # too few labels yet: nothing stored
    assert second == {"skipped": "already refitted for 2026-11-21"}
    assert third["night"] == "2026-11-22"
