"""The daily focus list: each morning, one DM with the person's ranked work — hot leads waiting
for a first touch, then reviews by due time, then the other leads waiting for a first touch —
each with the button that settles it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from slack_sdk.models.blocks import Block

from bot.blocks.common import Message, context, header, section, slack_date, validate_message
from bot.blocks.escalation import BAND_ICONS, decision_buttons, next_action_label, trigger_label
from bot.blocks.sla import contacted_section
from bot.cards import Card
from bot.text import esc, mrkdwn_value, span

__all__ = ["HOT_SHOWN", "OTHER_SHOWN", "REVIEWS_SHOWN", "FocusLead", "focus_message"]

HOT_SHOWN, REVIEWS_SHOWN, OTHER_SHOWN = 10, 10, 8  # 1 + 2 + 1 blocks each: well under Slack's 50


@dataclass(frozen=True, slots=True)
class FocusLead:
    """A lead waiting for this person's first touch."""

    card: Card
    clock_pk: int
    band: str
    due_at: datetime | None


def _title(card: Card) -> str:
    lead = card.lead
    return f"*{mrkdwn_value(lead.name, 150)}*" + (f" · {mrkdwn_value(lead.company, 150)}" if lead.company else "")


def _due(due_at: datetime | None, now: datetime) -> str:
    if due_at is None:
        return "no deadline"
    if due_at <= now:
        return f"⚠️ overdue since {slack_date(due_at)}"
    return f"due {slack_date(due_at)} (in {span(due_at - now)})"


def _lead_block(item: FocusLead, now: datetime) -> Block:
    card = item.card
    score = card.contract.get("score") or {}
    band = f"{BAND_ICONS.get(item.band, '•')} {esc(item.band.capitalize())} {score.get('total', '')}"
    line = f"{band} · {_due(item.due_at, now)}"
    label = next_action_label(card)
    text = f"{_title(card)}\n{line}" + (f"\n▶ {mrkdwn_value(label, 200)}" if label else "")
    return contacted_section(text, item.clock_pk, block_id=f"focus:lead:{item.clock_pk}")


def _review_blocks(card: Card, now: datetime) -> list[Block]:
    triggers = ", ".join(trigger_label(str(t.get("code"))) for t in card.contract.get("triggers") or [])
    line = f"{_due(card.due_at, now)} · for {esc(card.owner_name)}" + (f" · {esc(triggers)}" if triggers else "")
    return [section(f"{_title(card)}\n{line}"), decision_buttons(card, block_id=f"focus:review:{card.decision_pk}")]


def focus_message(
    name: str,
    day: date,
    *,
    hot: Sequence[FocusLead],
    reviews: Sequence[Card],
    reviews_total: int,
    others: Sequence[FocusLead],
    now: datetime,
) -> Message:
    """``hot`` and ``others`` ranked by due time; ``reviews`` ranked by due time then score."""
    blocks: list[Block] = [
        header(f"Your focus for {day:%A %d %B}"),
        context(
            f"Good morning, {esc(name)}: {len(hot)} hot lead{'s' if len(hot) != 1 else ''} · "
            f"{reviews_total} review{'s' if reviews_total != 1 else ''} · {len(others)} other lead"
            f"{'s' if len(others) != 1 else ''} waiting for you."
        ),
    ]
    if hot:
        blocks.append(section("*🔥 Hot leads — call these first*"))
        blocks += [_lead_block(item, now) for item in hot[:HOT_SHOWN]]
    if reviews:
        blocks.append(section("*🙋 Reviews waiting for you* (most urgent first)"))
        for card in reviews[:REVIEWS_SHOWN]:
            blocks += _review_blocks(card, now)
        if reviews_total > len(reviews[:REVIEWS_SHOWN]):
            blocks.append(context(f"…and {reviews_total - len(reviews[:REVIEWS_SHOWN])} more on your Home tab."))
    if others:
        blocks.append(section("*📋 Also waiting for your first touch*"))
        blocks += [_lead_block(item, now) for item in others[:OTHER_SHOWN]]
    text = f"Your focus today: {len(hot)} hot leads, {reviews_total} reviews, {len(others)} other leads"
    return validate_message(text, blocks, where=f"focus list {day}")
