"""Modal submissions (Reassign, Override). The review is recorded before the ack, because the
ack is the only way to answer on the form itself: a missing or invalid field comes back as
``response_action: errors`` on its block; "someone was first" or "you may not" replaces the
modal with a notice. Recording is one short transaction; Slack effects go to the outbox, and
a Home tab the form came from is refreshed after the ack.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.models.views import View

from bot import ids
from bot.blocks.common import Message, plain, section, validate_view
from bot.blocks.modals import read_origin, read_submission
from bot.context import BotContext
from bot.listeners.errors import after_ack
from bot.review_flow import publish_home, record, refusal
from core.review import InvalidReview, NotAllowed, NotPending, ReviewChange

__all__ = ["register"]

FIELD_BLOCKS = {
    "owner": ids.BLOCK_OWNER,
    "reason": ids.BLOCK_REASON,
    "note": ids.BLOCK_NOTE,
    "action": ids.BLOCK_ACTION,
    "band": ids.BLOCK_BAND,
    "kind": ids.BLOCK_REASON,
}
DONE = {"reassign": "↪️ Reassigned.", "override": "✏️ Overridden."}


def notice_view(message: Message) -> dict[str, Any]:
    """A modal that only says something (replaces a form that can no longer be submitted)."""
    blocks = [section(message.blocks[0]["text"]["text"])] if message.blocks else [section(message.text)]
    return validate_view(View(type="modal", title=plain("loopgate", 24), close=plain("Close", 24), blocks=blocks))


def _submit(ctx: BotContext, ack: Ack, body: dict[str, Any], client: WebClient, kind: str) -> None:
    view = body["view"]
    user = body["user"]["id"]
    origin = read_origin(view.get("private_metadata", ""))
    values = read_submission(view)
    change = ReviewChange(
        kind,
        reason_code=values.reason_code,
        note=values.note,
        owner=values.owner,
        action=values.action,
        band=values.band,
    )
    try:
        record(ctx, user, origin.decision_pk, change)
    except InvalidReview as exc:
        ack(response_action="errors", errors={FIELD_BLOCKS.get(exc.field, ids.BLOCK_REASON): exc.message})
        return
    except (NotAllowed, NotPending) as exc:
        ack(response_action="update", view=notice_view(refusal(ctx, exc, user)))
        return
    ack()  # closes the modal; the messages update through the outbox
    if origin.home:
        notice = DONE[kind] + " The escalation message is updated for everyone."
        after_ack(ctx, body, client, lambda: publish_home(ctx, client, user, notice=notice))


def register(app: App, ctx: BotContext) -> None:
    def submit_reassign(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        _submit(ctx, ack, body, client, "reassign")

    def submit_override(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        _submit(ctx, ack, body, client, "override")

    app.view(ids.REASSIGN_VIEW)(submit_reassign)
    app.view(ids.OVERRIDE_VIEW)(submit_override)
