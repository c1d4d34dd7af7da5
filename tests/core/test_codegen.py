"""Generated rule sets (core.policy.codegen) mean exactly what the closures of
core.policy.conditions mean: same verdict for any condition on any facts, the same fit points
and evidence, and nothing from the policy file ever becomes source code."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from core.model import Account, Event, Evidence, Lead, Score
from core.policy.codegen import MATCH_CACHE, compile_check, compile_first_match, matcher
from core.policy.conditions import Facts, compile_condition
from core.policy.schema import FitRule, Scoring
from core.scoring import Scorer, _shown

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)

EDGES = [0, 1, 5, 200, 200.0, 5000, 0.5]  # shared by predicates and values, so boundaries are hit

# values as a CRM (or a hostile record) may hand them over: the engine never crashes on them
odd_value = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "US", "us ", "Banking", "VP Sales", "true", "FALSE", "x" * 90, "1200", "\u0130"]),
    st.just("x" * 1200 + " VP"),  # a custom field longer than a pattern looks: both ways cut it alike
    st.text(max_size=6),
    st.sampled_from(EDGES),
    st.integers(min_value=-5, max_value=10_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
number = st.one_of(st.sampled_from(EDGES), st.integers(min_value=-10, max_value=6000), st.floats(-10, 6000))
scalar = st.one_of(
    st.none(),
    st.booleans(),
    number,
    st.sampled_from(["us", "Banking", "VP Sales", "true", "", "tier1", "hot", "smb"]),
    st.lists(st.integers(), max_size=2),
)
FIELDS = [
    "employees", "industry", "title", "country", "email_domain", "annual_revenue", "lead_source", "fields.x",
    "account.tier", "account.strategic", "account.employees", "account.fields.region", "has_account",
    "personal_email", "segment", "band", "score", "fit", "confidence",
]  # fmt: skip
TRIGGERS = ["missing_data", "vip", "gray_zone"]


@st.composite
def predicate(draw: st.DrawFn) -> Any:
    ops = draw(st.lists(st.sampled_from(["eq", "ne", "in", "not_in", "lt", "lte", "gt", "gte", "between",
                                         "matches", "exists"]), min_size=0, max_size=2, unique=True))  # fmt: skip
    if not ops:
        return draw(scalar)
    out: dict[str, Any] = {}
    for op in ops:
        if op in ("eq", "ne"):
            out[op] = draw(scalar)
        elif op in ("in", "not_in"):
            out[op] = draw(st.lists(scalar.filter(lambda v: not isinstance(v, list)), min_size=1, max_size=3))
        elif op == "between":
            low, high = sorted([draw(number), draw(number)])
            out[op] = [low, high]
        elif op == "matches":
            out[op] = draw(st.sampled_from([r"(?i)\bvp\b", "^U", "a|b", ".*"]))
        elif op == "exists":
            out[op] = draw(st.booleans())
        else:
            out[op] = draw(number)
    return out


def condition(depth: int = 2) -> st.SearchStrategy[dict[str, Any]]:
    leaf = st.one_of(
        st.builds(lambda f, p: {f: p}, st.sampled_from(FIELDS), predicate()),
        st.builds(lambda t: {"trigger": t}, st.sampled_from(TRIGGERS)),
        st.builds(lambda t: {"trigger": {"in": t}}, st.lists(st.sampled_from(TRIGGERS), min_size=1)),
        st.builds(lambda t: {"trigger": {"not_in": t}}, st.lists(st.sampled_from(TRIGGERS), min_size=1)),
        st.builds(
            lambda t, n: {"event": {"type": t, "within": "2d", "count_gte": n}},
            st.sampled_from(["demo_request", "webinar"]),
            st.integers(min_value=1, max_value=2),
        ),
    )
    if depth == 0:
        return leaf
    sub = condition(depth - 1)
    return st.one_of(
        leaf,
        st.builds(lambda a, b: {**a, **b}, leaf, leaf),
        st.builds(lambda cs: {"all": cs}, st.lists(sub, min_size=1, max_size=3)),
        st.builds(lambda cs: {"any": cs}, st.lists(sub, min_size=1, max_size=3)),
        st.builds(lambda c: {"not": c}, sub),
    )


@st.composite
def any_facts(draw: st.DrawFn) -> Facts:
    events = tuple(
        Event(draw(st.sampled_from(["demo_request", "webinar", "not_now"])), NOW - timedelta(hours=h))
        for h in draw(st.lists(st.integers(min_value=0, max_value=100), max_size=3))
    )
    lead = Lead(
        id="L1",
        email=draw(st.sampled_from([None, "a@b.test", "x@gmail.com"])),
        title=draw(odd_value),
        industry=draw(odd_value),
        employees=draw(odd_value),
        country=draw(odd_value),
        annual_revenue=draw(odd_value),
        lead_source=draw(odd_value),
        events=events,
        fields=draw(st.one_of(st.just({}), st.builds(lambda v: {"x": v}, odd_value))),
    )
    account = draw(
        st.one_of(
            st.none(),
            st.builds(
                lambda tier, strategic, employees, region: Account(
                    id="A", tier=tier, strategic=strategic, employees=employees, fields={"region": region}
                ),
                odd_value,
                odd_value,
                odd_value,
                odd_value,
            ),
        )
    )
    score = draw(
        st.one_of(
            st.none(),
            st.builds(
                lambda total, band, conf: Score(total // 2, total // 3, 5, total, band, conf),
                st.integers(min_value=-20, max_value=120),
                st.sampled_from(["hot", "warm", "cold"]),
                st.floats(min_value=0, max_value=1),
            ),
        )
    )
    return Facts(
        lead=lead,
        account=account,
        now=NOW,
        personal_email=draw(odd_value),
        segment=draw(odd_value),
        score=score,
        trigger_codes=frozenset(draw(st.lists(st.sampled_from(TRIGGERS), max_size=2))),
    )


@settings(max_examples=400, deadline=None)
@given(conditions=st.lists(st.one_of(st.none(), condition()), min_size=1, max_size=4), facts=any_facts(),
       start=st.integers(min_value=0, max_value=4))  # fmt: skip
def test_given_any_conditions_and_facts_when_generated_then_the_first_match_is_the_closures_first_match(
    conditions: list[dict[str, Any] | None], facts: Facts, start: int
) -> None:
    closures = [None if c is None else compile_condition(c) for c in conditions]
    expected = next(
        (i for i, check in enumerate(closures) if i >= start and (check is None or check(facts))),
        -1,
    )
    assert compile_first_match(conditions, "rules", resumable=True)(facts, start) == expected
    if start == 0:
        assert compile_first_match(conditions, "rules")(facts, 0) == expected


fit_rule = st.builds(
    lambda signal, ops, points, label: FitRule.model_validate(
        {"signal": signal, "points": points, "label": label, **ops}
    ),
    st.sampled_from([f for f in FIELDS if f not in ("segment", "band", "score", "fit", "confidence")]),
    predicate().filter(lambda p: isinstance(p, dict) and None not in p.values()),
    st.integers(min_value=-20, max_value=30),
    st.one_of(st.none(), st.just("a label")),
)


@settings(max_examples=300, deadline=None)
@given(rules=st.lists(fit_rule, min_size=1, max_size=5), facts=any_facts())
def test_given_any_fit_rules_when_generated_then_points_and_evidence_are_the_closures(
    rules: list[FitRule], facts: Facts
) -> None:
    intent = {"half_life_days": 7, "events": {"webinar": 5}}
    scorer = Scorer(Scoring.model_validate({"fit": rules, "intent": intent, "bands": {"hot": 70}}))
    expected: list[Evidence] = []
    for check in scorer._fit:  # the interpreted rows: value_of + holds
        value = check.value_of(facts)
        if check.holds(value):
            expected.append(Evidence(check.signal, _shown(value), check.points, check.rule))
    evidence: list[Evidence] = []
    fit = scorer._fit_points(facts, evidence)
    assert evidence == expected
    assert fit == sum(e.points for e in expected)


def test_given_policy_text_that_looks_like_code_when_compiled_then_it_stays_data() -> None:
    hostile = '"); __import__("os").system("false"); ("'
    conditions = [
        {"industry": hostile},
        {'fields.x"); import os; ("': {"in": [hostile, 1]}},
        {"title": {"matches": re.escape(hostile)}},
        {"account.fields.' or 1 or '": {"exists": True}},
    ]
    first = compile_first_match(conditions, "rules")
    source: str = first.__source__  # type: ignore[attr-defined]
    assert "import" not in source and hostile not in source
    facts = Facts(lead=Lead(id="L1", title=hostile, fields={'x"); import os; ("': "nope"}), account=None, now=NOW)
    assert first(facts, 0) == 2
    assert first(Facts(lead=Lead(id="L2", industry=hostile), account=None, now=NOW), 0) == 0


VALUES = [None, "", " US ", "us", "Banking", "true", "False", "VP Sales", 0, 1, 5, 200, 200.0, 5000, 0.5, -1,
          float("nan"), True, False, [1], {"a": 1}]  # fmt: skip
ARGS = [None, "us", "banking", "true", 0, 1, 5, 200, 5000, 0.5, True, False, [1]]  # fmt: skip


def test_given_every_operator_at_its_boundaries_when_generated_then_each_verdict_is_the_closures() -> None:
    predicates: list[Any] = [*ARGS]
    for arg in ARGS:
        predicates += [{"eq": arg}, {"ne": arg}]
        if arg is not None and not isinstance(arg, list):
            predicates += [{"in": [arg]}, {"not_in": [arg, "x"]}]
        if isinstance(arg, int | float) and not isinstance(arg, bool):
            predicates += [{op: arg} for op in ("lt", "lte", "gt", "gte")] + [{"between": [arg, 200]}]
    predicates += [{"exists": True}, {"exists": False}, {"matches": "(?i)^v"}, {"gte": 1, "lt": 200}]
    for predicate in predicates:
        for name in ("employees", "fields.x", "account.tier", "personal_email"):
            rules = compile_first_match([{name: predicate}], "rules")
            check = compile_condition({name: predicate})
            for value in VALUES:
                lead = Lead(id="L1", employees=value, fields={"x": value})
                facts = Facts(lead=lead, account=Account(id="A", tier=value), now=NOW, personal_email=value)
                assert (rules(facts, 0) == 0) is bool(check(facts)), (name, predicate, value)


@settings(max_examples=300, deadline=None)
@given(when=condition(), facts=any_facts())
def test_given_any_condition_when_compiled_as_one_check_then_it_is_the_closure(
    when: dict[str, Any], facts: Facts
) -> None:
    assert compile_check(when, "rule")(facts) is bool(compile_condition(when)(facts))


@given(texts=st.lists(st.sampled_from(["VP Sales", "vp", "CTO", "Student", "", "x" * 90]) | st.text(max_size=12)))
def test_given_texts_asked_again_when_matched_then_each_verdict_is_re_search(texts: list[str]) -> None:
    pattern = r"(?i)\b(vp|cto|student)\b"
    matches = matcher(pattern)
    for text in texts * 2:  # the second time from the cache
        assert matches(text) is (re.search(pattern, text) is not None)


def test_given_more_texts_than_the_cache_holds_when_matched_then_it_stays_bounded_and_right() -> None:
    matches = matcher("7$")
    for i in range(MATCH_CACHE + 500):
        assert matches(f"title {i}") is (i % 10 == 7)
    assert matches.cache_info().currsize == MATCH_CACHE  # type: ignore[attr-defined]
    assert matches("title 7") and not matches("title 8")  # fell out, asked again
