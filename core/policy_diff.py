"""What differs between two policies, by meaning rather than by text.

A text diff shows moved comments and reformatting; this shows what a decision would notice:
``scoring.fit[title ~ (?i)\\bmanager\\b].points: 0 → 8``. Lists of named things (reps, teams,
routing rules, reason codes, fit rules) are matched by their name, so inserting a rule does
not make every later rule look changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.policy.schema import Policy

__all__ = ["Change", "policy_changes"]

_NAME_KEYS = ("id", "name", "code")


@dataclass(frozen=True, slots=True)
class Change:
    path: str
    before: Any  # None with added
    after: Any  # None with removed
    kind: str  # added | removed | changed

    def __str__(self) -> str:
        if self.kind == "added":
            return f"+ {self.path}: {_show(self.after)}"
        if self.kind == "removed":
            return f"- {self.path}: {_show(self.before)}"
        return f"~ {self.path}: {_show(self.before)} → {_show(self.after)}"


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 100 else text[:97] + "…"


def _item_name(item: Any, index: int) -> str:
    if isinstance(item, dict):
        for key in _NAME_KEYS:
            value = item.get(key)
            if isinstance(value, str):
                return value
        if isinstance(item.get("signal"), str):
            ops = {k: v for k, v in item.items() if k not in ("signal", "points", "label")}
            return f"{item['signal']} {json.dumps(ops, sort_keys=True, ensure_ascii=False)}"
    return str(index)


def _flatten(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        for key in sorted(value, key=str):
            yield from _flatten(value[key], f"{path}.{key}" if path else str(key))
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        names = [_item_name(v, i) for i, v in enumerate(value)]
        if len(set(names)) != len(names):  # unnamed or ambiguous: by position
            names = [str(i) for i in range(len(value))]
        for name, item in zip(names, value, strict=True):
            yield from _flatten(item, f"{path}[{name}]")
    else:
        yield path, value


def policy_changes(before: Policy, after: Policy) -> list[Change]:
    """Every leaf that was added, removed or changed, in document order of ``after``."""
    a = dict(_flatten(before.model_dump(mode="json", by_alias=True), ""))
    b = dict(_flatten(after.model_dump(mode="json", by_alias=True), ""))
    out: list[Change] = []
    for path, value in b.items():
        if path not in a:
            out.append(Change(path, None, value, "added"))
        elif a[path] != value:
            out.append(Change(path, a[path], value, "changed"))
    out += [Change(path, value, None, "removed") for path, value in a.items() if path not in b]
    return out
