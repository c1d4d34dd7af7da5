"""What the sandbox tests wait for in the store: escalations the bot has posted, and reviews."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from core.store.db import Database
from core.store.models import Decision, SlackMessage


def posted_escalations(db: Database, *where: Any) -> list[tuple[Decision, str]]:
    """Pending escalations proposed to a rep whose channel message is posted (with its ts),
    oldest first; ``where`` narrows them (``Decision.team == "mm"``)."""
    with db.sessions() as s:
        rows = s.execute(
            select(Decision, SlackMessage.ts)
            .join(SlackMessage, SlackMessage.decision_pk == Decision.pk)
            .where(SlackMessage.key.like("escalation:%:channel"), Decision.state == "pending_review",
                   Decision.owner_kind == "rep", *where)
            .order_by(Decision.pk)
        ).all()  # fmt: skip
    return [(d, ts) for d, ts in rows]


def is_reviewed(db: Database, decision_pk: int) -> bool:
    with db.sessions() as s:
        row = s.get(Decision, decision_pk)
        return row is not None and row.state == "reviewed"
