"""Block Kit primitives that are safe by construction, and the validation every payload passes.

Every mrkdwn text object is ``verbatim``: Slack then applies no automatic parsing (no bare
``@here`` or ``#channel`` turned into a mention or link) and only the manual strings loopgate
writes itself (``<@U…>``, ``<#C…>``, ``<!date^…>``) have meaning. Callers pass CRM text
through :func:`bot.text.esc` (or use ``plain``); the helpers here clip to Block Kit's limits.

:func:`validate_message` and :func:`validate_view` run every payload through
``slack_sdk.models`` (which checks field lengths and counts) and the surface's block limit;
loopgate never sends a payload that fails them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    Option,
    OptionGroup,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.errors import PayloadInvalid
from bot.text import clip, esc_lines, safe_mrkdwn

__all__ = [
    "BUTTON_TEXT_MAX",
    "FIELD_MAX",
    "HEADER_MAX",
    "MESSAGE_BLOCKS_MAX",
    "MESSAGE_TEXT_MAX",
    "SECTION_MAX",
    "VIEW_BLOCKS_MAX",
    "Message",
    "actions",
    "button",
    "context",
    "divider",
    "header",
    "mrkdwn",
    "option",
    "option_group",
    "plain",
    "section",
    "slack_date",
    "validate_blocks",
    "validate_message",
    "validate_view",
]

MESSAGE_BLOCKS_MAX = 50
VIEW_BLOCKS_MAX = 100
SECTION_MAX = 3000
FIELD_MAX = 2000
HEADER_MAX = 150
BUTTON_TEXT_MAX = 75
CONTEXT_ELEMENTS_MAX = 10
OPTION_TEXT_MAX = 75
# Slack truncates message text at 40,000 characters; as a notification fallback beside
# blocks it should be short, so loopgate keeps it to a screenful
MESSAGE_TEXT_MAX = 3000


def mrkdwn(text: str, limit: int = SECTION_MAX) -> MarkdownTextObject:
    """A verbatim mrkdwn object; ``text`` must already be escaped where it holds CRM text."""
    return MarkdownTextObject(text=safe_mrkdwn(text, limit) or " ", verbatim=True)


def plain(text: str, limit: int = SECTION_MAX) -> PlainTextObject:
    """Plain text: Slack parses nothing in it, so raw CRM text is safe here."""
    return PlainTextObject(text=clip(" ".join(text.split()) or "—", limit), emoji=True)


def header(text: str) -> HeaderBlock:
    return HeaderBlock(text=plain(text, HEADER_MAX))


def section(text: str, *, fields: Sequence[str] = (), block_id: str | None = None) -> SectionBlock:
    return SectionBlock(
        text=mrkdwn(text) if text else None,
        fields=[mrkdwn(f, FIELD_MAX) for f in fields[:10]] or None,
        block_id=block_id,
    )


def context(*texts: str) -> ContextBlock:
    return ContextBlock(elements=[mrkdwn(t) for t in texts[:CONTEXT_ELEMENTS_MAX] if t])


def divider() -> DividerBlock:
    return DividerBlock()


def button(text: str, action_id: str, value: str, *, style: str | None = None) -> ButtonElement:
    return ButtonElement(text=plain(text, BUTTON_TEXT_MAX), action_id=action_id, value=value, style=style)


def actions(elements: Sequence[ButtonElement], *, block_id: str) -> ActionsBlock:
    return ActionsBlock(elements=list(elements), block_id=block_id)


def option(text: str, value: str) -> Option:
    return Option(text=plain(text, OPTION_TEXT_MAX), value=value)


def option_group(label: str, options: Sequence[Option]) -> OptionGroup:
    return OptionGroup(label=plain(label, OPTION_TEXT_MAX), options=list(options))


def slack_date(at: datetime, fmt: str = "{date_short_pretty} at {time}") -> str:
    """A date every reader sees in their own time zone (with a UTC fallback for old clients)."""
    fallback = at.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(at.timestamp())}^{fmt}|{fallback}>"


@dataclass(frozen=True, slots=True)
class Message:
    """A message ready for ``chat.postMessage``/``chat.update``: fallback text + blocks."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)

    def kwargs(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


def validate_blocks(blocks: Iterable[Block | dict[str, Any]], *, limit: int, where: str) -> list[dict[str, Any]]:
    """Blocks as dicts, each parsed and checked by ``slack_sdk.models``; raises PayloadInvalid."""
    out: list[dict[str, Any]] = []
    for index, raw in enumerate(blocks):
        parsed = Block.parse(raw) if isinstance(raw, dict) else raw
        if parsed is None:
            raise PayloadInvalid(where, f"blocks[{index}]", f"unknown block {raw!r:.80}")
        try:
            out.append(parsed.to_dict())
        except Exception as exc:  # slack_sdk raises SlackObjectFormationError (and KeyError on bad shapes)
            raise PayloadInvalid(where, f"blocks[{index}]", str(exc)) from exc
    if len(out) > limit:
        raise PayloadInvalid(where, "blocks", f"{len(out)} blocks; Slack allows {limit}")
    ids = [b["block_id"] for b in out if "block_id" in b]
    if len(ids) != len(set(ids)):
        raise PayloadInvalid(where, "blocks", "two blocks share a block_id")
    return out


def validate_message(text: str, blocks: Iterable[Block | dict[str, Any]], *, where: str = "message") -> Message:
    """A message whose blocks pass ``slack_sdk.models`` and the 50-block limit."""
    checked = validate_blocks(blocks, limit=MESSAGE_BLOCKS_MAX, where=where)
    if not text.strip():
        raise PayloadInvalid(where, "text", "a message needs fallback text for notifications")
    return Message(safe_mrkdwn(text, MESSAGE_TEXT_MAX), checked)


def validate_view(view: View | dict[str, Any], *, where: str = "view") -> dict[str, Any]:
    """A modal or Home view checked by ``slack_sdk.models`` (100 blocks, title 24, metadata 3000…)."""
    model = view if isinstance(view, View) else View(**view)
    try:
        out = model.to_dict()
    except Exception as exc:
        raise PayloadInvalid(where, "view", str(exc)) from exc
    validate_blocks(out.get("blocks", []), limit=VIEW_BLOCKS_MAX, where=where)
    return out


def metadata_json(values: dict[str, Any]) -> str:
    """Compact JSON for ``private_metadata`` (ids only; Slack allows 3000 characters)."""
    text = json.dumps(values, separators=(",", ":"))
    if len(text) > 3000:
        raise PayloadInvalid("view", "private_metadata", f"{len(text)} characters; Slack allows 3000")
    return text


def quote(text: str | None, limit: int = 500) -> str:
    """A person's note, escaped, as a mrkdwn quote."""
    if not text:
        return ""
    return "\n".join("> " + line for line in safe_mrkdwn("\n".join(esc_lines(text)), limit).splitlines())
