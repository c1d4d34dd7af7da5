"""Short answers to one person: refusals, "already decided", and the ``/loopgate`` replies."""

from __future__ import annotations

from datetime import datetime

from slack_sdk.models.blocks import Block

from bot.blocks.common import Message, context, header, section, slack_date, validate_message
from bot.blocks.escalation import escalation_message, outcome_line, superseded_because, trigger_label
from bot.cards import Card
from bot.queries import Stats
from bot.text import esc, mrkdwn_value
from core.review import AlreadyDecided, NotAllowed, NotPending

__all__ = [
    "already_decided",
    "failure",
    "help_message",
    "lead_message",
    "not_allowed",
    "not_in_policy",
    "queue_message",
    "stats_message",
]

_VERB = {"approve": "approved", "reassign": "reassigned", "override": "overridden"}


def not_allowed(exc: NotAllowed, card: Card | None) -> Message:
    what = f"*{esc(card.lead.name)}*" if card else "this lead"
    text = f"🚫 You can't act on {what}. {esc(exc.who_may)} can. Nothing was changed."
    return validate_message(text, [section(text)], where="refusal")


def already_decided(exc: NotPending, card: Card | None, *, you: str | None = None) -> Message:
    """Says who decided (or why nobody needs to), never changes anything."""
    if isinstance(exc, AlreadyDecided) and card is not None and card.outcome is not None:
        who = "you" if you and card.outcome.by_slack == you else esc(card.outcome.by_name)
        verb = _VERB.get(card.outcome.kind, "decided")
        text = f"Already {verb} by {who} {slack_date(card.outcome.at)}. Nothing was changed."
        body = f"{text}\n{outcome_line(card)}"
    elif card is not None and card.state == "superseded":
        text = f"This escalation is out of date: {superseded_because(card)}. Nothing was changed."
        body = f"{text}\n{outcome_line(card)}"
    else:
        text = f"This lead no longer waits for a review ({esc(exc.state)}). Nothing was changed."
        body = text
    return validate_message(text, [section(body)], where="already decided")


def failure(reference: str) -> Message:
    text = (
        f"⚠️ Something went wrong on loopgate's side (ref {esc(reference)}). "
        "Try again in a minute; if it keeps happening, tell RevOps."
    )
    return validate_message(text, [section(text)], where="failure")


def not_in_policy() -> Message:
    text = (
        "You're not in the loopgate policy, so there is nothing for you here. RevOps can add you (reps[].slack_user)."
    )
    return validate_message(text, [section(text)], where="not in policy")


def help_message() -> Message:
    text = (
        "*/loopgate* — lead routing with a human in the loop\n"
        "• `/loopgate queue` — the reviews waiting for you, most urgent first\n"
        "• `/loopgate stats` — the last 7 days: decisions, review queue, agreement\n"
        "• `/loopgate lead <email or CRM id>` — the latest decision for a lead, with its evidence\n"
        "• `/loopgate help` — this message\n"
        "Decide on escalations with their buttons, here or on loopgate's *Home* tab."
    )
    return validate_message("loopgate help", [section(text)], where="help")


def queue_message(cards: list[Card], total: int, *, now: datetime, limit: int = 20) -> Message:
    if not cards:
        text = "Nothing is waiting for you. 🎉"
        return validate_message(text, [section(text)], where="queue")
    lines = []
    for card in cards[:limit]:
        score = card.contract.get("score") or {}
        due = card.due_text or "no SLA"
        late = "⚠️ overdue · " if card.due_at and card.due_at <= now else ""
        triggers = ", ".join(trigger_label(str(t.get("code"))) for t in card.contract.get("triggers") or [])
        lines.append(
            f"• {late}*{mrkdwn_value(card.lead.name, 120)}*"
            + (f" · {mrkdwn_value(card.lead.company, 120)}" if card.lead.company else "")
            + f" — {esc(score.get('band', ''))} {score.get('total', '')}"
            + (f" · {esc(triggers)}" if triggers else "")
            + f" · due {esc(due)}"
        )
    blocks: list[Block] = [
        header(f"Your queue: {total} waiting"),
        section("\n".join(lines)),
        context("Decide from the escalation messages or the loopgate *Home* tab."),
    ]
    if total > len(lines):
        blocks.insert(2, context(f"…and {total - len(lines)} more."))
    return validate_message(f"Your queue: {total} waiting", blocks, where="queue")


def stats_message(stats: Stats) -> Message:
    actions = ", ".join(f"{k} {v}" for k, v in sorted(stats.decisions.items())) or "none"
    reviews = ", ".join(f"{k} {v}" for k, v in sorted(stats.reviews.items())) or "none"
    agreement = f"{stats.agreement:.0%}" if stats.agreement is not None else "—"
    lines = [
        f"*Decisions:* {sum(stats.decisions.values())} ({esc(actions)})",
        f"*Waiting for a person:* {stats.pending}" + (f" · ⚠️ {stats.overdue} overdue" if stats.overdue else ""),
        f"*Reviews:* {sum(stats.reviews.values())} ({esc(reviews)})",
        f"*Agreement with automation:* {agreement}",
    ]
    if stats.median_review_minutes is not None:
        lines.append(f"*Median time to decide:* {stats.median_review_minutes:.0f} min")
    segs = [f"{esc(s)} {share:.0%} of {n}" for s, (n, share) in stats.agreement_by_segment.items()]
    blocks: list[Block] = [header("loopgate · last 7 days"), section("\n".join(lines))]
    if segs:
        blocks.append(context("Agreement by segment: " + " · ".join(segs)))
    blocks.append(context(f"Since {slack_date(stats.since)}"))
    return validate_message("loopgate stats, last 7 days", blocks, where="stats")


def lead_message(cards: list[Card], query: str) -> Message:
    if not cards:
        text = f"No lead with email or CRM id `{mrkdwn_value(query, 200)}`."
        return validate_message(text, [section(text)], where="lead lookup")
    blocks: list[dict[str, object]] = []
    for card in cards:
        blocks += escalation_message(card, audience="lookup").blocks
    text = f"Lead {esc(cards[0].lead.name)}"
    return validate_message(text, blocks[:50], where="lead lookup")
