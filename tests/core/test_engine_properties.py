"""The engine's properties over leads of *valid* shapes, mixed with junk.

The arbitrary-JSON properties in ``test_engine.py`` almost never build a lead with a number of
employees or a well-formed event, so every lead they decide is unknown_size, cold, missing
data and reviewed. Here leads are built from the example policy's own vocabulary: employee
counts at and around every segment and fit boundary, events of the policy's types at ages
up to past the intent window, its industries, titles, countries, free-mail and competitor
domains, deal sizes around the escalation threshold, accounts from the examples, a previous
score, and, for any field, now and then a junk value. The properties are the same: every
lead is decided without an exception, the evidence adds up to the total, the confidence is a
probability, the decision is JSON, and the same input and state give the same decision.

The builders draw through a small :class:`Pick` interface, so that hypothesis draws the
leads for the properties and a seeded :class:`random.Random` draws the same kind of leads for
the plain test that checks what they reach (every action, band and segment).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol, TypeVar

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core.engine import DecisionEngine, LeadContext
from core.leads import normalize_account, normalize_lead
from core.model import Account, Decision, PriorScore
from core.policy import parse_policy
from core.routing import InMemoryRotation
from tests.conftest import EXAMPLE_POLICY, ROOT

NOW = datetime(2026, 11, 20, 15, tzinfo=UTC)
POLICY = parse_policy(EXAMPLE_POLICY.read_text(), str(EXAMPLE_POLICY))
T = TypeVar("T")


class Pick(Protocol):
    """Where a builder's choices come from: hypothesis or a seeded random generator."""

    def one(self, options: Sequence[T]) -> T: ...

    def number(self, low: int, high: int) -> int: ...


class HypothesisPick:
    def __init__(self, draw: Callable[[st.SearchStrategy[Any]], Any]) -> None:
        self.draw = draw

    def one(self, options: Sequence[T]) -> T:
        value: T = self.draw(st.sampled_from(options))
        return value

    def number(self, low: int, high: int) -> int:
        value: int = self.draw(st.integers(low, high))
        return value


class RandomPick:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def one(self, options: Sequence[T]) -> T:
        return self.rng.choice(options)

    def number(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)


# --- the policy's vocabulary ---------------------------------------------------------------------


def _numbers_for(signal: str, conditions: Sequence[dict[str, Any]]) -> set[int]:
    """Every number a condition on ``signal`` compares with (gte, lt, between…)."""
    found: set[int] = set()
    for condition in conditions:
        value = condition.get(signal)
        if isinstance(value, dict):
            for operand in value.values():
                for n in operand if isinstance(operand, list) else [operand]:
                    if isinstance(n, int | float) and not isinstance(n, bool):
                        found.add(int(n))
    return found


def _in_lists(signal: str) -> list[str]:
    return [v for rule in POLICY.policy.scoring.fit if rule.signal == signal for v in (rule.in_ or [])]


_fit_conditions = [{rule.signal: rule.predicate()} for rule in POLICY.policy.scoring.fit]
_limits = _numbers_for("employees", [*POLICY.policy.segments.values(), *_fit_conditions])
EMPLOYEES = sorted({max(n + d, 0) for n in _limits for d in (-1, 0, 1)} | {0, 1, 12, 80, 800, 12_000, 250_000})
ESCALATION = POLICY.policy.escalation
INTENT = POLICY.policy.scoring.intent
# the common case is listed more often: most events are scored, most industries not regulated
EVENT_TYPES = [
    *list(INTENT.events) * 3,
    *(ESCALATION.customer_signal.events if ESCALATION.customer_signal else []),
    "podcast_listen",  # a type the policy does not score
]
INDUSTRIES = [
    *_in_lists("industry") * 4,
    *["Manufacturing", "Retail", "SOFTWARE"] * 2,
    *(ESCALATION.regulated_industry.industries if ESCALATION.regulated_industry else []),
]
COUNTRIES = [*_in_lists("country"), "JP", "BR", "us", "Germany"]
TITLES = ["VP of Sales", "Head of Data", "CEO", "Chief Technology Officer", "Founder", "Director, IT",
          "Software Engineer", "Office Manager", "Student", "Marketing Intern", "job seeker"]  # fmt: skip
