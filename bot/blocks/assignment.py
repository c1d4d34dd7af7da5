"""The DM a rep gets when automation assigns them a lead: what it is, why them, what to do."""

from __future__ import annotations

from slack_sdk.models.blocks import Block

from bot.blocks.common import Message, context, section, slack_date, validate_message
from bot.blocks.escalation import band_line, lead_fields, next_action_label
from bot.cards import Card
from bot.text import esc, mrkdwn_value

__all__ = ["assignment_message"]


def assignment_message(card: Card) -> Message:
    lead = card.lead
    title = esc(lead.name) + (f" · {esc(lead.company)}" if lead.company else "")
    route = card.contract.get("route") or {}
    lines = [f"*New lead for you:* {title}", band_line(card)]
    label = next_action_label(card)
    if label:
        lines.append(f"*Next best action:* {mrkdwn_value(label, 300)}")
    if route.get("detail"):
        lines.append(f"*Why you:* {mrkdwn_value(route['detail'], 400)}")
    blocks: list[Block] = [
        section("\n".join(lines)),
        section("", fields=lead_fields(lead)),
        context(
            f"Assigned automatically {slack_date(card.decided_at)} · decision #{card.decision_pk}"
            f" · policy {esc(card.contract.get('policy_version') or '')}"
        ),
    ]
    text = f"New lead for you: {title}" + (f" — {mrkdwn_value(label, 200)}" if label else "")
    return validate_message(text, blocks, where=f"assignment {card.decision_pk}")
