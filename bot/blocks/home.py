"""The App Home tab: the reviews waiting for this person, most urgent first, with the same
buttons as the escalation message."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.blocks.common import context, divider, header, section, slack_date, validate_view
from bot.blocks.escalation import BAND_ICONS, decision_buttons, trigger_label
from bot.cards import Card
from bot.text import esc, mrkdwn_value

__all__ = ["HOME_ITEMS_MAX", "home_view"]

HOME_ITEMS_MAX = 25  # 3 blocks each + 4 around them stays under the 100-block limit


def _item(card: Card, now: datetime) -> list[Block]:
    lead = card.lead
    score = card.contract.get("score") or {}
    band = str(score.get("band") or card.proposal.band)
    title = f"*{mrkdwn_value(lead.name, 200)}*" + (f" · {mrkdwn_value(lead.company, 200)}" if lead.company else "")
    triggers = ", ".join(trigger_label(str(t.get("code"))) for t in card.contract.get("triggers") or [])
    line2 = f"{BAND_ICONS.get(band, '•')} {esc(band.capitalize())} {score.get('total', '')}"
    if triggers:
        line2 += f" · {esc(triggers)}"
    line2 += f" · for {esc(card.owner_name)}"
    if card.due_at is None:
        line3 = "No review SLA"
    elif card.due_at <= now:
        line3 = f"⚠️ *Overdue* since {esc(card.due_text or '')}"
    else:
        line3 = f"⏰ Due {esc(card.due_text or '')}"
    return [
        section(f"{title}\n{line2}\n{line3}"),
        decision_buttons(card, block_id=f"home:{card.decision_pk}"),
        divider(),
    ]


def home_view(
    cards: list[Card], *, now: datetime, total: int | None = None, notice: str | None = None
) -> dict[str, Any]:
    """``cards`` already ranked; ``total`` counts all pending (more than fit on the tab)."""
    total = len(cards) if total is None else total
    blocks: list[Block] = [header("Your pending reviews")]
    if notice:
        blocks.append(section(notice))
    if not cards:
        blocks.append(section("Nothing is waiting for you. New escalations appear here and in your review channel."))
    else:
        blocks.append(context(f"{total} waiting · most urgent first (review due time, then score) · {slack_date(now)}"))
        for card in cards[:HOME_ITEMS_MAX]:
            blocks += _item(card, now)
        if total > min(len(cards), HOME_ITEMS_MAX):
            shown = min(len(cards), HOME_ITEMS_MAX)
            blocks.append(context(f"…and {total - shown} more. `/loopgate queue` lists them all."))
    return validate_view(View(type="home", blocks=blocks), where="app home")
