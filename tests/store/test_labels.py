"""Labels read from the store: reviews and audit verdicts as verdicts; what people chose."""

from __future__ import annotations

from datetime import datetime, timedelta

from core.engine import DecisionEngine
from core.policy import LoadedPolicy
from core.store.db import Database
from core.store.labels import labelled_decisions, verdicts
from tests.store.learning_builders import add_audit_verdict, add_review, decide_leads_at, lead_input, set_outcome


def test_given_reviews_audits_and_outcomes_when_read_then_each_label_says_what_people_and_the_crm_said(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    decided = decide_leads_at(db, DecisionEngine(example_policy), [lead_input(i, at=now) for i in range(5)], now=now)
    pks = [d.decision_pk for d in decided]
    later = now + timedelta(hours=1)
    with db.transaction() as s:
        add_review(s, pks[0], agree=True, at=later)
        add_review(s, pks[1], agree=False, at=later, after={"band": "hot"}, reason="existing_relationship")
        add_review(s, pks[2], agree=False, at=later, after={"owner": "cy"}, reason="capacity")
        add_audit_verdict(s, pks[3], confirm=False, at=later)
        set_outcome(s, decided[4].lead_pk, converted=True, at=later)
    with db.sessions() as s:
        found = verdicts(s)
        items = {i.decision_pk: i for i in labelled_decisions(s, since=now, until=later, outcome_after=later)}
    assert [(v.kind, v.agree, v.reason_code) for v in found] == [
        ("approve", True, None),
        ("override", False, "existing_relationship"),
        ("reassign", False, "capacity"),
        ("flag", False, "wrong_segment"),
    ]
    assert all(
        v.raw_confidence is not None and v.trust_level == d.decision.trust_level
        for v, d in zip(found, decided, strict=False)
    )
    first, second, third, fourth, fifth = (items[pk] for pk in pks)
    assert (first.human_band, first.human_owner) == (first.contract["score"]["band"], first.contract["owner"])
    assert second.human_band == "hot"
    assert (third.human_band, third.human_owner) == (third.contract["score"]["band"], "cy")
    assert (fourth.human_band, fourth.human_owner) == (None, None)  # flagged: wrong, but not told what is right
    assert fifth.outcome is not None and fifth.outcome.positive
    assert first.outcome is not None and not first.outcome.positive  # decided before the cut-off, not converted
    with db.sessions() as s:
        recent = labelled_decisions(s, since=now, until=later, outcome_after=now)
    assert recent[0].outcome is None  # not converted *yet*: unknown


def test_given_one_leader_confirms_and_another_flags_when_labelled_then_the_flag_stands_and_each_verdict_is_read(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    """Tuning labels a decision by the same verdict trust counts: a flag over confirms."""
    decided = decide_leads_at(db, DecisionEngine(example_policy), [lead_input(0, at=now)], now=now)
    pk = decided[0].decision_pk
    with db.transaction() as s:
        add_audit_verdict(s, pk, confirm=True, at=now + timedelta(minutes=1), reviewer="lee")
        add_audit_verdict(s, pk, confirm=False, at=now + timedelta(minutes=2), reviewer="mo")
    later = now + timedelta(hours=1)

    with db.sessions() as s:
        found = verdicts(s)
        (item,) = labelled_decisions(s, since=now, until=later, outcome_after=later)

    assert [(v.reviewer, v.kind) for v in found] == [("lee", "confirm"), ("mo", "flag")]  # per person: both
    assert item.verdict is not None and (item.verdict.kind, item.verdict.reviewer) == ("flag", "mo")
    assert (item.human_band, item.human_owner) == (None, None)
