"""The small condition language used by segments, routing, suppression, triggers and actions.

A condition is a mapping; every entry must hold::

    {country: {in: [GB, DE]}, employees: {gte: 2000}, account.strategic: true}

Keys are field references (``employees``, ``account.tier``, ``fields.partner_code``) or the
combinators ``all``/``any`` (lists of conditions) and ``not`` (one condition). Values are a
scalar (equality) or a predicate mapping with one or more of ``eq ne in not_in lt lte gt gte
between matches exists``. Strings compare case-insensitively, because CRM data is typed by
people (``Banking`` and ``banking`` are the same industry). A missing value satisfies nothing
except ``exists: false``.

``matches`` searches a regular expression in a text value. Python's ``re`` has no timeout and
CRM text is anyone's: a pattern sees only the first :data:`MATCHED_TEXT` characters (what the
lead's own text fields keep; custom ``fields.*`` are not capped), so its cost per lead does not
grow with what a CRM stores, and a pattern that repeats a repeat (``(a+)+``, ``(\\w+\\s?)*``),
which takes exponential time on a text that almost matches, is refused when the policy loads.
(Alternatives that overlap under a repeat, ``(a|aa)+``, are not detected.)

Some fields exist only after a stage of the decision (``band`` after scoring, ``trigger`` after
escalation). :func:`check_condition` rejects a field used before it exists, so a policy cannot
silently compare against a value that is always missing. Conditions are compiled once into
closures (:func:`compile_condition`); evaluating them is the engine's hot path.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from core.leads import MAX_TEXT
from core.model import Account, Lead, Score
from core.policy.durations import parse_duration

if TYPE_CHECKING:
    import sre_parse as _re_parser
else:  # the same parser; importing it as sre_parse warns that name is deprecated (3.11+)
    from re import _parser as _re_parser

__all__ = [
    "MATCHED_TEXT",
    "Facts",
    "Issue",
    "Stage",
    "check_condition",
    "check_predicate",
    "compile_condition",
    "compile_field_check",
    "compile_predicate",
    "field_getter",
    "known_fields",
    "named_triggers",
    "positive_mentions",
]

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Issue:
    """A problem found in a policy, at a path inside the document."""

    path: Path
    message: str


class Stage(IntEnum):
    """How far the decision has got, and so which fields a condition may use."""

    LEAD = 0  # lead, account and events only (segments, fit rules)
    SEGMENTED = 1  # + segment (escalation vip/custom may use it, routing too)
    SCORED = 2  # + band, score, fit, intent, completeness, confidence
    ESCALATED = 3  # + trigger (suppression, next-best-action)


@dataclass(slots=True)
class Facts:
    """Everything a condition can look at for one lead; filled in as the decision proceeds."""

    lead: Lead
    account: Account | None
    now: datetime
    personal_email: bool = False
    segment: str | None = None
    score: Score | None = None
    trigger_codes: frozenset[str] = frozenset()  # immutable, so one shared default is safe


_LEAD_FIELDS = (
    "id", "source", "email", "email_domain", "first_name", "last_name", "title", "company",
    "domain", "industry", "employees", "annual_revenue", "country", "state", "lead_source",
    "estimated_deal_size", "owner_id",
)  # fmt: skip
_ACCOUNT_FIELDS = (
    "id", "name", "domain", "owner_id", "strategic", "tier", "industry", "employees", "is_customer",
)  # fmt: skip
_STAGED_FIELDS: dict[str, Stage] = {
    "personal_email": Stage.LEAD,
    "has_account": Stage.LEAD,
    "segment": Stage.SEGMENTED,
    "band": Stage.SCORED,
    "score": Stage.SCORED,
    "fit": Stage.SCORED,
    "intent": Stage.SCORED,
    "completeness": Stage.SCORED,
    "confidence": Stage.SCORED,
    "trigger": Stage.ESCALATED,
}
_OPS = ("eq", "ne", "in", "not_in", "lt", "lte", "gt", "gte", "between", "matches", "exists")
MATCHED_TEXT = MAX_TEXT  # characters of a value a `matches` pattern looks at (see the module doc)
_COMBINATORS = ("all", "any", "not")


def known_fields() -> list[str]:
    """Every field reference a condition may use (for docs, the schema and suggestions)."""
    return (
        list(_LEAD_FIELDS)
        + [f"account.{name}" for name in _ACCOUNT_FIELDS]
        + list(_STAGED_FIELDS)
        + ["event", "fields.<name>", "account.fields.<name>"]
    )


def _suggest(name: str) -> str:
    candidates = list(_LEAD_FIELDS) + [f"account.{n}" for n in _ACCOUNT_FIELDS] + list(_STAGED_FIELDS)
    close = difflib.get_close_matches(name, candidates, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _field_stage(name: str) -> Stage | None:
    if name in _LEAD_FIELDS or name in ("event",):
        return Stage.LEAD
    if name.startswith("fields.") and len(name) > len("fields."):
        return Stage.LEAD
    if name.startswith("account.fields.") and len(name) > len("account.fields."):
        return Stage.LEAD
    if name.startswith("account.") and name[len("account.") :] in _ACCOUNT_FIELDS:
        return Stage.LEAD
    return _STAGED_FIELDS.get(name)


# --- checking -------------------------------------------------------------------------------


def check_condition(
    condition: Any,
    path: Path,
    stage: Stage,
    segments: Collection[str] | None = None,
    triggers: Collection[str] | None = None,
) -> list[Issue]:
    """Every problem with a condition: unknown fields, fields not yet known at ``stage``,
    bad operators, uncompilable regexes, unknown segment names and (given ``triggers``)
    unknown trigger codes."""
    if not isinstance(condition, Mapping):
        return [Issue(path, "a condition must be a mapping of field → value or predicate")]
    if not condition:
        return [Issue(path, "empty condition: leave out 'when' to match every lead")]
    issues: list[Issue] = []
    for key, value in condition.items():
        sub = (*path, key)
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                issues.append(Issue(sub, f"'{key}' takes a non-empty list of conditions"))
                continue
            for i, item in enumerate(value):
                issues += check_condition(item, (*sub, i), stage, segments, triggers)
        elif key == "not":
            issues += check_condition(value, sub, stage, segments, triggers)
        elif not isinstance(key, str):
            issues.append(Issue(sub, f"field name must be text, not {key!r}"))
        else:
            issues += _check_field(key, value, sub, stage, segments, triggers)
    return issues


def _check_field(
    name: str,
    value: Any,
    path: Path,
    stage: Stage,
    segments: Collection[str] | None,
    triggers: Collection[str] | None,
) -> list[Issue]:
    field_stage = _field_stage(name)
    if field_stage is None:
        return [Issue(path, f"unknown field '{name}'{_suggest(name)}")]
    if field_stage > stage:
        return [Issue(path, f"'{name}' is not known yet at this point of the decision")]
    if name == "event":
        return _check_event(value, path)
    if name == "trigger":
        return _check_trigger(value, path, triggers)
    issues = check_predicate(value, path)
    if name == "segment" and segments is not None:
        for segment in _mentioned_values(value):
            if isinstance(segment, str) and segment not in segments:
                issues.append(Issue(path, f"unknown segment '{segment}'"))
    return issues


def _check_trigger(value: Any, path: Path, triggers: Collection[str] | None) -> list[Issue]:
    """``trigger`` takes one code, ``{in: [...]}`` or ``{not_in: [...]}``. Anything else used to
    pass and then fail every decision (``"in" in None``), or match nothing without a word (a
    misspelt code, or ``not_in`` beside ``in``, which the compiled check dropped)."""
    if isinstance(value, str):
        return _unknown_triggers([value], path, triggers)
    if not isinstance(value, Mapping):
        return [Issue(path, "'trigger' takes one trigger code or {in: [...]} or {not_in: [...]}")]
    issues = check_predicate(value, path, allowed=("in", "not_in"))
    if issues:
        return issues
    if len(value) != 1:
        return [Issue(path, "'trigger' takes one of 'in' or 'not_in', not both")]
    ((op, codes),) = value.items()
    return _unknown_triggers(codes, (*path, op), triggers)


def _unknown_triggers(codes: list[Any], path: Path, triggers: Collection[str] | None) -> list[Issue]:
    # trigger codes are compared exactly (they are ours, not typed into a CRM by people)
    if triggers is None:
        return []
    issues: list[Issue] = []
    for code in codes:
        if not isinstance(code, str) or code not in triggers:
            close = difflib.get_close_matches(str(code), list(triggers), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            issues.append(Issue(path, f"unknown trigger '{code}'{hint}"))
    return issues


def _mentioned_values(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        out: list[Any] = []
        for op in ("eq", "ne"):
            if op in value:
                out.append(value[op])
        for op in ("in", "not_in"):
            if isinstance(value.get(op), list):
                out += value[op]
        return out
    return [value]


def check_predicate(value: Any, path: Path, allowed: tuple[str, ...] = _OPS) -> list[Issue]:
    """Problems with a predicate (a scalar for equality, or an operator mapping)."""
    if not isinstance(value, Mapping):
        if isinstance(value, list):
            return [Issue(path, "a list needs an operator: write {in: [...]}")]
        return []
    if not value:
        return [Issue(path, "empty predicate")]
    issues: list[Issue] = []
    for op, arg in value.items():
        sub = (*path, op)
        if op not in allowed:
            close = difflib.get_close_matches(str(op), allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; use one of {', '.join(allowed)}"
            issues.append(Issue(sub, f"unknown operator '{op}'{hint}"))
            continue
        problem = _OP_CHECKS[op](op, arg)
        if problem:
            issues.append(Issue(sub, problem))
    return issues


def _check_list(op: str, arg: Any) -> str | None:
    if not (isinstance(arg, list) and arg):
        return f"'{op}' takes a non-empty list"
    # members go into a frozenset when the condition is compiled: a list or mapping there
    # would pass this check and then stop every decision with "unhashable type"
    nested = next((a for a in arg if not _is_scalar(a)), None)
    if nested is not None:
        return f"'{op}' takes a list of single values (text, numbers, true/false), not {nested!r}"
    return None


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float)  # bool is an int


def _check_number(op: str, arg: Any) -> str | None:
    return None if _is_number(arg) else f"'{op}' takes a number, not {arg!r}"


def _check_between(op: str, arg: Any) -> str | None:
    if not (isinstance(arg, list) and len(arg) == 2 and all(_is_number(a) for a in arg)):
        return "'between' takes two numbers: [low, high]"
    if arg[0] > arg[1]:
        return f"'between' low {arg[0]} is above high {arg[1]}"
    return None


def _check_matches(op: str, arg: Any) -> str | None:
    if not isinstance(arg, str):
        return "'matches' takes a regular expression as text"
    try:
        re.compile(arg)
    except re.error as exc:
        return f"invalid regular expression: {exc}"
    if _repeats_a_repeat(_re_parser.parse(arg), repeated=False):
        return (
            f"'{arg}' repeats a group that itself repeats, like (a+)+, which can take exponential time "
            "on a text that almost matches; drop one repeat, or make the inner one possessive (a++) "
            "or atomic ((?>a+))"
        )
    return None


_REPEATS = (_re_parser.MAX_REPEAT, _re_parser.MIN_REPEAT)


def _repeats_a_repeat(pattern: Any, repeated: bool) -> bool:  # a parsed SubPattern: loosely typed nodes
    """Whether a repeat that can match in more than one way (``+``, ``*``, ``{1,3}``) sits
    inside another repeat (``repeated``), looking through groups, alternatives and lookarounds."""
    for op, av in pattern.data:
        if op in _REPEATS and repeated and av[1] > max(av[0], 1):
            return True
        if any(_repeats_a_repeat(part, inside) for part, inside in _parts(op, av, repeated)):
            return True
    return False


def _parts(op: object, av: Any, repeated: bool) -> list[tuple[Any, bool]]:
    """The sub-patterns of one parsed node, each with whether it sits inside a repeat that
    backtracks. Possessive repeats and atomic groups give nothing back: what is inside them
    only counts on its own."""
    if op in _REPEATS:
        return [(av[2], repeated or av[1] > 1)]
    if op is _re_parser.POSSESSIVE_REPEAT:
        return [(av[2], False)]
    if op is _re_parser.ATOMIC_GROUP:
        return [(av, False)]
    if op is _re_parser.SUBPATTERN or op in (_re_parser.ASSERT, _re_parser.ASSERT_NOT):
        return [(av[-1], repeated)]
    if op is _re_parser.BRANCH:
        return [(branch, repeated) for branch in av[1]]
    if op is _re_parser.GROUPREF_EXISTS:
        return [(branch, repeated) for branch in av[1:] if branch is not None]
    return []


def _check_exists(op: str, arg: Any) -> str | None:
    return None if isinstance(arg, bool) else "'exists' takes true or false"


_OP_CHECKS: dict[str, Callable[[str, Any], str | None]] = {
    "eq": lambda op, arg: None,
    "ne": lambda op, arg: None,
    "in": _check_list,
    "not_in": _check_list,
    "lt": _check_number,
    "lte": _check_number,
    "gt": _check_number,
    "gte": _check_number,
    "between": _check_between,
    "matches": _check_matches,
    "exists": _check_exists,
}


def _check_event(value: Any, path: Path) -> list[Issue]:
    if not isinstance(value, Mapping):
        return [Issue(path, "'event' takes {type: ..., within: ...}")]
    issues: list[Issue] = []
    for key in value:
        if key not in ("type", "in", "within", "count_gte"):
            issues.append(Issue((*path, key), f"unknown key '{key}' in event condition"))
    if "type" not in value and "in" not in value:
        issues.append(Issue(path, "'event' needs 'type' (one event type) or 'in' (a list)"))
    if "type" in value and not isinstance(value["type"], str):
        issues.append(Issue((*path, "type"), "'type' takes one event type as text; for several use 'in'"))
    if "in" in value and (
        not isinstance(value["in"], list) or not value["in"] or not all(isinstance(t, str) for t in value["in"])
    ):
        issues.append(Issue((*path, "in"), "'in' takes a non-empty list of event types"))
    if "within" in value:
        try:
            parse_duration(value["within"])
        except ValueError as exc:
            issues.append(Issue((*path, "within"), str(exc)))
    count = value.get("count_gte", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        issues.append(Issue((*path, "count_gte"), "'count_gte' takes a whole number ≥ 1"))
    return issues


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- compiling ------------------------------------------------------------------------------

Getter = Callable[[Facts], Any]
Check = Callable[[Facts], bool]


def field_getter(name: str) -> Getter:
    """A fast accessor for a field reference (assumes :func:`check_condition` accepted it).

    Lead fields and score fields use ``operator.attrgetter`` (C code): conditions run for
    every lead and every rule, and this is where the engine spends its time.
    """
    if name in _LEAD_FIELDS:  # includes email_domain, a property of Lead
        return attrgetter(f"lead.{name}")
    if name.startswith("account.fields."):
        key = name[len("account.fields.") :]
        return lambda f: f.account.fields.get(key) if f.account is not None else None
    if name.startswith("account."):
        attr = name[len("account.") :]
        return lambda f: getattr(f.account, attr) if f.account is not None else None
    if name.startswith("fields."):
        key = name[len("fields.") :]
        return lambda f: f.lead.fields.get(key)
    if name == "has_account":
        return lambda f: f.account is not None
    if name in ("personal_email", "segment"):
        return attrgetter(name)
    if name in ("band", "fit", "intent", "completeness", "confidence"):
        return lambda f: getattr(f.score, name) if f.score is not None else None
    if name == "score":
        return lambda f: f.score.total if f.score is not None else None
    raise ValueError(f"unknown field '{name}'")


def positive_mentions(condition: Mapping[str, Any] | None, key: str) -> list[Any]:
    """The values of every ``key`` condition (``trigger``, ``event``) inside ``condition`` that
    can help it hold — through ``all`` and ``any``, not under ``not``. What a rule is about:
    the suppression a named trigger may not overrule, the events a label's placeholders name."""
    found: list[Any] = []
    for k, value in (condition or {}).items():
        if k in ("all", "any"):
            for part in value:
                found += positive_mentions(part, key)
        elif k == key:
            found.append(value)
    return found


