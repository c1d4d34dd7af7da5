"""Simulate replays stored leads through two policies and writes nothing; compare pairs
shadow decisions with the champion's for the same change."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from core.engine import DecisionEngine
from core.learning.comparison import compare
from core.policy import LoadedPolicy
from core.store.db import Database
from core.store.models import AuditEvent, Decision, OutboxRow, RepLoad, RotationAssignment, RotationState
from core.store.policies import publish
from core.store.replay import replay, shadow_pairs
from tests.store.learning_builders import add_review, decide_leads_at, lead_input, set_outcome, variant

TABLES = (Decision, OutboxRow, AuditEvent, RotationAssignment, RotationState, RepLoad)


def _counts(db: Database) -> dict[str, int]:
    with db.sessions() as s:
        return {m.__tablename__: int(s.execute(select(func.count()).select_from(m)).scalar_one()) for m in TABLES}


def test_given_stored_leads_when_simulated_then_changes_are_reported_and_nothing_is_written(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    engine = DecisionEngine(example_policy)
    decided = decide_leads_at(db, engine, [lead_input(i, at=now) for i in range(30)], now=now)
    with db.transaction() as s:
        add_review(s, decided[0].decision_pk, agree=False, at=now, after={"band": "cold"})
        set_outcome(s, decided[1].lead_pk, converted=True, at=now)
    lower = DecisionEngine(variant(example_policy, "bands: {hot: 75, warm: 45}", "bands: {hot: 50, warm: 20}"))
    before = _counts(db)
    with db.sessions() as s:
        replayed = replay(s, engine, lower, since=now - timedelta(days=1), until=now + timedelta(seconds=1))
    assert _counts(db) == before
    assert len(replayed) == 30
    report = compare([r.pair() for r in replayed], days=1)
    assert report["changed"]["band"] > 0 and report["band_changes"]
    assert report["labels"]["judged"] == 1 and report["outcomes"]["known"] == 1
    # the current policy replayed at the same moment reproduces its stored scores
    assert all(r.current.score.total == r.stored.contract["score"]["total"] for r in replayed)


def test_given_a_window_when_simulated_then_only_leads_decided_in_it_are_replayed(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    engine = DecisionEngine(example_policy)
    decide_leads_at(db, engine, [lead_input(i, at=now) for i in range(3)], now=now - timedelta(days=40))
    decide_leads_at(db, engine, [lead_input(i, at=now) for i in range(3, 5)], now=now)
    with db.sessions() as s:
        replayed = replay(s, engine, engine, since=now - timedelta(days=30), until=now + timedelta(seconds=1))
    assert len(replayed) == 2


def test_given_shadow_decisions_when_paired_then_each_meets_its_champion_decision(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    challenger = variant(example_policy, "bands: {hot: 75, warm: 45}", "bands: {hot: 60, warm: 30}")
    with db.transaction() as s:
        publish(s, example_policy, now=now, by="t")
        publish(s, challenger, now=now, by="t", shadow=True)
    decided = decide_leads_at(db, DecisionEngine(example_policy), [lead_input(i, at=now) for i in range(8)], now=now)
    with db.transaction() as s:
        add_review(s, decided[0].decision_pk, agree=True, at=now)
    with db.sessions() as s:
        pairs = shadow_pairs(s, challenger.version)
    assert len(pairs) == 8
    assert {p.before["policy_version"] for p in pairs} == {example_policy.version}
    assert {p.after["policy_version"] for p in pairs} == {challenger.version}
    assert sum(p.human_band is not None for p in pairs) == 1


def test_given_shadow_decisions_after_the_window_when_paired_then_they_are_left_out(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    """As simulate's window: [since, until), so a compare "as of" an earlier time sees only
    what had been decided by then."""
    challenger = variant(example_policy, "bands: {hot: 75, warm: 45}", "bands: {hot: 60, warm: 30}")
    with db.transaction() as s:
        publish(s, example_policy, now=now - timedelta(hours=2), by="t")
        publish(s, challenger, now=now - timedelta(hours=2), by="t", shadow=True)
    engine = DecisionEngine(example_policy)
    decide_leads_at(db, engine, [lead_input(i, at=now) for i in range(3)], now=now - timedelta(hours=1))
    decide_leads_at(db, engine, [lead_input(i, at=now) for i in range(3, 8)], now=now)
    with db.sessions() as s:
        earlier = shadow_pairs(s, challenger.version, since=now - timedelta(hours=2), until=now - timedelta(minutes=30))
        both = shadow_pairs(s, challenger.version, since=now - timedelta(hours=2), until=now + timedelta(seconds=1))
        later = shadow_pairs(s, challenger.version, since=now - timedelta(minutes=30))
    assert (len(earlier), len(both), len(later)) == (3, 8, 5)
