"""The steps every way of deciding in Slack shares: who clicked what where, recording the
review, and telling the person what happened (ephemerally beside a message, or on their Home
tab). Listeners stay thin by calling these.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_sdk import WebClient

from bot.blocks.common import Message
from bot.blocks.home import HOME_ITEMS_MAX, home_view
from bot.blocks.replies import already_decided, not_allowed, not_in_policy
from bot.cards import Card, load_card
from bot.context import BotContext
from bot.errors import SlackCallFailed, slack_call
from bot.queries import pending_for
from core.review import AlreadyDecided, NotAllowed, NotPending, ReviewChange, ReviewError
from core.store.models import Decision
from core.store.reviews import RecordedReview, ReviewRequest, proposal_for, record_review

__all__ = ["Click", "check_may_act", "publish_home", "record", "record_many", "refusal", "tell"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Click:
    """A button press on an escalation, wherever it was shown."""

    user: str
    decision_pk: int
    trigger_id: str
    channel: str | None
    message_ts: str | None
    home: bool

    @classmethod
    def of(cls, body: dict[str, Any]) -> Click:
        action = body["actions"][0]
        container = body.get("container") or {}
        home = container.get("type") == "view"
        return cls(
            user=body["user"]["id"],
            decision_pk=int(action["value"]),
            trigger_id=body.get("trigger_id", ""),
            channel=None if home else container.get("channel_id"),
            message_ts=None if home else container.get("message_ts"),
            home=home,
        )


def tell(ctx: BotContext, client: WebClient, user: str, message: Message, *, channel: str | None, home: bool) -> None:
    """Answer one person only: an ephemeral message where they clicked, or (on the Home tab,
    where ephemeral messages cannot go) a notice at the top of their refreshed Home."""
    try:
        if channel and not home:
            slack_call("chat.postEphemeral", client.chat_postEphemeral, channel=channel, user=user, **message.kwargs())
        else:
            publish_home(ctx, client, user, notice=message.blocks[0]["text"]["text"] if message.blocks else None)
    except SlackCallFailed as exc:
        # the decision itself is safe in the store; a reply that cannot be delivered is only logged
        log.warning("could not tell %s: %s", user, exc)


def publish_home(ctx: BotContext, client: WebClient, user: str, *, notice: str | None = None) -> None:
    """Build and publish ``user``'s Home tab from the store."""
    rep = ctx.rules.rep_for_slack(user)
    now = ctx.clock()
    if rep is None:
        view = home_view([], now=now, notice=not_in_policy().text)
    else:
        with ctx.db.sessions() as session:
            cards, total = pending_for(session, ctx.rules, ctx.review_clock, rep, now=now, limit=HOME_ITEMS_MAX)
        view = home_view(cards, now=now, total=total, notice=notice)
    slack_call("views.publish", client.views_publish, user_id=user, view=view)


def _card(ctx: BotContext, decision_pk: int) -> Card | None:
    with ctx.db.sessions() as session:
        return load_card(session, ctx.rules, ctx.review_clock, decision_pk)


def check_may_act(ctx: BotContext, decision_pk: int, user: str) -> tuple[Card | None, Message | None]:
    """Before opening a modal: the card, or the reply that says why this person cannot act."""
    card = _card(ctx, decision_pk)
    with ctx.db.sessions() as session:
        row = session.get(Decision, decision_pk)
    if card is None or row is None:
        return None, already_decided(NotPending(decision_pk, "missing"), None)
    if not card.pending:
        outcome = card.outcome
        error: NotPending = (
            AlreadyDecided(decision_pk, outcome.kind, outcome.by_slack or outcome.by_name, None, outcome.at)
            if outcome
            else NotPending(decision_pk, card.state)
        )
        return card, already_decided(error, card, you=user)
    rep = ctx.rules.rep_for_slack(user)
    proposal = proposal_for(row)
    if ctx.rules.authority(proposal, rep.id if rep else None) is None:
        return card, not_allowed(NotAllowed(decision_pk, user, ctx.rules.who_may(proposal)), card)
    return card, None


def record(ctx: BotContext, user: str, decision_pk: int, change: ReviewChange) -> RecordedReview:
    """Record a review by a Slack user (raises :class:`core.review.ReviewError`), then wake the
    outbox so the message updates and the write-back go out now."""
    [result] = record_many(ctx, [(user, decision_pk, change, None)])
    if isinstance(result, ReviewError):
        raise result
    return result


def record_many(
    ctx: BotContext, clicks: Sequence[tuple[str, int, ReviewChange, datetime | None]]
) -> list[RecordedReview | ReviewError]:
    """Record ``(user, decision_pk, change, clicked_at)`` reviews in one transaction, each as
    :func:`record` would; a refused one comes back as its :class:`core.review.ReviewError` and
    wrote nothing. ``clicked_at`` is when the person clicked (``None``: now), which the review
    keeps as its time however late it is recorded.
    For the click inbox on PostgreSQL: one worker recording a burst one transaction at a time
    spent its time on round trips (connection check, begin, commit) for each click."""
    results: list[RecordedReview | ReviewError] = []
    with ctx.db.transaction() as session:
        now = ctx.clock()
        for user, decision_pk, change, clicked_at in clicks:
            rep = ctx.rules.rep_for_slack(user)
            request = ReviewRequest(decision_pk, user, rep.id if rep else None, change, clicked_at)
            try:
                results.append(record_review(session, ctx.rules, request, now=now))
            except ReviewError as exc:  # checked before anything is written
                results.append(exc)
    ctx.wake_outbox()
    return results


def refusal(ctx: BotContext, exc: ReviewError, user: str) -> Message:
    """The reply to a review that was not recorded (someone was first, or not allowed)."""
    card = _card(ctx, exc.decision_pk)
    if isinstance(exc, NotAllowed):
        return not_allowed(exc, card)
    if isinstance(exc, NotPending):
        return already_decided(exc, card, you=user)
    raise exc
