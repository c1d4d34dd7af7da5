"""Lead input normalisation: what CRMs and people type becomes values or named problems."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.leads import (
    MAX_EVENTS,
    MAX_TEXT,
    LeadInputError,
    _amount,
    _count,
    _country,
    _country_field,
    _number,
    _text,
    account_domains,
    content_hash,
    hashed_record,
    lead_record,
    normalize_account,
    normalize_lead,
    parse_time,
)


@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [
        ("employees", "1,200", 1200),
        ("employees", 1200.0, 1200),
        ("employees", "201-500", 350),
        ("employees", "2k", 2000),
        ("estimated_deal_size", "$120,000", 120000.0),
        ("estimated_deal_size", "1.5M", 1_500_000.0),
        # as Europe writes amounts: dots group thousands, a comma starts the decimals
        ("estimated_deal_size", "€100.000", 100_000.0),
        ("annual_revenue", "100.000,00", 100_000.0),
        ("annual_revenue", "1.234.567,89 €", 1_234_567.89),
        ("estimated_deal_size", "1,5M", 1_500_000.0),
        ("estimated_deal_size", "1.200M", 1_200_000.0),  # a magnitude after: the dot is a decimal point
        ("estimated_deal_size", "0.500", 0.5),
        ("annual_revenue", "12,34,567", 1_234_567.0),  # Indian lakhs
        ("annual_revenue", "$1,234,567.89", 1_234_567.89),
        # ISO currency codes before or after
        ("estimated_deal_size", "USD 100000", 100_000.0),
        ("estimated_deal_size", "100000 USD", 100_000.0),
        ("estimated_deal_size", "EUR100.000,50", 100_000.5),
        ("employees", "1.200", 1200),
        ("employees", "10,000+", 10_000),  # at least: the top of a size picklist (HubSpot's is "1000+")
        ("employees", "1000+", 1000),
        ("country", "United States", "US"),
        ("country", "de", "DE"),
        ("country", "Atlantis", "Atlantis"),
        ("domain", "https://www.Acme.com/about?x=1", "acme.com"),
        ("email", "  Jane.Doe@Example.COM ", "jane.doe@example.com"),
        ("title", 42, "42"),
    ],
)
def test_given_crm_style_values_when_normalised_then_they_become_clean_values(
    field: str, raw: Any, expected: Any
) -> None:
    lead = normalize_lead({"id": "1", field: raw})
    assert getattr(lead, field) == expected
    assert field not in lead.problems


@pytest.mark.parametrize(
    ("field", "raw", "problem"),
    [
        ("employees", "lots", "'lots' is not a number of employees"),
        ("employees", -5, "is not a number of employees"),
        ("email", "jo at example", "'jo at example' is not an email address"),
        ("estimated_deal_size", "call me", "is not an amount"),
        # separators that could mean either, and magnitudes that are no currency: not a guess
        ("estimated_deal_size", "1200,500", "'1200,500' is not an amount"),
        ("annual_revenue", "1.234,567.89", "is not an amount"),
        ("estimated_deal_size", "5 MIO", "'5 MIO' is not an amount"),
        ("employees", "1,2,3", "is not a number of employees"),
        ("employees", " + ", "' + ' is not a number of employees"),
        ("title", {"nested": True}, "expected text, got an object"),
        ("created_at", "yesterday", "'yesterday' is not a time"),
        ("events", "lots", "not a list"),
        ("fields", [1, 2], "not an object"),
        # beyond what a float or a UTC datetime can hold: float() and astimezone() overflow
        pytest.param("employees", 10**400, "is not a number of employees", id="employees-beyond-float"),
        pytest.param("annual_revenue", 10**400, "is not an amount", id="revenue-beyond-float"),
        pytest.param("estimated_deal_size", -(10**400), "is not an amount", id="deal-size-beyond-float"),
        ("created_at", "0001-01-01T00:00:00+01:00", "is not a time"),
        ("updated_at", "9999-12-31T23:59:59-01:00", "is not a time"),
        ("events", [{"type": "webinar", "at": "0001-01-01T00:00:00+01:00"}], "1 of 1 events unusable"),
    ],
)
def test_given_malformed_values_when_normalised_then_none_and_the_problem_is_named(
    field: str, raw: Any, problem: str
) -> None:
    lead = normalize_lead({"id": "1", field: raw})
    assert problem in lead.problems[field]
    if field not in ("events", "fields"):
        assert getattr(lead, field) is None


def test_given_nan_or_infinity_in_custom_fields_when_normalised_then_null_and_the_problem_is_named() -> None:
    raw = json.loads('{"id": "1", "fields": {"arr": NaN, "ok": 1.5, "deep": {"a": [1, -Infinity]}, "t": "x"}}')
    lead = normalize_lead(raw)
    assert lead.fields == {"arr": None, "ok": 1.5, "deep": {"a": [1, None]}, "t": "x"}
    assert lead.problems == {"fields": "NaN or infinity (now null) in arr, deep"}
    json.dumps(lead_record(lead), allow_nan=False)
    assert raw["fields"]["deep"]["a"][1] == -math.inf  # the input is left as it was


@pytest.mark.parametrize("raw", [None, [], "lead", {"name": "no id"}, {"id": ""}, {"id": True}, {"id": {"a": 1}}])
def test_given_no_object_or_no_id_when_normalised_then_refused(raw: Any) -> None:
    with pytest.raises(LeadInputError):
        normalize_lead(raw)


def test_given_times_in_crm_formats_when_normalised_then_aware_utc() -> None:
    lead = normalize_lead(
        {
            "id": "1",
            "created_at": "2026-11-20T10:00:00.000+0000",  # Salesforce
            "updated_at": "1763632800000",  # HubSpot epoch milliseconds
            "events": [{"type": "Demo Request", "at": "2026-11-20T09:00:00Z"}, {"type": "x"}, "junk"],
        }
    )
    assert lead.created_at == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert lead.updated_at is not None and lead.updated_at.tzinfo is not None
    assert [e.type for e in lead.events] == ["demo_request"]
    assert lead.problems["events"] == "2 of 3 events unusable (need type and at)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1788050942014", datetime(2026, 8, 30, 0, 49, 2, 14000, tzinfo=UTC)),  # not 1788-05-09 20:14
        ("17880509420", None),  # 11 digits: not epoch milliseconds of our era, and not a date either
        ("20261120", datetime(2026, 11, 20, tzinfo=UTC)),  # a compact ISO date stays one
    ],
)
def test_given_digit_only_times_when_parsed_then_epoch_milliseconds_are_never_read_as_compact_iso(
    text: str, expected: datetime | None
) -> None:
    assert parse_time(text) == expected
    lead = normalize_lead({"id": "1", "updated_at": text, "events": [{"type": "webinar", "at": text}]})
    assert lead.updated_at == expected
    assert [e.at for e in lead.events] == ([expected] if expected else [])


def test_given_hostile_sizes_when_normalised_then_text_and_events_are_capped() -> None:
    events = [{"type": "email_click", "at": f"2026-01-01T00:00:{i % 60:02d}Z"} for i in range(MAX_EVENTS * 2)]
    lead = normalize_lead({"id": "1", "company": "x" * 100_000, "events": events})
    assert lead.company is not None and len(lead.company) == MAX_TEXT
    assert len(lead.events) == MAX_EVENTS


def test_given_a_lead_when_its_record_is_normalised_again_then_it_round_trips() -> None:
    lead = normalize_lead(
        {
            "id": "1",
            "email": "a@b.co",
            "employees": 10,
            "events": [{"type": "webinar", "at": "2026-11-01T00:00:00Z"}],
            "fields": {"k": 1},
        }
    )
    again = normalize_lead(lead_record(lead))
    assert again == lead
    assert content_hash(again) == content_hash(lead)


def test_given_only_updated_at_changes_when_hashed_then_the_content_is_the_same() -> None:
    a = normalize_lead({"id": "1", "title": "CTO", "updated_at": "2026-11-01T00:00:00Z"})
    b = normalize_lead({"id": "1", "title": "CTO", "updated_at": "2026-11-02T00:00:00Z"})
    c = normalize_lead({"id": "1", "title": "CEO", "updated_at": "2026-11-01T00:00:00Z"})
    assert content_hash(a) == content_hash(b) != content_hash(c)


# st.integers() and st.text() practically never draw these: numbers beyond float range, and
# times that overflow when moved to UTC
extreme_values = st.sampled_from([10**400, -(10**400), "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "email",
                "employees",
                "title",
                "events",
                "fields",
                "country",
                "created_at",
                "domain",
                "estimated_deal_size",
                "x",
            ]
        ),
        extreme_values | json_values,
    ),
    st.text(min_size=1, max_size=20),
)
def test_given_arbitrary_json_objects_when_normalised_then_never_an_unexpected_error(
    raw: dict[str, Any], lead_id: str
) -> None:
    raw["id"] = lead_id
    try:
        lead = normalize_lead(raw)
    except LeadInputError:
        assert not lead_id.strip()
        return
    assert lead.id == lead_id.strip()[:64]


def test_given_every_input_field_distinct_when_normalised_then_each_lands_in_its_own_attribute() -> None:
    texts = ["first_name", "last_name", "title", "company", "industry", "state", "lead_source", "owner_id"]
    raw: dict[str, Any] = {name: f"value of {name}" for name in texts}
    raw |= {
        "id": "L1", "source": "hubspot", "email": "a@b.test", "domain": "b.test", "employees": 12,
        "annual_revenue": 3.0, "country": "NO", "estimated_deal_size": 4.0,
        "created_at": "2026-01-01T00:00:00+00:00", "updated_at": "2026-01-02T00:00:00+00:00",
        "events": [{"type": "webinar", "at": "2026-01-01T00:00:00+00:00"}], "fields": {"x": 1},
    }  # fmt: skip
    lead = normalize_lead(raw)
    record = lead_record(lead)
    assert {name: record[name] for name in raw} == raw
    assert lead.problems == {} and lead.email_domain == "b.test"


@given(value=st.one_of(st.integers(min_value=-(2**60), max_value=2**60), st.floats(), st.booleans()))
def test_given_a_plain_number_when_read_as_an_amount_then_the_fast_path_is_the_general_rule(value: Any) -> None:
    problems: dict[str, str] = {}
    number = _number(value)
    expected = number if number is not None and number >= 0 else None
    amount = _amount(value, "estimated_deal_size", problems)
    assert amount == expected or (amount is None and expected is None)
    assert type(amount) is type(expected)
    assert ("estimated_deal_size" in problems) == (expected is None)


@given(
    cents=st.integers(min_value=0, max_value=10**13),
    style=st.sampled_from(["us", "eu", "plain"]),
    code=st.sampled_from(["", "USD ", "EUR", " GBP", "CHF"]),
    symbol=st.sampled_from(["", "$", "€", "£"]),
    before=st.booleans(),
)
def test_given_an_amount_written_in_any_style_when_read_then_it_is_the_amount(
    cents: int, style: str, code: str, symbol: str, before: bool
) -> None:
    whole, fraction = divmod(cents, 100)
    grouped = f"{whole:,}"
    if style == "us":
        text = f"{grouped}.{fraction:02d}"
    elif style == "eu":
        text = f"{grouped.replace(',', '.')},{fraction:02d}"
    else:
        text = f"{whole}.{fraction:02d}"
    text = f"{code}{symbol}{text}" if before else f"{text}{symbol}{code}"
    assert _number(text) == pytest.approx(cents / 100, rel=1e-12)
    problems: dict[str, str] = {}
    assert _amount(text, "annual_revenue", problems) == pytest.approx(cents / 100, rel=1e-12) and not problems


@given(n=st.integers(min_value=0, max_value=10_000_000), separator=st.sampled_from([",", ".", ""]), plus=st.booleans())
def test_given_a_head_count_with_thousands_separators_when_read_then_it_is_the_count(
    n: int, separator: str, plus: bool
) -> None:
    text = f"{n:,}".replace(",", separator) + ("+" if plus else "")
    problems: dict[str, str] = {}
    assert _count(text, "employees", problems) == n and not problems


@given(value=st.one_of(st.text(max_size=3), st.integers(), st.none()))
def test_given_any_country_value_when_normalised_then_the_iso_fast_path_is_the_general_rule(value: Any) -> None:
    expected_problems: dict[str, str] = {}
    expected = _country(_text(value, "country", expected_problems))
    problems: dict[str, str] = {}
    assert _country_field(value, problems) == expected and problems == expected_problems


FREE = frozenset({"gmail.com", "yahoo.co.uk"})


@pytest.mark.parametrize(
    ("email", "website", "expected"),
    [
        ("p@globex.com", None, ("globex.com",)),
        # a company subdomain looks for its own account first, then its parents'
        ("p@mail.eu.globex.com", None, ("mail.eu.globex.com", "eu.globex.com", "globex.com")),
        # parents stop at two labels and skip a country's registry suffix: co.uk is nobody's company
        ("p@eu.globex.co.uk", None, ("eu.globex.co.uk", "globex.co.uk")),
        ("t@uni.ac.nz", None, ("uni.ac.nz",)),
        # a work address no account has may still come with the company's website
        ("p@globex-mail.com", "https://www.globex.com/about", ("globex-mail.com", "globex.com")),
        ("p@eu.globex.com", "globex.com", ("eu.globex.com", "globex.com")),
        # personal mail, and anything under it, never names a company; the website still may
        ("kim@gmail.com", "acme.com", ("acme.com",)),
        ("kim@eu.gmail.com", None, ()),
        ("kim@yahoo.co.uk", None, ()),
        (None, "gmail.com", ()),
        # the DNS root's trailing dot: the same domain, not a junk parent "com."
        (None, "https://www.acme.com./pricing", ("acme.com",)),
        # a hostile address gives a handful of candidates, not one per label
        (
            "p@" + "a." * 200 + "globex.com",
            None,
            ("a." * 200 + "globex.com", "a.a.globex.com", "a.globex.com", "globex.com"),
        ),
    ],
)
def test_given_a_lead_when_its_account_domains_are_listed_then_subdomains_lead_to_their_parents(
    email: str | None, website: str | None, expected: tuple[str, ...]
) -> None:
    lead = normalize_lead({"id": "L1", "email": email, "domain": website})
    assert account_domains(lead, FREE) == expected


_LONE = "\ud800"  # valid JSON ("\\ud800"), yet no UTF-8 encoder nor database text type takes it


def test_given_lone_surrogates_anywhere_in_a_lead_when_normalised_then_each_is_replaced_and_the_record_is_utf8() -> (
    None
):
    raw = json.loads(
        '{"id": "L\\ud800", "source": "s\\udfff", "email": "a\\ud800@acme.com", "company": "Acme\\ud800",'
        ' "title": "VP \\udc80", "domain": "acme\\ud800.com", "country": "U\\ud800S", "industry": "\\ud800",'
        ' "events": [{"type": "demo\\ud800", "at": "2026-11-01T00:00:00Z"}],'
        ' "fields": {"k\\ud800": "v\\ud800", "nested": [{"deep": "x\\udbff"}, 1.5], "n": 3}}'
    )
    lead = normalize_lead(raw)
    text, _, _, _ = hashed_record(lead)
    assert text.encode("utf-8")  # what the store writes (SQLite and PostgreSQL text alike)
    assert not any("\ud800" <= ch <= "\udfff" for ch in text)
    assert lead.id == "L\ufffd" and lead.company == "Acme\ufffd" and lead.title == "VP \ufffd"
    assert lead.events[0].type == "demo\ufffd"
    assert lead.fields == {"k\ufffd": "v\ufffd", "nested": [{"deep": "x\ufffd"}, 1.5], "n": 3}
    assert "company" in lead.problems and "unpaired surrogate" in lead.problems["company"]
    assert lead.industry == "\ufffd"  # a character, not missing data: the lead is decided as is


def test_given_lone_surrogates_in_an_account_when_normalised_then_replaced() -> None:
    account = normalize_account({"id": "A\ud800", "name": "Acme\udc80", "domain": "acme.com", "tier": "\ud800"})
    assert account.id == "A\ufffd" and account.name == "Acme\ufffd" and account.tier == "\ufffd"


@given(
    st.dictionaries(
        st.sampled_from(["id", "email", "company", "title", "country", "domain", "source", "fields", "events"]),
        st.text(st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010), min_size=1, max_size=8),
    )
)
def test_given_any_text_with_surrogates_when_normalised_then_the_record_encodes_as_utf8(raw: dict[str, Any]) -> None:
    raw.setdefault("id", "x")
    try:
        lead = normalize_lead(raw)
    except LeadInputError:
        return
    hashed_record(lead)[0].encode("utf-8")
    json.dumps(lead_record(lead), ensure_ascii=False).encode("utf-8")
