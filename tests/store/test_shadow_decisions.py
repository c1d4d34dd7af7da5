"""Shadow: a published challenger decides every lead alongside the champion, never acting."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from core.engine import DecisionEngine
from core.policy import LoadedPolicy
from core.store.db import Database
from core.store.models import Decision, OutboxRow, PolicyRole, PolicyVersion, RepLoad, RotationAssignment
from core.store.policies import publish
from tests.store.learning_builders import decide_leads_at, lead_input, variant

ROTATION = ("weighted_round_robin", "round_robin")


def _challenger(example: LoadedPolicy) -> LoadedPolicy:
    return variant(example, "bands: {hot: 75, warm: 45}", "bands: {hot: 60, warm: 30}")


def _count(db: Database, model: type, *where: object) -> int:
    with db.sessions() as s:
        return int(s.execute(select(func.count()).select_from(model).where(*where)).scalar_one())


def test_given_a_shadow_challenger_when_leads_are_decided_then_it_decides_each_one_and_acts_on_none(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    challenger = _challenger(example_policy)
    with db.transaction() as s:
        publish(s, example_policy, now=now, by="test")
        publish(s, challenger, now=now, by="test", shadow=True)
    decided = decide_leads_at(db, DecisionEngine(example_policy), [lead_input(i, at=now) for i in range(24)], now=now)

    with db.sessions() as s:
        shadows = s.execute(select(Decision).where(Decision.shadow.is_(True))).scalars().all()
        acting = s.execute(select(Decision).where(Decision.shadow.is_(False))).scalars().all()
    assert len(acting) == len(decided) == 24 and len(shadows) == 24
    by_lead = {d.lead_pk: d for d in acting}
    for sh in shadows:
        assert sh.policy_version == challenger.version and sh.state == "shadow" and not sh.audit_sample
        assert sh.dedupe_key == f"shadow:{challenger.version}:{by_lead[sh.lead_pk].dedupe_key}"
        assert sh.contract["audit_sample"] is False
    assert any(sh.band != by_lead[sh.lead_pk].band for sh in shadows)  # it really is another policy
    # effects exist for acting decisions only
    with db.sessions() as s:
        keyed = {int(k.rsplit(":", 1)[1]) for k in s.execute(select(OutboxRow.dedupe_key)).scalars() if k[-1].isdigit()}
    assert keyed and keyed <= {d.pk for d in acting}
    # the real rotation advanced once per acting rotation decision, never for the shadow
    rotated = sum(1 for d in acting if d.contract["route"]["method"] in ROTATION)
    assert _count(db, RotationAssignment) == rotated
    with db.sessions() as s:
        assert s.execute(select(func.coalesce(func.sum(RepLoad.count), 0))).scalar_one() == rotated


def test_given_shadowed_leads_when_decided_again_unchanged_then_nothing_is_added(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    with db.transaction() as s:
        publish(s, _challenger(example_policy), now=now, by="test", shadow=True)
    leads = [lead_input(i, at=now) for i in range(5)]
    engine = DecisionEngine(example_policy)
    decide_leads_at(db, engine, leads, now=now)
    assert decide_leads_at(db, engine, leads, now=now) == []
    assert _count(db, Decision) == 10
    changed = [lead_input(0, at=now, title="Chief Revenue Officer")]
    decide_leads_at(db, engine, changed, now=now)
    assert _count(db, Decision) == 12


@pytest.mark.parametrize("shadowing", [False, True])
def test_given_a_score_jump_when_a_challenger_shadows_then_volatility_still_compares_with_the_acting_decision(
    db: Database, example_policy: LoadedPolicy, now: datetime, shadowing: bool
) -> None:
    with db.transaction() as s:
        publish(s, example_policy, now=now, by="test")
        if shadowing:
            publish(s, _challenger(example_policy), now=now, by="test", shadow=True)
    engine = DecisionEngine(example_policy)
    cold = {"title": "Analyst", "employees": 40, "industry": "retail", "events": []}
    first = decide_leads_at(db, engine, [lead_input(1, at=now, **cold)], now=now)
    later = now + timedelta(hours=1)
    hot = {"title": "VP Sales", "employees": 900, "industry": "software",
           "events": [{"type": "demo_request", "at": later.isoformat()}]}  # fmt: skip
    [second] = decide_leads_at(db, engine, [lead_input(1, at=now, **hot)], now=later)

    assert second.decision.score.total - first[0].decision.score.total >= 40
    assert "score_volatility" in [t.code for t in second.decision.triggers]


def test_given_no_challenger_or_shadow_off_when_decided_then_no_shadow_rows(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    engine = DecisionEngine(example_policy)
    decide_leads_at(db, engine, [lead_input(i, at=now) for i in range(3)], now=now)
    with db.transaction() as s:
        publish(s, _challenger(example_policy), now=now, by="test", shadow=True)
    decide_leads_at(db, engine, [lead_input(i, at=now) for i in range(3, 6)], now=now, shadow=False)
    assert _count(db, Decision, Decision.shadow.is_(True)) == 0
    assert _count(db, Decision) == 6


def test_given_a_stored_challenger_that_no_longer_validates_when_deciding_then_real_decisions_go_on(
    db: Database, example_policy: LoadedPolicy, now: datetime, caplog: pytest.LogCaptureFixture
) -> None:
    with db.transaction() as s:
        s.add(
            PolicyVersion(
                version="deadbeef", name="broken", source="x", text="reps: 1\n", created_at=now, created_by="t"
            )
        )
        s.flush()
        s.add(PolicyRole(role="challenger", version="deadbeef", since=now, by="t"))
    with caplog.at_level(logging.WARNING):
        decided = decide_leads_at(db, DecisionEngine(example_policy), [lead_input(1, at=now)], now=now)
    assert len(decided) == 1
    assert _count(db, Decision, Decision.shadow.is_(True)) == 0
    assert "no longer validates" in caplog.text
