"""Escalation triggers: each fires when its policy parameters say, with a readable detail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.engine import DecisionEngine, LeadContext
from core.escalation import EscalationContext
from core.leads import normalize_lead
from core.model import Account, Decision, DuplicateRecord, PriorScore, Route, Trigger
from core.policy.conditions import Facts
from core.routing import InMemoryRotation
from tests.builders import make_lead, make_policy, policy_dict

NOW = datetime(2026, 11, 20, 15, tzinfo=UTC)

ESCALATION: dict[str, Any] = {
    "strategic_account": True,
    "high_deal_size": {"gte": 100000},
    "regulated_industry": {"industries": ["banking", "healthcare"]},
    "conflicting_signals": {"fit_gte": 50, "intent_lte": 0, "intent_gte": 40, "fit_lte": 0},
    "score_volatility": {"delta_gte": 30, "within": "24h"},
    "missing_data": {"required": ["email", "company", "country"]},
    "duplicate_ownership": True,
    "gray_zone": {"width": 3},
    "vip": {"when": {"title": {"matches": "(?i)ceo"}}, "detail": "a CEO"},
    "customer_signal": {"events": ["not_now"], "within": "7d"},
    "low_confidence": {"below": 0.3},
    "custom": [{"code": "partner", "when": {"lead_source": "partner"}, "detail": "partner-sourced", "hard": False}],
}
COMPLETE = {"email": "a@acme.com", "company": "Acme", "country": "US"}


def _decide(ctx: LeadContext | None = None, escalation: dict[str, Any] | None = None, **lead: Any) -> Decision:
    engine = DecisionEngine(make_policy(escalation=ESCALATION if escalation is None else escalation))
    return engine.decide(
        make_lead(NOW, **{**COMPLETE, **lead}), ctx or LeadContext(), rotation=InMemoryRotation(), now=NOW
    )


def _trigger(decision: Decision, code: str) -> str | None:
    return next((t.detail for t in decision.triggers if t.code == code), None)


@pytest.mark.parametrize(
    ("code", "lead", "ctx", "detail"),
    [
        ("high_deal_size", {"estimated_deal_size": 250000}, None, "estimated deal size $250,000 ≥ $100,000"),
        ("regulated_industry", {"industry": "Banking"}, None, "industry Banking is regulated"),
        (
            "conflicting_signals",
            {"employees": 500, "industry": "software"},
            None,
            "strong fit (50) but no recent intent (0)",
        ),
        (
            "conflicting_signals",
            {"events": [("demo_request", timedelta(hours=1))]},
            None,
            "strong intent (40) but weak fit (0)",
        ),
        ("missing_data", {"company": None, "country": None}, None, "missing company, country"),
        ("missing_data", {"email": "broken"}, None, "missing email ('broken' is not an email address)"),
        (
            "gray_zone",
            {"employees": 500, "events": [("webinar", timedelta(days=1))]},
            None,
            "score 39 is 1 below the warm threshold (40)",
        ),
        ("vip", {"title": "CEO"}, None, "a CEO"),
        ("customer_signal", {"events": [("not_now", timedelta(days=2))]}, None, "not now 2 days ago: pause automation"),
        ("partner", {"lead_source": "partner"}, None, "partner-sourced"),
        (
            "score_volatility",
            {"employees": 500, "industry": "software"},
            LeadContext(previous=PriorScore(10, NOW - timedelta(hours=3))),
            "score moved 10 → 50 (+40) in 3 h",
        ),
        (
            "strategic_account",
            {},
            LeadContext(
                account=Account(id="A", source="salesforce", name="Globex", strategic=True, owner_id="005000000000BBB")
            ),
            "account Globex is strategic (owner: Ben)",
        ),
        (
            "duplicate_ownership",
            {},
            LeadContext(duplicates=(DuplicateRecord("hubspot", "77", "2", "ben"),)),
            "also in hubspot (77) owned by Ben",
        ),
    ],
)
def test_given_a_situation_when_decided_then_its_trigger_fires_with_a_readable_detail(
    code: str, lead: dict[str, Any], ctx: LeadContext | None, detail: str
) -> None:
    assert _trigger(_decide(ctx, **lead), code) == detail


def test_given_a_clean_lead_when_decided_then_no_trigger_fires() -> None:
    decision = _decide(
        employees=500,
        industry="software",
        events=[("webinar", timedelta(hours=1)), ("demo_request", timedelta(hours=2))],
    )
    assert decision.triggers == ()


def test_given_thresholds_when_just_outside_them_then_triggers_stay_quiet() -> None:
    d = _decide(
        LeadContext(previous=PriorScore(30, NOW - timedelta(hours=25))),  # older than the 24h window
        estimated_deal_size=99999,
        events=[("not_now", timedelta(days=8))],  # outside 7d
        employees=500,
        industry="software",
    )
    assert {t.code for t in d.triggers} <= {"conflicting_signals"}


def test_given_an_account_owned_by_someone_else_when_routed_elsewhere_then_duplicate_ownership() -> None:
    account = Account(id="A", source="salesforce", name="Initech", owner_id="005000000000BBB")
    d = _decide(LeadContext(account=account), escalation={"duplicate_ownership": True}, email="x@initech.com")
    assert d.owner == "ana"
    assert _trigger(d, "duplicate_ownership") == "account Initech is owned by Ben, routing chose Ana"


def test_given_the_same_owner_in_both_crms_when_decided_then_no_duplicate_ownership() -> None:
    twin = DuplicateRecord("hubspot", "77", "1", "ana")
    d = _decide(LeadContext(duplicates=(twin,)), escalation={"duplicate_ownership": True})
    assert d.owner == "ana" and d.triggers == ()


def test_given_a_twin_parked_in_a_queue_when_decided_then_no_duplicate_ownership() -> None:
    # an earlier web-form record of the same person, in the unassigned queue: nobody owns it yet
    queued = DuplicateRecord("salesforce", "00Q_OLD", "00G000000000UNA", "unassigned")
    unknown = DuplicateRecord("salesforce", "00Q_OLD2", "005999999999ZZZ", None)  # not a rep in the policy
    d = _decide(LeadContext(duplicates=(queued, unknown)), escalation={"duplicate_ownership": True})
    assert d.owner == "ana" and d.triggers == ()
    owned = DuplicateRecord("hubspot", "77", "2", "ben")
    d = _decide(LeadContext(duplicates=(queued, owned)), escalation={"duplicate_ownership": True})
    assert _trigger(d, "duplicate_ownership") == "also in hubspot (77) owned by Ben"


def test_given_the_hard_list_when_triggers_fire_then_hardness_follows_the_policy() -> None:
    escalation = {**ESCALATION, "hard": ["regulated_industry", "partner"]}
    d = _decide(escalation=escalation, industry="banking", lead_source="partner", title="CEO")
    assert {t.code: t.hard for t in d.triggers} == {"regulated_industry": True, "vip": False, "partner": True}


def test_given_triggers_left_out_of_the_policy_when_deciding_then_they_never_fire() -> None:
    d = _decide(escalation={}, estimated_deal_size=10**9, industry="banking", title="CEO", company=None)
    assert d.triggers == ()


def test_given_a_policy_without_escalation_section_when_loaded_then_defaults_apply() -> None:
    data = policy_dict()
    assert "escalation" not in data
    assert DecisionEngine(make_policy()).escalator.hard >= {"strategic_account", "duplicate_ownership"}


_text = st.one_of(st.none(), st.sampled_from(["CEO", "ceo of fun", "Banking", "partner", "", "x"]), st.text(max_size=5))


@settings(max_examples=200, deadline=None)
@given(
    raw=st.fixed_dictionaries(
        {"id": st.just("L1")},
        optional={
            "email": st.sampled_from(["a@acme.com", "bad", "b@gmail.com"]),
            "company": _text,
            "country": _text,
            "title": st.one_of(st.sampled_from(["CEO", "ceo of fun", "VP"]), _text),
            "industry": _text,
            "lead_source": st.sampled_from(["partner", "Partner ", "web"]),
            "employees": st.one_of(st.none(), st.integers(-5, 20_000), st.just("lots")),
            "estimated_deal_size": st.one_of(st.none(), st.floats(0, 300_000), st.just("big")),
            "events": st.lists(
                st.fixed_dictionaries(
                    {
                        "type": st.sampled_from(["not_now", "demo_request"]),
                        "at": st.sampled_from(["2026-11-20T14:00:00Z", "2026-11-01"]),
                    }
                ),
                max_size=3,
            ),
        },
    ),
    strategic=st.booleans(),
    previous=st.one_of(st.none(), st.integers(0, 100)),
    hard=st.lists(st.sampled_from(["vip", "partner", "gray_zone", "missing_data"]), unique=True),
    account_industry=st.sampled_from([None, "banking", "Retail", "no account"]),
    one_sided_conflict=st.booleans(),
    confidence=st.one_of(st.none(), st.sampled_from([0.0, 0.29, 0.3, 0.31, 1.0])),
)
def test_given_any_lead_when_triggers_are_generated_then_they_are_the_checks_run_in_order(
    raw: dict[str, Any],
    strategic: bool,
    previous: int | None,
    hard: list[str],
    account_industry: str | None,
    one_sided_conflict: bool,
    confidence: float | None,
) -> None:
    conflict = {"fit_gte": 50, "intent_lte": 0} if one_sided_conflict else ESCALATION["conflicting_signals"]
    engine = DecisionEngine(make_policy(escalation={**ESCALATION, "hard": hard, "conflicting_signals": conflict}))
    account = (
        None
        if account_industry == "no account"
        else Account(id="A1", name="Acme", strategic=strategic, industry=account_industry)
    )
    facts = Facts(normalize_lead(raw), account, NOW)
    facts.segment = engine._segment(facts)
    parts = engine.scorer.score(facts)
    prior = PriorScore(previous, NOW - timedelta(hours=2)) if previous is not None else None
    confidence = parts.raw_confidence if confidence is None else confidence
    esc = EscalationContext(parts, confidence, Route("pending", "none", None, "none", ""), prior, ())
    escalator = engine.escalator
    expected = []  # the checks and the custom rules, one by one, as the policy orders them
    for code, check, is_hard in escalator._checks:
        detail = check(facts, esc)
        if detail is not None:
            expected.append(Trigger(code, detail, is_hard))
    for code, when, detail, is_hard in escalator._custom:
        if when(facts):
            expected.append(Trigger(code, detail, is_hard))
    assert escalator.triggers(facts, esc) == expected
