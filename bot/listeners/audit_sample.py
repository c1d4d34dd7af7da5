"""Confirm / Flag… on the weekly digest's audit sample, and the Flag modal.

Confirm: ack, then (lazily) store the verdict and refresh the sample message in place so
everyone sees who confirmed. Flag…: ack, then open the modal (reason code required, optional
note) — only for people who may give verdicts, so nobody fills a form for nothing. The modal's
submission is recorded before the ack, so a missing reason comes back on the form
(``response_action: errors``). Every refusal (not a leader, already answered, not an automatic
decision) is an ephemeral answer or a notice in the modal; nothing is stored twice.

The button's block id is ``audit:{week}:{decision pk}``: the week finds the sample the digest
showed (kept with the week's claim), so the refresh never recounts the week.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot import ids
from bot.blocks.common import Message, section, validate_message
from bot.blocks.digest import FlagOrigin, flag_modal, read_flag_origin, sample_message
from bot.context import BotContext
from bot.errors import SlackCallFailed, slack_call
from bot.listeners.errors import after_ack, guarded
from bot.listeners.views import notice_view
from bot.text import esc
from core.review import InvalidReview, NotAllowed, NotPending
from core.store.models import Decision, Lead
from core.store.verdicts import AlreadyJudged, may_audit, record_verdict, sample_items, verdicts_by_decision

__all__ = ["register"]

log = logging.getLogger(__name__)


def _reply(text: str) -> Message:
    return validate_message(text, [section(text)], where="audit reply")


def _origin(body: dict[str, Any]) -> FlagOrigin:
    action = body["actions"][0]
    parts = str(action.get("block_id") or "").split(":")
    container = body.get("container") or {}
    return FlagOrigin(
        decision_pk=int(action["value"]),
        week=parts[1] if len(parts) == 3 and parts[0] == "audit" else "",
        channel=container.get("channel_id"),
        message_ts=container.get("message_ts"),
    )


def _tell(client: WebClient, user: str, channel: str | None, message: Message) -> None:
    if not channel:
        return
    try:
        slack_call("chat.postEphemeral", client.chat_postEphemeral, channel=channel, user=user, **message.kwargs())
    except SlackCallFailed as exc:
        log.warning("could not tell %s: %s", user, exc)


def _refusal(exc: Exception) -> Message:
    if isinstance(exc, AlreadyJudged):
        return _reply(f"You already gave this decision a verdict ({esc(exc.verdict)}). Nothing was changed.")
    if isinstance(exc, NotAllowed):
        return _reply("🚫 Audit verdicts are for admins and team managers. Nothing was changed.")
    return _reply("This is not an automatic decision that can be audited. Nothing was changed.")


def refresh_sample(ctx: BotContext, client: WebClient, origin: FlagOrigin) -> None:
    """Re-render the sample message with every verdict given so far (in place)."""
    if not (origin.week and origin.channel and origin.message_ts):
        return
    policy = ctx.policy.policy
    names = {r.id: r.name for r in policy.reps} | {r.slack_user: r.name for r in policy.reps if r.slack_user}
    with ctx.db.sessions() as session:
        items, total = sample_items(session, origin.week)
        given = verdicts_by_decision(session, [i.decision_pk for i in items])
    if not items:
        return
    verdicts = {pk: [{**v, "by": names.get(v["reviewer"], v["reviewer"])} for v in vs] for pk, vs in given.items()}
    reasons = {c.code: c.label for c in policy.reason_codes}
    message = sample_message(origin.week, items, total, verdicts=verdicts, reasons=reasons)
    try:
        slack_call("chat.update", client.chat_update, channel=origin.channel, ts=origin.message_ts, **message.kwargs())
    except SlackCallFailed as exc:  # the verdict is stored; the refreshed view can wait for the next click
        log.warning("could not refresh the audit sample of %s: %s", origin.week, exc)


def _record(ctx: BotContext, user: str, origin: FlagOrigin, verdict: str, reason: str | None, note: str | None) -> None:
    rep = ctx.rules.rep_for_slack(user)
    with ctx.db.transaction() as session:
        record_verdict(
            session, ctx.policy.policy, origin.decision_pk, verdict=verdict, reviewer=user, rep=rep,
            reason_code=reason, note=note, now=ctx.clock(),
        )  # fmt: skip
    ctx.wake_outbox()


def _confirm(ctx: BotContext, body: dict[str, Any], client: WebClient) -> None:
    user, origin = body["user"]["id"], _origin(body)
    try:
        _record(ctx, user, origin, "confirm", None, None)
    except (NotAllowed, NotPending, InvalidReview) as exc:
        _tell(client, user, origin.channel, _refusal(exc))
        return
    _tell(client, user, origin.channel, _reply(f"✅ Confirmed decision #{origin.decision_pk}. Thank you."))
    refresh_sample(ctx, client, origin)


def _open_flag(ctx: BotContext, body: dict[str, Any], client: WebClient) -> None:
    user, origin = body["user"]["id"], _origin(body)
    policy = ctx.policy.policy
    if not may_audit(policy, ctx.rules.rep_for_slack(user)):
        _tell(client, user, origin.channel, _refusal(NotAllowed(origin.decision_pk, user, "")))
        return
    with ctx.db.sessions() as session:
        row = session.get(Decision, origin.decision_pk)
        lead = session.get(Lead, row.lead_pk) if row is not None else None
    name = " ".join(p for p in (lead.first_name, lead.last_name) if p) if lead else ""
    title = esc(name or (lead.crm_id if lead else f"decision {origin.decision_pk}"))
    reasons = [(c.code, c.label) for c in ctx.rules.reasons_for("flag")]
    view = flag_modal(title, reasons, origin)
    slack_call("views.open", client.views_open, trigger_id=body.get("trigger_id", ""), view=view)


def _submit_flag(ctx: BotContext, ack: Ack, body: dict[str, Any], client: WebClient) -> None:
    view, user = body["view"], body["user"]["id"]
    origin = read_flag_origin(view.get("private_metadata", ""))
    values = (view.get("state") or {}).get("values") or {}
    reason = ((values.get(ids.BLOCK_REASON) or {}).get(ids.INPUT_ELEMENT) or {}).get("selected_option") or {}
    note = ((values.get(ids.BLOCK_NOTE) or {}).get(ids.INPUT_ELEMENT) or {}).get("value")
    try:
        _record(ctx, user, origin, "flag", reason.get("value"), note)
    except InvalidReview as exc:
        block = ids.BLOCK_NOTE if exc.field == "note" else ids.BLOCK_REASON
        ack(response_action="errors", errors={block: exc.message})
        return
    except (NotAllowed, NotPending) as exc:
        ack(response_action="update", view=notice_view(_refusal(exc)))
        return
    ack()
    after_ack(ctx, body, client, lambda: refresh_sample(ctx, client, origin))


def _ack(ack: Ack) -> None:
    ack()


def register(app: App, ctx: BotContext) -> None:
    @guarded
    def confirm(body: dict[str, Any], client: WebClient) -> None:
        _confirm(ctx, body, client)

    @guarded
    def open_flag(body: dict[str, Any], client: WebClient) -> None:
        _open_flag(ctx, body, client)

    def submit_flag(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        _submit_flag(ctx, ack, body, client)

    app.action(ids.AUDIT_CONFIRM)(ack=_ack, lazy=[confirm])
    app.action(ids.AUDIT_FLAG)(ack=_ack, lazy=[open_flag])
    app.view(ids.AUDIT_FLAG_VIEW)(submit_flag)
