"""Policy text → validated :class:`Policy`, or every problem with its file and line.

YAML is read with a YAML 1.2-style resolver: only ``true``/``false`` are booleans and there
are no sexagesimal numbers, so ``country: {in: [GB, NO]}`` keeps Norway and ``08:30`` stays
a time of day. Duplicate keys are errors (PyYAML would keep the last one silently). Errors
from pydantic and from the semantic checks are mapped back to lines through an index of the
composed YAML nodes. Nothing here touches the file system: callers pass the text and a name.

Anchors and aliases (``&x`` … ``*x``) are allowed, within bounds checked on the composed nodes
before anything walks the document copy by copy: an alias inside the value it names would make
it infinite, and aliases of aliases multiply ("billion laughs": seven lines can mean a million
values), so a document holding more than :data:`MAX_VALUES` values once expanded is refused.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from core.errors import PolicyError, PolicyProblem
from core.policy.conditions import Issue
from core.policy.schema import Policy
from core.policy.semantics import check_policy

__all__ = ["MAX_VALUES", "LoadedPolicy", "format_path", "parse_policy", "policy_version"]

Path = tuple[str | int, ...]

MAX_VALUES = 100_000  # values of a policy with its aliases expanded (the example has about 500)


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars (no yes/no booleans, no base-60)."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # an explicit tag the text does not fit (`!!int abc`, `!!timestamp xyz`) makes PyYAML
        # raise a bare ValueError, KeyError or AttributeError; the innermost node gives it a line
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, AttributeError, LookupError, OverflowError) as exc:
            tag = "!!" + node.tag.rsplit(":", 1)[-1]
            value = f"{node.value!r} " if isinstance(node, yaml.ScalarNode) else ""
            problem = f"{value}is not a valid {tag} value"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from exc


_Loader.yaml_implicit_resolvers = {}
for _tag, _regexp, _first in (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
):
    _Loader.add_implicit_resolver(_tag, re.compile(_regexp), list(_first))


@dataclass(frozen=True)
class LoadedPolicy:
    """A valid policy with its content version and where it came from."""

    policy: Policy
    version: str
    source: str
    text: str


def format_path(path: Path) -> str:
    """``("routing", 3, "to", "team")`` → ``routing[3].to.team``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def policy_version(policy: Policy) -> str:
    """Short hash of the normalised content: comments, key order and spacing do not count."""
    canonical = json.dumps(policy.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def parse_policy(text: str, source: str = "policy.yaml") -> LoadedPolicy:
    """Validate a policy document whole. Raises :class:`PolicyError` listing every problem."""
    try:
        return _parse(text, source)
    except RecursionError:  # PyYAML composes nested collections recursively
        message = "the policy nests too deeply to read (fewer levels of [ ] and { }, please)"
        raise PolicyError(source, [PolicyProblem(source, None, "", message)]) from None


def _parse(text: str, source: str) -> LoadedPolicy:
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise PolicyError(source, [_yaml_problem(source, exc, "YAML syntax error")]) from None
    if root is None:
        raise PolicyError(source, [PolicyProblem(source, 1, "", "the policy file is empty")])
    aliases = _alias_problems(root)
    if aliases:
        raise PolicyError(source, [PolicyProblem(source, line, format_path(path), msg) for path, line, msg in aliases])

    lines: dict[Path, int] = {}
    problems = [PolicyProblem(source, line, format_path(path), msg) for path, line, msg in _index(root, (), lines)]
    if problems:
        raise PolicyError(source, problems)
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader subclass
    except yaml.YAMLError as exc:  # composing passed: a tag (`!!python/name:`, `!!int abc`) failed
        raise PolicyError(source, [_yaml_problem(source, exc, "YAML value error")]) from None
    if not isinstance(data, dict):
        raise PolicyError(source, [PolicyProblem(source, 1, "", "the policy must be a mapping of sections")])

    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        issues = [_pydantic_issue(err) for err in exc.errors()]
        broken = {str(i.path[0]) for i in issues if i.path} | (
            set(Policy.model_fields) if any(not i.path for i in issues) else set()
        )
        issues += check_policy(_partial_policy(data, broken), broken)
        raise PolicyError(source, _located(source, issues, lines)) from None
    semantic = check_policy(policy)
    if semantic:
        raise PolicyError(source, _located(source, semantic, lines))
    return LoadedPolicy(policy=policy, version=policy_version(policy), source=source, text=text)


def _yaml_problem(source: str, exc: yaml.YAMLError, kind: str) -> PolicyProblem:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        return PolicyProblem(source, line, "", f"{kind}: {exc.problem}")
    return PolicyProblem(source, None, "", f"YAML error: {exc}")


def _partial_policy(data: dict[str, Any], broken: set[str]) -> Policy:
    """The sound sections of an invalid policy, so cross-checks can still run on them.

    Never returned to callers: it exists only to find more problems to report.
    """
    values: dict[str, Any] = {}
    for name, info in Policy.model_fields.items():
        if name in broken:
            continue
        if name in data:
            annotation: Any = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
            values[name] = TypeAdapter(annotation).validate_python(data[name])
        elif not info.is_required():
            values[name] = info.get_default(call_default_factory=True)
    return Policy.model_construct(**values)


def _alias_problems(root: yaml.Node) -> list[tuple[Path, int, str]]:
    """Aliases inside the value they name, or a document too big once aliases are expanded.

    Visits each composed node once (an alias is the node it names), so it costs what the text
    does, however much the aliases multiply; every later walk then has a known bound."""
    sizes: dict[int, int] = {}
    entered: dict[int, Path] = {}  # collections being visited (the current path), where
    problems: list[tuple[Path, int, str]] = []

    def size(node: yaml.Node, path: Path) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in entered:  # its own ancestor: the alias refers to a value that contains it
            message = "a YAML alias (*) inside the value it refers to (&) makes it infinite"
            problems.append((entered[key], node.start_mark.line + 1, message))
            sizes[key] = 0  # report it once
            return 0
        total = 1
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            entered[key] = path
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    total += size(key_node, path) + size(value_node, (*path, str(key_node.value)))
            else:
                total += sum(size(item, (*path, i)) for i, item in enumerate(node.value))
            del entered[key]
        sizes.setdefault(key, total)
        return total

    sections = root.value if isinstance(root, yaml.MappingNode) else [(None, root)]
    count = 1
    for key_node, value_node in sections:
        path: Path = () if key_node is None else (str(key_node.value),)
        count += size(value_node, path) + (0 if key_node is None else size(key_node, path))
        if count > MAX_VALUES and not problems:
            message = (
                f"the policy holds more than {MAX_VALUES} values once its YAML aliases (*) are expanded; "
                "repeat less through aliases"
            )
            line = (key_node or value_node).start_mark.line + 1
            return [(path, line, message)]
    return problems


def _index(node: yaml.Node, path: Path, lines: dict[Path, int]) -> list[tuple[Path, int, str]]:
    """Record the line of every node by path; report duplicate keys."""
    lines[path] = node.start_mark.line + 1
    problems: list[tuple[Path, int, str]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                problems.append(((*path, key), key_node.start_mark.line + 1, f"duplicate key '{key}'"))
                continue
            seen.add(key)
            problems += _index(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            problems += _index(item, (*path, i), lines)
    return problems


def _line_of(path: Path, lines: dict[Path, int]) -> int | None:
    probe = tuple(str(p) if not isinstance(p, int) else p for p in path)
    while probe:
        if probe in lines:
            return lines[probe]
        # mapping keys that YAML typed as numbers are indexed as text
        alt = tuple(str(p) for p in probe)
        if alt in lines:
            return lines[alt]
        probe = probe[:-1]
    return lines.get(())


def _located(source: str, issues: list[Issue], lines: dict[Path, int]) -> list[PolicyProblem]:
    return [PolicyProblem(source, _line_of(i.path, lines), format_path(i.path), i.message) for i in issues]


def _pydantic_issue(err: Any) -> Issue:
    """Turn a pydantic error into a policy issue with a path into the document."""
    loc: list[str | int] = []
    for part in err["loc"]:
        # pydantic adds the union member or validator name as a path step; drop those
        if isinstance(part, str) and (
            part.startswith(("function-", "literal[", "dict[", "list[")) or part in _UNION_TAGS
        ):
            continue
        loc.append(part)
    path = tuple(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        name = str(path[-1]) if path else "?"
        return Issue(path, f"unknown key '{name}'{_key_suggestion(path)}")
    if kind == "missing":
        return Issue(path, "required")
    message = str(err["msg"])
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return Issue(path, message)


_UNION_TAGS = {"WhenCondition", "bool", "Threshold", "float", "int", "str", "dict", "none"}


def _key_suggestion(path: Path) -> str:
    parent = _model_at(path[:-1])
    if parent is None:
        return ""
    names = [f.alias or n for n, f in parent.model_fields.items()]
    close = difflib.get_close_matches(str(path[-1]), names, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _model_at(path: Path) -> type[BaseModel] | None:
    """The pydantic model that describes the mapping at ``path``, when there is one."""
    model: Any = Policy
    for part in path:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        model = _first_model(model.model_fields[part].annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _first_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _first_model(arg)
        if found is not None:
            return found
    return None
