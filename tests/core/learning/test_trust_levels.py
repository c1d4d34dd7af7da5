"""Trust levels move by the policy's rules, on the verdicts that judge the automation now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.learning.labels import Verdict
from core.learning.trust_levels import LevelState, assess, counting_verdicts
from core.policy.schema import Trust, TrustDemote, TrustPromote

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TRUST = Trust(promote=TrustPromote(min_reviews=10, min_agreement=0.8), demote=TrustDemote(window=5, min_agreement=0.6))


def verdicts(
    pattern: str, *, level: int = 2, version: str = "v1", segment: str = "smb", start: int = 0
) -> list[Verdict]:
    """One verdict per character: 'y' agreed, 'n' did not; an hour apart."""
    return [
        Verdict(
            at=T0 + timedelta(hours=start + i, minutes=5),
            decided_at=T0 + timedelta(hours=start + i),
            segment=segment,
            reviewer="ana",
            kind="approve" if c == "y" else "override",
            agree=c == "y",
            trust_level=level,
            policy_version=version,
            decision_pk=start + i,
        )
        for i, c in enumerate(pattern)
    ]


def test_given_enough_agreement_over_enough_verdicts_when_assessed_then_promoted_one_level() -> None:
    result = assess(LevelState("smb", 2), verdicts("y" * 9 + "n"), TRUST)
    assert result.move is not None and (result.move.kind, result.move.to_level) == ("promote", 3)
    assert result.level == 3 and result.agreement == 0.9


def test_given_too_few_verdicts_when_assessed_then_no_move_and_the_outlook_says_how_many_more() -> None:
    result = assess(LevelState("smb", 2), verdicts("y" * 7), TRUST)
    assert result.move is None
    assert "after 3 more verdicts" in result.outlook and "≥ 80% agreement" in result.outlook


def test_given_agreement_below_the_bar_when_assessed_then_not_promoted() -> None:
    assert assess(LevelState("smb", 2), verdicts("nnnyyyyyyy"), TRUST).move is None  # 70% < 80%


def test_given_recent_disagreement_when_assessed_then_demoted_even_if_overall_agreement_is_high() -> None:
    result = assess(LevelState("smb", 3), verdicts("y" * 20 + "ynnny"), TRUST)  # last 5: 40% < 60%
    assert result.move is not None and (result.move.kind, result.move.to_level) == ("demote", 2)


def test_given_level_one_when_agreement_is_poor_then_it_cannot_go_lower() -> None:
    assert assess(LevelState("smb", 1), verdicts("nnnnnnnnnn", level=1), TRUST).move is None


def test_given_the_max_level_when_agreement_is_perfect_then_no_promotion_beyond_it() -> None:
    capped = TRUST.model_copy(update={"max_level": 3})
    assert assess(LevelState("smb", 3), verdicts("y" * 30, level=3), capped).move is None
    result = assess(LevelState("smb", 4), [], capped)
    assert result.move is not None and (result.move.kind, result.move.to_level) == ("cap", 3)


def test_given_a_segment_pinned_above_a_lowered_max_level_when_assessed_then_capped_and_still_pinned() -> None:
    capped = TRUST.model_copy(update={"max_level": 2})
    result = assess(LevelState("smb", 4, pinned=True), [], capped)
    assert result.move is not None and (result.move.kind, result.move.to_level) == ("cap", 2)
    assert result.level == 2 and result.pinned and "stays pinned" in result.outlook


def test_given_a_pinned_segment_when_agreement_would_move_it_then_it_stays() -> None:
    result = assess(LevelState("smb", 2, pinned=True), verdicts("n" * 20), TRUST)
    assert result.move is None and "pinned" in result.outlook


def test_given_verdicts_of_other_levels_versions_segments_or_before_the_change_then_they_do_not_count() -> None:
    state = LevelState("smb", 2, since=T0 + timedelta(hours=2))
    mixed = (
        verdicts("yyyy")  # two before the level change
        + verdicts("y", level=3, start=10)
        + verdicts("y", version="v0", start=11)
        + verdicts("y", segment="enterprise", start=12)
    )
    counted = counting_verdicts(mixed, state, "v1")
    assert [v.decision_pk for v in counted] == [2, 3]


def _flagged(v: Verdict, **kw: object) -> Verdict:
    from dataclasses import replace

    return replace(v, **kw)  # type: ignore[arg-type]


def test_given_decisions_of_each_kind_when_placed_then_automatic_from_follows_the_action_rule() -> None:
    from core.learning.trust_levels import automatic_from

    (clean,) = verdicts("y")
    assert automatic_from(clean, 0.5) == 2
    assert automatic_from(_flagged(clean, confidence=0.3), 0.5) == 3  # low confidence: auto only from 3
    assert automatic_from(_flagged(clean, soft_trigger=True), 0.5) == 3
    assert automatic_from(_flagged(clean, hard_trigger=True), 0.5) is None
    assert automatic_from(_flagged(clean, suppressed=True), 0.5) is None


def test_given_level_two_when_only_hard_cases_disagree_then_neither_demoted_nor_counted_for_promotion() -> None:
    hard = [_flagged(v, hard_trigger=True) for v in verdicts("n" * 10)]
    result = assess(LevelState("smb", 2), hard, TRUST)
    assert result.move is None and result.verdicts == 0 and result.window_verdicts == 0


def test_given_level_one_when_clean_cases_agree_and_soft_cases_do_not_then_promotion_looks_at_clean_ones() -> None:
    clean = verdicts("y" * 10, level=1)
    soft = [_flagged(v, soft_trigger=True) for v in verdicts("n" * 10, level=1, start=20)]
    result = assess(LevelState("smb", 1), clean + soft, TRUST)
    assert result.move is not None and result.move.kind == "promote"
    assert result.verdicts == 10


def _audits(pk: int, kinds: str, *, start: int = 0) -> list[Verdict]:
    """Leaders' audit verdicts on one automatic decision, a minute apart: 'c' confirm, 'f' flag."""
    leaders = ["lee", "mo", "rev", "sam"]
    return [
        Verdict(
            at=T0 + timedelta(hours=start, minutes=5 + i),
            decided_at=T0 + timedelta(hours=start),
            segment="smb",
            reviewer=leaders[i],
            kind="confirm" if c == "c" else "flag",
            agree=c == "c",
            trust_level=3,
            policy_version="v1",
            decision_pk=pk,
        )
        for i, c in enumerate(kinds)
    ]


