"""The condition language: what each operator means, including on missing values."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.model import Account, Event, Lead
from core.policy.codegen import compile_check
from core.policy.conditions import (
    MATCHED_TEXT,
    Facts,
    Stage,
    check_condition,
    compile_condition,
    compile_field_check,
    compile_predicate,
)

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def facts(**lead: Any) -> Facts:
    account = lead.pop("account", None)
    return Facts(lead=Lead(id="L1", **lead), account=account, now=NOW)


@pytest.mark.parametrize(
    ("condition", "lead", "expected"),
    [
        ({"industry": "Banking"}, {"industry": "banking"}, True),
        ({"industry": {"in": ["software", "fintech"]}}, {"industry": "FinTech"}, True),
        ({"industry": {"not_in": ["software"]}}, {"industry": None}, False),
        ({"employees": {"between": [200, 5000]}}, {"employees": 200}, True),
        ({"employees": {"between": [200, 5000]}}, {"employees": 5001}, False),
        ({"employees": {"gte": 10, "lt": 20}}, {"employees": 19}, True),
        ({"employees": {"gte": 10}}, {"employees": None}, False),
        ({"title": {"matches": r"(?i)\bvp\b"}}, {"title": "VP Sales"}, True),
        ({"title": {"matches": r"(?i)\bvp\b"}}, {"title": "MVP hunter"}, False),
        ({"country": {"exists": False}}, {"country": ""}, True),
        ({"country": {"exists": True}}, {"country": "US"}, True),
        ({"any": [{"country": "US"}, {"country": "CA"}]}, {"country": "CA"}, True),
        ({"not": {"country": "US"}}, {"country": "CA"}, True),
        ({"all": [{"country": "US"}, {"employees": {"gt": 5}}]}, {"country": "US", "employees": 3}, False),
        ({"fields.partner": True}, {"fields": {"partner": "true"}}, True),
        ({"email_domain": {"in": ["rival.test"]}}, {"email": "a@Rival.test"}, True),
        ({"account.strategic": True}, {"account": Account(id="A", strategic=True)}, True),
        ({"account.strategic": True}, {}, False),
        ({"has_account": False}, {}, True),
    ],
)
def test_given_a_condition_when_evaluated_then_it_means_what_the_docs_say(
    condition: dict[str, Any], lead: dict[str, Any], expected: bool
) -> None:
    assert check_condition(condition, ("when",), Stage.ESCALATED) == []
    assert compile_condition(condition)(facts(**lead)) is expected


def test_given_an_event_condition_when_events_are_recent_enough_then_it_matches() -> None:
    events = (Event("pricing_page", NOW - timedelta(hours=2)), Event("pricing_page", NOW - timedelta(hours=30)))
    f = facts(events=events)
    assert compile_condition({"event": {"type": "pricing_page", "within": "24h"}})(f)
    assert not compile_condition({"event": {"type": "pricing_page", "within": "24h", "count_gte": 2}})(f)
    assert compile_condition({"event": {"in": ["pricing_page", "demo_request"], "within": "2d", "count_gte": 2}})(f)


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({"contry": "US"}, "unknown field 'contry' (did you mean 'country'?)"),
        ({"employees": {"bigger": 3}}, "unknown operator 'bigger'"),
        ({"employees": {"between": [10, 1]}}, "'between' low 10 is above high 1"),
        ({"employees": {"gte": "ten"}}, "'gte' takes a number"),
        ({"country": ["US"]}, "a list needs an operator"),
        ({"title": {"matches": "("}}, "invalid regular expression"),
        ({"fields.note": {"matches": r"(\w+\s?)*$"}}, "repeats a group that itself repeats, like (a+)+"),
        ({"any": []}, "'any' takes a non-empty list"),
        ({"event": {"type": "x", "within": "soon"}}, "invalid duration 'soon'"),
        ({}, "empty condition"),
        # members end up in a frozenset: a list or mapping would be unhashable at decide time
        ({"lead_source": {"in": [["marketplace"]]}}, "'in' takes a list of single values"),
        ({"industry": {"not_in": ["x", {"a": 1}]}}, "'not_in' takes a list of single values"),
        ({"trigger": {"in": [["vip"]]}}, "'in' takes a list of single values"),
        ({"trigger": None}, "'trigger' takes one trigger code or {in: [...]} or {not_in: [...]}"),
        ({"trigger": 1}, "'trigger' takes one trigger code or {in: [...]} or {not_in: [...]}"),
        ({"trigger": {"in": ["vip"], "not_in": ["gray_zone"]}}, "'trigger' takes one of 'in' or 'not_in', not both"),
        ({"event": {"in": [["demo_request"]]}}, "'in' takes a non-empty list of event types"),
        ({"event": {"type": ["demo_request"]}}, "'type' takes one event type as text"),
    ],
)
def test_given_a_bad_condition_when_checked_then_the_issue_says_why(condition: dict[str, Any], message: str) -> None:
    issues = check_condition(condition, ("when",), Stage.ESCALATED)
    assert any(message in i.message for i in issues), issues


# on "aaaa…!" each of these tries every way to split the a's between the repeats: exponential
@pytest.mark.parametrize(
    "pattern", [r"(a+)+$", r"(a*)*$", r"(a{1,3})+$", r"(?:x|(a+)+)$", r"(?=(a+)+$)", r"(a)?(?(1)(a+)+|b)$"]
)
def test_given_a_repeat_inside_a_repeat_when_checked_then_the_pattern_is_refused(pattern: str) -> None:
    issues = check_condition({"title": {"matches": pattern}}, ("when",), Stage.LEAD)
    assert [i.path for i in issues] == [("when", "title", "matches")]
    assert "repeats a group that itself repeats" in issues[0].message


# possessive and atomic repeats give nothing back; a fixed or optional inner part is one way only
@pytest.mark.parametrize(
    "pattern", [r"(?i)\b(vp|c[eto]o)\b", r"(a++)+$", r"(?>a+)+$", r"(ab{2})+$", r"(ab?)+$", r"(a+)?$", r"\d+x"]
)
def test_given_a_pattern_with_no_backtracking_repeat_inside_a_repeat_when_checked_then_it_is_accepted(
    pattern: str,
) -> None:
    assert check_condition({"title": {"matches": pattern}}, ("when",), Stage.LEAD) == []


def _predicate_on_note(condition: dict[str, Any]) -> Callable[[Facts], bool]:
    test = compile_predicate(condition["fields.note"])
    return lambda f: test(f.lead.fields["note"])


_COMPILED_WAYS: list[Callable[[dict[str, Any]], Callable[[Facts], bool]]] = [
    compile_condition,
    lambda condition: compile_check(condition, "probe"),
    _predicate_on_note,
]


@pytest.mark.parametrize("compiled", _COMPILED_WAYS)
def test_given_a_custom_field_of_a_megabyte_when_matched_then_the_pattern_sees_only_its_first_characters(
    compiled: Callable[[dict[str, Any]], Callable[[Facts], bool]],
) -> None:
    # custom fields are not capped when a lead is read; a slow pattern (\d+x on a million digits
    # takes an hour) or a plain one on megabytes per lead must not make a decision that costly
    f = facts(fields={"note": "1" * 1_000_000})
    assert compiled({"fields.note": {"matches": f"^1{{{MATCHED_TEXT}}}$"}})(f)  # the text it sees ends there
    near, far = "1" * (MATCHED_TEXT - 7) + "partner", "1" * (MATCHED_TEXT - 6) + "partner"  # its last r cut
    assert compiled({"fields.note": {"matches": "partner"}})(facts(fields={"note": near}))
    assert not compiled({"fields.note": {"matches": "partner"}})(facts(fields={"note": far}))


def test_given_a_field_from_a_later_stage_when_checked_early_then_it_is_rejected() -> None:
    issues = check_condition({"trigger": "vip"}, ("when",), Stage.SCORED)
    assert issues and "not known yet" in issues[0].message


_NUMBERS = [0, 1, 10, 19, 20, 200, 5000, 10.0, 200.5]  # shared by values and thresholds: ties get tested
_field_values = (
    st.none()
    | st.booleans()
    | st.sampled_from(_NUMBERS)
    | st.integers(-10, 10_000)
    | st.floats(allow_nan=True)
    | st.sampled_from(["", " US ", "us", "Banking", "TRUE", "false", "VP Sales", "12", "ß", "SS"])
    | st.text(max_size=8)
    | st.lists(st.integers(), max_size=2)
)
_PREDICATES: list[Any] = [
    *["US", "banking", "true", "ss", "", True, False, 10, None],
    *({op: n} for op in ("lt", "lte", "gt", "gte") for n in _NUMBERS),
    *({"between": [a, b]} for a in _NUMBERS for b in _NUMBERS if a <= b),
    *({op: members} for op in ("in", "not_in") for members in (["US", " ca"], ["Banking", "SS", 12, True])),
    *({"matches": p} for p in (r"(?i)\bvp\b", "^$", "a|b")),
    {"gte": 10, "lt": 20},
    {"exists": True},
]


@given(value=_field_values)
def test_given_any_value_when_a_field_check_is_compiled_then_it_agrees_with_the_predicate_on_the_value(
    value: Any,
) -> None:
    # the fused form (field read and test in one closure) must mean what the predicate means
    lead = Lead(id="L1", title=value, fields={"x": value})
    f = Facts(lead=lead, account=Account(id="A", fields={"x": value}), now=NOW)
    for predicate in _PREDICATES:
        expected = _outcome(compile_predicate(predicate), value)
        for name in ("title", "fields.x", "account.fields.x"):
            assert _outcome(compile_field_check(name, predicate), f) == expected, (name, predicate)


def _outcome(test: Callable[[Any], bool], arg: Any) -> Any:
    """The result, or the kind of error (none is expected: the test says so by differing)."""
    try:
        return test(arg)
    except Exception as exc:  # compared, not hidden
        return type(exc)


@pytest.mark.parametrize("value", [[1, 2], {"a": 1}, ["US"]])
def test_given_a_list_or_mapping_in_a_field_when_tested_for_membership_then_it_is_no_member(value: Any) -> None:
    # a CRM custom field can hold a list; `in` used to raise TypeError (unhashable) and stop a run
    f = Facts(lead=Lead(id="L1", fields={"x": value}), account=None, now=NOW)
    for compiled in (compile_predicate, lambda p: compile_field_check("fields.x", p)):
        assert compiled({"in": ["US", 12]})(value if compiled is compile_predicate else f) is False
        assert compiled({"not_in": ["US", 12]})(value if compiled is compile_predicate else f) is True
