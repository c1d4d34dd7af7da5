"""The audit sample is drawn from automatic decisions only: a decision already waiting for a
person (review) or parked (suppress) is never marked for audit, whatever the sample's hash
says. Decided over the shipped examples at the policy's own levels and at each trust level."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from core.engine import DecisionEngine, LeadContext
from core.leads import normalize_account, normalize_lead
from core.model import Account, Decision
from core.policy import LoadedPolicy
from core.routing import InMemoryRotation
from core.trust import in_audit_sample
from tests.conftest import ROOT

NOW = datetime(2026, 11, 20, 15, tzinfo=UTC)
LEVELS = [None, 1, 2, 3, 4]  # None: the levels the policy starts each segment at


def _decide_examples(loaded: LoadedPolicy, level: int | None) -> list[Decision]:
    engine = DecisionEngine(loaded)
    policy = loaded.policy
    levels = None if level is None else dict.fromkeys([*policy.segments, policy.default_segment], level)
    accounts: dict[str, Account] = {}
    for line in (ROOT / "examples" / "accounts.jsonl").read_text().splitlines():
        account = normalize_account(json.loads(line))
        accounts[account.domain or ""] = account
    rotation = InMemoryRotation()
    out = []
    for line in (ROOT / "examples" / "leads.jsonl").read_text().splitlines():
        lead = normalize_lead(json.loads(line))
        ctx = LeadContext(account=accounts.get(engine.account_domain(lead) or ""))
        out.append(engine.decide(lead, ctx, rotation=rotation, now=NOW, trust_levels=levels))
    return out


@pytest.fixture(scope="module")
def by_level(example_policy: LoadedPolicy) -> dict[int | None, list[Decision]]:
    return {level: _decide_examples(example_policy, level) for level in LEVELS}


def _hash_picks(loaded: LoadedPolicy, d: Decision, updated_at: str) -> bool:
    """Whether the sample's hash alone would pick this decision at its level's rate (the key
    the engine samples auto decisions by)."""
    trust = loaded.policy.trust
    return in_audit_sample(
        trust.seed, f"{d.source}:{d.lead_id}", f"{updated_at}:{d.policy_version}", trust.sample_rate(d.trust_level)
    )


def _iso(at: datetime | None) -> str:
    return at.isoformat() if at else ""


def test_given_the_examples_at_every_trust_level_when_decided_then_only_auto_decisions_are_sampled(
    by_level: dict[int | None, list[Decision]],
) -> None:
    for level, decisions in by_level.items():
        for d in decisions:
            if d.action != "auto":
                assert d.audit_sample is False, (level, d.lead_id, d.action)


def test_given_the_examples_when_decided_then_some_auto_decisions_are_sampled_and_some_not(
    by_level: dict[int | None, list[Decision]],
) -> None:
    auto = [d for decisions in by_level.values() for d in decisions if d.action == "auto"]
    assert {d.audit_sample for d in auto} == {True, False}
    assert not any(d.audit_sample for d in by_level[1])  # level 1 reviews everything: nothing to audit


def test_the_examples_hold_a_review_the_sample_would_pick_if_reviews_were_sampled(
    example_policy: LoadedPolicy, by_level: dict[int | None, list[Decision]]
) -> None:
    """The first test can only fail if some review decision's hash falls in the sample: the
    examples must keep one (else that test checks nothing)."""
    updated = {
        row["id"]: normalize_lead(row).updated_at
        for row in map(json.loads, (ROOT / "examples" / "leads.jsonl").read_text().splitlines())
    }
    picked = [
        d
        for decisions in by_level.values()
        for d in decisions
        if d.action == "review" and _hash_picks(example_policy, d, _iso(updated[d.lead_id]))
    ]
    assert picked
