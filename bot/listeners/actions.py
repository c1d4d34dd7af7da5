"""Buttons on escalations (channel, DM, App Home): ack at once, decide in a lazy function.

Approve and the next-best-action button record the review; Reassign… and Override… open
their modal (after checking the person may act, so nobody fills in a form for nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot import ids
from bot.blocks.modals import Origin, override_modal, reassign_modal
from bot.cards import Card
from bot.context import BotContext
from bot.errors import slack_call
from bot.listeners.errors import guarded
from bot.review_flow import Click, check_may_act, publish_home, record, refusal, tell
from core.review import NotAllowed, NotPending, ReviewChange, ReviewRules

__all__ = ["register"]


def _ack(ack: Ack) -> None:
    ack()


def _decide(ctx: BotContext, client: WebClient, click: Click, change: ReviewChange) -> None:
    try:
        record(ctx, click.user, click.decision_pk, change)
    except (NotAllowed, NotPending) as exc:
        tell(ctx, client, click.user, refusal(ctx, exc, click.user), channel=click.channel, home=click.home)
        return
    if click.home:
        publish_home(ctx, client, click.user, notice="✅ Approved. The escalation message is updated for everyone.")


def _open(
    ctx: BotContext,
    client: WebClient,
    click: Click,
    build: Callable[[Card, ReviewRules, Origin], dict[str, Any]],
) -> None:
    card, reply = check_may_act(ctx, click.decision_pk, click.user)
    if reply is not None or card is None:
        if reply is not None:
            tell(ctx, client, click.user, reply, channel=click.channel, home=click.home)
        return
    origin = Origin(click.decision_pk, click.channel, click.message_ts, click.home)
    slack_call("views.open", client.views_open, trigger_id=click.trigger_id, view=build(card, ctx.rules, origin))


def register(app: App, ctx: BotContext) -> None:
    @guarded
    def approve(body: dict[str, Any], client: WebClient) -> None:
        _decide(ctx, client, Click.of(body), ReviewChange("approve"))

    @guarded
    def take_next_best_action(body: dict[str, Any], client: WebClient) -> None:
        _decide(ctx, client, Click.of(body), ReviewChange("approve", took_next_best_action=True))

    @guarded
    def open_reassign(body: dict[str, Any], client: WebClient) -> None:
        _open(ctx, client, Click.of(body), reassign_modal)

    @guarded
    def open_override(body: dict[str, Any], client: WebClient) -> None:
        _open(ctx, client, Click.of(body), override_modal)

    app.action(ids.APPROVE)(ack=_ack, lazy=[approve])
    app.action(ids.NEXT_BEST_ACTION)(ack=_ack, lazy=[take_next_best_action])
    app.action(ids.REASSIGN)(ack=_ack, lazy=[open_reassign])
    app.action(ids.OVERRIDE)(ack=_ack, lazy=[open_override])
