"""Slack announcements of learning and governance changes, as ``slack.message`` payloads.

The payload is the outbox contract the bot's handler performs: ``{"channel", "text",
"blocks"}`` — ``text`` is the notification and accessibility fallback, ``blocks`` the message.
Built here as plain dicts (core knows no Slack SDK); tests validate every one of them with
``slack_sdk.models``. Everything interpolated is escaped (``&``, ``<``, ``>``) so no segment
name, policy name or note can ping a channel or forge a link.

Where they go: the policy's ``digest.channel`` (the leaders' channel, where trust and policy
are governed); a policy without a digest channel announces in every team's review channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.learning.trust_levels import Move
from core.policy.schema import Policy

__all__ = ["announcement_channels", "escape", "policy_message", "trust_message", "tuning_message"]

_LEVELS = {1: "verify everything", 2: "verify exceptions", 3: "periodic audit", 4: "strategic oversight"}
_SECTION_LIMIT = 3000


def escape(text: str) -> str:
    """Slack mrkdwn escaping: the three characters Slack gives meaning to."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def announcement_channels(policy: Policy) -> list[str]:
    """The leaders' digest channel, else each team's channel (in policy order, once each)."""
    if policy.digest is not None:
        return [policy.digest.channel]
    return list(dict.fromkeys(t.channel for t in policy.teams))


def _message(channel: str, text: str, body: str, context: str) -> dict[str, Any]:
    return {
        "channel": channel,
        "text": text[:_SECTION_LIMIT],
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": body[:_SECTION_LIMIT]}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context[:_SECTION_LIMIT]}]},
        ],
    }


def level_name(level: int) -> str:
    return f"{level} ({_LEVELS.get(level, '?')})"


def trust_message(channel: str, move: Move, *, by: str, policy_version: str) -> dict[str, Any]:
    """A segment's trust level changed (promoted, demoted, capped, pinned or unpinned)."""
    verb = {
        "promote": "promoted",
        "demote": "demoted",
        "cap": "capped",
        "pin": "pinned",
        "unpin": "unpinned",
    }.get(move.kind, move.kind)
    segment = escape(move.segment)
    text = f"Trust in {move.segment}: {verb} from level {move.from_level} to {move.to_level}"
    body = (
        f":scales: *Trust level {verb}* in segment *{segment}*: "
        f"{level_name(move.from_level)} → *{level_name(move.to_level)}*\n{escape(move.reason)}"
    )
    context = f"by {escape(by)} · policy {escape(policy_version)} · `loopgate trust status` for details"
    return _message(channel, text, body, context)


def policy_message(
    channel: str, action: str, version: str, name: str, *, by: str, previous: str | None, note: str | None = None
) -> dict[str, Any]:
    """A policy version changed role (published, shadowed, promoted, rolled back, withdrawn)."""
    verb = {
        "publish": "published as champion",
        "shadow": "published as challenger (shadow: decides alongside, never acts)",
        "promote": "promoted from challenger to champion",
        "rollback": "rolled back to",
        "withdraw": "withdrawn as challenger",
    }.get(action, action)
    was = f" (replaces {escape(previous)})" if previous else ""
    text = f"Policy {version} {verb}"
    body = f":scroll: Policy *{escape(version)}* — {escape(name)} — {verb}{was}"
    if note:
        body += f"\n{escape(note)}"
    context = f"by {escape(by)} · `loopgate policy history` · `loopgate policy diff`"
    return _message(channel, text, body, context)


def tuning_message(channel: str, month: str, lines: Sequence[str], *, challenger: str | None) -> dict[str, Any]:
    """The monthly tuning report's summary, with the proposed challenger's version."""
    text = f"Tuning report for {month}" + (f": challenger {challenger} proposed" if challenger else "")
    body = f":bar_chart: *Tuning report {escape(month)}*\n" + "\n".join(f"• {escape(line)}" for line in lines)
    context = (
        f"challenger {escape(challenger)}: `loopgate tune --month {escape(month)}` writes it; "
        "simulate, then publish --shadow"
        if challenger
        else "no challenger proposed this month"
    )
    return _message(channel, text, body, context)
