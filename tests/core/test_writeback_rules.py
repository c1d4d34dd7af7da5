"""What write-back writes for a decision, and when a current owner means a person chose it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from core.policy import LoadedPolicy
from core.writeback import (
    DecisionFacts,
    desired_fields,
    is_conflict,
    owner_plan,
    salesforce_id18,
    same_owner,
    status_of,
    values_equal,
)


def facts(**overrides: Any) -> DecisionFacts:
    base = DecisionFacts(
        pk=7, source="salesforce", action="auto", state="applied", cause="new", final_owner="ana",
        final_action="auto", score_total=72, band="hot", segment="mid_market", policy_version="3f9c2a1b",
        decided_at=datetime(2026, 11, 20, 20, 0, 0, 123000, tzinfo=UTC), suppressed_by=None,
        crm_owner_before=None,
        contract={"triggers": [], "explanation": "Hot lead (72).",
                  "next_best_action": {"code": "call_now", "label": "Call within 15 min"}},
    )  # fmt: skip
    return replace(base, **overrides)


@pytest.mark.parametrize(
    ("state", "action", "final_action", "status"),
    [
        ("applied", "auto", "auto", "auto_assigned"),
        ("pending_review", "review", None, "needs_review"),
        ("reviewed", "review", "auto", "reviewed"),
        ("applied", "suppress", "suppress", "suppressed"),
        ("superseded", "review", None, None),
    ],
)
def test_given_a_decision_state_when_mapped_then_the_status_word_is_stable(
    state: str, action: str, final_action: str | None, status: str | None
) -> None:
    assert status_of(facts(state=state, action=action, final_action=final_action)) == status


def test_given_the_policy_field_map_when_planning_then_only_mapped_keys_are_written() -> None:
    fields = desired_fields(facts(), {"score": "S__c", "status": "St__c", "decided_at": "D__c", "next_action": "N__c"})
    assert fields == {"S__c": 72, "St__c": "auto_assigned", "D__c": "2026-11-20T20:00:00.123Z",
                      "N__c": "Call within 15 min"}  # fmt: skip


def test_given_triggers_when_planning_the_reason_then_they_are_the_reason() -> None:
    triggers = [{"code": "regulated_industry", "detail": "industry=banking"}]
    fields = desired_fields(facts(contract={"triggers": triggers}, state="pending_review"), {"reason": "R"})
    assert fields == {"R": "regulated_industry: industry=banking"}


def test_given_owner_rules_when_planning_then_only_final_mapped_owners_are_written(
    example_policy: LoadedPolicy,
) -> None:
    policy = example_policy.policy
    assert owner_plan(facts(), policy, "salesforce").crm_id == salesforce_id18("0055e000001AAAA")
    assert owner_plan(facts(), policy, "hubspot").crm_id == "101"
    assert owner_plan(facts(state="pending_review", final_owner=None), policy, "salesforce").crm_id is None
    assert owner_plan(facts(final_owner="lee"), policy, "salesforce").crm_id is None  # no CRM id in the policy
    assert owner_plan(facts(final_owner="nurture"), policy, "hubspot").crm_id is None  # queue without a HubSpot id
    assert owner_plan(facts(cause="conflict"), policy, "salesforce").crm_id is None
    assert owner_plan(facts(cause="conflict", state="reviewed"), policy, "salesforce").crm_id is not None


def test_given_a_queue_owner_when_planning_for_a_salesforce_contact_then_the_owner_is_left_alone(
    example_policy: LoadedPolicy,
) -> None:
    policy = example_policy.policy
    assert owner_plan(facts(final_owner="nurture"), policy, "salesforce", "Lead").crm_id is not None
    on_contact = owner_plan(facts(final_owner="nurture"), policy, "salesforce", "Contact")
    assert on_contact.crm_id is None and "Contact cannot be queue-owned" in on_contact.why
    assert owner_plan(facts(), policy, "salesforce", "Contact").crm_id is not None  # a rep may own it


def test_given_owners_when_judging_conflicts_then_only_a_persons_change_is_one() -> None:
    a, b, c = "0055e000001AAAAAA4", "0055e000001BBBB", "0055e000001CCCC"
    assert not is_conflict("salesforce", before=None, current=None, wanted=a, last_written=None)
    assert not is_conflict("salesforce", before=b, current=b[:15], wanted=a, last_written=None)
    assert not is_conflict("salesforce", before=None, current=a, wanted=a[:15], last_written=None)
    assert not is_conflict("salesforce", before=None, current=c, wanted=a, last_written=c)
    assert is_conflict("salesforce", before=b, current=c, wanted=a, last_written=None)
    assert is_conflict("hubspot", before=None, current="105", wanted="101", last_written="102")


def test_given_crm_spellings_when_comparing_then_equal_values_are_equal() -> None:
    assert values_equal("72", 72) and values_equal(72.0, 72) and values_equal("", None)
    assert values_equal("2026-11-20T20:00:00.123Z", "2026-11-20T20:00:00.123+0000")
    assert not values_equal("72", 73) and not values_equal("hot", "warm") and not values_equal(None, "x")
    assert same_owner("salesforce", "0055e000001AAAA", "0055e000001AAAAAA4")
    assert not same_owner("hubspot", "101", "1010")


def test_given_a_15_character_id_when_extended_then_the_checksum_is_salesforces() -> None:
    # the documented example: 001A0000006Vm9r → 001A0000006Vm9rIAC
    assert salesforce_id18("001A0000006Vm9r") == "001A0000006Vm9rIAC"
