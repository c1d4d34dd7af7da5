"""Where an escalation is shown and who may act on it, for every kind of proposed owner."""

from __future__ import annotations

import pytest

from core.policy import LoadedPolicy
from core.review import Proposal, ReviewRules


def _proposal(owner: str | None, kind: str, team: str | None = None) -> Proposal:
    return Proposal(1, owner, kind, team, "hot", 80, "mid_market")


@pytest.mark.parametrize(
    ("proposal", "channel", "manager"),
    [
        (_proposal("ben", "rep", "mm"), "C0MMREVIEW", "lee"),  # the routed team
        (_proposal("dana", "rep"), "C0ENTREVIEW", "mo"),  # account owner: the rep's own team
        (_proposal("unassigned", "queue"), "C0MMREVIEW", "lee"),  # a queue with a channel
        (_proposal("nurture", "queue"), "C0MMREVIEW", "lee"),  # a queue without: the fallback queue's channel
        (_proposal(None, "none"), "C0MMREVIEW", "lee"),
    ],
)
def test_given_a_proposed_owner_when_routing_the_escalation_then_channel_and_manager_follow_the_rules(
    example_policy: LoadedPolicy, proposal: Proposal, channel: str, manager: str
) -> None:
    rules = ReviewRules(example_policy.policy)
    assert rules.review_channel(proposal) == channel
    team = rules.responsible_team(proposal)
    assert team is not None and team.manager == manager
    assert rules.authority(proposal, manager) == "manager"
    assert rules.authority(proposal, "rev") == "admin"


def test_given_no_queue_channel_anywhere_when_routing_then_the_first_team_channel_is_used(
    example_policy: LoadedPolicy,
) -> None:
    policy = example_policy.policy
    bare = policy.model_copy(update={"queues": [q.model_copy(update={"channel": None}) for q in policy.queues]})
    rules = ReviewRules(bare)
    assert rules.review_channel(_proposal("nurture", "queue")) == policy.teams[0].channel


def test_given_the_owner_when_checked_then_owner_authority_and_a_peer_has_none(example_policy: LoadedPolicy) -> None:
    rules = ReviewRules(example_policy.policy)
    proposal = _proposal("ben", "rep", "mm")
    assert rules.authority(proposal, "ben") == "owner"
    assert rules.authority(proposal, "ana") is None  # same team, not the proposed owner
    assert rules.authority(proposal, None) is None
    assert [c.code for c in rules.reasons_for("reassign")] == [
        "territory_exception", "existing_relationship", "wrong_segment", "not_a_fit", "capacity", "timing",
    ]  # fmt: skip
