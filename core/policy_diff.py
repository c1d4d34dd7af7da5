"""What differs between two policies, by meaning rather than by text.

A text diff shows moved comments and reformatting; this shows what a decision would notice:
``scoring.fit[title ~ (?i)\\bmanager\\b].points: 0 → 8``. Lists of named things (reps, teams,
routing rules, reason codes, fit rules) are matched by their name, so inserting a rule does
not make every later rule look changed.

Where order decides (:data:`ORDERED`: the first matching routing rule, segment, suppression
or next-best-action wins; breach steps due together run in list order; round-robin ties go to the rep listed
first in a team) a new order of the same rules is a change of its own, ``reordered``, naming
the rules that moved: matching by name alone said "no difference" when the catch-all route
moved to the top and took every lead. Fit rules add up and reason codes are a menu: their
order means nothing and is not reported.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.policy.schema import Policy

__all__ = ["ORDERED", "Change", "policy_changes"]

_NAME_KEYS = ("id", "name", "code")
_LABEL_KEYS = (*_NAME_KEYS, "reason", "do")  # what a rule is called in a message, if not unique

ORDERED = {
    "routing": "first match wins",
    "segments": "first match wins",
    "suppress": "first match wins",
    "next_best_action": "first match wins",
    "sla.on_breach": "steps due together run in list order",
    "reps": "round-robin ties go to the rep listed first",
}
_GROUPED_BY = {"reps": "team"}  # only the order of reps within one team matters


@dataclass(frozen=True, slots=True)
class Change:
    """One difference. With ``reordered``, ``before`` and ``after`` are the rules' names in
    their old and new order, and ``moved`` says which moved from where to where."""

    path: str
    before: Any  # None with added
    after: Any  # None with removed
    kind: str  # added | removed | changed | reordered
    moved: tuple[str, ...] = ()  # with reordered: "default [5→0]" (old and new position)

    def __str__(self) -> str:
        if self.kind == "added":
            return f"+ {self.path}: {_show(self.after)}"
        if self.kind == "removed":
            return f"- {self.path}: {_show(self.before)}"
        if self.kind == "reordered":
            why = ORDERED.get(self.path, "order matters")
            order = f"{', '.join(self.before)} → {', '.join(self.after)}"
            return f"↕ {self.path}: moved {', '.join(self.moved)} ({why}): {order}"
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


def _item_name(item: Any, keys: Sequence[str] = _NAME_KEYS) -> str | None:
    if isinstance(item, dict):
        for key in keys:
            value = item.get(key)
            if isinstance(value, str):
                return value
        if isinstance(item.get("signal"), str):
            ops = {k: v for k, v in item.items() if k not in ("signal", "points", "label")}
            return f"{item['signal']} {json.dumps(ops, sort_keys=True, ensure_ascii=False)}"
    return None


def _names(items: list[Any]) -> list[str]:
    return [_item_name(v) or str(i) for i, v in enumerate(items)]


def _named(items: list[Any]) -> dict[str, Any] | None:
    """Items by name (their position when they have none), if every item is a mapping with a
    distinct name."""
    if not items or not all(isinstance(v, dict) for v in items):
        return None
    names = _names(items)
    return dict(zip(names, items, strict=True)) if len(set(names)) == len(names) else None


def _content_keys(items: list[Any]) -> list[Hashable]:
    """Each item by its content (the nth copy of an item is its own key)."""
    seen: Counter[str] = Counter()
    keys: list[Hashable] = []
    for item in items:
        text = json.dumps(item, sort_keys=True, ensure_ascii=False)
        keys.append((text, seen[text]))
        seen[text] += 1
    return keys


def _kept_in_order(a: list[Hashable], b: list[Hashable]) -> set[Hashable]:
    """The longest run of keys in the same relative order in both (the rest moved)."""
    lengths = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) - 1, -1, -1):
        for j in range(len(b) - 1, -1, -1):
            lengths[i][j] = lengths[i + 1][j + 1] + 1 if a[i] == b[j] else max(lengths[i + 1][j], lengths[i][j + 1])
    kept: set[Hashable] = set()
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            kept.add(a[i])
            i, j = i + 1, j + 1
        elif lengths[i][j + 1] >= lengths[i + 1][j]:  # on a tie the item that jumped ahead moved
            j += 1
        else:
            i += 1
    return kept


def _reordered(
    path: str, a: Sequence[Hashable], b: Sequence[Hashable], labels: Mapping[Any, str], groups: Mapping[Any, Any]
) -> Iterator[Change]:
    """A ``reordered`` change if the keys both sides share are in another order. With
    ``groups``, only the order among keys of one group counts (a rep's place in their team)."""
    common = set(a) & set(b)
    before = [k for k in a if k in common]
    after = [k for k in b if k in common]
    moved: set[Hashable] = set()
    for group in {groups.get(k) for k in common}:
        ga = [k for k in before if groups.get(k) == group]
        gb = [k for k in after if groups.get(k) == group]
        moved |= set(ga) - _kept_in_order(ga, gb)
    if not moved:
        return
    where = [f"{labels[k]} [{a.index(k)}→{b.index(k)}]" for k in after if k in moved]
    yield Change(path, [labels[k] for k in before], [labels[k] for k in after], "reordered", tuple(where))


def _has_names(items: list[Any]) -> bool:
    return all(_item_name(v) is not None for v in items)


def _labels(keys: list[Hashable], items: list[Any]) -> dict[Hashable, str]:
    return {k: _item_name(v, _LABEL_KEYS) or f"[{i}]" for i, (k, v) in enumerate(zip(keys, items, strict=True))}


def _groups(path: str, a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Each item's group where only the order within a group counts: a rep's team before and
    after (a rep who changed team is alone in theirs: the team change says it)."""
    field = _GROUPED_BY.get(path)
    if field is None:
        return {}
    return {k: (a[k].get(field), b[k].get(field)) for k in a.keys() & b.keys()}


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
        if path in ORDERED:
            yield from _reordered(path, list(a), list(b), {k: str(k) for k in [*a, *b]}, {})
        return
    if isinstance(a, list) and isinstance(b, list):
        changes = _walk_list(a, b, path)
        if changes is not None:
            yield from changes
            return
    if a != b:
        yield Change(path, a, b, "changed")


def _walk_list(a: list[Any], b: list[Any], path: str) -> list[Change] | None:
    """Changes between two lists matched by name or, in an order-sensitive list of rules with
    no distinct names, a move of the same rules; ``None``: compare them as whole values."""
    named_a, named_b = _named(a), _named(b)
    by_name = named_a is not None and named_b is not None and _has_names(a) and _has_names(b)
    if path in ORDERED and not by_name and a != b:
        keys_a, keys_b = _content_keys(a), _content_keys(b)
        if Counter(keys_a) == Counter(keys_b):  # the same rules, moved
            return list(_reordered(path, keys_a, keys_b, _labels(keys_a, a) | _labels(keys_b, b), {}))
    if named_a is None or named_b is None:
        return None
    changes: list[Change] = []
    for name, item in named_b.items():
        sub = f"{path}[{name}]"
        if name in named_a:
            changes += _walk(named_a[name], item, sub)
        else:
            changes.append(Change(sub, None, item, "added"))
    changes += [
        Change(f"{path}[{name}]", item, None, "removed") for name, item in named_a.items() if name not in named_b
    ]
    if by_name and path in ORDERED:
        labels = {k: str(k) for k in [*named_a, *named_b]}
        changes += _reordered(path, list(named_a), list(named_b), labels, _groups(path, named_a, named_b))
    return changes


def policy_changes(before: Policy, after: Policy) -> list[Change]:
    """Every setting that was added, removed or changed; named list items (reps, rules, fit
    rules…) are matched by name and reported whole when added or removed; rules of an
    order-sensitive list (:data:`ORDERED`) that moved are reported as ``reordered``."""
    a = _clean(before.model_dump(mode="json", by_alias=True))
    b = _clean(after.model_dump(mode="json", by_alias=True))
    return list(_walk(a, b, ""))
