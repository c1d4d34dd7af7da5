"""Reviews: first one wins, only the right people, reason codes from the policy, effects queued."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from core.policy import LoadedPolicy
from core.review import AlreadyDecided, InvalidReview, NotAllowed, NotPending, ReviewChange, ReviewRules
from core.store.audit_log import verify
from core.store.db import Database
from core.store.models import AuditEvent, Decision, OutboxRow, Review
from core.store.reviews import ReviewRequest, proposal_for, record_review, review_for
from tests.builders import LeadBuilder, decide, decide_examples


@pytest.fixture
def rules(example_policy: LoadedPolicy) -> ReviewRules:
    return ReviewRules(example_policy.policy)


def _pending(db: Database, example_policy: LoadedPolicy, now: datetime) -> Decision:
    pks = decide(db, example_policy, [LeadBuilder().raw(now)], now)
    with db.sessions() as s:
        row = s.get(Decision, pks["00Q5e00000Z0001"])
        assert row is not None and row.state == "pending_review" and row.owner_kind == "rep"
        return row


def _record(db: Database, rules: ReviewRules, pk: int, rep: str, change: ReviewChange, now: datetime) -> None:
    slack = rules.roster.reps[rep].slack_user or rep
    with db.transaction() as s:
        record_review(s, rules, ReviewRequest(pk, slack, rep, change), now=now)


def test_given_a_pending_review_when_the_owner_approves_then_the_decision_is_applied_and_effects_queued(
    db: Database, example_policy: LoadedPolicy, rules: ReviewRules, now: datetime
) -> None:
    d = _pending(db, example_policy, now)
    _record(db, rules, d.pk, d.owner or "", ReviewChange("approve"), now + timedelta(minutes=5))
    with db.sessions() as s:
        row = s.get(Decision, d.pk)
        assert row is not None
        assert (row.state, row.final_owner, row.final_action) == ("reviewed", d.owner, "auto")
        review = s.execute(select(Review)).scalar_one()
        assert (review.kind, review.agree, review.reviewer_rep, review.segment) == (
            "approve",
            True,
            d.owner,
            "mid_market",
        )
        keys = set(s.execute(select(OutboxRow.dedupe_key)).scalars())
        assert {f"slack.decision_update:{d.pk}:review", f"crm.writeback:{d.pk}:review"} <= keys
        assert s.execute(select(AuditEvent.kind).where(AuditEvent.kind == "decision.reviewed")).scalar_one()
    assert verify(db)[1] is None


def test_given_a_reassign_when_recorded_then_owner_reason_and_before_after_are_kept(
    db: Database, example_policy: LoadedPolicy, rules: ReviewRules, now: datetime
) -> None:
    d = _pending(db, example_policy, now)
    new_owner = next(r.id for r in rules.assignable_reps() if r.id != d.owner and r.team == "mm")
    change = ReviewChange("reassign", reason_code="territory_exception", note="  knows them  ", owner=new_owner)
    _record(db, rules, d.pk, "lee", change, now)  # lee manages the mid-market team
    with db.sessions() as s:
        review = review_for(s, d.pk)
        row = s.get(Decision, d.pk)
    assert review is not None and row is not None
    assert (review.kind, review.agree, review.reason_code, review.note) == (
        "reassign",
        False,
        "territory_exception",
        "knows them",
    )
    assert review.before["owner"] == d.owner and review.after["owner"] == new_owner
    assert row.final_owner == new_owner


def test_given_an_override_to_suppress_when_recorded_then_nobody_owns_it_and_the_band_changes(
    db: Database, example_policy: LoadedPolicy, rules: ReviewRules, now: datetime
) -> None:
    d = _pending(db, example_policy, now)
    change = ReviewChange("override", reason_code="not_a_fit", action="suppress", band="cold")
    _record(db, rules, d.pk, "rev", change, now)  # rev is a policy admin
    with db.sessions() as s:
        row = s.get(Decision, d.pk)
        review = review_for(s, d.pk)
    assert row is not None and review is not None
    assert (row.final_owner, row.final_action) == (None, "suppress")
    assert review.after["band"] == "cold" and review.before["band"] == d.band


def test_given_a_level_1_suppression_when_approved_then_it_stays_suppressed_and_override_may_assign_it(
    db: Database, example_policy: LoadedPolicy, rules: ReviewRules, now: datetime
) -> None:
    """The enterprise student (102) matches the not_a_buyer suppression; at trust level 1 a
    person confirms it. Approving agrees with the suppression: the lead stays parked, nobody
    owes it a first touch. Assigning it takes an override that says so."""
    pks = decide_examples(db, example_policy, now, ["102", "101"])
    with db.sessions() as s:
        parked = s.get(Decision, pks["102"])
        assert parked is not None and (parked.state, parked.suppressed_by) == ("pending_review", "not_a_buyer")
    admin = next(r.id for r in example_policy.policy.reps if "admin" in r.roles)
    _record(db, rules, pks["102"], admin, ReviewChange("approve"), now)
    with db.sessions() as s:
        row = s.get(Decision, pks["102"])
        review = review_for(s, pks["102"])
    assert row is not None and review is not None
    assert (row.final_action, row.final_owner) == ("suppress", "nurture")
    assert review.before["action"] == review.after["action"] == "suppress" and review.agree

    with pytest.raises(InvalidReview, match="use Approve"):  # "suppress" again changes nothing
        rules.validate(
            proposal_for(parked), ReviewChange("override", reason_code="not_a_fit", action="suppress"), now=now
        )
    assign = rules.validate(
        proposal_for(parked), ReviewChange("override", reason_code="not_a_fit", action="auto"), now=now
    )
    assert (assign.final_action, assign.changes) == ("auto", ["action → auto"])


@pytest.mark.parametrize(
    ("reviewer", "change", "told"),
    [
        ("lee", ReviewChange("reassign", reason_code="capacity", owner="cy"), "cy"),  # a third rep: told
        ("rev", ReviewChange("override", reason_code="data_quality", owner="cy"), "cy"),
        ("rev", ReviewChange("reassign", reason_code="capacity", owner="rev"), None),  # took it: knows
        ("lee", ReviewChange("approve"), None),  # the proposed owner saw the escalation
        ("rev", ReviewChange("override", reason_code="data_quality", band="cold"), None),  # same owner
        ("rev", ReviewChange("override", reason_code="not_a_fit", owner="cy", action="suppress"), None),
    ],
)
def test_given_a_review_when_recorded_then_only_a_new_owner_who_was_not_involved_is_told(
    db: Database, example_policy: LoadedPolicy, now: datetime, reviewer: str, change: ReviewChange, told: str | None
) -> None:
    policy = example_policy.policy
    cy = next(r for r in policy.reps if r.id == "cy")
    reps = [
        r.model_copy(update={"roles": ["admin", "rep"], "crm": cy.crm}) if r.id == "rev" else r for r in policy.reps
    ]
    rules = ReviewRules(policy.model_copy(update={"reps": reps}))
    d = _pending(db, example_policy, now)
    assert d.owner not in ("cy", "rev")
    _record(db, rules, d.pk, reviewer, change, now)
    with db.sessions() as s:
        rows = s.execute(select(OutboxRow).where(OutboxRow.kind == "slack.assignment")).scalars().all()
        assigned = [(r.dedupe_key, r.payload) for r in rows]
    expected = [(f"slack.assignment:{d.pk}:review", {"decision_pk": d.pk, "owner": told})] if told else []
    assert assigned == expected


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (ReviewChange("reassign", owner="ben"), "reason"),
        (ReviewChange("override", band="cold"), "reason"),
        (ReviewChange("reassign", reason_code="data_quality", owner="ben"), "reason"),  # applies_to: override, flag
        (ReviewChange("reassign", reason_code="no_such_code", owner="ben"), "reason"),
        (ReviewChange("reassign", reason_code="capacity"), "owner"),
        (ReviewChange("reassign", reason_code="capacity", owner="lee"), "owner"),  # a manager takes no leads
        (ReviewChange("reassign", reason_code="capacity", owner="U0NOBODY"), "owner"),
        (ReviewChange("override", reason_code="data_quality"), "action"),  # nothing changed
        (ReviewChange("override", reason_code="data_quality", band="lukewarm"), "band"),
    ],
)
def test_given_an_invalid_change_when_recorded_then_nothing_is_written_and_the_field_is_named(
    db: Database, example_policy: LoadedPolicy, rules: ReviewRules, now: datetime, change: ReviewChange, field: str
) -> None:
    d = _pending(db, example_policy, now)
    with pytest.raises(InvalidReview) as caught:
        _record(db, rules, d.pk, "rev", change, now)
    assert caught.value.field == field
    with db.sessions() as s:
        assert s.execute(select(Review)).first() is None
        assert s.get(Decision, d.pk).state == "pending_review"  # type: ignore[union-attr]


def test_given_a_rep_of_another_team_when_they_act_then_refused_and_told_who_may(
    db: Database, example_policy: LoadedPolicy, rules: ReviewRules, now: datetime
) -> None:
    d = _pending(db, example_policy, now)
    for outsider in ("dana", "mo"):  # an enterprise rep, the enterprise manager
        with pytest.raises(NotAllowed) as caught:
            _record(db, rules, d.pk, outsider, ReviewChange("approve"), now)
        assert "Lee Chen" in caught.value.who_may
    with db.transaction() as s, pytest.raises(NotAllowed):
        record_review(s, rules, ReviewRequest(d.pk, "U0STRANGER", None, ReviewChange("approve")), now=now)


def test_given_a_decided_lead_when_someone_else_acts_then_already_decided_names_the_first(
    db: Database, example_policy: LoadedPolicy, rules: ReviewRules, now: datetime
) -> None:
    d = _pending(db, example_policy, now)
    _record(db, rules, d.pk, "lee", ReviewChange("approve"), now)
    with pytest.raises(AlreadyDecided) as caught:
        _record(db, rules, d.pk, d.owner or "", ReviewChange("approve"), now)
    assert (caught.value.reviewer_rep, caught.value.kind) == ("lee", "approve")


def test_given_an_auto_decision_when_reviewed_then_not_pending(
    db: Database, example_policy: LoadedPolicy, rules: ReviewRules, now: datetime
) -> None:
    pks = decide_examples(db, example_policy, now, ["00Q5e00000A0001"])  # decided automatically
    with pytest.raises(NotPending) as caught:
        _record(db, rules, pks["00Q5e00000A0001"], "rev", ReviewChange("approve"), now)
    assert caught.value.state == "applied"


def test_given_two_replicas_when_they_record_at_once_then_exactly_one_review_wins(
    db_url: str, example_policy: LoadedPolicy, rules: ReviewRules, now: datetime
) -> None:
    setup = Database(db_url)
    d = _pending(setup, example_policy, now)
    setup.dispose()
    replicas = [Database(db_url), Database(db_url)]
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def click(db: Database, rep: str) -> None:
        barrier.wait()
        try:
            _record(db, rules, d.pk, rep, ReviewChange("approve"), now)
            results[rep] = "won"
        except AlreadyDecided as exc:
            results[rep] = exc

    threads = [threading.Thread(target=click, args=(r, rep)) for r, rep in zip(replicas, ("lee", "rev"), strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for r in replicas:
        r.dispose()
    winners = [rep for rep, outcome in results.items() if outcome == "won"]
    assert len(winners) == 1
    loser = next(outcome for outcome in results.values() if isinstance(outcome, AlreadyDecided))
    assert loser.reviewer_rep == winners[0]
    check = Database(db_url)
    with check.sessions() as s:
        assert len(s.execute(select(Review)).all()) == 1
    check.dispose()


def test_given_a_click_recorded_after_it_was_made_when_recorded_then_the_review_and_its_audit_keep_the_click_time(
    db: Database, example_policy: LoadedPolicy, rules: ReviewRules, now: datetime
) -> None:
    """A worker may record a stored click minutes later; the review's time is the click's. A
    click time ahead of the worker's clock (another replica's clock runs fast) is not kept."""
    import json

    pks = decide(db, example_policy, [LeadBuilder(i).raw(now) for i in ("00Q5e00000Z0001", "00Q5e00000Z0002")], now)
    clicked, recorded = now + timedelta(minutes=5), now + timedelta(minutes=8)
    with db.transaction() as s:
        for lead, at in (("00Q5e00000Z0001", clicked), ("00Q5e00000Z0002", recorded + timedelta(seconds=3))):
            d = s.get(Decision, pks[lead])
            assert d is not None and d.owner is not None
            slack = rules.roster.reps[d.owner].slack_user or d.owner
            record_review(s, rules, ReviewRequest(d.pk, slack, d.owner, ReviewChange("approve"), at), now=recorded)
    with db.sessions() as s:
        times = {r.decision_pk: r.decided_at for r in s.execute(select(Review)).scalars()}
        events = list(s.execute(select(AuditEvent).where(AuditEvent.kind == "decision.reviewed")).scalars())
    assert times == {pks["00Q5e00000Z0001"]: clicked, pks["00Q5e00000Z0002"]: recorded}
    assert [e.at for e in events] == [clicked, recorded]
    assert json.loads(events[0].body)["data"]["recorded_at"] == recorded.isoformat()
    assert "recorded_at" not in json.loads(events[1].body)["data"]
    assert verify(db)[1] is None
