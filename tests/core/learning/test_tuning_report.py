"""The tuning report's findings: band errors both ways, recurring reasons, agreement."""

from __future__ import annotations

from datetime import UTC, datetime

from core.learning.labels import LabelledDecision, Outcome, Verdict
from core.learning.tuning import agreement_summary, band_errors, recurring_reasons

T = datetime(2026, 11, 3, tzinfo=UTC)


def _item(band: str, human: str | None, outcome: Outcome | None) -> LabelledDecision:
    return LabelledDecision(
        1, 1, T, {"score": {"band": band, "total": 50}, "action": "review"}, None, human, None, outcome
    )


def _verdict(agree: bool, reason: str | None, segment: str = "smb", who: str = "ana") -> Verdict:
    kind = "approve" if agree else "override"
    return Verdict(T, T, segment, who, kind, agree, 2, "v1", reason_code=reason)


def test_given_people_and_outcomes_when_counted_then_false_positives_and_negatives_per_band() -> None:
    items = [
        _item("hot", "warm", Outcome(False)),  # people: too high; outcome: not converted
        _item("hot", "hot", Outcome(True)),
        _item("cold", "warm", Outcome(True)),  # people: too low; outcome: converted anyway
        _item("warm", None, None),
    ]
    errors = band_errors(items, ["cold", "warm", "hot"])
    assert errors["by_people"]["hot"] == {
        "judged": 2,
        "kept": 1,
        "false_positive": 1,
        "false_negative": 0,
        "false_positive_rate": 0.5,
        "false_negative_rate": 0.0,
    }
    assert errors["by_people"]["cold"]["false_negative"] == 1
    assert errors["by_outcomes"]["hot"]["false_positive"] == 1
    assert errors["by_outcomes"]["cold"]["false_negative"] == 1
    assert errors["by_outcomes"]["warm"]["known"] == 0


def test_given_disagreements_when_grouped_then_only_recurring_reasons_are_listed_most_frequent_first() -> None:
    found = [_verdict(False, "wrong_segment")] * 4 + [_verdict(False, "capacity", "enterprise")] * 3
    found += [_verdict(False, "timing"), _verdict(True, None)]
    reasons = recurring_reasons(found, min_count=3)
    assert [(r["reason"], r["count"]) for r in reasons] == [("wrong_segment", 4), ("capacity", 3)]
    assert reasons[0]["share_of_disagreements"] == 0.5
    assert reasons[1]["segments"] == {"enterprise": 3}


def test_given_verdicts_when_summarised_then_agreement_per_segment_and_person() -> None:
    found = [_verdict(True, None), _verdict(False, "x"), _verdict(True, None, "enterprise", "ben")]
    summary = agreement_summary(found)
    assert summary["overall"] == {"verdicts": 3, "agreement": 0.6667}
    assert summary["by_segment"]["smb"] == {"verdicts": 2, "agreement": 0.5}
    assert summary["by_person"]["ben"] == {"verdicts": 1, "agreement": 1.0}