def named_triggers(condition: Mapping[str, Any] | None) -> frozenset[str]:
    """The trigger codes a condition asks for (``trigger: x``, ``trigger: {in: [x, y]}``)."""
    codes: set[str] = set()
    for value in positive_mentions(condition, "trigger"):
        codes.update([value] if isinstance(value, str) else value.get("in", []))
    return frozenset(codes)


def compile_condition(condition: Mapping[str, Any]) -> Check:
    """Turn a checked condition into a function of :class:`Facts`."""
    checks: list[Check] = []
    for key, value in condition.items():
        if key == "all":
            checks.append(_all_of([compile_condition(c) for c in value]))
        elif key == "any":
            checks.append(_any_of([compile_condition(c) for c in value]))
        elif key == "not":
            checks.append(_negated(compile_condition(value)))
        elif key == "event":
            checks.append(_compile_event(value))
        elif key == "trigger":
            checks.append(_compile_trigger(value))
        else:
            checks.append(compile_field_check(key, value))
    return checks[0] if len(checks) == 1 else _all_of(checks)


def compile_field_check(name: str, predicate: Any) -> Check:
    """``{name: predicate}`` as a function of :class:`Facts` (the field read and the test in one)."""
    getter = field_getter(name)
    return _fused_check(getter, predicate) or _field_check(getter, compile_predicate(predicate))


