"""Buttons on escalations (channel, DM, App Home).

Approve and the next-best-action button record the review *before* the ack: Slack does not
resend an acknowledged click, so a review stored after it would be lost if the process died in
between (the chaos test's SIGKILLs found exactly that). Recording is one short transaction; the
reply to the person (a refusal, a Home notice) and every Slack effect come after the ack.
Reassign… and Override… ack at once and open their modal lazily (after checking the person may
act, so nobody fills in a form for nothing).
"""

from __future__ import annotations

import threading
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


def _click_key(body: dict[str, Any]) -> tuple[str, str, str]:
    action = body["actions"][0]
    return (body["user"]["id"], str(action.get("value")), str(action.get("action_ts")))


_Refusal = NotAllowed | NotPending


class _Outcomes:
    """What each click's recording came to, handed from its ack to its lazy reply. Bolt starts
    lazy functions beside the ack, not after it, so the reply waits for the ack's word."""

    def __init__(self, wait: float = 30.0) -> None:
        self._ready = threading.Condition()
        self._by_click: dict[tuple[str, str, str], tuple[bool, _Refusal | None]] = {}
        self._wait = wait

    def put(self, key: tuple[str, str, str], *, recorded: bool, refusal: _Refusal | None = None) -> None:
        with self._ready:
            self._by_click[key] = (recorded, refusal)
            self._ready.notify_all()

    def take(self, key: tuple[str, str, str]) -> tuple[bool, _Refusal | None]:
        """(whether the ack got as far as an answer, the refusal if it was refused)."""
        with self._ready:
            if not self._ready.wait_for(lambda: key in self._by_click, timeout=self._wait):
                return False, None
            return self._by_click.pop(key)


def _record_then_ack(
    ctx: BotContext, outcomes: _Outcomes, ack: Ack, body: dict[str, Any], change: ReviewChange
) -> None:
    click, key = Click.of(body), _click_key(body)
    try:
        record(ctx, click.user, click.decision_pk, change)
    except (NotAllowed, NotPending) as exc:
        outcomes.put(key, recorded=True, refusal=exc)
    except BaseException:
        # no ack: Slack tells the person the click did not go through (and @app.error logs it)
        outcomes.put(key, recorded=False)
        raise
    else:
        outcomes.put(key, recorded=True)
    ack()


def _reply(ctx: BotContext, outcomes: _Outcomes, client: WebClient, body: dict[str, Any]) -> None:
    click = Click.of(body)
    known, outcome = outcomes.take(_click_key(body))
    if not known:
        return
    if outcome is not None:
        tell(ctx, client, click.user, refusal(ctx, outcome, click.user), channel=click.channel, home=click.home)
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
    outcomes = _Outcomes()

    def approve_ack(ack: Ack, body: dict[str, Any]) -> None:
        _record_then_ack(ctx, outcomes, ack, body, ReviewChange("approve"))

    def take_next_best_action_ack(ack: Ack, body: dict[str, Any]) -> None:
        _record_then_ack(ctx, outcomes, ack, body, ReviewChange("approve", took_next_best_action=True))

    @guarded
    def reply(body: dict[str, Any], client: WebClient) -> None:
        _reply(ctx, outcomes, client, body)

    @guarded
    def open_reassign(body: dict[str, Any], client: WebClient) -> None:
        _open(ctx, client, Click.of(body), reassign_modal)

    @guarded
    def open_override(body: dict[str, Any], client: WebClient) -> None:
        _open(ctx, client, Click.of(body), override_modal)

    app.action(ids.APPROVE)(ack=approve_ack, lazy=[reply])
    app.action(ids.NEXT_BEST_ACTION)(ack=take_next_best_action_ack, lazy=[reply])
    app.action(ids.REASSIGN)(ack=_ack, lazy=[open_reassign])
    app.action(ids.OVERRIDE)(ack=_ack, lazy=[open_override])
