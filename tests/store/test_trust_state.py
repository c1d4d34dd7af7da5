"""Trust levels in the store: earned by verdicts, audited, announced, pinned by admins."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from slack_sdk.models.blocks import Block
from sqlalchemy import select

from core.engine import DecisionEngine
from core.learning.trust_levels import LevelState
from core.policy import LoadedPolicy
from core.store.db import Database
from core.store.decide import trust_levels
from core.store.models import AuditEvent, OutboxRow, TrustState
from core.store.trust_state import TrustError, _set_level, pin, recompute_trust, trust_status, unpin
from tests.store.learning_builders import add_audit_verdict, add_review, decide_leads_at, lead_input, variant


def _policy(example: LoadedPolicy) -> LoadedPolicy:
    """Quick thresholds so a test needs few verdicts: promote 10 at 80%, demote under 60% of 5."""
    return variant(
        example,
        "promote: {min_reviews: 50, min_agreement: 0.8}\n  demote: {window: 20, min_agreement: 0.7}",
        "promote: {min_reviews: 10, min_agreement: 0.8}\n  demote: {window: 5, min_agreement: 0.6}",
    )


def _smb_decisions(db: Database, loaded: LoadedPolicy, now: datetime, n: int, start: int = 0) -> list[int]:
    raws = [lead_input(i, at=now, employees=50) for i in range(start, start + n)]
    return [d.decision_pk for d in decide_leads_at(db, DecisionEngine(loaded), raws, now=now)]


def _judge(db: Database, pks: list[int], pattern: str, at: datetime) -> None:
    with db.transaction() as s:
        for i, (pk, c) in enumerate(zip(pks, pattern, strict=False)):
            add_review(s, pk, agree=c == "y", at=at + timedelta(minutes=i))


def test_given_enough_agreement_when_recomputed_then_promoted_audited_and_announced_once(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    loaded = _policy(example_policy)
    pks = _smb_decisions(db, loaded, now, 12)
    _judge(db, pks, "yyyyyyyyyyyn", now)  # 11 of 12 agree
    with db.transaction() as s:
        moves = recompute_trust(s, loaded, now=now + timedelta(hours=1))
    assert [(m.segment, m.from_level, m.to_level, m.kind) for m in moves] == [("smb", 2, 3, "promote")]
    with db.sessions() as s:
        assert trust_levels(s) == {"smb": 3}
        kinds = list(
            s.execute(select(AuditEvent.kind).where(AuditEvent.kind.like("trust.%")).order_by(AuditEvent.seq)).scalars()
        )
        posts = s.execute(select(OutboxRow.payload).where(OutboxRow.kind == "slack.message")).scalars().all()
    assert kinds == ["trust.promoted"]
    assert len(posts) == 1 and posts[0]["channel"] == "C0LEADERS" and "smb" in posts[0]["text"]
    for block in Block.parse_all(posts[0]["blocks"]):
        block.validate_json()
    with db.transaction() as s:  # the evidence was for level 2: level 3 starts from nothing
        assert recompute_trust(s, loaded, now=now + timedelta(hours=2)) == []


def _automatic_smb(db: Database, loaded: LoadedPolicy, now: datetime, n: int) -> list[int]:
    decided = decide_leads_at(
        db, DecisionEngine(loaded), [lead_input(i, at=now, employees=50) for i in range(40)], now=now
    )
    auto = [d.decision_pk for d in decided if d.decision.action == "auto"]
    assert len(auto) >= n
    return auto[:n]


def test_given_audits_flagging_automatic_decisions_when_recomputed_then_demoted(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    loaded = _policy(example_policy)
    pks = _automatic_smb(db, loaded, now, 6)
    with db.transaction() as s:
        for i, (pk, c) in enumerate(zip(pks, "ynnnyy", strict=True)):
            add_audit_verdict(s, pk, confirm=c == "y", at=now + timedelta(minutes=i))  # last 5: 40% < 60%
    with db.transaction() as s:
        moves = recompute_trust(s, loaded, now=now + timedelta(hours=1))
    assert [(m.segment, m.to_level, m.kind) for m in moves] == [("smb", 1, "demote")]
    assert "on its automatic decisions" in moves[0].reason


def test_given_people_overruling_hard_trigger_escalations_when_recomputed_then_trust_does_not_drop(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    """Cases escalated at every level judge people's work, not automation's: before this rule,
    a level-2 segment was demoted by the hard cases that were all it still reviewed, and flapped."""
    loaded = _policy(example_policy)
    raws = [lead_input(i, at=now, employees=50, industry="banking") for i in range(8)]  # regulated: hard
    decided = decide_leads_at(db, DecisionEngine(loaded), raws, now=now)
    assert all(d.decision.action == "review" for d in decided)
    _judge(db, [d.decision_pk for d in decided], "nnnnnnnn", now)
    with db.transaction() as s:
        assert recompute_trust(s, loaded, now=now + timedelta(hours=1)) == []
        status = {st.assessment.segment: st.assessment for st in trust_status(s, loaded)}
    assert status["smb"].level == 2 and status["smb"].window_verdicts == 0


def test_given_audit_verdicts_on_automatic_decisions_when_recomputed_then_they_count_like_reviews(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    loaded = _policy(example_policy)
    pks = _smb_decisions(db, loaded, now, 10)
    with db.transaction() as s:
        for i, pk in enumerate(pks):
            add_audit_verdict(s, pk, confirm=True, at=now + timedelta(minutes=i))
    with db.transaction() as s:
        assert [m.kind for m in recompute_trust(s, loaded, now=now + timedelta(hours=1))] == ["promote"]


def test_given_a_pinned_segment_when_agreement_is_poor_then_it_stays_until_unpinned(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    loaded = _policy(example_policy)
    with db.transaction() as s:
        move = pin(s, loaded, "smb", 2, now=now, by="cli:rev")
    assert (move.kind, move.to_level) == ("pin", 2)
    pks = _smb_decisions(db, loaded, now + timedelta(minutes=1), 6)
    _judge(db, pks, "nnnnnn", now + timedelta(minutes=2))
    with db.transaction() as s:
        assert recompute_trust(s, loaded, now=now + timedelta(hours=1)) == []
        statuses = {st.assessment.segment: st for st in trust_status(s, loaded)}
    assert statuses["smb"].assessment.pinned and "pinned" in statuses["smb"].assessment.outlook
    assert statuses["smb"].all_time.n == 6 and statuses["smb"].reviewers["ana"].agreed == 0
    with db.transaction() as s:
        unpin(s, loaded, "smb", now=now + timedelta(hours=2), by="cli:rev")
    # evidence before the unpin does not count: the unpinned level starts afresh
    pks = _smb_decisions(db, loaded, now + timedelta(hours=3), 5, start=100)
    _judge(db, pks, "nnnnn", now + timedelta(hours=3))
    with db.transaction() as s:
        assert [m.kind for m in recompute_trust(s, loaded, now=now + timedelta(hours=4))] == ["demote"]
    with db.sessions() as s:
        kinds = list(
            s.execute(select(AuditEvent.kind).where(AuditEvent.kind.like("trust.%")).order_by(AuditEvent.seq)).scalars()
        )
    assert kinds == ["trust.pinned", "trust.unpinned", "trust.demoted"]


def test_given_bad_pins_when_asked_then_clear_errors_and_nothing_stored(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    with db.transaction() as s:
        with pytest.raises(TrustError, match="unknown segment 'smbb'"):
            pin(s, example_policy, "smbb", 2, now=now, by="t")
        with pytest.raises(TrustError, match="out of range"):
            pin(s, example_policy, "smb", 5, now=now, by="t")
        with pytest.raises(TrustError, match="not pinned"):
            unpin(s, example_policy, "smb", now=now, by="t")
    with db.sessions() as s:
        assert s.execute(select(TrustState)).first() is None


def test_given_a_level_changed_by_someone_else_when_setting_from_a_stale_read_then_refused(
    db: Database, now: datetime
) -> None:
    stale = LevelState("smb", 2)
    with db.transaction() as s:
        assert _set_level(s, stale, 3, pinned=False, reason="first", now=now)
    with db.transaction() as s:
        assert not _set_level(s, stale, 3, pinned=False, reason="second", now=now)  # row exists now, at 3
        assert not _set_level(s, LevelState("smb", 2), 1, pinned=False, reason="third", now=now)
    with db.sessions() as s:
        row = s.execute(select(TrustState)).scalar_one()
    assert (row.level, row.reason) == (3, "first")
