"""Rule sets of the condition language compiled to Python source, once per policy load.

:func:`~core.policy.conditions.compile_condition` turns one condition into a tree of closures:
a call per field check, per combinator and per rule. The engine evaluates whole rule *sets*
per lead (segments, suppression, routing, next-best-action, fit rules), so here each set
becomes one generated function whose checks are inline expressions: the field read and the
test in one expression, no call per check.

Safety: the source is derived only from the *structure* of a validated policy. Field names
are emitted as attribute names only when they are one of the fixed names the condition
language knows (``_LEAD_FIELDS``, ``_ACCOUNT_FIELDS``); every value that comes from the policy
file (strings, numbers, lists, regexes, custom field keys) is passed in the function's
namespace as a constant (``_k0``, ``_k1``…), never pasted into the source. The generated code
is the same logic as the closures of ``conditions.py``, expression for expression; a test
holds the two equal on generated leads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from core.policy.conditions import (
    _ACCOUNT_FIELDS,
    _LEAD_FIELDS,
    _PLAIN_NUMBERS,
    MATCHED_TEXT,
    Facts,
    _as_bool,
    _compile_event,
    _is_number,
    _member,
    _norm,
    _numeric,
)

__all__ = ["SourceBuilder", "compile_check", "compile_first_match", "matcher"]

FirstMatch = Callable[[Facts, int], int]

# the prologue every generated function starts with: the names the field reads use
PROLOGUE = ("lead = facts.lead", "account = facts.account")


class SourceBuilder:
    """One generated function: its source lines and the namespace of constants it reads."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.namespace: dict[str, Any] = {
            "_PLAIN": _PLAIN_NUMBERS,
            "_numeric": _numeric,
            "_member": _member,
            "_as_bool": _as_bool,
            "_is_number": _is_number,
        }
        self._constants: dict[int, str] = {}

    def const(self, value: Any) -> str:
        """The name under which ``value`` is passed to the generated code."""
        key = id(value)
        name = self._constants.get(key)
        if name is None:
            name = f"_k{len(self._constants)}"
            self._constants[key] = name
            self.namespace[name] = value
        return name

    def line(self, text: str, indent: int = 1) -> None:
        self.lines.append("    " * indent + text)

    def build(self, name: str, params: str) -> Callable[..., Any]:
        """Compile the lines as ``def name(params)`` and return the function."""
        source = f"def {name}({params}):\n" + "\n".join(self.lines) + "\n"
        code = compile(source, f"<policy {name}>", "exec")
        exec(code, self.namespace)  # noqa: S102 - source built from the validated policy's structure only
        function: Callable[..., Any] = self.namespace[name]
        function.__source__ = source  # type: ignore[attr-defined]  # for debugging and tests
        return function

    # --- conditions ------------------------------------------------------------------------

    def condition(self, condition: Mapping[str, Any]) -> str:
        """An expression that is truthy exactly when ``compile_condition(condition)`` is."""
        parts: list[str] = []
        for key, value in condition.items():
            if key == "all":
                parts.append("(" + " and ".join(self.condition(c) for c in value) + ")")
            elif key == "any":
                parts.append("(" + " or ".join(self.condition(c) for c in value) + ")")
            elif key == "not":
                parts.append(f"(not {self.condition(value)})")
            elif key == "event":
                parts.append(f"{self.const(_compile_event(value))}(facts)")
            elif key == "trigger":
                parts.append(self._trigger(value))
            else:
                parts.append(self.field_check(key, value))
        return parts[0] if len(parts) == 1 else "(" + " and ".join(parts) + ")"

    def field(self, name: str) -> str:
        """An expression for a field reference (``field_getter(name)`` as source)."""
        if name in _LEAD_FIELDS:
            return f"lead.{name}"
        if name.startswith("account.fields."):
            key = self.const(name[len("account.fields.") :])
            return f"(account.fields.get({key}) if account is not None else None)"
        if name.startswith("account."):
            attr = name[len("account.") :]
            if attr in _ACCOUNT_FIELDS:
                return f"(account.{attr} if account is not None else None)"
            return f"(getattr(account, {self.const(attr)}) if account is not None else None)"
        if name.startswith("fields."):
            return f"lead.fields.get({self.const(name[len('fields.') :])})"
        if name == "has_account":
            return "(account is not None)"
        if name in ("personal_email", "segment"):
            return f"facts.{name}"
        if name in ("band", "fit", "intent", "completeness", "confidence"):
            return f"(facts.score.{name} if facts.score is not None else None)"
        if name == "score":
            return "(facts.score.total if facts.score is not None else None)"
        raise ValueError(f"unknown field '{name}'")

    def field_check(self, name: str, predicate: Any) -> str:
        """``{name: predicate}`` as one expression (``compile_field_check`` as source)."""
        read = f"(v := {self.field(name)})"
        if not isinstance(predicate, Mapping):
            return self._equals(predicate, read)
        tests = [self._op(op, arg, read) for op, arg in predicate.items()]
        return tests[0] if len(tests) == 1 else "(" + " and ".join(tests) + ")"

    def _trigger(self, value: Any) -> str:
        if isinstance(value, str):
            return f"({self.const(value)} in facts.trigger_codes)"
        if "in" in value:
            return f"bool({self.const(frozenset(value['in']))} & facts.trigger_codes)"
        return f"(not ({self.const(frozenset(value['not_in']))} & facts.trigger_codes))"

    def _equals(self, expected: Any, read: str) -> str:
        """``_equals(expected)`` applied to the value ``read`` evaluates to (and binds to ``v``)."""
        if expected is None:
            return f"({read} is None)"
        if isinstance(expected, bool):
            return f"({read} is {expected!r} or (type(v) is str and _as_bool(v) is {expected!r}))"
        want = self.const(_norm(expected))
        if _is_number(expected):
            return f"(_is_number({read}) and v == {want})"
        return f"({read} is not None and (v if type(v) is str else str(v)).casefold().strip() == {want})"

    def _op(self, op: str, arg: Any, read: str) -> str:
        """``_compile_op(op, arg)`` applied to the value ``read`` evaluates to."""
        if op == "eq":
            return self._equals(arg, read)
        if op == "ne":
            return f"({read} is not None and not {self._equals(arg, 'v')})"
        if op in ("in", "not_in"):
            members = self.const(frozenset(_norm(a) for a in arg))
            test = f"(v.casefold().strip() in {members} if type(v) is str else _member(v, {members}))"
            return f"({read} is not None and {'' if op == 'in' else 'not '}{test})"
        if op in ("lt", "lte", "gt", "gte"):
            symbol = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}[op]
            return f"((type({read}) in _PLAIN or _numeric(v)) and v {symbol} {self.const(arg)})"
        if op == "between":
            low, high = arg
            return f"((type({read}) in _PLAIN or _numeric(v)) and {self.const(low)} <= v <= {self.const(high)})"
        if op == "matches":
            return f"(type({read}) is str and {self.const(matcher(arg))}(v[:{MATCHED_TEXT}]))"
        if op == "exists":
            return f'({read} is not None and v != "")' if arg else f'({read} is None or v == "")'
        raise ValueError(f"unknown operator {op!r}")


