"""What the fake Slack checks in payloads, written from Slack's documented limits — on purpose
not with ``slack_sdk.models``, which loopgate itself validates with: a fake that used the same
checker would agree with every bug in it.

Errors read like Slack's: ``must be less than 51 items [json-pointer:/blocks]``. The mention
scanner says who a message would notify: ``<!channel>``/``<!here>``/``<!everyone>`` and
``<@U…>`` always; bare ``@here``-style words only where Slack parses them automatically
(top-level text with ``parse=full`` or ``link_names``, mrkdwn objects without ``verbatim``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Notifies", "check_blocks", "check_view", "notifications"]

SURFACE_BLOCKS = {"message": 50, "modal": 100, "home": 100}
KNOWN_BLOCKS = {
    "section", "divider", "image", "actions", "context", "header", "input", "rich_text", "video", "file",
    "markdown", "table", "context_actions",
}  # fmt: skip
INTERACTIVE = {
    "button", "static_select", "users_select", "conversations_select", "channels_select", "external_select",
    "multi_static_select", "multi_users_select", "overflow", "datepicker", "timepicker", "datetimepicker",
    "checkboxes", "radio_buttons", "plain_text_input", "email_text_input", "url_text_input", "number_input",
    "rich_text_input", "workflow_button", "multi_conversations_select", "multi_channels_select",
    "multi_external_select", "file_input",
}  # fmt: skip
INPUT_ELEMENTS = INTERACTIVE - {"button", "overflow", "workflow_button"}


class _Errors:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, pointer: str, message: str) -> None:
        self.items.append(f"{message} [json-pointer:{pointer}]")


def _text(errs: _Errors, obj: Any, ptr: str, *, limit: int, plain_only: bool = False) -> None:
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        errs.add(ptr, "must be a text object")
        return
    if plain_only and obj["type"] != "plain_text":
        errs.add(f"{ptr}/type", "must be plain_text")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        errs.add(f"{ptr}/text", "must be more than 0 characters")
    elif len(text) > limit:
        errs.add(f"{ptr}/text", f"must be less than {limit + 1} characters")
    if obj["type"] == "plain_text" and "verbatim" in obj:
        errs.add(f"{ptr}/verbatim", "is not allowed on plain_text")


def _option(errs: _Errors, opt: Any, ptr: str) -> str | None:
    if not isinstance(opt, dict):
        errs.add(ptr, "must be an option object")
        return None
    _text(errs, opt.get("text"), f"{ptr}/text", limit=75)
    value = opt.get("value")
    if not isinstance(value, str) or not 1 <= len(value) <= 150:
        errs.add(f"{ptr}/value", "must be between 1 and 150 characters")
        return None
    return value


def _action_id(errs: _Errors, el: dict[str, Any], ptr: str, action_ids: set[str]) -> None:
    action_id = el.get("action_id")
    if action_id is None:
        return
    if not isinstance(action_id, str) or len(action_id) > 255:
        errs.add(f"{ptr}/action_id", "must be less than 256 characters")
    elif action_id in action_ids:
        errs.add(f"{ptr}/action_id", "must be unique within the block")
    else:
        action_ids.add(action_id)


def _button(errs: _Errors, el: dict[str, Any], ptr: str) -> None:
    _text(errs, el.get("text"), f"{ptr}/text", limit=75, plain_only=True)
    if "value" in el and (not isinstance(el["value"], str) or len(el["value"]) > 2000):
        errs.add(f"{ptr}/value", "must be less than 2001 characters")
    if el.get("style") not in (None, "primary", "danger"):
        errs.add(f"{ptr}/style", "must be primary or danger")
    if "url" in el and len(str(el["url"])) > 3000:
        errs.add(f"{ptr}/url", "must be less than 3001 characters")


def _element(errs: _Errors, el: Any, ptr: str, action_ids: set[str]) -> None:
    if not isinstance(el, dict) or "type" not in el:
        errs.add(ptr, "must be an element")
        return
    kind = el["type"]
    if kind == "image":
        return
    if kind not in INTERACTIVE:
        errs.add(f"{ptr}/type", f"unknown element type {kind!r}")
        return
    _action_id(errs, el, ptr, action_ids)
    if kind == "button":
        _button(errs, el, ptr)
    if "placeholder" in el:
        _text(errs, el["placeholder"], f"{ptr}/placeholder", limit=150, plain_only=True)
    if kind in ("static_select", "multi_static_select"):
        _static_select(errs, el, ptr)
    if kind == "plain_text_input" and int(el.get("max_length", 3000)) > 3000:
        errs.add(f"{ptr}/max_length", "must be at most 3000")


def _static_select(errs: _Errors, el: dict[str, Any], ptr: str) -> None:
    values: list[str | None] = []
    if "options" in el:
        options = el["options"]
        if not isinstance(options, list) or not 1 <= len(options) <= 100:
            errs.add(f"{ptr}/options", "must be between 1 and 100 items")
        else:
            values = [_option(errs, o, f"{ptr}/options/{i}") for i, o in enumerate(options)]
    elif "option_groups" in el:
        groups = el["option_groups"]
        if not isinstance(groups, list) or not 1 <= len(groups) <= 100:
            errs.add(f"{ptr}/option_groups", "must be between 1 and 100 items")
        else:
            for g, group in enumerate(groups):
                _text(errs, group.get("label"), f"{ptr}/option_groups/{g}/label", limit=75, plain_only=True)
                opts = group.get("options") or []
                if not 1 <= len(opts) <= 100:
                    errs.add(f"{ptr}/option_groups/{g}/options", "must be between 1 and 100 items")
                values += [_option(errs, o, f"{ptr}/option_groups/{g}/options/{i}") for i, o in enumerate(opts)]
    else:
        errs.add(ptr, "must provide options or option_groups")
    initial = el.get("initial_option")
    if initial is not None and (not isinstance(initial, dict) or initial.get("value") not in values):
        errs.add(f"{ptr}/initial_option", "must match one of the options")


def _counted(errs: _Errors, items: Any, ptr: str, low: int, high: int) -> list[Any]:
    if not isinstance(items, list) or not low <= len(items) <= high:
        errs.add(ptr, f"must be between {low} and {high} items")
        return []
    return items


def _section(errs: _Errors, block: dict[str, Any], ptr: str, action_ids: set[str]) -> None:
    if "text" not in block and "fields" not in block:
        errs.add(ptr, "must provide text or fields")
    if "text" in block:
        _text(errs, block["text"], f"{ptr}/text", limit=3000)
    if "fields" in block:
        for i, f in enumerate(_counted(errs, block["fields"], f"{ptr}/fields", 1, 10)):
            _text(errs, f, f"{ptr}/fields/{i}", limit=2000)
    if "accessory" in block:
        _element(errs, block["accessory"], f"{ptr}/accessory", action_ids)


def _context(errs: _Errors, block: dict[str, Any], ptr: str, action_ids: set[str]) -> None:
    for i, el in enumerate(_counted(errs, block.get("elements"), f"{ptr}/elements", 1, 10)):
        if not (isinstance(el, dict) and el.get("type") == "image"):
            _text(errs, el, f"{ptr}/elements/{i}", limit=3000)


def _actions(errs: _Errors, block: dict[str, Any], ptr: str, action_ids: set[str]) -> None:
    for i, el in enumerate(_counted(errs, block.get("elements"), f"{ptr}/elements", 1, 25)):
        _element(errs, el, f"{ptr}/elements/{i}", action_ids)


def _input(errs: _Errors, block: dict[str, Any], ptr: str, action_ids: set[str]) -> None:
    _text(errs, block.get("label"), f"{ptr}/label", limit=2000, plain_only=True)
    if "hint" in block:
        _text(errs, block["hint"], f"{ptr}/hint", limit=2000, plain_only=True)
    element = block.get("element")
    if not isinstance(element, dict) or element.get("type") not in INPUT_ELEMENTS:
        errs.add(f"{ptr}/element", "must be an input element")
    else:
        _element(errs, element, f"{ptr}/element", action_ids)


def _header(errs: _Errors, block: dict[str, Any], ptr: str, action_ids: set[str]) -> None:
    _text(errs, block.get("text"), f"{ptr}/text", limit=150, plain_only=True)


_BLOCK_CHECKS = {"section": _section, "context": _context, "actions": _actions, "input": _input, "header": _header}


def _block(errs: _Errors, block: Any, ptr: str, block_ids: set[str]) -> None:
    if not isinstance(block, dict) or block.get("type") not in KNOWN_BLOCKS:
        errs.add(f"{ptr}/type", "unknown block type")
        return
    block_id = block.get("block_id")
    if block_id is not None:
        if not isinstance(block_id, str) or len(block_id) > 255:
            errs.add(f"{ptr}/block_id", "must be less than 256 characters")
        elif block_id in block_ids:
            errs.add(f"{ptr}/block_id", "duplicate block_id")
        else:
            block_ids.add(block_id)
    check = _BLOCK_CHECKS.get(block["type"])
    if check is not None:
        check(errs, block, ptr, set())


def check_blocks(blocks: Any, surface: str = "message", pointer: str = "/blocks") -> list[str]:
    """Slack-style error strings for ``blocks`` on ``surface`` (message, modal, home)."""
    errs = _Errors()
    if not isinstance(blocks, list):
        errs.add(pointer, "must be an array")
        return errs.items
    limit = SURFACE_BLOCKS[surface]
    if len(blocks) > limit:
        errs.add(pointer, f"must be less than {limit + 1} items")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        _block(errs, block, f"{pointer}/{i}", block_ids)
    return errs.items


def check_view(view: Any) -> list[str]:
    """Errors in a modal or Home view (title 24, submit/close 24, metadata 3000, 100 blocks)."""
    errs = _Errors()
    if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
        errs.add("/view/type", "must be modal or home")
        return errs.items
    kind = view["type"]
    if kind == "modal":
        _text(errs, view.get("title"), "/view/title", limit=24, plain_only=True)
        has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in view.get("blocks") or [])
        if has_input and "submit" not in view:
            errs.add("/view/submit", "is required when the view has input blocks")
    for key in ("submit", "close"):
        if key in view:
            _text(errs, view[key], f"/view/{key}", limit=24, plain_only=True)
    if len(str(view.get("private_metadata") or "")) > 3000:
        errs.add("/view/private_metadata", "must be less than 3001 characters")
    if len(str(view.get("callback_id") or "")) > 255:
        errs.add("/view/callback_id", "must be less than 256 characters")
    errs.items += check_blocks(view.get("blocks"), kind, "/view/blocks")
    return errs.items


_MANUAL_BROADCAST = re.compile(r"<!(channel|here|everyone)(\|[^>]*)?>")
_MANUAL_USER = re.compile(r"<@([UW][A-Z0-9]+)(\|[^>]*)?>")
_BARE_BROADCAST = re.compile(r"(?<![\w<!])@(channel|here|everyone)\b")


@dataclass
class Notifies:
    """Who a message would notify when Slack renders it."""

    broadcasts: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=set)

    def scan(self, text: str, *, automatic: bool) -> None:
        self.broadcasts |= {m.group(1) for m in _MANUAL_BROADCAST.finditer(text)}
        self.users |= {m.group(1) for m in _MANUAL_USER.finditer(text)}
        if automatic:
            self.broadcasts |= {m.group(1) for m in _BARE_BROADCAST.finditer(text)}


def _walk_texts(node: Any, found: list[tuple[str, bool]]) -> None:
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str):
            found.append((node["text"], not node.get("verbatim", False)))
            return
        if node.get("type") == "plain_text":
            return  # Slack parses nothing in plain_text
        for value in node.values():
            _walk_texts(value, found)
    elif isinstance(node, list):
        for value in node:
            _walk_texts(value, found)


def notifications(text: str | None, blocks: Any, *, parse: str | None, link_names: Any) -> Notifies:
    """Who a ``chat.postMessage`` with these arguments would notify."""
    out = Notifies()
    if text:
        out.scan(text, automatic=parse == "full" or link_names in (True, 1, "1", "true"))
    texts: list[tuple[str, bool]] = []
    _walk_texts(blocks or [], texts)
    for value, automatic in texts:
        out.scan(value, automatic=automatic)
    return out
