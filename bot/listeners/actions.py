"""Buttons on escalations (channel, DM, App Home).

Approve and the next-best-action button are stored in the click inbox before the ack (Slack
never resends an acknowledged click; see :mod:`bot.click_inbox`), then a lazy function records
the review and completes the inbox row in one transaction, and tells the person if they were
refused; the lazy function waits for its ack to have stored the click (:mod:`bot.accepted`).
Reassign… and Override… ack at once and open their modal lazily (after checking the
person may act, so nobody fills in a form for nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from sqlalchemy import select

from bot import ids
from bot.blocks.modals import Origin, override_modal, reassign_modal
from bot.cards import Card
from bot.click_inbox import accept, inbox_key
from bot.context import BotContext
from bot.errors import slack_call
from bot.listeners.errors import guarded
from bot.review_flow import Click, check_may_act, publish_home, record, refusal, tell
from core.review import AlreadyDecided, NotAllowed, NotPending, ReviewChange, ReviewRules
from core.store import outbox
from core.store.models import OutboxRow

__all__ = ["register"]

ACK_WINDOW = 3.0  # Slack's limit for an ack: a click not stored by then is not waited for


def _ack(ack: Ack) -> None:
    ack()


def _action_ts(body: dict[str, Any]) -> str:
    return str(body["actions"][0].get("action_ts") or body.get("trigger_id") or "")


def _accept_then_ack(ctx: BotContext, ack: Ack, body: dict[str, Any], change: ReviewChange) -> None:
    click = Click.of(body)
    accept(ctx, click.user, click.decision_pk, _action_ts(body), change)  # raises: no ack, Slack says so
    ack()


def _decide(ctx: BotContext, client: WebClient, body: dict[str, Any], change: ReviewChange) -> None:
    click = Click.of(body)
    key = inbox_key(click.user, click.decision_pk, _action_ts(body))
    if not ctx.accepted.wait(key, ACK_WINDOW):
        return  # the ack failed (Slack said so, nothing stored) or is still at it (its row waits for a worker)
    try:
        record(ctx, click.user, click.decision_pk, change, inbox_key=key)
    except AlreadyDecided as exc:
        if exc.reviewer == click.user and _settled(ctx, key):
            return  # this very click was recorded already: Slack's retry of it, or a worker was first
        _refused(ctx, client, click, key, exc)
        return
    except (NotAllowed, NotPending) as exc:
        _refused(ctx, client, click, key, exc)
        return
    if click.home:
        publish_home(ctx, client, click.user, notice="✅ Approved. The escalation message is updated for everyone.")


def _settled(ctx: BotContext, key: str) -> bool:
    with ctx.db.sessions() as session:
        status = session.execute(select(OutboxRow.status).where(OutboxRow.dedupe_key == key)).scalar_one_or_none()
    return status == "done"


def _refused(ctx: BotContext, client: WebClient, click: Click, key: str, exc: NotAllowed | NotPending) -> None:
    with ctx.db.transaction() as session:
        outbox.complete(session, key, now=ctx.clock(), result={"refused": str(exc)})
    tell(ctx, client, click.user, refusal(ctx, exc, click.user), channel=click.channel, home=click.home)


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
    def approve_ack(ack: Ack, body: dict[str, Any]) -> None:
        _accept_then_ack(ctx, ack, body, ReviewChange("approve"))

    def take_next_best_action_ack(ack: Ack, body: dict[str, Any]) -> None:
        _accept_then_ack(ctx, ack, body, ReviewChange("approve", took_next_best_action=True))

    @guarded
    def approve(body: dict[str, Any], client: WebClient) -> None:
        _decide(ctx, client, body, ReviewChange("approve"))

    @guarded
    def take_next_best_action(body: dict[str, Any], client: WebClient) -> None:
        _decide(ctx, client, body, ReviewChange("approve", took_next_best_action=True))

    @guarded
    def open_reassign(body: dict[str, Any], client: WebClient) -> None:
        _open(ctx, client, Click.of(body), reassign_modal)

    @guarded
    def open_override(body: dict[str, Any], client: WebClient) -> None:
        _open(ctx, client, Click.of(body), override_modal)

    app.action(ids.APPROVE)(ack=approve_ack, lazy=[approve])
    app.action(ids.NEXT_BEST_ACTION)(ack=take_next_best_action_ack, lazy=[take_next_best_action])
    app.action(ids.REASSIGN)(ack=_ack, lazy=[open_reassign])
    app.action(ids.OVERRIDE)(ack=_ack, lazy=[open_override])