MATCH_CACHE = 4096  # texts per pattern whose verdict is kept (a few hundred kB for titles, 4 MB at most)


def matcher(pattern: str) -> Callable[[str], bool]:
    """Whether a text matches ``pattern`` (``re.search``), remembered for the texts asked most.
    Callers pass the text cut to ``MATCHED_TEXT`` characters, so no kept text is longer.

    A policy matches the same few fields of every lead (the title, in scoring, the VIP trigger
    and suppression), and titles repeat ("VP Sales", "CTO"), so most leads ask about a text
    already answered; scanning a title for a case-insensitive alternation between word
    boundaries was the costliest check of a decision. The verdict depends only on the text,
    and the cache is bounded, least recently used first out (memory stays flat)."""
    search = re.compile(pattern).search

    @lru_cache(maxsize=MATCH_CACHE)
    def matches(text: str) -> bool:
        return search(text) is not None

    return matches


def compile_first_match(
    conditions: Sequence[Mapping[str, Any] | None], name: str, *, resumable: bool = False
) -> FirstMatch:
    """``first(facts, start)``: the index of the first condition at or after ``start`` that
    holds (``None`` always holds), or -1. First-match-wins rule lists (segments, suppression,
    routing, next-best-action) ask this once per lead instead of calling a closure per rule.
    Only a ``resumable`` function honours ``start`` (routing goes on past a rule that matched
    but could not place the lead); the others always start at 0 and skip the comparisons."""
    b = SourceBuilder()
    for line in PROLOGUE:
        b.line(line)
    for i, condition in enumerate(conditions):
        test = "True" if condition is None else b.condition(condition)
        b.line(f"if start <= {i} and {test}:" if resumable else f"if {test}:")
        b.line(f"return {i}", 2)
    b.line("return -1")
    return b.build(f"first_{name}", "facts, start=0")


def compile_check(condition: Mapping[str, Any], name: str) -> Callable[[Facts], bool]:
    """One condition as a generated function: ``compile_condition`` without a closure call per
    field check (every atom of the expression is a bool, so the result is one too)."""
    b = SourceBuilder()
    for line in PROLOGUE:
        b.line(line)
    b.line(f"return {b.condition(condition)}")
    return b.build(f"check_{name}", "facts")
