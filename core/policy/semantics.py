"""Checks that need the whole policy: references between sections, the condition language,
label placeholders. Each problem carries the document path of the offending value so the
loader can name its line (``policy.yaml:42 routing[3].to.team: unknown team 'emea'``)."""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import get_args

from core.policy.conditions import Issue, Stage, check_condition, check_predicate
from core.policy.schema import BUILTIN_TRIGGERS, Policy, ReasonUse
from core.salesforce_ids import salesforce_id18
from core.sla import REACH_MAX, WorkingWindow, reach, window_for

Path = tuple[str | int, ...]

__all__ = ["LABEL_PLACEHOLDERS", "LEAD_INPUT_FIELDS", "check_policy"]

LEAD_INPUT_FIELDS = (
    "email", "first_name", "last_name", "title", "company", "domain", "industry", "employees",
    "annual_revenue", "country", "state", "lead_source", "estimated_deal_size", "owner_id",
)  # fmt: skip

LABEL_PLACEHOLDERS = (
    "name", "company", "title", "band", "score", "segment", "owner", "top_signal",
    "latest_event", "latest_event_ago", "triggers",
)  # fmt: skip


def check_policy(policy: Policy, broken: Collection[str] = ()) -> list[Issue]:
    """Every cross-section problem, in document order.

    ``broken`` names top-level sections that failed structural validation; checks that read
    them are skipped (their problems are already reported), the others still run, so one
    typo does not hide a dangling reference elsewhere.
    """
    issues: list[Issue] = []
    for check, needs in _CHECKS:
        if not needs & set(broken):
            issues += check(policy)
    return issues


def _duplicates(
    items: Iterable[tuple[Path, str]], what: str, same: Callable[[str], str] = lambda value: value
) -> Iterator[Issue]:
    """Values that repeat; ``same`` gives the form two values are equal in."""
    seen: dict[str, str] = {}
    for path, value in items:
        key = same(value)
        if key not in seen:
            seen[key] = value
            continue
        also = f" (the same as '{seen[key]}')" if seen[key] != value else ""
        yield Issue(path, f"duplicate {what} '{value}'{also}")


def _salesforce_user(value: str) -> str:
    # a user's 15-character id (case-sensitive) and its 18-character form are one user: the
    # roster maps CRM owners by the first 15, so two reps on one user would silently be one
    return salesforce_id18(value[:15])


def _people_and_teams(p: Policy) -> list[Issue]:
    issues: list[Issue] = []
    ids = [(("reps", i, "id"), r.id) for i, r in enumerate(p.reps)]
    ids += [(("queues", i, "id"), q.id) for i, q in enumerate(p.queues)]
    issues += _duplicates(ids, "rep or queue id")
    issues += _duplicates([(("teams", i, "id"), t.id) for i, t in enumerate(p.teams)], "team id")
    issues += _duplicates(
        [(("reps", i, "slack_user"), r.slack_user) for i, r in enumerate(p.reps) if r.slack_user],
        "slack_user",
    )
    for crm in ("salesforce", "hubspot"):
        owners = [(("reps", i, "crm", crm), getattr(r.crm, crm)) for i, r in enumerate(p.reps)]
        owners += [(("queues", i, "crm", crm), getattr(q.crm, crm)) for i, q in enumerate(p.queues)]
        same = _salesforce_user if crm == "salesforce" else str
        issues += _duplicates([(path, v) for path, v in owners if v], f"{crm} owner id", same)
    teams = {t.id for t in p.teams}
    reps = {r.id for r in p.reps}
    for i, rep in enumerate(p.reps):
        if rep.team is not None and rep.team not in teams:
            issues.append(Issue(("reps", i, "team"), f"unknown team '{rep.team}'"))
    for i, team in enumerate(p.teams):
        if team.manager not in reps:
            issues.append(Issue(("teams", i, "manager"), f"unknown rep '{team.manager}'"))
        rotating = [r for r in p.reps if r.team == team.id and "rep" in r.roles and r.weight > 0]
        if not rotating:
            issues.append(Issue(("teams", i, "id"), f"team '{team.id}' has no rep with weight > 0 to route to"))
    return issues


def _reason_codes(p: Policy) -> list[Issue]:
    issues = list(
        _duplicates(
            [(("reason_codes", i, "code"), rc.code) for i, rc in enumerate(p.reason_codes)],
            "reason code",
        )
    )
    # each modal (override, reassign, an audit flag) offers the codes for its use in a required
    # select: with none, Slack refuses to open it and the button does nothing, for every lead
    for use in get_args(ReasonUse):
        if not any(use in rc.applies_to for rc in p.reason_codes):
            message = (
                f"no reason code applies to {use}: the {use} modal would offer no reason to choose "
                f"(add '{use}' to a code's applies_to, or leave applies_to out)"
            )
            issues.append(Issue(("reason_codes",), message))
    return issues


