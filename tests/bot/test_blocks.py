"""Block Kit builders: escaping, clipping and validation hold for any input."""

from __future__ import annotations

import dataclasses
import html
from datetime import datetime, timedelta

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from slack_sdk.models.blocks import SectionBlock

from bot import ids
from bot.blocks.common import button, section, validate_message, validate_view
from bot.blocks.home import home_view
from bot.blocks.modals import Origin, reassign_modal
from bot.cards import load_card
from bot.errors import PayloadInvalid
from bot.sla import PolicyReviewClock
from bot.text import ELLIPSIS, esc, mrkdwn_value
from core.policy import LoadedPolicy, parse_policy
from core.review import Proposal, ReviewChange, ReviewRules
from core.store.db import Database
from tests.builders import LeadBuilder, decide


@given(st.text(), st.integers(min_value=1, max_value=300))
def test_given_any_crm_text_when_escaped_and_clipped_then_it_fits_and_no_entity_is_cut(text: str, limit: int) -> None:
    shown = mrkdwn_value(text, limit)
    assert len(shown) <= limit
    assert "<" not in shown and ">" not in shown
    assert len(shown.splitlines()) <= 1  # one line: CRM text cannot forge a line of the message
    body = shown.removesuffix(ELLIPSIS)
    one_line = " ".join(text.split())
    assert html.unescape(body).rstrip() == one_line[: len(html.unescape(body))].rstrip() or shown.endswith(ELLIPSIS)
    for fragment in ("&am", "&l", "&g", "&a"):
        assert not body.endswith(fragment) or body.endswith(fragment + "p;")


def test_given_the_three_mrkdwn_characters_when_escaped_then_they_become_entities() -> None:
    assert esc("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"


def test_given_too_many_or_invalid_blocks_when_validated_then_payload_invalid_names_the_problem() -> None:
    with pytest.raises(PayloadInvalid, match="51 blocks; Slack allows 50"):
        validate_message("x", [section("a")] * 51)
    too_long = {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "x" * 76},
                                               "action_id": "a"}]}  # fmt: skip
    with pytest.raises(PayloadInvalid, match=r"blocks\[0\]"):
        validate_message("x", [too_long])
    with pytest.raises(PayloadInvalid, match="fallback text"):
        validate_message("  ", [section("a")])
    assert len(button("y" * 200, ids.APPROVE, "1").to_dict()["text"]["text"]) == 75
    SectionBlock.parse(validate_message("x", [section("z" * 5000)]).blocks[0]).validate_json()  # type: ignore[union-attr]


def _card(db: Database, policy: LoadedPolicy, now: datetime, lead_id: str) -> object:
    decide(db, policy, [LeadBuilder(lead_id).raw(now)], now)
    rules = ReviewRules(policy.policy)
    with db.sessions() as s:
        from sqlalchemy import select

        from core.store.models import Decision

        pk = s.execute(select(Decision.pk).where(Decision.lead_id == lead_id)).scalar_one()
        return load_card(s, rules, PolicyReviewClock(policy.policy), pk)


def test_given_more_pending_reviews_than_fit_when_home_is_built_then_it_stays_under_100_blocks(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    card = _card(db, example_policy, now, "00Q5e00000B0001")
    cards = [dataclasses.replace(card, decision_pk=1000 + i) for i in range(60)]  # type: ignore[type-var]
    view = home_view(cards, now=now + timedelta(hours=1), total=60)
    assert len(view["blocks"]) <= 100 and "…and 35 more" in str(view["blocks"][-1])
    assert validate_view(view) == view


def _big_policy(example: LoadedPolicy) -> LoadedPolicy:
    doc = yaml.safe_load(example.text)
    doc["reps"] += [
        {"id": f"r{i:03d}", "name": f"Rep {i}", "slack_user": f"U9{i:03d}", "team": "mm", "timezone": "UTC"}
        for i in range(120)
    ]
    return parse_policy(yaml.safe_dump(doc, allow_unicode=True), "big.yaml")


def test_given_more_reps_than_a_select_holds_when_reassigning_then_a_user_picker_is_offered_and_mapped_to_reps(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    big = _big_policy(example_policy)
    card = _card(db, big, now, "00Q5e00000B0002")
    rules = ReviewRules(big.policy)
    view = reassign_modal(card, rules, Origin(1), now)  # type: ignore[arg-type]
    owner_block = next(b for b in view["blocks"] if b.get("block_id") == ids.BLOCK_OWNER)
    assert owner_block["element"]["type"] == "users_select"
    proposal = Proposal(1, "ana", "rep", "mm", "hot", 80, "mid_market")
    outcome = rules.validate(proposal, ReviewChange("reassign", reason_code="capacity", owner="U9042"), now=now)
    assert outcome.final_owner == "r042"


@pytest.mark.parametrize(
    ("cause", "because"),
    [
        ("reroute", "its deadline passed and the lead was re-routed"),
        ("conflict", "its owner was changed in the CRM, so the lead was decided again"),
        ("unpark", "the lead was taken out of the queue for a rep with room"),
        ("changed", "the lead changed and was decided again"),
        (None, "the lead changed and was decided again"),
    ],
)
def test_given_a_superseded_escalation_when_someone_clicks_it_then_the_refusal_names_what_decided_it_again(
    db: Database, example_policy: LoadedPolicy, now: datetime, cause: str | None, because: str
) -> None:
    from slack_sdk.models.blocks import Block

    from bot.blocks.escalation import escalation_message
    from bot.blocks.replies import already_decided
    from core.review import NotPending

    card = _card(db, example_policy, now, "00Q5e00000B0001")
    stale = dataclasses.replace(card, state="superseded", superseded_by=9, superseded_cause=cause)  # type: ignore[type-var]
    reply = already_decided(NotPending(1, "superseded"), stale)
    assert reply.text == f"This escalation is out of date: {because}. Nothing was changed."
    updated = escalation_message(stale, audience="channel")
    assert any(f"{because} (decision #9)" in str(b) for b in updated.blocks)
    for block in [*reply.blocks, *updated.blocks]:
        Block.parse(block).validate_json()  # type: ignore[union-attr]
