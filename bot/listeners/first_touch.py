""" "I contacted them" on SLA nudges and focus lists: the owner's first touch, told in Slack.

Ack at once; in the lazy function the clock is closed as met (``met_via = slack``) if the person
may (the lead's owner, their team's manager, or an admin) and the clock is still open; the
person gets an ephemeral answer either way.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot import ids
from bot.blocks.common import Message, section, slack_date, validate_message
from bot.context import BotContext
from bot.errors import SlackCallFailed, slack_call
from bot.listeners.errors import guarded
from core.store.models import SlaClock
from core.store.sla_clocks import mark_contacted

__all__ = ["register"]

log = logging.getLogger(__name__)


def _reply(text: str) -> Message:
    return validate_message(text, [section(text)], where="first touch reply")


def _may(ctx: BotContext, user: str, clock: SlaClock) -> bool:
    rep = ctx.rules.rep_for_slack(user)
    if rep is None:
        return False
    if "admin" in rep.roles or (clock.owner_kind == "rep" and clock.owner == rep.id):
        return True
    owner = ctx.rules.roster.reps.get(clock.owner or "")
    teams = {clock.team, owner.team if owner else None} - {None}
    return any(t.manager == rep.id for t in ctx.policy.policy.teams if t.id in teams)


def _contacted(ctx: BotContext, body: dict[str, Any], client: WebClient) -> None:
    user = body["user"]["id"]
    channel = (body.get("container") or {}).get("channel_id") or (body.get("channel") or {}).get("id")
    clock_pk = int(body["actions"][0]["value"])
    with ctx.db.sessions() as session:
        clock = session.get(SlaClock, clock_pk)
    if clock is None or not _may(ctx, user, clock):
        reply = _reply("🚫 Only the lead's owner, their manager or an admin can say the lead was contacted.")
    else:
        with ctx.db.transaction() as session:
            met = mark_contacted(session, clock_pk, by=f"slack:{user}", now=ctx.clock())
        if met is not None:
            late = " (after the deadline)" if met.breached_at is not None else ""
            reply = _reply(f"✅ Noted: first touch {slack_date(ctx.clock())}{late}. The reminders for this lead stop.")
        else:
            reply = _reply(
                "This lead is not waiting for a first touch any more (answered or re-routed). Nothing changed."
            )
    if channel:
        try:
            slack_call("chat.postEphemeral", client.chat_postEphemeral, channel=channel, user=user, **reply.kwargs())
        except SlackCallFailed as exc:  # the clock is settled in the store; the reply is a courtesy
            log.warning("could not tell %s about clock %s: %s", user, clock_pk, exc)


def _ack(ack: Ack) -> None:
    ack()


def register(app: App, ctx: BotContext) -> None:
    @guarded
    def contacted(body: dict[str, Any], client: WebClient) -> None:
        _contacted(ctx, body, client)

    app.action(ids.FIRST_TOUCH)(ack=_ack, lazy=[contacted])
