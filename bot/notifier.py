"""Performs the ``slack.*`` outbox effects: escalations, assignment DMs, in-place updates and
generic messages — each message exactly once, even across crashes and retries.

The outbox delivers at least once, so posting is made idempotent here:

1. every message has a stable key (``escalation:{pk}:channel``, ``escalation:{pk}:dm``,
   ``assignment:{pk}``, ``assignment:{pk}:review``, ``message:{outbox dedupe key}``) and is recorded in
   ``slack_messages`` (channel + ts) right after Slack accepts it;
2. a key already recorded is never posted again;
3. every post carries message metadata ``{event_type: loopgate_post, event_payload: {key}}``,
   so when an earlier attempt may have posted without recording (the process died, or the
   response was lost), the retry first looks for its key in ``conversations.history`` since
   the effect was queued and records what it finds instead of posting twice.

The WebClient used here has no automatic retries: an SDK-level retry after a lost response
would post twice behind the outbox's back. Rate limits become ``Retry(after=Retry-After)``
for the item and ``Deferred`` (no attempt used) for the rest of the batch; errors a retry
cannot fix (invalid blocks, user gone) are ``Dead``; a channel the bot is not in is retried
slowly until someone invites it; Slack unavailable or refusing the bot token makes the batch
wait, for as long as an outage lasts or an admin takes (:func:`bot.errors.effect_outcomes`).
An escalation's copies (channel, owner's DM) are posted independently: one refused copy does
not hold back the other, and the retry posts only what is missing.

``slack.message`` payload (for the scheduler, digests, trust announcements)::

    {"channel": "C0123" | "user": "<rep id> | U0123", "text": "fallback text",
     "blocks": [...] (optional, validated with slack_sdk.models, ≤ 50),
     "sla_clock": 12 (optional: the SLA clock a reminder is about; not sent once it is answered)}

Queue it with :func:`enqueue_message`, which validates the payload before it is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot import ids
from bot.blocks.assignment import assignment_message
from bot.blocks.common import Message, validate_message
from bot.blocks.escalation import escalation_message
from bot.cards import Card, load_card
from bot.errors import (
    PayloadInvalid,
    SlackCallFailed,
    SlackRateLimited,
    SlackRefused,
    effect_outcomes,
    slack_call,
)
from bot.sla import ReviewClock
from core.review import ReviewRules
from core.store import outbox
from core.store.db import Database, dialect_insert
from core.store.models import SlackMessage
from core.store.outbox import Dead, Done, OutboxItem, Outcome
from core.store.sla_clocks import answered

__all__ = ["KINDS", "SlackNotifier", "enqueue_message"]

log = logging.getLogger(__name__)

# the update after a click first: the person who clicked is looking at the message
KINDS: tuple[str, ...] = ("slack.decision_update", "slack.escalation", "slack.assignment", "slack.message")
HISTORY_PAGE = 200
HISTORY_PAGES = 5
CLOCK_SKEW = timedelta(minutes=2)


def enqueue_message(
    session: Session,
    dedupe_key: str,
    *,
    text: str,
    now: datetime,
    channel: str | None = None,
    user: str | None = None,
    blocks: Sequence[Any] | None = None,
    sla_clock: int | None = None,
) -> bool:
    """Queue a ``slack.message`` in the caller's transaction (validated now, not at send time).

    ``user`` is a policy rep id or a Slack user id (the message goes to their DM with the bot);
    ``channel`` a channel id. A message about ``sla_clock`` (a nudge, a breach notice) is not
    sent if the clock is answered before the outbox gets to it. Returns whether a row was added
    (the key is used once)."""
    if (channel is None) == (user is None):
        raise PayloadInvalid("slack.message", "target", "give exactly one of channel or user")
    message = validate_message(text, blocks or [], where="slack.message")
    payload: dict[str, Any] = {"text": message.text}
    if message.blocks:
        payload["blocks"] = message.blocks
    payload["channel" if channel else "user"] = channel or user
    if sla_clock is not None:
        payload["sla_clock"] = sla_clock
    return outbox.enqueue(session, "slack.message", dedupe_key, payload, now=now)


@dataclass(frozen=True, slots=True)
class _Posted:
    channel: str
    ts: str
    new: bool


class SlackNotifier:
    """The :class:`core.store.outbox.EffectHandler` for ``slack.*`` kinds."""

    kinds: tuple[str, ...] = KINDS
    batch_size = 20

    def __init__(
        self,
        db: Database,
        rules: ReviewRules,
        client: WebClient,
        *,
        review_clock: ReviewClock,
        clock: Callable[[], datetime],
    ) -> None:
        self.db = db
        self.client = client
        self.clock = clock
        self.adopt(rules, review_clock)
        self._ims: dict[str, str] = {}

    def adopt(self, rules: ReviewRules, review_clock: ReviewClock) -> None:
        """Render with another policy's rules from now on (a promote or rollback while serving)."""
        self.rules, self.review_clock = rules, review_clock
        self.dm_owner = rules.policy.notifications.dm_owner_on_review

    # --- the handler --------------------------------------------------------------------------

    def perform(self, items: Sequence[OutboxItem]) -> Mapping[int, Outcome]:
        return effect_outcomes(items, self._perform)

    def _perform(self, item: OutboxItem) -> Outcome:
        if item.kind == "slack.message":
            return self._message(item)
        pk = int(item.payload["decision_pk"])
        card, shown = self._card(pk, with_messages=item.kind == "slack.decision_update")
        if card is None:
            return Dead(f"decision {pk} does not exist")
        if item.kind == "slack.escalation":
            return self._escalation(item, card)
        if item.kind == "slack.assignment":
            return self._assignment(item, card)
        return Done(self._update(card, shown))

    def _card(self, pk: int, *, with_messages: bool = False) -> tuple[Card | None, list[SlackMessage]]:
        """The decision's card and, when asked, the messages that show it (else none): one
        read for an update, not two."""
        with self.db.sessions() as session:
            card = load_card(session, self.rules, self.review_clock, pk)
            return card, self._messages(session, pk) if with_messages and card is not None else []

    @staticmethod
    def _messages(session: Session, decision_pk: int) -> list[SlackMessage]:
        query = select(SlackMessage).where(SlackMessage.decision_pk == decision_pk).order_by(SlackMessage.pk)
        return list(session.execute(query).scalars())

    # --- effects --------------------------------------------------------------------------------

    def _escalation(self, item: OutboxItem, card: Card) -> Outcome:
        # settled (superseded, reviewed elsewhere) before anyone saw it: post nothing new, but
        # adopt copies an earlier attempt may have posted, so they get updated below
        post = card.state == "pending_review" or self._shown(card.decision_pk)
        posted: dict[str, Any] = {}
        rendered = card.rendered
        targets = [("channel", card.channel, "channel")]
        if self.dm_owner and card.owner_slack:
            targets.append(("dm", card.owner_slack, "owner"))
        failed: SlackCallFailed | None = None
        for name, destination, audience in targets:
            key = f"escalation:{card.decision_pk}:{name}"
            message = escalation_message(card, audience=audience)
            try:
                target = self._post_once(item, key, card, destination, message, post=post)
            except SlackRateLimited:
                raise  # the next post would hit the same limit: the whole row waits
            except SlackCallFailed as exc:
                # each copy on its own: a review channel the bot was never invited to must not
                # keep the owner's DM from going out. The row fails below, and its retry skips
                # the copies already recorded under their keys
                failed = failed or exc
                continue
            if target is not None:
                posted[name] = {"channel": target.channel, "ts": target.ts, "new": target.new}
        if not posted and failed is None:
            return Done({"skipped": card.state})
        # a review or a newer decision may have landed while we posted: show it now
        latest, shown = self._card(card.decision_pk, with_messages=True)
        if latest is not None and latest.rendered != rendered:
            posted["update"] = self._update(latest, shown)
        if failed is not None:
            raise failed
        return Done(posted)

    def _assignment(self, item: OutboxItem, card: Card) -> Outcome:
        # automation's assignment goes to the decision's owner; a review's to the rep it names,
        # the final owner (the card's owner is still who automation proposed)
        owner = item.payload.get("owner")
        if owner is None:
            key, slack_user = f"assignment:{card.decision_pk}", card.owner_slack
        else:
            rep = self.rules.roster.reps.get(str(owner))
            key, slack_user = f"assignment:{card.decision_pk}:review", rep.slack_user if rep else None
        if not slack_user:
            return Done({"skipped": "the owner has no Slack user in the policy"})
        message = assignment_message(card, reviewed=owner is not None)
        target = self._post_once(item, key, card, slack_user, message)
        assert target is not None  # post=True always yields a message
        return Done({"channel": target.channel, "ts": target.ts, "new": target.new})

    def _message(self, item: OutboxItem) -> Outcome:
        payload = item.payload
        if payload.get("sla_clock") is not None and self._answered(int(payload["sla_clock"])):
            # reviewed, touched or given to someone else since the scan queued it: moot now
            return Done({"skipped": "the SLA clock is answered"})
        message = validate_message(str(payload.get("text") or ""), payload.get("blocks") or [], where="slack.message")
        if payload.get("channel"):
            destination = str(payload["channel"])
        elif payload.get("user"):
            destination = self._slack_user(str(payload["user"]))
        else:
            return Dead("slack.message needs a channel or a user")
        target = self._post_once(item, f"message:{item.dedupe_key}", None, destination, message)
        assert target is not None  # post=True always yields a message
        return Done({"channel": target.channel, "ts": target.ts, "new": target.new})

    def _update(self, card: Card, rows: Sequence[SlackMessage]) -> dict[str, Any]:
        """Rebuild every message shown for the decision (channel and DM copies) in place.

        Each copy on its own: one Slack will never let us edit (its channel archived, the edit
        window closed, the bot removed) must not keep the others — often the very DM the person
        clicked in — showing buttons for a lead already decided. Such a copy is reported under
        ``refused`` and skipped. Any other failure is raised once every copy was tried, so the
        row is retried; the retry skips the copies done here (recorded as showing this card)."""
        report: dict[str, Any] = {"updated": 0, "unchanged": 0, "gone": [], "refused": {}}
        failed: SlackCallFailed | None = None
        for row in rows:
            if row.purpose != "escalation":
                continue  # an assignment DM says what happened then; it does not change
            if row.rendered == card.rendered:
                report["unchanged"] += 1
                continue
            audience = "owner" if row.key.endswith(":dm") else "channel"
            message = escalation_message(card, audience=audience)
            try:
                slack_call("chat.update", self.client.chat_update, channel=row.channel, ts=row.ts, **message.kwargs())
            except SlackRateLimited:
                raise  # the next edit would hit the same limit: the row waits as told
            except SlackRefused as exc:
                if exc.error in ("message_not_found", "channel_not_found", "cant_update_message"):
                    report["gone"].append(row.key)  # deleted by a person: nothing left to update
                elif exc.permanent or exc.not_a_member:
                    log.warning("Slack will not update %s of decision %s: %s", row.key, card.decision_pk, exc)
                    report["refused"][row.key] = exc.error
                else:
                    failed = failed or exc
                continue
            except SlackCallFailed as exc:
                failed = failed or exc
                continue
            with self.db.transaction() as session:
                session.execute(
                    update(SlackMessage)
                    .where(SlackMessage.pk == row.pk)
                    .values(rendered=card.rendered, updated_at=self.clock())
                )
            report["updated"] += 1
        if failed is not None:
            raise failed
        return report

    # --- exactly once ---------------------------------------------------------------------------

    def _slack_user(self, who: str) -> str:
        if who[:1] in ("U", "W") and who.upper() == who:
            return who
        rep = self.rules.roster.reps.get(who)
        if rep is None or not rep.slack_user:
            raise PayloadInvalid("slack.message", "user", f"'{who}' is not a rep with a Slack user in the policy")
        return rep.slack_user

    def _conversation(self, destination: str) -> str:
        """A channel id as is; a user's DM channel (opened once and remembered)."""
        if destination[:1] not in ("U", "W"):
            return destination
        if destination not in self._ims:
            opened = slack_call("conversations.open", self.client.conversations_open, users=destination)
            self._ims[destination] = str(opened["channel"]["id"])
        return self._ims[destination]

    def _answered(self, clock_pk: int) -> bool:
        with self.db.sessions() as session:
            return answered(session, clock_pk)

    def _shown(self, decision_pk: int) -> bool:
        with self.db.sessions() as session:
            return (
                session.execute(select(SlackMessage.pk).where(SlackMessage.decision_pk == decision_pk).limit(1)).first()
                is not None
            )

    def _recorded(self, key: str) -> SlackMessage | None:
        with self.db.sessions() as session:
            return session.execute(select(SlackMessage).where(SlackMessage.key == key)).scalar_one_or_none()

    def _record(
        self, key: str, card: Card | None, purpose: str, channel: str, ts: str, *, rendered: str | None = None
    ) -> SlackMessage:
        """Record the message under its key; if another worker recorded the key first, return
        theirs (the caller then removes its own copy)."""
        with self.db.transaction() as session:
            session.execute(
                dialect_insert(session, SlackMessage)
                .values(
                    key=key,
                    decision_pk=card.decision_pk if card else None,
                    purpose=purpose,
                    channel=channel,
                    ts=ts,
                    rendered=rendered or (card.rendered if card else None),
                    posted_at=self.clock(),
                )
                .on_conflict_do_nothing(index_elements=["key"])
            )
            return session.execute(select(SlackMessage).where(SlackMessage.key == key)).scalar_one()

    def _find_posted(self, channel: str, key: str, since: datetime) -> str | None:
        """The ts of a message we posted with this key, looking back to when it was queued."""
        cursor: str | None = None
        oldest = f"{(since - CLOCK_SKEW).timestamp():.6f}"
        for _ in range(HISTORY_PAGES):
            page = slack_call(
                "conversations.history",
                self.client.conversations_history,
                channel=channel,
                oldest=oldest,
                limit=HISTORY_PAGE,
                include_all_metadata=True,
                cursor=cursor,
            )
            for message in page.get("messages") or []:
                metadata = message.get("metadata") or {}
                if (
                    metadata.get("event_type") == ids.METADATA_EVENT
                    and (metadata.get("event_payload") or {}).get("key") == key
                ):
                    return str(message["ts"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not page.get("has_more") or not cursor:
                return None
        log.warning("gave up looking for %s after %d history pages; posting it", key, HISTORY_PAGES)
        return None

    def _post_once(
        self, item: OutboxItem, key: str, card: Card | None, destination: str, message: Message, *, post: bool = True
    ) -> _Posted | None:
        """Post ``message`` under ``key`` unless it is already out there (then return that).
        With ``post=False`` only find and record a copy an earlier attempt posted."""
        purpose = key.split(":", 1)[0]
        existing = self._recorded(key)
        if existing is not None:
            return _Posted(existing.channel, existing.ts, False)
        if not post and item.attempts <= 1:
            return None
        channel = self._conversation(destination)
        if item.attempts > 1:
            found = self._find_posted(channel, key, item.created_at)
            if found is not None:
                # recorded as shown with what it showed back then, so the update below refreshes it
                self._record(key, card, purpose, channel, found, rendered="unknown")
                return _Posted(channel, found, False)
        if not post:
            return None
        response = slack_call(
            "chat.postMessage",
            self.client.chat_postMessage,
            channel=channel,
            metadata={"event_type": ids.METADATA_EVENT, "event_payload": {"key": key}},
            unfurl_links=False,
            unfurl_media=False,
            **message.kwargs(),
        )
        posted_channel, ts = str(response["channel"]), str(response["ts"])
        kept = self._record(key, card, purpose, posted_channel, ts)
        if (kept.channel, kept.ts) != (posted_channel, ts):
            # another worker posted the same effect at the same moment (a lease ran out under a
            # slow call) and recorded it first: take ours back so people see one message
            log.warning("%s was posted twice by racing workers; deleting the second copy", key)
            slack_call("chat.delete", self.client.chat_delete, channel=posted_channel, ts=ts)
            return _Posted(kept.channel, kept.ts, False)
        return _Posted(posted_channel, ts, True)