FREE_DOMAINS = POLICY.policy.enrichment.free_email_domains
ACCOUNTS: list[Account] = [
    normalize_account(json.loads(line)) for line in (ROOT / "examples" / "accounts.jsonl").read_text().splitlines()
]
COMPETITOR_DOMAINS = [d for c in ESCALATION.custom for d in c.when.get("email_domain", {}).get("in", [])]
LEAD_SOURCES = ["web", "web_demo_form", "partner_referral", "marketplace", "webinar", "partner"]
DEAL = int(ESCALATION.high_deal_size.gte) if ESCALATION.high_deal_size else 100_000
OWNERS = [r.crm.salesforce for r in POLICY.policy.reps if r.crm.salesforce] + [
    q.crm.salesforce for q in POLICY.policy.queues if q.crm.salesforce
]

JUNK: list[Any] = [None, "", " ", "n/a", -5, 1e300, True, [], {"x": 1}, "<!channel>", "\u202e\x00", "ℵ" * 50]


def _maybe_junk(pick: Pick, value: Callable[[], Any], junk_share: int) -> Any:
    """``value()``, or one time in ``junk_share`` a junk value (never when it is 0)."""
    return pick.one(JUNK) if junk_share and pick.number(1, junk_share) == 1 else value()


def _age(pick: Pick) -> timedelta:
    """Minutes, hours, days within the intent window, or past it: each scale as likely."""
    window = int(INTENT.window_days)
    scales: list[Callable[[], timedelta]] = [
        lambda: timedelta(minutes=pick.number(0, 59)),
        lambda: timedelta(hours=pick.number(1, 47)),
        lambda: timedelta(days=pick.number(2, window), minutes=pick.number(0, 1439)),
        lambda: timedelta(days=pick.number(window, window + 30)),
    ]
    return pick.one(scales)()


def _event(pick: Pick, junk_share: int) -> Any:
    kind = pick.one(EVENT_TYPES)
    at = (NOW - _age(pick)).isoformat().replace("+00:00", pick.one(["Z", "+00:00"]))
    return _maybe_junk(pick, lambda: {"type": kind, "at": at}, junk_share * 2)


def _email(pick: Pick, n: int) -> Any:
    """Mostly the lead's own company; sometimes an example account's, a free mail provider's
    or a competitor's domain."""
    kind = pick.one(["company"] * 10 + ["account", "free", "competitor"])
    domains = {
        "company": [f"company{n}.com"],
        "account": [a.domain for a in ACCOUNTS if a.domain],
        "free": FREE_DOMAINS,
        "competitor": COMPETITOR_DOMAINS,
    }
    return f"lead{n}@{pick.one(domains[kind])}"


