"""SLA messages the scheduler sends: the owner's nudge, the manager's breach notice, and the
late owner's note that the lead was re-routed.

Each says which lead (escaped CRM text), which clock (first touch or review), when it is or
was due, and what happens next; nudges carry the buttons that answer them — Approve /
Reassign… / Override… on a pending review, "I contacted them" on a first touch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from slack_sdk.models.blocks import Block, SectionBlock

from bot import ids
from bot.blocks.common import Message, button, context, mrkdwn, section, slack_date, validate_message
from bot.blocks.escalation import band_line, decision_buttons, next_action_label
from bot.cards import Card
from bot.sla import local_time
from bot.text import esc, mrkdwn_value, span

__all__ = ["ClockFacts", "breach_message", "contacted_section", "lead_title", "nudge_message", "rerouted_message"]

_WHAT = {"first_touch": "first touch", "review": "review"}


@dataclass(frozen=True, slots=True)
class ClockFacts:
    """What a message says about one SLA clock."""

    clock_pk: int
    kind: str  # first_touch | review
    owner_name: str
    started_at: datetime
    due_at: datetime | None
    owner_timezone: str | None = None  # the clock owner's (else the card's owner's) zone


def lead_title(card: Card) -> str:
    """``*Name* · Company`` escaped for mrkdwn."""
    lead = card.lead
    return f"*{mrkdwn_value(lead.name, 200)}*" + (f" · {mrkdwn_value(lead.company, 200)}" if lead.company else "")


def contacted_section(text: str, clock_pk: int, *, block_id: str) -> SectionBlock:
    """A section with the "I contacted them" button beside it (one block per lead)."""
    return SectionBlock(
        block_id=block_id,
        text=mrkdwn(text),
        accessory=button("✅ I contacted them", ids.FIRST_TOUCH, str(clock_pk), style="primary"),
    )


def _due_line(clock: ClockFacts, now: datetime) -> str:
    if clock.due_at is None:
        return "No deadline set for this lead"
    if clock.due_at > now:
        return f"Due {slack_date(clock.due_at)} (in {span(clock.due_at - now)})"
    return f"⚠️ *Overdue* since {slack_date(clock.due_at)} ({span(now - clock.due_at)} ago)"


def _answer(card: Card, clock: ClockFacts, *, block_id: str) -> list[Block]:
    """The buttons that settle this clock, if there are any to press."""
    if clock.kind == "review" and card.pending:
        return [decision_buttons(card, block_id=block_id)]
    if clock.kind == "first_touch":
        return [
            contacted_section(
                "Reached out already? Say so here and the clock stops.", clock.clock_pk, block_id=block_id
            )
        ]
    return []


def nudge_message(card: Card, clock: ClockFacts, *, now: datetime) -> Message:
    """To the owner, at a ``nudge_at`` fraction of the SLA (or an owner nudge after the breach)."""
    what = _WHAT.get(clock.kind, clock.kind)
    lines = [f"⏰ *Reminder: {what}* — {lead_title(card)}", band_line(card), _due_line(clock, now)]
    label = next_action_label(card)
    if label and clock.kind == "first_touch":
        lines.append(f"*Next best action:* {mrkdwn_value(label, 300)}")
    blocks: list[Block] = [section("\n".join(lines))]
    blocks += _answer(card, clock, block_id=f"sla:{clock.clock_pk}:nudge")
    blocks.append(
        context(f"SLA clock #{clock.clock_pk} · decision #{card.decision_pk} · started {slack_date(clock.started_at)}")
    )
    # the notification's fallback text cannot hold a <!date> token (read in the reader's own
    # zone), so it says the time where the owner it goes to is: "21:10 UTC" made them convert
    zone = clock.owner_timezone or card.owner_timezone
    due = f" by {local_time(clock.due_at, zone)}" if clock.due_at and clock.due_at > now else " — overdue"
    text = f"Reminder: {what} for {esc(card.lead.name)}{due}"
    return validate_message(text, blocks, where=f"nudge {clock.clock_pk}")


def breach_message(card: Card, clock: ClockFacts, *, now: datetime, next_step: str | None) -> Message:
    """To the team's manager when the deadline passed unanswered."""
    what = _WHAT.get(clock.kind, clock.kind)
    due = slack_date(clock.due_at) if clock.due_at else "the deadline"
    lines = [
        f"🚨 *SLA breached: {what}* — {lead_title(card)}",
        f"{esc(clock.owner_name)} has not responded; it was due {due}.",
        band_line(card),
    ]
    if next_step:
        lines.append(f"*Next:* {esc(next_step)}")
    blocks: list[Block] = [section("\n".join(lines))]
    if clock.kind == "review" and card.pending:
        blocks.append(decision_buttons(card, block_id=f"sla:{clock.clock_pk}:breach"))
    blocks.append(context(f"SLA clock #{clock.clock_pk} · decision #{card.decision_pk} · {slack_date(now)}"))
    text = f"SLA breached: {what} for {esc(card.lead.name)} ({esc(clock.owner_name)})"
    return validate_message(text, blocks, where=f"breach {clock.clock_pk}")


def rerouted_message(card: Card, clock: ClockFacts, *, new_owner: str, now: datetime) -> Message:
    """To the late owner: the lead went to someone else, and why."""
    what = _WHAT.get(clock.kind, clock.kind)
    due = slack_date(clock.due_at) if clock.due_at else "its deadline"
    blocks: list[Block] = [
        section(
            f"↪️ *Re-routed:* {lead_title(card)} now goes to *{esc(new_owner)}* — the {what} was due {due} "
            "and did not happen. Nothing for you to do."
        ),
        context(f"SLA clock #{clock.clock_pk} · decision #{card.decision_pk} · {slack_date(now)}"),
    ]
    return validate_message(f"Re-routed to {esc(new_owner)}: {esc(card.lead.name)}", blocks, where="rerouted")
