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


def _clean(value: Any) -> Any:
    """Unset optional keys (``None``) are not part of what a policy says."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


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


def _named(items: list[Any]) -> dict[str, Any] | None:
    """Items by name, if every item is a mapping with a distinct name."""
    if not items or not all(isinstance(v, dict) for v in items):
        return None
    names = [_item_name(v, i) for i, v in enumerate(items)]
    return dict(zip(names, items, strict=True)) if len(set(names)) == len(names) else None


def _walk(a: Any, b: Any, path: str) -> Iterator[Change]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in a:
                yield Change(sub, None, b[key], "added")
            elif key not in b:
                yield Change(sub, a[key], None, "removed")
            else:
                yield from _walk(a[key], b[key], sub)
        return
    if isinstance(a, list) and isinstance(b, list):
        named_a, named_b = _named(a), _named(b)
        if named_a is not None and named_b is not None:
            for name, item in named_b.items():
                sub = f"{path}[{name}]"
                if name in named_a:
                    yield from _walk(named_a[name], item, sub)
                else:
                    yield Change(sub, None, item, "added")
            for name, item in named_a.items():
                if name not in named_b:
                    yield Change(f"{path}[{name}]", item, None, "removed")
            return
    if a != b:
        yield Change(path, a, b, "changed")


def policy_changes(before: Policy, after: Policy) -> list[Change]:
    """Every setting that was added, removed or changed; named list items (reps, rules, fit
    rules…) are matched by name and reported whole when added or removed."""
    a = _clean(before.model_dump(mode="json", by_alias=True))
    b = _clean(after.model_dump(mode="json", by_alias=True))
    return list(_walk(a, b, ""))
