"""``/loopgate queue | stats | lead <email or id> | help``. Answers that take one indexed query
are the ack itself; ``stats`` scans a week of decisions, so it acks at once and answers
through the response URL from a lazy function.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import ids
from bot.blocks.common import Message, section, validate_message
from bot.blocks.replies import help_message, lead_message, not_in_policy, queue_message, stats_message
from bot.cards import load_cards
from bot.context import BotContext
from bot.listeners.errors import guarded
from bot.queries import find_lead_decisions, pending_for, team_stats
from bot.text import mrkdwn_value

__all__ = ["register"]

QUEUE_SHOWN = 20


def _words(text: str) -> tuple[str, str]:
    verb, _, rest = " ".join(text.split()).partition(" ")
    return verb.lower(), rest


def _reply(ack: Ack, message: Message) -> None:
    ack(text=message.text, blocks=message.blocks, response_type="ephemeral")


def _answer(ctx: BotContext, command: dict[str, Any]) -> Message | None:
    """The immediate answer, or ``None`` when a lazy function will answer."""
    verb, rest = _words(command.get("text", ""))
    if verb in ("", "help"):
        return help_message()
    rep = ctx.rules.rep_for_slack(command["user_id"])
    if rep is None:
        return not_in_policy()
    now = ctx.clock()
    if verb == "queue":
        with ctx.db.sessions() as session:
            cards, total = pending_for(session, ctx.rules, ctx.review_clock, rep, now=now, limit=QUEUE_SHOWN)
        return queue_message(cards, total, now=now)
    if verb == "lead":
        if not rest:
            text = "Which lead? `/loopgate lead <email or CRM id>`"
            return validate_message(text, [section(text)])
        with ctx.db.sessions() as session:
            pks = find_lead_decisions(session, rest)
            found = load_cards(session, ctx.rules, ctx.review_clock, pks)
        return lead_message([found[pk] for pk in pks if pk in found], rest)
    if verb == "stats":
        return None
    text = f"I don't know `{mrkdwn_value(verb, 40)}`."  # typed by anyone: it may hold <!channel> or a link
    return validate_message(text, [section(text), *help_message().blocks])


def register(app: App, ctx: BotContext) -> None:
    def answer(ack: Ack, command: dict[str, Any]) -> None:
        message = _answer(ctx, command)
        if message is None:
            ack(text="Counting the last 7 days…", response_type="ephemeral")
        else:
            _reply(ack, message)

    @guarded
    def answer_stats(body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        verb, _ = _words(body.get("text", ""))
        if verb != "stats" or ctx.rules.rep_for_slack(body.get("user_id", "")) is None:
            return
        with ctx.db.sessions() as session:
            stats = team_stats(session, ctx.review_clock, now=ctx.clock())
        message = stats_message(stats)
        respond(text=message.text, blocks=message.blocks, response_type="ephemeral", replace_original=False)

    app.command(ids.COMMAND)(ack=answer, lazy=[answer_stats])
