"""Buttons on escalations (channel, DM, App Home).

Approve and the next-best-action button are stored in the click inbox by their ack, and the
outbox worker records the review and tells the person if they were refused (Slack never
resends an acknowledged click; see :mod:`bot.click_inbox`). Reassign… and Override… ack at
once and open their modal lazily (after checking the person may act, so nobody fills in a
form for nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot import ids
from bot.blocks.modals import Origin, override_modal, reassign_modal
from bot.cards import Card
from bot.click_inbox import accept
from bot.context import BotContext
from bot.errors import slack_call
from bot.listeners.errors import guarded
from bot.review_flow import Click, check_may_act, tell
from core.review import ReviewChange, ReviewRules

__all__ = ["register"]


def _ack(ack: Ack) -> None:
    ack()


def _action_ts(body: dict[str, Any]) -> str:
    return str(body["actions"][0].get("action_ts") or body.get("trigger_id") or "")


def _accept_then_ack(ctx: BotContext, ack: Ack, body: dict[str, Any], change: ReviewChange) -> None:
    accept(ctx, Click.of(body), _action_ts(body), change)  # raises: no ack, Slack says so
    ack()


def _open(
    ctx: BotContext,
    client: WebClient,
    click: Click,
    build: Callable[[Card, ReviewRules, Origin, datetime], dict[str, Any]],
) -> None:
    card, reply = check_may_act(ctx, click.decision_pk, click.user)
    if reply is not None or card is None:
        if reply is not None:
            tell(ctx, client, click.user, reply, channel=click.channel, home=click.home)
        return
    origin = Origin(click.decision_pk, click.channel, click.message_ts, click.home)
    slack_call(
        "views.open", client.views_open, trigger_id=click.trigger_id, view=build(card, ctx.rules, origin, ctx.clock())
    )


def register(app: App, ctx: BotContext) -> None:
    def approve_ack(ack: Ack, body: dict[str, Any]) -> None:
        _accept_then_ack(ctx, ack, body, ReviewChange("approve"))

    def take_next_best_action_ack(ack: Ack, body: dict[str, Any]) -> None:
        _accept_then_ack(ctx, ack, body, ReviewChange("approve", took_next_best_action=True))

    @guarded
    def open_reassign(body: dict[str, Any], client: WebClient) -> None:
        _open(ctx, client, Click.of(body), reassign_modal)

    @guarded
    def open_override(body: dict[str, Any], client: WebClient) -> None:
        _open(ctx, client, Click.of(body), override_modal)

    app.action(ids.APPROVE)(approve_ack)
    app.action(ids.NEXT_BEST_ACTION)(take_next_best_action_ack)
    app.action(ids.REASSIGN)(ack=_ack, lazy=[open_reassign])
    app.action(ids.OVERRIDE)(ack=_ack, lazy=[open_override])