def build_raw(pick: Pick) -> dict[str, Any]:
    """A lead input of the shapes CRMs and imports send: one in three complete and clean, the
    others with fields missing and junk now and then."""
    n = pick.number(1, 10_000)
    clean = pick.number(1, 3) == 1
    junk_share = 0 if clean else 6
    raw: dict[str, Any] = {"id": f"L{n}", "source": pick.one(["salesforce", "hubspot", "import"])}
    fields: dict[str, Callable[[], Any]] = {
        "email": lambda: _email(pick, n),
        "first_name": lambda: pick.one(["Ana", "Li", "O'Brien"]),
        "company": lambda: f"Company {n}",
        "title": lambda: pick.one(TITLES),
        "industry": lambda: pick.one(INDUSTRIES),
        "employees": lambda: pick.one([*EMPLOYEES, *(str(e) for e in EMPLOYEES[:3]), "1,200"]),
        "country": lambda: pick.one(COUNTRIES),
        "lead_source": lambda: pick.one(LEAD_SOURCES),
        "estimated_deal_size": lambda: pick.one([DEAL // 10, DEAL // 3, DEAL // 2, DEAL - 1, DEAL, DEAL + 1, DEAL * 3]),
        "owner_id": lambda: pick.one(OWNERS),
        "updated_at": lambda: (NOW - _age(pick)).isoformat(),
        "events": lambda: [_event(pick, junk_share) for _ in range(pick.number(0, 4))],
    }
    rare = ("estimated_deal_size", "owner_id")  # one lead in three has them
    for name, value in fields.items():
        present = pick.number(1, 3) == 1 if name in rare else clean or pick.number(1, 5) > 1
        if present:
            raw[name] = _maybe_junk(pick, value, junk_share)
    return raw


class Case(NamedTuple):
    """A lead input and the state it is decided in."""

    raw: dict[str, Any]
    ctx: LeadContext
    levels: dict[str, int] | None  # trust level per segment; None: the policy's starting levels

    def decide(self, engine: DecisionEngine, raw: dict[str, Any] | None = None) -> Decision:
        lead = normalize_lead(self.raw if raw is None else raw)
        return engine.decide(lead, self.ctx, rotation=InMemoryRotation(), now=NOW, trust_levels=self.levels)


SEGMENTS = [*POLICY.policy.segments, POLICY.policy.default_segment]


def build_case(pick: Pick) -> Case:
    """A lead, its account (by its email domain, as the store matches it), sometimes a previous
    score, and half the time trust levels other than the policy's starting ones."""
    raw = build_raw(pick)
    email = raw.get("email")
    domain = email.rsplit("@", 1)[-1] if isinstance(email, str) else None
    account = next((a for a in ACCOUNTS if a.domain == domain), None)
    previous = None
    if pick.number(1, 3) == 1:
        previous = PriorScore(pick.number(0, 100), NOW - timedelta(hours=pick.number(1, 48)))
    levels = {segment: pick.number(1, 4) for segment in SEGMENTS} if pick.number(1, 2) == 1 else None
    return Case(raw, LeadContext(account=account, previous=previous), levels)


@st.composite
def cases(draw: Callable[[st.SearchStrategy[Any]], Any]) -> Case:
    return build_case(HypothesisPick(draw))


def _check(d: Decision) -> None:
    """The properties of test_engine's arbitrary-JSON test, for one decision."""
    assert d.action in ("auto", "review", "suppress")
    assert sum(e.points for e in d.evidence) == d.score.total
    assert 0 <= d.score.confidence <= 1
    json.dumps(d.to_dict(), allow_nan=False)


# --- the properties ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> DecisionEngine:
    return DecisionEngine(POLICY)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_property_leads_of_valid_shapes_are_decided_and_their_scores_add_up(engine: DecisionEngine, case: Case) -> None:
    d = case.decide(engine)
    event(f"action={d.action}")
    event(f"band={d.score.band}")
    event(f"segment={d.segment}")
    _check(d)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_property_leads_of_valid_shapes_give_the_same_decision_for_the_same_input_and_state(case: Case) -> None:
    first = case.decide(DecisionEngine(POLICY))
    second = case.decide(DecisionEngine(POLICY), json.loads(json.dumps(case.raw)))  # an equal input, not the same
    event(f"action={first.action}")
    event(f"band={first.score.band}")
    assert first.to_dict() == second.to_dict()


def test_the_lead_builders_reach_every_action_band_and_segment(engine: DecisionEngine) -> None:
    """What the properties above can cover: 300 cases from the same builders, seeded."""
    pick = RandomPick(random.Random(2026))
    decisions = [build_case(pick).decide(engine) for _ in range(300)]
    for d in decisions:
        _check(d)
    assert {d.action for d in decisions} == {"auto", "review", "suppress"}
    assert {d.score.band for d in decisions} == {*POLICY.policy.scoring.bands, "cold"}
    assert {d.segment for d in decisions} == set(SEGMENTS)
    assert {d.trust_level for d in decisions} == {1, 2, 3, 4}
    assert {d.audit_sample for d in decisions if d.action == "auto"} == {True, False}