def _all_of(checks: list[Check]) -> Check:
    if len(checks) == 2:
        first, second = checks
        return lambda f: first(f) and second(f)

    def check(f: Facts) -> bool:
        for c in checks:  # noqa: SIM110 - a plain loop, no generator frame per evaluation
            if not c(f):
                return False
        return True

    return check


def _any_of(checks: list[Check]) -> Check:
    def check(f: Facts) -> bool:
        for c in checks:  # noqa: SIM110 - a plain loop, no generator frame per evaluation
            if c(f):
                return True
        return False

    return check


def _negated(check: Check) -> Check:
    return lambda f: not check(f)


def _field_check(getter: Getter, test: Callable[[Any], bool]) -> Check:
    return lambda f: test(getter(f))


def _fused_check(get: Getter, predicate: Any) -> Check | None:
    """The commonest predicates with the field read inlined: one call per check instead of
    two, for conditions evaluated for every lead and rule. Each lambda is the matching one of
    :func:`_equals` / :func:`_compile_op` applied to ``get(f)``; anything else returns None
    and is compiled the general way."""
    if isinstance(predicate, Mapping):
        if len(predicate) != 1:
            return None
        ((op, arg),) = predicate.items()
        if op == "in":
            members = frozenset(_norm(a) for a in arg)
            return lambda f: (
                (v := get(f)) is not None
                and (v.casefold().strip() in members if type(v) is str else _member(v, members))
            )
        if op == "matches":
            search = re.compile(arg).search
            return lambda f: type(v := get(f)) is str and search(v[:MATCHED_TEXT]) is not None
        if op == "lt":
            return lambda f: (type(v := get(f)) in _PLAIN_NUMBERS or _numeric(v)) and v < arg
        if op == "lte":
            return lambda f: (type(v := get(f)) in _PLAIN_NUMBERS or _numeric(v)) and v <= arg
        if op == "gt":
            return lambda f: (type(v := get(f)) in _PLAIN_NUMBERS or _numeric(v)) and v > arg
        if op == "gte":
            return lambda f: (type(v := get(f)) in _PLAIN_NUMBERS or _numeric(v)) and v >= arg
        if op == "between":
            low, high = arg
            return lambda f: (type(v := get(f)) in _PLAIN_NUMBERS or _numeric(v)) and low <= v <= high
        return None
    if isinstance(predicate, bool):
        return lambda f: (v := get(f)) is predicate or (type(v) is str and _as_bool(v) is predicate)
    if isinstance(predicate, str):
        want = _norm(predicate)
        return lambda f: (v := get(f)) is not None and (v if type(v) is str else str(v)).casefold().strip() == want
    return None


