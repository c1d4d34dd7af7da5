"""Announcements are valid Slack messages and cannot ping anyone through their content."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import Block

from core.learning.announce import announcement_channels, policy_message, trust_message, tuning_message
from core.learning.trust_levels import Move
from core.policy import LoadedPolicy


def _valid(payload: dict[str, Any]) -> None:
    assert set(payload) == {"channel", "text", "blocks"}
    assert payload["text"]
    blocks = Block.parse_all(payload["blocks"])
    assert len(blocks) == len(payload["blocks"]) <= 50
    for block in blocks:
        block.validate_json()  # raises SlackObjectFormationError when a limit is broken


def test_given_each_kind_of_change_when_announced_then_the_payload_is_valid_block_kit() -> None:
    _valid(
        trust_message(
            "C0LEADERS", Move("smb", 2, 3, "promote", "agreement 90% over 50"), by="loopgate", policy_version="ab12cd34"
        )
    )
    _valid(policy_message("C0LEADERS", "shadow", "ab12cd34", "Acme", by="cli:rev", previous=None, note="try it"))
    _valid(tuning_message("C0LEADERS", "2026-11", ["a line"] * 40, challenger="ef56ab78"))
    _valid(tuning_message("C0LEADERS", "2026-11", [], challenger=None))


def test_given_hostile_text_when_announced_then_it_is_escaped_not_a_mention() -> None:
    payload = policy_message("C0X", "publish", "v1", "<!channel> & <@U123>", by="<!here>", previous=None)
    body = payload["blocks"][0]["text"]["text"] + payload["blocks"][1]["elements"][0]["text"]
    assert "<!channel>" not in body and "<!here>" not in body and "<@U123>" not in body
    assert "&lt;!channel&gt; &amp; &lt;@U123&gt;" in body


def test_given_a_policy_when_choosing_channels_then_the_digest_channel_else_every_team_channel(
    example_policy: LoadedPolicy,
) -> None:
    assert announcement_channels(example_policy.policy) == ["C0LEADERS"]
    without = example_policy.policy.model_copy(update={"digest": None})
    assert announcement_channels(without) == ["C0MMREVIEW", "C0ENTREVIEW"]
