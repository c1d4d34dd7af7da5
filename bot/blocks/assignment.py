"""The DM a rep gets when a lead becomes theirs: what it is, why them, what to do.

Automation assigns most leads; a person reviewing an escalation may give one to a third rep,
who then hears it from here (who gave it to them, and why) rather than from the CRM."""

from __future__ import annotations

from slack_sdk.models.blocks import Block

from bot.blocks.common import Message, context, quote, section, slack_date, validate_message
from bot.blocks.escalation import band_line, lead_fields, next_action_label
from bot.cards import Card, Outcome
from bot.text import esc, mrkdwn_value

__all__ = ["assignment_message"]


def assignment_message(card: Card, *, reviewed: bool = False) -> Message:
    """``reviewed``: the lead is theirs by a person's review (``card.outcome``), not automation."""
    lead = card.lead
    title = esc(lead.name) + (f" · {esc(lead.company)}" if lead.company else "")
    outcome = card.outcome if reviewed else None
    # the band the person decided: automation's, which they may have rejected, would mislead
    lines = [f"*New lead for you:* {title}", band_line(card, outcome.band if outcome else None)]
    label = next_action_label(card)
    if label and outcome is None:  # a review clears automation's next best action
        lines.append(f"*Next best action:* {mrkdwn_value(label, 300)}")
    if outcome is not None:
        lines += _why_reviewed(outcome)
        how = f"Given to you by {esc(outcome.by_name)} {slack_date(outcome.at)}"
    else:
        route = card.contract.get("route") or {}
        if route.get("detail"):
            lines.append(f"*Why you:* {mrkdwn_value(route['detail'], 400)}")
        how = f"Assigned automatically {slack_date(card.decided_at)}"
    blocks: list[Block] = [
        section("\n".join(lines)),
        section("", fields=lead_fields(lead)),
        context(f"{how} · decision #{card.decision_pk} · policy {esc(card.contract.get('policy_version') or '')}"),
    ]
    text = f"New lead for you: {title}" + (f" — {mrkdwn_value(label, 200)}" if label and outcome is None else "")
    return validate_message(text, blocks, where=f"assignment {card.decision_pk}")


def _why_reviewed(outcome: Outcome) -> list[str]:
    """Who chose them, what they changed and why, in the words the escalation message uses
    for the outcome."""
    lines = [f"*Why you:* {esc(outcome.by_name)} chose you"]
    if outcome.changes:
        lines.append(f"*What changed:* {'; '.join(esc(c) for c in outcome.changes)}")
    if outcome.reason_label:
        lines.append(f"*Reason:* {esc(outcome.reason_label)}")
    if outcome.note:
        lines.append(quote(outcome.note))
    return lines