def test_given_leaders_disagree_on_a_decision_when_reduced_then_a_review_then_a_flag_then_the_first_confirm_stands() -> (
    None
):
    from core.learning.labels import one_per_decision

    flagged_last, flagged_first, confirmed = _audits(1, "ccf"), _audits(2, "fcc", start=1), _audits(3, "cc", start=2)
    (review,) = verdicts("n", start=4)
    audited_review = _audits(4, "c", start=4)
    loose = _flagged(review, decision_pk=None)

    chosen = one_per_decision(flagged_last + flagged_first + confirmed + audited_review + [review, loose])

    assert [(v.decision_pk, v.kind, v.reviewer) for v in chosen] == [
        (1, "flag", "rev"),
        (2, "flag", "lee"),
        (3, "confirm", "lee"),
        (4, "override", "ana"),  # the review wins over an (earlier) audit verdict
        (None, "override", "ana"),
    ]


def test_given_three_leaders_judge_each_decision_when_counted_then_each_decision_counts_once() -> None:
    state = LevelState("smb", 3)
    confirmed = [v for pk in range(4) for v in _audits(pk, "ccc", start=pk)]

    counted = counting_verdicts(confirmed, state, "v1")

    assert [v.decision_pk for v in counted] == [0, 1, 2, 3]
    assert assess(state, counted, TRUST).verdicts == 4  # 12 clicks are 4 of the 10 promotion needs


def test_given_one_leader_flags_what_two_confirm_when_assessed_then_the_decision_counts_as_a_disagreement() -> None:
    """Counting clicks, 10 confirms and 5 flags over the window's five decisions is 67% agreement
    (above the 60% demotion line); counting decisions, all five are disputed: demoted."""
    state = LevelState("smb", 3)
    disputed = [v for pk in range(5) for v in _audits(pk, "cfc", start=pk)]

    result = assess(state, counting_verdicts(disputed, state, "v1"), TRUST)

    assert result.move is not None and result.move.kind == "demote"
    assert (result.window_verdicts, result.window_agreement) == (5, 0.0)
