"""Clicks that record a review (Approve, the next-best-action button): the ack stores the click
in a durable inbox, and the outbox worker records it.

Slack never resends an acknowledged click, so whatever the ack confirms must survive the
process dying right after it. The ack therefore inserts one outbox row (one short insert, no
shared lock) and wakes the worker; the worker records the review (first wins), which queues
the message update and the CRM write-back, and tells a refused person why. A row whose worker
dies is taken again after its lease, by any replica.

This work used to run in a Bolt lazy listener. Measured with ``bench/slack_ack.py``, 8 clicks
in flight: a lazy listener per click (each a copied request and a thread, contending with the
acks for the store's write lock and the interpreter) made ack p99 6.5× a bare Bolt app's;
one worker doing the same work in turn, 2.3×. The inbox row also exists before anyone looks
for it, so there is no race between an ack and its work left to arbitrate.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from slack_sdk import WebClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.context import BotContext
from bot.errors import SlackCallFailed
from bot.review_flow import Click, publish_home, record_many, refusal, tell
from core.review import AlreadyDecided, NotAllowed, NotPending, ReviewChange, ReviewError
from core.store import outbox
from core.store.models import OutboxRow
from core.store.outbox import Dead, Done, OutboxItem, Outcome, Retry
from core.store.reviews import RecordedReview

__all__ = ["KIND", "ClickInbox", "accept", "clicks_waiting", "inbox_key"]

log = logging.getLogger(__name__)

KIND = "slack.click"
APPROVED_NOTICE = "✅ Approved. The escalation message is updated for everyone."


def inbox_key(user: str, decision_pk: int, action_ts: str) -> str:
    return f"{KIND}:{decision_pk}:{user}:{action_ts}"


def accept(ctx: BotContext, click: Click, action_ts: str, change: ReviewChange) -> str:
    """Store the click (once per click: Slack's retries of it land on the same key) and wake
    the worker. Raises if it cannot be stored: then there is no ack, and Slack says so."""
    key = inbox_key(click.user, click.decision_pk, action_ts)
    payload = {
        "decision_pk": click.decision_pk,
        "user": click.user,
        "took_next_best_action": change.took_next_best_action,
        "channel": click.channel,
        "home": click.home,
    }
    outbox.enqueue_alone(ctx.db, KIND, key, payload, now=ctx.clock())
    ctx.wake_clicks()
    return key


def clicks_waiting(session: Session, decision_pk: int) -> bool:
    """Whether a click on this decision was acknowledged and is not recorded yet (its row is
    pending or claimed). Slack told the person it was accepted, so nothing may decide the lead
    for them meanwhile: the SLA scan holds a re-route while this is true (the row is recorded
    within seconds, or after a dead worker's lease; it only stays for good once it is dead)."""
    prefix = f"{KIND}:{decision_pk}:"
    found = session.execute(
        select(OutboxRow.pk)
        .where(
            OutboxRow.status.in_(("pending", "claimed")),
            OutboxRow.kind == KIND,
            func.substr(OutboxRow.dedupe_key, 1, len(prefix)) == prefix,  # substr: exact, unlike LIKE on SQLite
        )
        .limit(1)
    ).first()
    return found is not None


@dataclass(frozen=True, slots=True)
class _Stored:
    user: str
    decision_pk: int
    channel: str | None
    home: bool
    change: ReviewChange
    at: datetime  # when the ack stored it: the click's time, whenever a worker records it

    @classmethod
    def of(cls, item: OutboxItem) -> _Stored:
        payload = item.payload
        return cls(
            user=str(payload["user"]),
            decision_pk=int(payload["decision_pk"]),
            channel=payload.get("channel"),
            home=bool(payload.get("home")),
            change=ReviewChange("approve", took_next_best_action=bool(payload.get("took_next_best_action"))),
            at=item.created_at,
        )


class ClickInbox:
    """The outbox handler for stored clicks: record each, tell the person if refused."""

    kinds: tuple[str, ...] = (KIND,)
    batch_size = 50

    def __init__(self, ctx: BotContext, client: WebClient) -> None:
        self.ctx, self.client = ctx, client

    def perform(self, items: Sequence[OutboxItem]) -> Mapping[int, Outcome]:
        outcomes: dict[int, Outcome] = {}
        # PostgreSQL: the batch in one transaction. SQLite: one click per transaction, because
        # its one write lock is what the acks of further clicks wait for meanwhile
        size = len(items) if self.ctx.db.is_postgres else 1
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            clicks = [_Stored.of(item) for item in chunk]
            try:
                results = record_many(self.ctx, [(c.user, c.decision_pk, c.change, c.at) for c in clicks])
            except Exception as exc:  # the store is away: these clicks wait for a later attempt
                log.warning("could not record %d click(s): %s: %s", len(chunk), type(exc).__name__, exc)
                outcomes.update({item.pk: Retry(f"{type(exc).__name__}: {exc}") for item in chunk})
                continue
            for item, click, result in zip(chunk, clicks, results, strict=True):
                outcomes[item.pk] = self._answer(click, result, item.attempts)
        return outcomes

    def _answer(self, click: _Stored, result: RecordedReview | ReviewError, attempts: int) -> Outcome:
        if isinstance(result, AlreadyDecided) and result.reviewer == click.user and attempts > 1:
            # this very click, recorded by an attempt that did not live to settle its row
            return Done({"review": "recorded before"})
        if isinstance(result, (NotAllowed, NotPending)):
            return self._refuse(click, result)
        if not isinstance(result, RecordedReview):  # an approve is always valid: only a bug gets here
            return Dead(f"unexpected {type(result).__name__}: {result}")
        if click.home:
            try:
                publish_home(self.ctx, self.client, click.user, notice=APPROVED_NOTICE)
            except SlackCallFailed as exc:  # the review stands; the Home tab refreshes next time
                log.warning("could not refresh %s's Home: %s", click.user, exc)
        return Done({"review": result.pk})

    def _refuse(self, click: _Stored, exc: NotAllowed | NotPending) -> Outcome:
        message = refusal(self.ctx, exc, click.user)
        tell(self.ctx, self.client, click.user, message, channel=click.channel, home=click.home)
        return Done({"refused": str(exc)})