def compile_predicate(value: Any) -> Callable[[Any], bool]:
    """A function of one field value. Scalars mean equality."""
    if not isinstance(value, Mapping):
        return _equals(value)
    tests = [_compile_op(op, arg) for op, arg in value.items()]
    if len(tests) == 1:
        return tests[0]
    return lambda v: all(t(v) for t in tests)


def _member(value: Any, members: frozenset[Any]) -> bool:
    """A list or mapping a CRM put in a field is no member of a set of scalars (hashing it
    would raise, and one odd record must not stop a run)."""
    try:
        return value in members
    except TypeError:
        return False


def _norm(value: Any) -> Any:
    return value.casefold().strip() if isinstance(value, str) else value


def _as_bool(value: Any) -> bool | None:
    """CRMs hand booleans over as text ("true", "false") as often as not."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return {"true": True, "false": False}.get(value.casefold().strip())
    return None


def _equals(expected: Any) -> Callable[[Any], bool]:
    want = _norm(expected)
    if expected is None:
        return lambda v: v is None
    if isinstance(expected, bool):
        return lambda v: v is expected or (type(v) is str and _as_bool(v) is expected)
    if _is_number(expected):
        return lambda v: _is_number(v) and v == want
    return lambda v: v is not None and (v if type(v) is str else str(v)).casefold().strip() == want


# comparisons test the exact types first (what normalised leads hold), then the general rule
_PLAIN_NUMBERS = (int, float)


def _numeric(value: Any) -> bool:
    return value is not None and type(value) is not bool and isinstance(value, int | float)


def _compile_op(op: str, arg: Any) -> Callable[[Any], bool]:  # noqa: C901 - one branch per operator
    if op == "eq":
        return _equals(arg)
    if op == "ne":
        eq = _equals(arg)
        return lambda v: v is not None and not eq(v)
    if op in ("in", "not_in"):
        members = frozenset(_norm(a) for a in arg)
        if op == "in":
            return lambda v: (
                v is not None and (v.casefold().strip() in members if type(v) is str else _member(v, members))
            )
        return lambda v: (
            v is not None and not (v.casefold().strip() in members if type(v) is str else _member(v, members))
        )
    if op == "lt":
        return lambda v: (type(v) in _PLAIN_NUMBERS or _numeric(v)) and v < arg
    if op == "lte":
        return lambda v: (type(v) in _PLAIN_NUMBERS or _numeric(v)) and v <= arg
    if op == "gt":
        return lambda v: (type(v) in _PLAIN_NUMBERS or _numeric(v)) and v > arg
    if op == "gte":
        return lambda v: (type(v) in _PLAIN_NUMBERS or _numeric(v)) and v >= arg
    if op == "between":
        low, high = arg
        return lambda v: (type(v) in _PLAIN_NUMBERS or _numeric(v)) and low <= v <= high
    if op == "matches":
        search = re.compile(arg).search
        return lambda v: type(v) is str and search(v[:MATCHED_TEXT]) is not None
    if op == "exists":
        if arg:
            return lambda v: v is not None and v != ""
        return lambda v: v is None or v == ""
    raise ValueError(f"unknown operator {op!r}")


def _compile_trigger(value: Any) -> Check:
    if isinstance(value, str):
        return lambda f: value in f.trigger_codes
    if "in" in value:
        wanted = frozenset(value["in"])
        return lambda f: bool(wanted & f.trigger_codes)
    unwanted = frozenset(value["not_in"])
    return lambda f: not (unwanted & f.trigger_codes)


def _compile_event(value: Mapping[str, Any]) -> Check:
    types = frozenset([value["type"]] if "type" in value else value["in"])
    within: timedelta | None = parse_duration(value["within"]) if "within" in value else None
    count_gte = int(value.get("count_gte", 1))

    def check(f: Facts) -> bool:
        n = 0
        for kind, at in f.lead.events:  # an Event is a (type, at) tuple
            if kind in types and (within is None or f.now - at <= within):
                n += 1
                if n >= count_gte:
                    return True
        return False

    return check
