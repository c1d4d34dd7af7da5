"""Trust levels decide what automation may do; next-best-action says what a person should do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.engine import DecisionEngine, LeadContext
from core.model import Trigger
from core.policy.conditions import Facts
from core.routing import InMemoryRotation
from core.trust import choose_action, in_audit_sample
from tests.builders import make_lead, make_policy, policy_dict

NOW = datetime(2026, 11, 20, 15, tzinfo=UTC)
SOFT = Trigger("gray_zone", "near", hard=False)
HARD = Trigger("strategic_account", "big", hard=True)


@pytest.mark.parametrize(
    ("level", "triggers", "confidence", "suppressed", "expected"),
    [
        (1, [], 0.99, False, "review"),
        (2, [], 0.99, False, "auto"),
        (2, [], 0.40, False, "review"),
        (2, [SOFT], 0.99, False, "review"),
        (3, [SOFT], 0.10, False, "auto"),
        (3, [HARD], 0.99, False, "review"),
        (4, [SOFT], 0.99, False, "auto"),
        (4, [HARD], 0.99, False, "review"),
        (1, [SOFT], 0.99, True, "review"),
        (1, [], 0.99, True, "review"),
        (2, [SOFT], 0.99, True, "suppress"),
        (4, [HARD], 0.99, True, "review"),
    ],
)
def test_given_a_trust_level_when_choosing_then_the_action_follows_design_section_5(
    level: int, triggers: list[Trigger], confidence: float, suppressed: bool, expected: str
) -> None:
    action, why = choose_action(level, triggers, confidence, suppressed=suppressed, auto_confidence=0.6)
    assert action == expected
    assert why


def test_given_a_sampling_rate_when_many_decisions_then_the_share_matches_and_is_reproducible() -> None:
    keys = [f"salesforce:{i}" for i in range(20000)]
    sampled = [in_audit_sample("seed", k, "v1", 0.15) for k in keys]
    assert 0.14 < sum(sampled) / len(keys) < 0.16
    assert sampled == [in_audit_sample("seed", k, "v1", 0.15) for k in keys]
    assert sampled != [in_audit_sample("other-seed", k, "v1", 0.15) for k in keys]
    assert not any(in_audit_sample("seed", k, "v1", 0.0) for k in keys[:100])


def _engine(**overrides: object) -> DecisionEngine:
    return DecisionEngine(make_policy(**overrides))


def test_given_segment_trust_levels_when_deciding_then_stored_levels_beat_the_policys_start() -> None:
    engine = _engine(trust={"default_level": 2, "segments": {"enterprise": 1}, "auto_confidence": 0.0})
    lead = make_lead(employees=5000, industry="software", email="a@b.co")
    assert engine.decide(lead, LeadContext(), rotation=InMemoryRotation(), now=NOW).action == "review"
    promoted = engine.decide(lead, LeadContext(), rotation=InMemoryRotation(), now=NOW, trust_levels={"enterprise": 3})
    assert (promoted.action, promoted.trust_level) == ("auto", 3)


def test_given_a_stored_level_above_the_policys_max_level_when_deciding_then_decided_at_the_max() -> None:
    engine = _engine(trust={"default_level": 2, "max_level": 2, "auto_confidence": 0.0})
    lead = make_lead(employees=5000, industry="software", email="a@b.co")
    capped = engine.decide(lead, LeadContext(), rotation=InMemoryRotation(), now=NOW, trust_levels={"enterprise": 4})
    assert capped.trust_level == 2
    assert engine.trust_level("enterprise", {"enterprise": 4}) == 2


def test_given_a_suppressed_lead_when_deciding_then_it_spends_no_rotation_slot() -> None:
    engine = _engine(suppress=[{"when": {"personal_email": True}, "reason": "personal_email"}])
    rotation = InMemoryRotation()
    d = engine.decide(make_lead(email="kim@gmail.com"), LeadContext(), rotation=rotation, now=NOW)
    assert (d.action, d.owner, d.suppressed_by) == ("suppress", None, "personal_email")
    assert rotation.seq == {}


def test_given_trust_level_1_when_a_lead_matches_a_suppression_then_a_person_reviews_it_with_the_reason() -> None:
    engine = _engine(
        suppress=[{"when": {"personal_email": True}, "reason": "personal_email"}],
        trust={"default_level": 1},
    )
    rotation = InMemoryRotation()
    d = engine.decide(make_lead(email="kim@gmail.com"), LeadContext(), rotation=rotation, now=NOW)
    assert (d.action, d.trust_level, d.owner) == ("review", 1, None)
    # what automation would have done, and why, is on the card the reviewer sees
    assert (d.suppressed_by, d.route.detail) == ("personal_email", "suppressed (personal_email): not routed")
    assert "suppressed (personal_email): not routed. Review: trust level 1" in d.explanation
    assert rotation.seq == {}  # still parked, not routed: the reviewer decides who, if anyone


def test_given_a_hard_trigger_on_a_suppressed_lead_when_deciding_then_a_person_reviews_it() -> None:
    engine = _engine(
        suppress=[{"when": {"personal_email": True}, "reason": "personal_email"}],
        escalation={"high_deal_size": {"gte": 1000}},
    )
    d = engine.decide(
        make_lead(email="kim@gmail.com", estimated_deal_size=5000), LeadContext(), rotation=InMemoryRotation(), now=NOW
    )
    assert d.action == "review" and d.owner == "ana"
    assert "suppression overruled" in d.explanation


@pytest.mark.parametrize(
    "when",
    [
        {"trigger": "high_deal_size"},
        {"trigger": {"in": ["high_deal_size", "vip"]}},
        {"all": [{"personal_email": True}, {"any": [{"trigger": "high_deal_size"}, {"title": "CEO"}]}]},
    ],
)
def test_given_a_suppression_that_names_a_hard_trigger_when_it_fires_then_the_lead_is_suppressed(
    when: dict[str, object],
) -> None:
    # the example policy's "cold and the customer asked to pause" never took effect: the
    # customer_signal it names is hard, and any hard trigger overruled every suppression
    engine = _engine(suppress=[{"when": when, "reason": "asked_for"}], escalation={"high_deal_size": {"gte": 1000}})
    lead = make_lead(email="kim@gmail.com", estimated_deal_size=5000)
    d = engine.decide(lead, LeadContext(), rotation=InMemoryRotation(), now=NOW)
    assert (d.action, d.owner, d.suppressed_by) == ("suppress", None, "asked_for"), d.explanation
    # a hard trigger the rule does not name still overrules it
    named_elsewhere = _engine(
        suppress=[{"when": {"trigger": "vip"}, "reason": "asked_for"}],
        escalation={"high_deal_size": {"gte": 1000}, "vip": {"when": {"email": {"exists": True}}, "detail": "v"}},
    )
    other = named_elsewhere.decide(lead, LeadContext(), rotation=InMemoryRotation(), now=NOW)
    assert {t.code for t in other.triggers} >= {"vip", "high_deal_size"}
    assert other.action == "review" and "suppression overruled: hard trigger high_deal_size" in other.explanation


NBA = [
    {
        "when": {"event": {"type": "demo_request", "within": "1h"}},
        "code": "call_now",
        "label": "Call within 15 min: requested a demo {latest_event_ago}",
    },
    {"when": {"band": "hot"}, "code": "call_today", "label": "Call today: {top_signal} at {company}"},
    {"code": "nurture", "label": "Nurture {name} ({triggers})"},
]


def test_given_a_fresh_demo_request_when_planning_then_the_label_names_the_urgency() -> None:
    engine = _engine(next_best_action=NBA)
    lead = make_lead(NOW, events=[("demo_request", timedelta(minutes=4)), ("webinar", timedelta(minutes=1))])
    d = engine.decide(lead, LeadContext(), rotation=InMemoryRotation(), now=NOW)
    # the label cites the demo request the rule asked about, not the later webinar
    assert d.next_best_action.label == "Call within 15 min: requested a demo 4 min ago"


@pytest.mark.parametrize(
    "when",
    [
        {"all": [{"event": {"type": "demo_request", "within": "1h"}}]},
        {"any": [{"event": {"type": "demo_request", "within": "1h"}}, {"title": "CEO"}]},
    ],
)
def test_given_a_rule_whose_event_sits_inside_all_or_any_when_planning_then_the_label_names_that_event(
    when: dict[str, object],
) -> None:
    # only a top-level event was looked at: "requested a demo 2 min ago" named a later webinar
    engine = _engine(next_best_action=[{**NBA[0], "when": when}, NBA[-1]])
    lead = make_lead(NOW, events=[("demo_request", timedelta(minutes=30)), ("webinar", timedelta(minutes=2))])
    d = engine.decide(lead, LeadContext(), rotation=InMemoryRotation(), now=NOW)
    assert d.next_best_action.label == "Call within 15 min: requested a demo 30 min ago"


def test_given_completeness_is_the_largest_item_when_planning_then_top_signal_is_a_buying_signal() -> None:
    # "Call today: strong fit (10 × 4/4 fields known)" named the bookkeeping, not a reason to call
    scoring = policy_dict()["scoring"]
    scoring["fit"] = [
        {"signal": "country", "in": ["US"], "points": 5, "label": "core market"},
        {"signal": "industry", "in": ["software"], "points": 5, "label": "target industry"},
    ]
    scoring["completeness"] = {"fields": ["email", "company", "country", "industry"], "points": 10}
    scoring["bands"] = {"hot": 20, "warm": 10}
    nba = [{"when": {"band": "hot"}, "code": "call_today", "label": "Call today: {top_signal}"}, NBA[-1]]
    engine = _engine(scoring=scoring, next_best_action=nba)
    lead = make_lead(email="a@acme.com", company="Acme", country="US", industry="Software")
    d = engine.decide(lead, LeadContext(), rotation=InMemoryRotation(), now=NOW)
    assert d.score.band == "hot" and d.next_best_action.label == "Call today: core market"


@pytest.mark.parametrize("trigger", ["customer_signal", {"in": ["customer_signal"]}])
def test_given_a_not_now_then_a_click_when_planning_a_pause_then_the_label_names_the_not_now(
    trigger: object,
) -> None:
    engine = _engine(
        escalation={"customer_signal": {"events": ["not_now", "out_of_office"], "within": "14d"}},
        next_best_action=[
            {
                "when": {"trigger": trigger},
                "code": "pause",
                "label": "Pause sequences: {latest_event} {latest_event_ago}",
            },
            {"code": "nurture", "label": "Nurture"},
        ],
    )
    lead = make_lead(NOW, events=[("not_now", timedelta(days=1)), ("webinar", timedelta(hours=1))])
    d = engine.decide(lead, LeadContext(), rotation=InMemoryRotation(), now=NOW)
    # the rule holds because of the "not now": the later webinar is not why sequences pause
    assert [t.detail for t in d.triggers if t.code == "customer_signal"] == ["not now 1 day ago: pause automation"]
    assert d.next_best_action.label == "Pause sequences: not now 1 day ago"


def test_given_placeholders_when_planning_then_they_fill_from_the_decision() -> None:
    engine = _engine(next_best_action=NBA)
    hot = make_lead(
        NOW, employees=500, industry="software", company="Acme", events=[("demo_request", timedelta(days=2))]
    )
    assert (
        engine.decide(hot, LeadContext(), rotation=InMemoryRotation(), now=NOW).next_best_action.label
        == "Call today: demo request at Acme"
    )
    cold = make_lead(first_name="Jo", last_name="Park")
    assert (
        engine.decide(cold, LeadContext(), rotation=InMemoryRotation(), now=NOW).next_best_action.label
        == "Nurture Jo Park (none)"
    )


@pytest.mark.parametrize(
    "label",
    [
        "{name} at {company}: {title} ({band} {score}) in {segment} for {owner}",
        "{top_signal}; {latest_event} {latest_event_ago}; {triggers}",
        "  {{literal braces}} {name}{name}  ",
        "no placeholder",
    ],
)
def test_given_a_label_when_planned_then_it_is_what_format_map_makes_of_it(label: str) -> None:
    engine = _engine(next_best_action=[{"code": "act", "label": label}])
    lead = make_lead(NOW, first_name="Jo", company="Acme", events=[("demo_request", timedelta(minutes=4))])
    decision = engine.decide(lead, LeadContext(), rotation=InMemoryRotation(), now=NOW)
    facts = Facts(lead, None, NOW, segment=decision.segment, score=decision.score)
    facts.trigger_codes = frozenset(t.code for t in decision.triggers)
    owner, rule = engine.roster.name(decision.owner), engine.planner.rules[0]
    values = {name: fill(rule, facts, decision.evidence, decision.triggers, owner) for name, fill in rule.fillers}
    planned = engine.planner.plan(facts, decision.evidence, decision.triggers, owner)
    assert planned.label == decision.next_best_action.label == label.format_map(values).strip()


def test_given_one_audit_sample_rate_when_sampling_each_level_then_level_4_gets_a_third_and_level_1_none() -> None:
    """DESIGN §5: level 4 audits "a lower sample" than 3; a third, as the example policy's map."""
    from core.policy.schema import Trust

    single = Trust(audit_sample=0.15)
    per_level = Trust(audit_sample={2: 0.2, 3: 0.15, 4: 0.15})

    assert [single.sample_rate(level) for level in (1, 2, 3)] == [0.0, 0.15, 0.15]
    assert single.sample_rate(4) == pytest.approx(0.05)
    assert [per_level.sample_rate(level) for level in (1, 2, 3, 4)] == [0.0, 0.2, 0.15, 0.15]  # a map is as written
