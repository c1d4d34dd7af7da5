"""Clicks that record a review (Approve, the next-best-action button) land in a durable inbox
before they are acknowledged.

Slack never resends an acknowledged click, so whatever the ack confirms must survive the
process dying right after it. Recording the review inside the ack did that, but every ack then
waited for the busiest lock in the store (the audit chain's head): at 200 clicks/s over two
replicas acks took seconds. So the ack only inserts a row in the outbox — one short insert, no
shared lock — and the lazy listener records the review and completes that row in one
transaction. If the process dies in between, the row becomes due after :data:`GRACE` and any
replica's outbox worker records it (:class:`ClickInbox`); the review itself is first-wins, so
the lazy listener and a worker racing on the same click still make one review. The lazy
listener starts only once its ack has stored the click (:mod:`bot.accepted`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

from bot.context import BotContext
from bot.review_flow import record
from core.review import AlreadyDecided, NotAllowed, NotPending, ReviewChange
from core.store import outbox
from core.store.outbox import Done, OutboxItem, Outcome

__all__ = ["GRACE", "KIND", "ClickInbox", "accept", "change_of", "inbox_key"]

KIND = "slack.click"
GRACE = timedelta(seconds=15)  # the lazy listener's head start before a worker takes the row


def inbox_key(user: str, decision_pk: int, action_ts: str) -> str:
    return f"{KIND}:{decision_pk}:{user}:{action_ts}"


def change_of(payload: Mapping[str, object]) -> ReviewChange:
    return ReviewChange("approve", took_next_best_action=bool(payload.get("took_next_best_action")))


def accept(ctx: BotContext, user: str, decision_pk: int, action_ts: str, change: ReviewChange) -> str:
    """Store the click (once per click: Slack's retries of it land on the same key)."""
    key = inbox_key(user, decision_pk, action_ts)
    payload = {"decision_pk": decision_pk, "user": user, "took_next_best_action": change.took_next_best_action}
    try:
        with ctx.db.transaction(urgent=True) as session:
            now = ctx.clock()
            outbox.enqueue(session, KIND, key, payload, now=now, available_at=now + GRACE)
    except BaseException:
        ctx.accepted.settle(key, stored=False)
        raise
    ctx.accepted.settle(key, stored=True)
    return key


class ClickInbox:
    """The outbox handler for clicks whose lazy listener never finished (the process died)."""

    kinds: tuple[str, ...] = (KIND,)
    batch_size = 50

    def __init__(self, ctx: BotContext) -> None:
        self.ctx = ctx

    def perform(self, items: Sequence[OutboxItem]) -> Mapping[int, Outcome]:
        outcomes: dict[int, Outcome] = {}
        for item in items:
            user, pk = str(item.payload["user"]), int(item.payload["decision_pk"])
            try:
                recorded = record(self.ctx, user, pk, change_of(item.payload))
                outcomes[item.pk] = Done({"review": recorded.pk})
            except AlreadyDecided as exc:
                mine = exc.reviewer == user
                outcomes[item.pk] = Done({"review": "recorded before" if mine else f"decided by {exc.reviewer}"})
            except (NotAllowed, NotPending) as exc:
                outcomes[item.pk] = Done({"refused": str(exc)})
        return outcomes
