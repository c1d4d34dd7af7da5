"""Performs ``slack.file`` outbox effects: a file (the digest's chart) uploaded to a channel
with ``files_upload_v2`` — exactly once, even across crashes and retries.

``files_upload_v2`` is three calls (``files.getUploadURLExternal``, the upload, and
``files.completeUploadExternal``, which shares the file in the channel). The outbox delivers at
least once, so, as for messages (:mod:`bot.notifier`):

1. each upload has a stable key (``file:{outbox dedupe key}``) recorded in ``slack_messages``
   (channel and file id) right after Slack accepts it, and a recorded key is never uploaded
   again;
2. the file name is unique per effect (the caller puts the period in it, e.g.
   ``loopgate-digest-2026-W47.png``), so when an earlier attempt may have shared the file
   without recording it (the process died, the response was lost), the retry first looks for a
   message carrying a file of that name in ``conversations.history`` since the effect was
   queued, and records it instead of uploading twice.

Payload: ``{"channel", "filename", "title", "comment", "content_b64"}`` — queue it with
:func:`enqueue_file`. Upload files need the ``files:write`` scope (``manifest.yaml``).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.errors import PayloadInvalid, effect_outcomes, slack_call
from bot.text import clip
from core.store import outbox
from core.store.db import Database, dialect_insert
from core.store.models import SlackMessage
from core.store.outbox import Dead, Done, OutboxItem, Outcome

__all__ = ["FILE_KIND", "MAX_BYTES", "SlackFileUploader", "enqueue_file"]

log = logging.getLogger(__name__)

FILE_KIND = "slack.file"
MAX_BYTES = 2_000_000  # a chart is tens of kilobytes; anything this big does not belong in the outbox
HISTORY_PAGE = 200
CLOCK_SKEW = timedelta(minutes=2)


def enqueue_file(
    session: Session,
    dedupe_key: str,
    *,
    channel: str,
    filename: str,
    content: bytes,
    title: str,
    comment: str,
    now: datetime,
) -> bool:
    """Queue an upload in the caller's transaction; returns whether a row was added.
    ``comment`` is mrkdwn: escape any CRM text in it."""
    if not content or len(content) > MAX_BYTES:
        raise PayloadInvalid("slack.file", "content", f"{len(content)} bytes; 1 to {MAX_BYTES} allowed")
    payload = {
        "channel": channel,
        "filename": filename,
        "title": clip(title, 250),
        "comment": clip(comment, 3000),
        "content_b64": base64.b64encode(content).decode("ascii"),
    }
    return outbox.enqueue(session, FILE_KIND, dedupe_key, payload, now=now)


class SlackFileUploader:
    """The :class:`core.store.outbox.EffectHandler` for ``slack.file``."""

    kinds: tuple[str, ...] = (FILE_KIND,)
    batch_size = 5

    def __init__(self, db: Database, client: WebClient, *, clock: Callable[[], datetime]) -> None:
        self.db, self.client, self.clock = db, client, clock

    def perform(self, items: Sequence[OutboxItem]) -> Mapping[int, Outcome]:
        return effect_outcomes(items, self._upload)

    def _upload(self, item: OutboxItem) -> Outcome:
        payload = item.payload
        channel, filename = str(payload.get("channel") or ""), str(payload.get("filename") or "")
        if not channel or not filename or not payload.get("content_b64"):
            return Dead("slack.file needs channel, filename and content_b64")
        key = f"file:{item.dedupe_key}"[:200]
        recorded = self._recorded(key)
        if recorded is not None:
            return Done({"channel": recorded.channel, "file": recorded.ts, "new": False})
        if item.attempts > 1:
            found = self._find_shared(channel, filename, item.created_at)
            if found is not None:
                kept = self._record(key, channel, found)
                return Done({"channel": kept.channel, "file": kept.ts, "new": False, "found": True})
        response = slack_call(
            "files.upload_v2",
            self.client.files_upload_v2,
            channel=channel,
            content=base64.b64decode(payload["content_b64"]),
            filename=filename,
            title=str(payload.get("title") or filename),
            initial_comment=str(payload.get("comment") or ""),
        )
        files = response.get("files") or [response.get("file") or {}]
        file_id = str((files[0] or {}).get("id") or "")
        kept = self._record(key, channel, file_id)
        if kept.ts != file_id:
            log.warning("%s was uploaded twice by racing workers; %s is the copy kept", key, kept.ts)
        return Done({"channel": channel, "file": file_id, "new": kept.ts == file_id})

    def _recorded(self, key: str) -> SlackMessage | None:
        with self.db.sessions() as session:
            return session.execute(select(SlackMessage).where(SlackMessage.key == key)).scalar_one_or_none()

    def _record(self, key: str, channel: str, file_id: str) -> SlackMessage:
        """Record the upload (``ts`` holds the file id); an earlier record of the key wins."""
        with self.db.transaction() as session:
            session.execute(
                dialect_insert(session, SlackMessage)
                .values(
                    key=key,
                    decision_pk=None,
                    purpose="file",
                    channel=channel,
                    ts=file_id[:32],
                    rendered=None,
                    posted_at=self.clock(),
                )
                .on_conflict_do_nothing(index_elements=["key"])
            )
            return session.execute(select(SlackMessage).where(SlackMessage.key == key)).scalar_one()

    def _find_shared(self, channel: str, filename: str, since: datetime) -> str | None:
        """The id of a file named ``filename`` shared in ``channel`` since the effect was queued."""
        cursor: str | None = None
        oldest = f"{(since - CLOCK_SKEW).timestamp():.6f}"
        for _ in range(5):
            page = slack_call(
                "conversations.history",
                self.client.conversations_history,
                channel=channel,
                oldest=oldest,
                limit=HISTORY_PAGE,
                cursor=cursor,
            )
            for message in page.get("messages") or []:
                for file in message.get("files") or []:
                    if file.get("name") == filename:
                        return str(file.get("id") or "")
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not page.get("has_more") or not cursor:
                return None
        return None


def decode(payload: Mapping[str, Any]) -> bytes:
    """The file's bytes from a ``slack.file`` payload (for tests and the sandbox)."""
    return base64.b64decode(str(payload["content_b64"]))
