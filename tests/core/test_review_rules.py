"""Where an escalation is shown and who may act on it, for every kind of proposed owner."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

import pytest

from core.policy import LoadedPolicy
from core.policy.schema import CrmIds, OutOfOffice
from core.review import InvalidReview, Proposal, ReviewChange, ReviewRules


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


@pytest.mark.parametrize(("writes_owner", "refused"), [(True, True), (False, False)])
def test_given_a_rep_without_an_id_in_the_leads_crm_when_made_owner_then_refused_only_if_owners_are_written(
    example_policy: LoadedPolicy, now: datetime, writes_owner: bool, refused: bool
) -> None:
    policy = example_policy.policy
    reps = [r.model_copy(update={"crm": CrmIds(hubspot="102")}) if r.id == "ben" else r for r in policy.reps]
    writeback = policy.writeback.model_copy(update={"owner": writes_owner})
    rules = ReviewRules(policy.model_copy(update={"reps": reps, "writeback": writeback}))
    from_salesforce = replace(_proposal("ana", "rep", "mm"), source="salesforce")
    change = ReviewChange("reassign", reason_code="capacity", owner="ben")
    if refused:
        with pytest.raises(InvalidReview) as caught:
            rules.validate(from_salesforce, change, now=now)
        assert caught.value.field == "owner" and "no Salesforce user" in caught.value.message
        assert rules.unfit_owner(rules.roster.reps["ben"], from_salesforce, now) == "no Salesforce user"
    else:
        assert rules.validate(from_salesforce, change, now=now).final_owner == "ben"
    # a HubSpot lead: HubSpot knows him
    assert rules.validate(replace(from_salesforce, source="hubspot"), change, now=now).final_owner == "ben"


@pytest.mark.parametrize(
    ("start", "end", "refused"),
    [(date(2026, 11, 16), date(2026, 11, 27), True), (date(2026, 11, 9), date(2026, 11, 19), False)],
)
def test_given_a_rep_out_of_office_when_made_owner_then_refused_until_they_are_back(
    example_policy: LoadedPolicy, now: datetime, start: date, end: date, refused: bool
) -> None:
    policy = example_policy.policy
    away = [OutOfOffice(start=start, end=end)]
    reps = [r.model_copy(update={"out_of_office": away}) if r.id == "cy" else r for r in policy.reps]
    rules = ReviewRules(policy.model_copy(update={"reps": reps}))
    proposal = _proposal("ben", "rep", "mm")
    change = ReviewChange("override", reason_code="data_quality", owner="cy")
    if refused:
        with pytest.raises(InvalidReview) as caught:
            rules.validate(proposal, change, now=now)
        assert caught.value.field == "owner" and caught.value.message.startswith(
            "Cy Park is out of office until 2026-11-27"
        )
    else:
        assert rules.validate(proposal, change, now=now).final_owner == "cy"


@pytest.mark.parametrize("picked", ["cy", "U01CY"])  # a static select's rep id; a users_select's Slack id
def test_given_the_proposed_owner_away_when_the_picker_is_left_on_them_then_a_band_override_is_valid(
    example_policy: LoadedPolicy, now: datetime, picked: str
) -> None:
    """Over 100 reps the override modal's picker is a users_select: its value is a Slack user
    id. Left on the proposed owner, it is no change of owner, whichever way it is spelled."""
    policy = example_policy.policy
    away = [OutOfOffice(start=date(2026, 11, 16), end=date(2026, 11, 27))]
    reps = [r.model_copy(update={"out_of_office": away}) if r.id == "cy" else r for r in policy.reps]
    rules = ReviewRules(policy.model_copy(update={"reps": reps}))
    proposal = _proposal("cy", "rep", "mm")
    outcome = rules.validate(proposal, ReviewChange("override", "wrong_segment", owner=picked, band="warm"), now=now)
    assert (outcome.after["owner"], outcome.after["band"], outcome.changes) == ("cy", "warm", ["band hot → warm"])
    with pytest.raises(InvalidReview) as caught:  # the owner alone left as it is: nothing changes
        rules.validate(proposal, ReviewChange("override", "wrong_segment", owner=picked), now=now)
    assert caught.value.field == "action"
    with pytest.raises(InvalidReview) as caught:  # reassigned to the same person: use Approve
        rules.validate(proposal, ReviewChange("reassign", "capacity", owner=picked), now=now)
    assert (
        caught.value.field == "owner" and caught.value.message == "Cy Park is already the proposed owner; use Approve"
    )
    # another person picked by Slack id is still checked and resolved to their rep id
    assert rules.validate(proposal, ReviewChange("reassign", "capacity", owner="U01BEN"), now=now).final_owner == "ben"
