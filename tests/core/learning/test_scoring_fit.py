"""Learning a scoring section: it finds the boundaries people use and stays a valid policy."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.engine import DecisionEngine, LeadContext
from core.learning.policy_text import render_scoring, replace_section
from core.learning.scoring_fit import Example, learn_scoring
from core.model import Event, Lead
from core.policy import LoadedPolicy, parse_policy
from core.routing import InMemoryRotation

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
TITLES = ["VP Sales", "Sales Manager", "Engineer", "Analyst", "Marketing Manager", "Director of IT"]


def _lead(rng: random.Random, i: int) -> Lead:
    events = []
    if rng.random() < 0.4:
        events.append(Event("demo_request", NOW - timedelta(days=rng.randint(0, 5))))
    if rng.random() < 0.5:
        events.append(Event("webinar", NOW - timedelta(days=rng.randint(0, 5))))
    return _person(rng, f"L{i}", i, events, employees=[20, 60, 120, 300, 900, 3000, 8000])


def _person(
    rng: random.Random, lead_id: str, i: int, events: list[Event], *, employees: list[int], industry: str | None = None
) -> Lead:
    """A US lead with a drawn title and size (and industry, unless given), then ``events``."""
    return Lead(
        id=lead_id,
        source="import",
        email=f"p{i}@co{i}.com",
        company=f"Co {i}",
        title=rng.choice(TITLES),
        country="US",
        employees=rng.choice(employees),
        industry=industry or rng.choice(["software", "retail", "manufacturing"]),
        events=tuple(events),
    )


def _hidden_band(lead: Lead) -> int:
    """A person's own ICP: 100–2000 employees, managers count, demos matter, webinars don't."""
    points = 0
    points += 30 if lead.employees is not None and 100 <= lead.employees < 2000 else 0
    points += 20 if lead.title and "manager" in lead.title.lower() else 0
    points += 25 if any(e.type == "demo_request" for e in lead.events) else 0
    return 2 if points >= 55 else 1 if points >= 30 else 0


def _examples(n: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        lead = _lead(rng, i)
        out.append(Example(lead, None, NOW, _hidden_band(lead)))
    return out


def _band_of(loaded: LoadedPolicy, lead: Lead) -> str:
    engine = DecisionEngine(loaded)
    return engine.decide(lead, LeadContext(), rotation=InMemoryRotation(), now=NOW).score.band


def test_given_people_with_another_icp_when_learned_then_the_proposal_agrees_with_them_on_new_leads(
    example_policy: LoadedPolicy,
) -> None:
    train, test = _examples(1500, 1), _examples(400, 2)
    proposal = learn_scoring(example_policy.policy, train, classes=["cold", "warm", "hot"], anchor="bands")
    text = replace_section(example_policy.text, "scoring", render_scoring(proposal.scoring))
    challenger = parse_policy(text)  # must be a valid policy
    names = ["cold", "warm", "hot"]
    before = sum(_band_of(example_policy, e.lead) == names[e.label] for e in test) / len(test)
    after = sum(_band_of(challenger, e.lead) == names[e.label] for e in test) / len(test)
    assert after > 0.85 > before
    assert proposal.scoring.bands == {"warm": 45, "hot": 75}  # anchored: thresholds kept, points re-learned
    learned = {c.what for c in proposal.changes if c.before is None and c.after}
    assert any("manager" in what for what in learned)
    employees = [r for r in proposal.scoring.fit if r.signal == "employees" and r.gte is not None and r.label]
    assert any(100 <= (r.gte or 0) <= 120 and r.points >= 10 and "learned" in r.label for r in employees)
    kept = {r.label: r.points for r in proposal.scoring.fit}
    assert kept["target account"] == 10  # no account data here: no evidence, no change
    assert proposal.scoring.intent.events["trial_signup"] == 25


def test_given_a_binary_outcome_when_learned_by_shares_then_band_shares_are_kept(example_policy: LoadedPolicy) -> None:
    examples = [Example(e.lead, None, NOW, int(e.label == 2)) for e in _examples(1200, 3)]
    engine = DecisionEngine(example_policy)
    totals = [
        float(engine.decide(e.lead, LeadContext(), rotation=InMemoryRotation(), now=NOW).score.total) for e in examples
    ]
    proposal = learn_scoring(
        example_policy.policy, examples, classes=["no", "yes"], anchor="shares", current_totals=totals
    )
    challenger = parse_policy(replace_section(example_policy.text, "scoring", render_scoring(proposal.scoring)))
    hot_before = sum(t >= 75 for t in totals) / len(totals)
    hot_after = sum(_band_of(challenger, e.lead) == "hot" for e in examples) / len(examples)
    assert hot_after == pytest.approx(hot_before, abs=0.05)


def test_given_classes_that_are_not_the_bands_when_anchored_on_bands_then_refused(example_policy: LoadedPolicy) -> None:
    with pytest.raises(ValueError, match="cold < warm < hot"):
        learn_scoring(example_policy.policy, _examples(10, 4), classes=["a", "b", "c"], anchor="bands")


_TIES = """
from datetime import UTC, datetime
from core.learning.policy_text import render_scoring
from core.learning.scoring_fit import Example, learn_scoring
from core.model import Lead
from core.policy import parse_policy
from tests.conftest import EXAMPLE_POLICY

