"""Writing a proposed policy as text a person can review: the original file, one section new.

A challenger policy is meant to be read, diffed and simulated before anyone publishes it, so
it keeps the admin's file as written — comments, order, spacing — and replaces only the
section that changed. Values are written as JSON scalars (valid YAML 1.2 flow), so strings
with colons, regexes and unicode survive the round trip; ``parse_policy`` validates the result.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from core.policy.schema import Scoring

__all__ = ["render_scoring", "replace_section"]


_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\- ]*[A-Za-z0-9_.]$|^[A-Za-z_]$")
_RESERVED = {"true", "false", "null", "yes", "no", "on", "off", "y", "n"}


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if _PLAIN.match(text) and text.casefold() not in _RESERVED:
        return text  # a plain scalar, as people write them
    return json.dumps(text, ensure_ascii=False)


def _flow(mapping: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {_scalar(v)}" for k, v in mapping.items()) + "}"


def render_scoring(scoring: Scoring, *, comment: str | None = None) -> str:
    """The ``scoring:`` section as YAML lines (ending with a newline)."""
    lines = []
    if comment:
        lines += [f"# {line}" if line else "#" for line in comment.splitlines()]
    lines += ["scoring:", "  fit:"]
    for rule in scoring.fit:
        item: dict[str, Any] = {"signal": rule.signal, **rule.predicate(), "points": rule.points}
        if rule.label:
            item["label"] = rule.label
        lines.append(f"    - {_flow(item)}")
    intent = scoring.intent
    lines += [
        "  intent:",
        f"    half_life_days: {_scalar(intent.half_life_days)}",
        f"    window_days: {_scalar(intent.window_days)}",
        f"    max_points: {intent.max_points}",
        f"    events: {_flow(dict(intent.events))}",
    ]
    if scoring.completeness is not None:
        lines += [
            "  completeness:",
            f"    fields: {_scalar(scoring.completeness.fields)}",
            f"    points: {scoring.completeness.points}",
        ]
    lines.append(f"  bands: {_flow(dict(scoring.bands))}")
    return "\n".join(lines) + "\n"


def replace_section(text: str, key: str, block: str) -> str:
    """``text`` with its top-level ``key:`` section replaced by ``block``.

    Comment and blank lines between the section's last value and the next key stay, since
    by convention they introduce the next section. A file without the key gets it appended.
    """
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(root, yaml.MappingNode):
        raise ValueError("a policy file is a mapping of sections")
    lines = text.splitlines(keepends=True)
    entries = root.value
    for i, (key_node, _value) in enumerate(entries):
        if key_node.value != key:
            continue
        start = key_node.start_mark.line
        end = entries[i + 1][0].start_mark.line if i + 1 < len(entries) else len(lines)
        last = end - 1
        while last > start and (not lines[last].strip() or lines[last].lstrip().startswith("#")):
            last -= 1
        return "".join(lines[:start]) + block + "".join(lines[last + 1 :])
    sep = "" if text.endswith("\n") or not text else "\n"
    return text + sep + "\n" + block