def _segment_names(p: Policy) -> set[str]:
    return {*p.segments, p.default_segment}


def _segments(p: Policy) -> list[Issue]:
    issues: list[Issue] = []
    for name, condition in p.segments.items():
        issues += check_condition(condition, ("segments", name), Stage.LEAD)
    if p.default_segment in p.segments:
        issues.append(Issue(("default_segment",), f"'{p.default_segment}' is also a defined segment"))
    return issues


def _scoring(p: Policy) -> list[Issue]:
    issues: list[Issue] = []
    for i, rule in enumerate(p.scoring.fit):
        path: Path = ("scoring", "fit", i)
        # the signal is checked as a field reference; the operators sit beside it in the rule
        signal_issues = check_condition({rule.signal: None}, path, Stage.LEAD)
        issues += [Issue((*path, "signal"), issue.message) for issue in signal_issues]
        issues += check_predicate(rule.predicate(), path)
    if p.scoring.completeness is not None:
        for i, name in enumerate(p.scoring.completeness.fields):
            if name not in LEAD_INPUT_FIELDS:
                issues.append(Issue(("scoring", "completeness", "fields", i), f"unknown lead field '{name}'"))
    return issues


def _target_issues(p: Policy, target: object, path: tuple[str | int, ...]) -> list[Issue]:
    if not isinstance(target, dict):
        return []
    ((kind, ident),) = target.items()
    known = {
        "rep": {r.id for r in p.reps if "rep" in r.roles},
        "team": {t.id for t in p.teams},
        "queue": {q.id for q in p.queues},
    }[kind]
    if ident not in known:
        return [Issue((*path, kind), f"unknown {kind} '{ident}'")]
    return []


def _routing(p: Policy) -> list[Issue]:
    issues: list[Issue] = []
    issues += _duplicates([(("routing", i, "name"), r.name) for i, r in enumerate(p.routing)], "routing rule name")
    for i, rule in enumerate(p.routing):
        if rule.when is not None:
            issues += check_condition(rule.when, ("routing", i, "when"), Stage.SCORED, _segment_names(p))
        issues += _target_issues(p, rule.to, ("routing", i, "to"))
        if rule.method is not None and not (isinstance(rule.to, dict) and "team" in rule.to):
            issues.append(Issue(("routing", i, "method"), "'method' applies only to a team target"))
    if p.fallback_queue not in {q.id for q in p.queues}:
        issues.append(Issue(("fallback_queue",), f"unknown queue '{p.fallback_queue}'"))
    return issues


def _escalation(p: Policy) -> list[Issue]:
    e = p.escalation
    issues: list[Issue] = []
    for name, block in (("strategic_account", e.strategic_account), ("vip", e.vip)):
        when = getattr(block, "when", None)
        if when is not None:
            path: Path = ("escalation", name, "when")
            issues += check_condition(when, path, Stage.SCORED, _segment_names(p))
    if e.missing_data is not None:
        for i, name in enumerate(e.missing_data.required):
            if name not in LEAD_INPUT_FIELDS:
                issues.append(Issue(("escalation", "missing_data", "required", i), f"unknown lead field '{name}'"))
    custom_codes: list[tuple[Path, str]] = [
        (("escalation", "custom", i, "code"), c.code) for i, c in enumerate(e.custom)
    ]
    issues += _duplicates(custom_codes, "trigger code")
    for path, code in custom_codes:
        if code in BUILTIN_TRIGGERS:
            issues.append(Issue(path, f"'{code}' is a built-in trigger; pick another code"))
    for i, custom in enumerate(e.custom):
        path = ("escalation", "custom", i, "when")
        issues += check_condition(custom.when, path, Stage.SCORED, _segment_names(p))
    known = set(BUILTIN_TRIGGERS) | {c.code for c in e.custom}
    for i, code in enumerate(e.hard):
        if code not in known:
            issues.append(Issue(("escalation", "hard", i), f"unknown trigger '{code}'"))
    return issues


def _trigger_codes(p: Policy) -> set[str]:
    return {*BUILTIN_TRIGGERS, *(c.code for c in p.escalation.custom)}