# 16 words that always come together: only 15 may become candidates, so ties must break the same way
WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa"
now = datetime(2026, 11, 20, tzinfo=UTC)
examples = []
for i in range(400):
    wordy = i % 2 == 0
    lead = Lead(id=str(i), title=WORDS if wordy else "x", employees=50 + 13 * i, email="a@b.com", country="US")
    examples.append(Example(lead, None, now, 2 if wordy and i % 4 == 0 else 1 if wordy else 0))
policy = parse_policy(EXAMPLE_POLICY.read_text()).policy
print(render_scoring(learn_scoring(policy, examples, classes=["cold", "warm", "hot"], anchor="bands").scoring))
"""


def test_given_two_processes_with_different_hash_seeds_when_learning_on_tied_counts_then_the_same_proposal() -> None:
    """Set iteration order varies between processes; which tied candidate wins must not."""
    root = Path(__file__).resolve().parents[3]
    outputs = [
        subprocess.run(
            [sys.executable, "-c", _TIES],
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    ]
    assert outputs[0] == outputs[1]
    assert "mentions 'alpha'" in outputs[0]  # first seen wins the tie


def _busy_lead(rng: random.Random, i: int) -> Lead:
    """Leads whose intent ranges from nothing to many demo requests and pricing visits."""
    events = [
        Event("demo_request", NOW - timedelta(days=rng.randint(0, 3))) for _ in range(rng.choice([0, 0, 1, 2, 3]))
    ]
    events += [Event("pricing_page", NOW - timedelta(days=rng.randint(0, 3))) for _ in range(rng.randint(0, 4))]
    return _person(rng, f"B{i}", i, events, employees=[20, 60, 120, 300, 900, 3000], industry="software")


def _saturating_band(lead: Lead) -> int:
    """Intent counts up to a point: a second demo request adds little once a person is engaged."""
    demos = sum(e.type == "demo_request" for e in lead.events)
    visits = sum(e.type == "pricing_page" for e in lead.events)
    intent = min(30 * demos + 8 * visits, 40)
    fit = 30 if lead.employees is not None and 100 <= lead.employees < 2000 else 0
    fit += 15 if lead.title and "manager" in lead.title.lower() else 0
    total = fit + intent
    return 2 if total >= 65 else 1 if total >= 35 else 0


def test_given_intent_that_levels_off_when_learned_then_the_cap_is_learned_with_the_points(
    example_policy: LoadedPolicy,
) -> None:
    rng = random.Random(5)
    train = [Example(lead, None, NOW, _saturating_band(lead)) for lead in (_busy_lead(rng, i) for i in range(1500))]
    test = [_busy_lead(rng, 5000 + i) for i in range(600)]
    proposal = learn_scoring(example_policy.policy, train, classes=["cold", "warm", "hot"], anchor="bands")
    intent = proposal.scoring.intent
    assert any("level off" in note for note in proposal.notes)
    # the cap binds: three demo requests score the cap, not three times one
    assert intent.max_points < 3 * intent.events["demo_request"]
    challenger = parse_policy(replace_section(example_policy.text, "scoring", render_scoring(proposal.scoring)))
    names = ["cold", "warm", "hot"]
    agreement = sum(_band_of(challenger, lead) == names[_saturating_band(lead)] for lead in test) / len(test)
    assert agreement > 0.93  # a straight line through the saturated leads: 0.91


def test_given_labels_that_reward_missing_fields_when_learned_then_completeness_scores_zero_and_bands_stay_true(
    example_policy: LoadedPolicy,
) -> None:
    rng = random.Random(6)

    def lead(i: int) -> Lead:
        known = rng.random() < 0.5
        return Lead(
            id=f"C{i}",
            source="import",
            email=f"p{i}@co{i}.com",
            company=f"Co {i}" if known else None,
            title=rng.choice(TITLES) if known else None,
            country="US" if known else None,
            employees=rng.choice([20, 300, 900]),
            industry="software",
            events=(Event("demo_request", NOW),) if rng.random() < 0.4 else (),
        )

    def band(lead: Lead) -> int:  # a reviewer who likes the anonymous ones (a form with few fields)
        points = (25 if lead.company is None else 0) + (30 if lead.events else 0) + (15 if lead.employees == 300 else 0)
        return 2 if points >= 55 else 1 if points >= 25 else 0

    train = [Example(x, None, NOW, band(x)) for x in (lead(i) for i in range(1200))]
    test = [lead(5000 + i) for i in range(400)]
    proposal = learn_scoring(example_policy.policy, train, classes=["cold", "warm", "hot"], anchor="bands")
    assert proposal.scoring.completeness is not None and proposal.scoring.completeness.points == 0
    assert any("completeness would score negative" in note for note in proposal.notes)
    challenger = parse_policy(replace_section(example_policy.text, "scoring", render_scoring(proposal.scoring)))
    names = ["cold", "warm", "hot"]
    agreement = sum(_band_of(challenger, x) == names[band(x)] for x in test) / len(test)
    assert agreement > 0.95  # clamping the negative weight to 0 after the fit shifted every score instead


def test_given_events_synced_after_the_decision_when_learned_then_they_teach_nothing(
    example_policy: LoadedPolicy,
) -> None:
    """Leads that converted went on to attend a webinar: known at training time, not when decided."""
    examples = _examples(1200, 4)
    later = [
        Example(
            replace(e.lead, events=(*e.lead.events, Event("webinar", e.now + timedelta(days=3)))), None, e.now, e.label
        )
        if e.label == 2
        else e
        for e in examples
    ]
    learn = lambda xs: learn_scoring(example_policy.policy, xs, classes=["cold", "warm", "hot"], anchor="bands")  # noqa: E731
    assert learn(later).scoring == learn(examples).scoring
