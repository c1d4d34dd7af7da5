"""Scoring: every point is evidence, intent decays by half-life, totals add up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from core.model import Lead
from core.policy.conditions import Facts
from core.scoring import Scorer, band_for
from tests.builders import make_lead, make_policy

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def _score(lead: Lead, **overrides: object) -> object:
    scorer = Scorer(make_policy(**overrides).policy.scoring)
    return scorer.score(Facts(lead=lead, account=None, now=NOW))


def test_given_fit_rules_when_a_lead_matches_then_each_match_is_one_evidence_item() -> None:
    parts = _score(make_lead(employees=500, industry="Software"))
    assert [(e.signal, e.value, e.points) for e in parts.evidence] == [
        ("employees", 500, 30),
        ("industry", "Software", 20),
    ]
    assert parts.fit == 50 and parts.total == 50 and parts.band == "warm"


def test_given_an_event_one_half_life_old_when_scored_then_it_counts_half() -> None:
    parts = _score(make_lead(NOW, events=[("demo_request", timedelta(days=10))]))
    assert parts.intent == 20
    assert parts.evidence[-1].rule == "intent.demo_request: 40 pts each, half-life 10 d"


def test_given_events_outside_the_window_or_unknown_when_scored_then_they_count_nothing() -> None:
    parts = _score(make_lead(NOW, events=[("demo_request", timedelta(days=61)), ("tweet", timedelta(hours=1))]))
    assert parts.intent == 0 and parts.evidence == ()


def test_given_future_events_when_scored_then_they_count_as_now_not_more() -> None:
    parts = _score(make_lead(NOW, events=[("webinar", timedelta(days=-3))]))
    assert parts.intent == 10


def test_given_intent_above_the_cap_when_scored_then_a_cap_item_keeps_the_sum_true() -> None:
    parts = _score(make_lead(NOW, events=[("demo_request", timedelta(hours=1)), ("demo_request", timedelta(hours=2))]))
    assert parts.intent == 50
    cap = parts.evidence[-1]
    assert cap.signal == "intent.cap" and cap.points == 50 - 80
    assert sum(e.points for e in parts.evidence) == parts.total


def test_given_completeness_when_half_the_fields_are_known_then_half_the_points() -> None:
    scoring = make_policy().policy.scoring.model_dump(by_alias=True)
    scoring["completeness"] = {"fields": ["email", "company", "title", "country"], "points": 10}
    parts = _score(make_lead(email="a@b.co", company="B"), scoring=scoring)
    assert parts.completeness == 5
    assert parts.evidence[-1].value == "2/4"


def test_given_band_thresholds_when_banding_then_highest_reached_wins_and_cold_below_all() -> None:
    bands = [("hot", 70), ("warm", 40)]
    assert [band_for(t, bands) for t in (70, 69, 40, 39, -5)] == ["hot", "warm", "warm", "cold", "cold"]


def test_given_equal_knowledge_when_one_score_sits_on_a_threshold_then_it_is_less_confident() -> None:
    on_line = _score(make_lead(NOW, employees=500, industry="Retail", events=[("webinar", timedelta(0))]))  # 40
    clear = _score(make_lead(employees=500, industry="Software"))  # 50: 10 above warm, 20 below hot
    assert (on_line.total, clear.total) == (40, 50)
    assert on_line.known_share == clear.known_share
    assert on_line.raw_confidence < clear.raw_confidence < 1


events = st.lists(
    st.tuples(st.sampled_from(["demo_request", "webinar", "other"]), st.integers(min_value=-5, max_value=100)),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(
    employees=st.none() | st.integers(min_value=0, max_value=100_000),
    industry=st.sampled_from([None, "software", "Retail"]),
    evs=events,
)
def test_property_points_of_the_evidence_always_sum_to_the_total(
    employees: int | None, industry: str | None, evs: list[tuple[str, int]]
) -> None:
    lead = make_lead(
        NOW, employees=employees, industry=industry, events=[(k, timedelta(days=d)) for k, d in evs] or None
    )
    parts = _score(lead)
    assert sum(e.points for e in parts.evidence) == parts.total == parts.fit + parts.intent + parts.completeness
    assert 0 <= parts.raw_confidence <= 1


@settings(max_examples=200, deadline=None)
@given(
    employees=st.one_of(st.none(), st.integers(min_value=0, max_value=20_000)),
    industry=st.sampled_from([None, "Software", "Retail"]),
    title=st.sampled_from([None, "VP Sales", "Intern"]),
    days=st.lists(st.floats(min_value=0, max_value=60), max_size=4),
)
def test_given_any_lead_when_scored_then_raw_confidence_is_the_formula_of_share_and_margin(
    employees: int | None, industry: str | None, title: str | None, days: list[float]
) -> None:
    lead = make_lead(NOW, events=[("demo_request", timedelta(days=d)) for d in days], employees=employees,
                     industry=industry, title=title)  # fmt: skip
    scorer = Scorer(make_policy().policy.scoring)
    parts = scorer.score(Facts(lead=lead, account=None, now=NOW))
    # the table looked up per lead holds what the formula gives for this lead
    distance = min([abs(parts.total - t) for _, t in scorer.bands] + [15.0])
    margin = min(distance / 15.0, 1.0)
    assert parts.raw_confidence == round(0.15 + 0.45 * parts.known_share + 0.35 * margin, 2)


def test_given_fit_rules_without_a_label_when_scored_then_the_evidence_reads_as_a_person_writes_numbers() -> None:
    # the policy's numbers are floats: "fit.annual_revenue 1e+06–5e+07", "fit.employees < 200.0"
    fit = [
        {"signal": "annual_revenue", "between": [1000000, 50000000], "points": 10},
        {"signal": "employees", "lt": 200, "points": 5},
        {"signal": "employees", "gte": 0.5, "points": 1},
    ]
    scoring = make_policy().policy.scoring.model_dump()
    scorer = Scorer(make_policy(scoring={**scoring, "fit": fit}).policy.scoring)
    parts = scorer.score(Facts(make_lead(annual_revenue=2_000_000, employees=50), None, NOW))
    rules = [e.rule for e in parts.evidence if e.signal != "completeness"]
    assert rules == ["fit.annual_revenue 1,000,000–50,000,000", "fit.employees < 200", "fit.employees ≥ 0.5"]