def _suppress_and_actions(p: Policy) -> list[Issue]:
    issues: list[Issue] = []
    queues = {q.id for q in p.queues}
    segments, triggers = _segment_names(p), _trigger_codes(p)
    for i, rule in enumerate(p.suppress):
        issues += check_condition(rule.when, ("suppress", i, "when"), Stage.ESCALATED, segments, triggers)
        if rule.queue is not None and rule.queue not in queues:
            issues.append(Issue(("suppress", i, "queue"), f"unknown queue '{rule.queue}'"))
    rules = p.next_best_action
    for i, nba in enumerate(rules):
        if nba.when is not None:
            path = ("next_best_action", i, "when")
            issues += check_condition(nba.when, path, Stage.ESCALATED, segments, triggers)
        issues += _label_issues(nba.label, ("next_best_action", i, "label"))
    if rules[-1].when is not None:
        issues.append(
            Issue(
                ("next_best_action", len(rules) - 1),
                "the last rule must have no 'when', so that every lead gets an action",
            )
        )
    return issues


def _label_issues(label: str, path: tuple[str | int, ...]) -> list[Issue]:
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(label) if name is not None]
    except ValueError as exc:
        return [Issue(path, f"invalid label template: {exc}")]
    issues: list[Issue] = []
    for name, spec, conversion in fields:
        if name not in LABEL_PLACEHOLDERS:
            issues.append(Issue(path, f"unknown placeholder '{{{name}}}'; use {', '.join(LABEL_PLACEHOLDERS)}"))
        elif spec or conversion:
            # every value is text filled in per lead: "{score:03d}" or "{name!x}" would fail
            # only then, on every decision that reaches this rule
            written = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            message = f"placeholder '{written}' has a format or conversion; write it plain: {{{name}}}"
            issues.append(Issue(path, message))
    return issues


def _sla_and_trust(p: Policy) -> list[Issue]:
    issues: list[Issue] = []
    bands = {*p.scoring.bands, "cold"}
    for band in p.sla.first_touch:
        if band not in bands:
            issues.append(Issue(("sla", "first_touch", band), f"unknown band '{band}'"))
    segments = {*p.segments, p.default_segment}
    for segment, level in p.trust.segments.items():
        if segment not in segments:
            issues.append(Issue(("trust", "segments", segment), f"unknown segment '{segment}'"))
        elif level > p.trust.max_level:
            path = ("trust", "segments", segment)
            issues.append(Issue(path, f"level {level} is above max_level {p.trust.max_level}"))
    if p.trust.default_level > p.trust.max_level:
        issues.append(Issue(("trust", "default_level"), "default_level is above max_level"))
    counts = Counter(step.do for step in p.sla.on_breach)
    for do, n in counts.items():
        if n > 1:
            issues.append(Issue(("sla", "on_breach"), f"'{do}' appears {n} times"))
    return issues


def _sla_reach(p: Policy) -> list[Issue]:
    """With business hours a clock runs only in its owner's working hours: an SLA long in hours
    on a rep with few of them (or none) would fall due beyond what planning looks ahead, and
    deciding a lead for that rep would fail."""
    if not p.sla.business_hours:
        return []
    issues: list[Issue] = []
    windows: list[tuple[str, WorkingWindow]] = []
    for rep in p.reps:
        window = window_for(rep)
        if window is not None and window.days:  # the schema refuses a rep with no working day
            windows.append((rep.id, window))
    texts: list[tuple[Path, str]] = [(("sla", "first_touch", band), text) for band, text in p.sla.first_touch.items()]
    texts += [(("sla", "review"), p.sla.review)] if p.sla.review else []
    texts += [(("sla", "on_breach", i, "after"), s.after) for i, s in enumerate(p.sla.on_breach) if s.after]
    for path, text in texts:
        far = max(((reach(text, w), rep) for rep, w in windows), default=None)
        if far is not None and far[0] > REACH_MAX:
            years = far[0].days // 365
            message = (
                f"'{text}' of {far[1]}'s working hours falls due about {years} years after it starts; "
                f"with sla.business_hours an SLA must fall due within {REACH_MAX.days // 365} years"
            )
            issues.append(Issue(path, message))
    return issues


_PEOPLE = {"reps", "teams", "queues"}
_SEGMENTS = {"segments", "default_segment"}
_CHECKS = (
    (_people_and_teams, _PEOPLE),
    (_reason_codes, {"reason_codes"}),
    (_segments, _SEGMENTS),
    (_scoring, {"scoring"}),
    (_routing, {"routing", "fallback_queue", *_PEOPLE, *_SEGMENTS}),
    (_escalation, {"escalation", *_SEGMENTS}),
    (_suppress_and_actions, {"suppress", "next_best_action", "queues", "escalation", *_SEGMENTS}),
    (_sla_and_trust, {"sla", "trust", "scoring", *_SEGMENTS}),
    (_sla_reach, {"sla", "reps"}),
)
