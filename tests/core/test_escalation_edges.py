"""Escalation triggers at the edges of the example policy's own limits: exactly at a limit and
one step either side, with the limits read from the policy (so the tests follow it).

Every limit is inclusive, as the policy's words and the condition language say it: a deal
of exactly ``high_deal_size.gte`` is large ("gte"), a score move of exactly ``delta_gte`` is
volatile, a score exactly ``gray_zone.width`` points from a band threshold is in the gray
zone ("within ±4 points"), and "within 24h"/"within 14d" includes an age of exactly 24h/14d
(the ``event: {within}`` condition compares ``now - at <= within`` too).

And ``duplicate_ownership`` is about reps: an account owned by a queue, a manager or an admin
(not someone who takes leads) is no ownership dispute.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.engine import DecisionEngine, LeadContext
from core.leads import normalize_lead
from core.model import Account, Decision, PriorScore
from core.policy import LoadedPolicy, parse_policy
from core.policy.durations import parse_duration
from core.routing import InMemoryRotation
from tests.conftest import EXAMPLE_POLICY

NOW = datetime(2026, 11, 20, 15, tzinfo=UTC)  # a Friday, 10:00 in New York: Ana is working
POLICY = parse_policy(EXAMPLE_POLICY.read_text(), str(EXAMPLE_POLICY))
ESCALATION = POLICY.policy.escalation
ENGINE = DecisionEngine(POLICY)
SECOND = timedelta(seconds=1)

# a complete, clean mid-market lead: routed to a rep of the mid-market team, no trigger of its own
CLEAN: dict[str, Any] = {
    "id": "00Q5e00000E0001",
    "source": "salesforce",
    "email": "jo@initrode.com",
    "title": "Engineering Manager",
    "company": "Initrode",
    "industry": "software",
    "employees": 800,
    "country": "US",
    "lead_source": "web",
}


def _decide(ctx: LeadContext | None = None, engine: DecisionEngine = ENGINE, **values: Any) -> Decision:
    lead = normalize_lead({**CLEAN, **values})
    return engine.decide(lead, ctx or LeadContext(), rotation=InMemoryRotation(), now=NOW)


def _codes(decision: Decision) -> set[str]:
    return {t.code for t in decision.triggers}


def test_the_clean_lead_fires_no_trigger_and_goes_to_a_rep() -> None:
    d = _decide()
    assert d.triggers == () and d.owner_kind == "rep", d.explanation


# --- duplicate_ownership: only a rep owning the account disputes routing ----------------------

_MANAGER_CRM = {"lee": "0055e000001LEEE", "rev": "0055e000001REVV"}  # a team manager and an admin


@functools.cache
def _engine_with_crm_ids_for_non_reps() -> DecisionEngine:
    """The example policy with the manager and the admin given Salesforce user ids (in most
    orgs everybody is a user), so that an account can be owned by one of them."""
    text = EXAMPLE_POLICY.read_text()
    for person, crm_id in _MANAGER_CRM.items():
        line = f"{{id: {person}, "
        assert text.count(line) == 1
        text = text.replace(line, f"{{id: {person}, crm: {{salesforce: {crm_id}}}, ")
    loaded: LoadedPolicy = parse_policy(text, str(EXAMPLE_POLICY))
    roster_roles = {p.id: p.roles for p in loaded.policy.reps}
    assert "rep" not in roster_roles["lee"] and "rep" not in roster_roles["rev"]
    return DecisionEngine(loaded)


def _salesforce_id(person: str) -> str | None:
    """The Salesforce id of a queue, rep, manager or admin of the policy (as changed above)."""
    crm = {q.id: q.crm for q in POLICY.policy.queues} | {r.id: r.crm for r in POLICY.policy.reps}
    return _MANAGER_CRM.get(person) or crm[person].salesforce


@pytest.mark.parametrize(
    ("owner", "disputed"),
    [
        pytest.param("nurture", False, id="a queue"),
        pytest.param("lee", False, id="a manager"),
        pytest.param("rev", False, id="an admin"),
        pytest.param("dana", True, id="another rep"),  # the control: the trigger can fire here
    ],
)
def test_given_an_account_owned_by_a_non_rep_when_routed_to_a_rep_then_no_duplicate_ownership(
    owner: str, disputed: bool
) -> None:
    engine = _engine_with_crm_ids_for_non_reps()
    crm_id = _salesforce_id(owner)
    assert crm_id is not None and engine.roster.person_for_crm("salesforce", crm_id) == owner
    account = Account(id="0015e00000INITR", source="salesforce", name="Initrode", owner_id=crm_id)

    d = _decide(LeadContext(account=account), engine=engine)

    assert d.owner_kind == "rep" and d.owner != owner, d.route.detail
    assert ("duplicate_ownership" in _codes(d)) is disputed, d.triggers


# --- high_deal_size: a deal of exactly the threshold is large --------------------------------


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_given_a_deal_at_the_high_deal_size_threshold_when_decided_then_gte_means_it_escalates(offset: int) -> None:
    assert ESCALATION.high_deal_size is not None
    gte = ESCALATION.high_deal_size.gte

    d = _decide(estimated_deal_size=gte + offset)

    assert ("high_deal_size" in _codes(d)) is (offset >= 0), d.triggers


# --- score_volatility: the window and the delta both include their limit ------------------------


def _volatility() -> tuple[int, timedelta]:
    assert ESCALATION.score_volatility is not None
    return ESCALATION.score_volatility.delta_gte, parse_duration(ESCALATION.score_volatility.within)


@pytest.mark.parametrize("offset", [-SECOND, timedelta(0), SECOND], ids=["inside", "exactly", "outside"])
def test_given_a_previous_score_at_the_edge_of_the_volatility_window_when_decided_then_within_includes_it(
    offset: timedelta,
) -> None:
    delta_gte, window = _volatility()
    total = _decide().score.total
    previous = PriorScore(total + delta_gte + 5, NOW - window - offset)

    d = _decide(LeadContext(previous=previous))

    assert ("score_volatility" in _codes(d)) is (offset <= timedelta(0)), d.triggers


@pytest.mark.parametrize("direction", [1, -1], ids=["rose", "fell"])
@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_given_a_score_move_at_the_volatility_delta_when_decided_then_gte_means_it_escalates(
    offset: int, direction: int
) -> None:
    delta_gte, window = _volatility()
    total = _decide().score.total
    previous = PriorScore(total - direction * (delta_gte + offset), NOW - window / 2)

    d = _decide(LeadContext(previous=previous))

    assert ("score_volatility" in _codes(d)) is (offset >= 0), d.triggers


# --- gray_zone: exactly `width` points from a band threshold is in it ---------------------------


def _strongest_event() -> str:
    events = POLICY.policy.scoring.intent.events
    return max(events, key=lambda kind: events[kind])


_BASES: list[dict[str, Any]] = [  # weakest fit first: totals from about 5 to 100 with intent
    {"employees": None, "industry": None, "title": None},
    {"industry": None, "title": None},
    {"title": None},
    {},
    {"title": "VP Engineering"},
]


@functools.cache
def _lead_scoring(total: int) -> tuple[tuple[str, Any], ...]:
    """Lead values (over :data:`CLEAN`) whose score total is exactly ``total``: a base fit and
    one event of the strongest type, as old as it takes to decay to the missing points."""
    kind = _strongest_event()
    for base in _BASES:
        if _decide(**base).score.total > total:
            continue
        for hours in range(0, int(24 * POLICY.policy.scoring.intent.window_days), 2):
            at = (NOW - timedelta(hours=hours)).isoformat()
            values = {**base, "events": [{"type": kind, "at": at}]}
            got = _decide(**values).score.total
            if got == total:
                return tuple(values.items())
            if got < total:  # older only scores less
                break
    raise AssertionError(f"no lead built here scores exactly {total}")


_GAPS = [
    (name, threshold, side * (ESCALATION.gray_zone.width + offset))
    for name, threshold in ENGINE.scorer.bands
    for side in (-1, 1)
    for offset in (-1, 0, 1)
    if ESCALATION.gray_zone is not None
]


@pytest.mark.parametrize(("band", "threshold", "gap"), _GAPS, ids=[f"{b}{g:+d}" for b, _, g in _GAPS])
def test_given_a_score_at_the_edge_of_the_gray_zone_when_decided_then_width_is_inclusive(
    band: str, threshold: int, gap: int
) -> None:
    assert ESCALATION.gray_zone is not None
    values = dict(_lead_scoring(threshold + gap))

    d = _decide(**values)

    assert d.score.total == threshold + gap
    assert ("gray_zone" in _codes(d)) is (abs(gap) <= ESCALATION.gray_zone.width), (band, d.triggers)


def test_the_gray_zone_cases_cover_every_band_threshold() -> None:
    assert ESCALATION.gray_zone is not None and len(ENGINE.scorer.bands) >= 2
    assert {b for b, _, _ in _GAPS} == {name for name, _ in ENGINE.scorer.bands}


# --- customer_signal: an event exactly `within` ago still pauses automation ----------------------


@pytest.mark.parametrize("offset", [-SECOND, timedelta(0), SECOND], ids=["inside", "exactly", "outside"])
def test_given_a_customer_signal_at_the_edge_of_its_window_when_decided_then_within_includes_it(
    offset: timedelta,
) -> None:
    assert ESCALATION.customer_signal is not None
    window = parse_duration(ESCALATION.customer_signal.within)
    for kind in ESCALATION.customer_signal.events:
        at = (NOW - window - offset).isoformat()

        d = _decide(events=[{"type": kind, "at": at}])

        assert ("customer_signal" in _codes(d)) is (offset <= timedelta(0)), (kind, d.triggers)
