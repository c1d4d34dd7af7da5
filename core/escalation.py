"""When a person must look: the escalation triggers of DESIGN §4, each with a detail a rep
can read in a Slack message and know why the lead is theirs to judge.

Every trigger is parameterised by the policy and off unless configured. Which triggers are
*hard* (reviewed at every trust level) is the policy's ``escalation.hard`` list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields as dataclass_fields
from datetime import timedelta
from operator import attrgetter, itemgetter
from typing import NamedTuple

from core.model import Account, DuplicateRecord, Lead, PriorScore, Route, Trigger
from core.policy.codegen import PROLOGUE, SourceBuilder, compile_check
from core.policy.conditions import Check, Facts
from core.policy.durations import parse_duration
from core.policy.schema import BUILTIN_TRIGGERS, Escalation
from core.routing import Roster
from core.scoring import ScoreParts

__all__ = ["EscalationContext", "Escalator", "format_age", "format_span"]

_event_kind = itemgetter(0)  # Event.type: an Event is a (type, at) tuple


class EscalationContext(NamedTuple):
    """What triggers look at beyond the lead: its score, route, history and twins.

    A NamedTuple: built twice per lead (before and after routing)."""

    score: ScoreParts
    confidence: float
    route: Route
    previous: PriorScore | None
    duplicates: tuple[DuplicateRecord, ...]


_LEAD_ATTRS = frozenset(f.name for f in dataclass_fields(Lead)) | {"email_domain"}


def format_span(delta: timedelta) -> str:
    """``timedelta(minutes=4)`` → ``4 min``: how people say a length of time."""
    return _span(delta.total_seconds())


def format_age(delta: timedelta) -> str:
    """``timedelta(minutes=4)`` → ``4 min ago``."""
    seconds = delta.total_seconds()  # once: labels and details say an age for most leads
    return "just now" if seconds < 60 else f"{_span(seconds)} ago"


def _span(seconds: float) -> str:
    """:func:`format_span` of a length in seconds."""
    seconds = max(seconds, 0)
    if seconds < 60:
        return "under a minute"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h"
    days = int(seconds // 86400)
    return f"{days} day{'s' if days != 1 else ''}"


def _money(value: float) -> str:
    return f"${value:,.0f}"


class Escalator:
    """The escalation section of a policy, compiled once."""

    def __init__(self, escalation: Escalation, roster: Roster, bands: list[tuple[str, int]]) -> None:
        self.cfg = escalation
        self.roster = roster
        self.bands = bands
        self.hard = frozenset(escalation.hard)
        self._strategic_when: Check | None = None
        if escalation.strategic_account is not None and not isinstance(escalation.strategic_account, bool):
            self._strategic_when = compile_check(escalation.strategic_account.when, "strategic_account")
        self._vip_when = compile_check(escalation.vip.when, "vip") if escalation.vip else None
        self._custom = [(c.code, compile_check(c.when, "custom"), c.detail, c.hard) for c in escalation.custom]
        self._regulated = (
            frozenset(i.casefold() for i in escalation.regulated_industry.industries)
            if escalation.regulated_industry
            else frozenset()
        )
        self._volatility_window = (
            parse_duration(escalation.score_volatility.within) if escalation.score_volatility else None
        )
        # the threshold as the detail writes it, once per policy rather than per large deal
        self._deal_threshold = _money(escalation.high_deal_size.gte) if escalation.high_deal_size else ""
        self._signal_window = parse_duration(escalation.customer_signal.within) if escalation.customer_signal else None
        checks: list[tuple[str, Callable[[Facts, EscalationContext], str | None], object]] = [
            ("strategic_account", self._strategic, escalation.strategic_account),
            ("high_deal_size", self._deal_size, escalation.high_deal_size),
            ("regulated_industry", self._regulated_industry, escalation.regulated_industry),
            ("conflicting_signals", self._conflicting, escalation.conflicting_signals),
            ("score_volatility", self._volatility, escalation.score_volatility),
            ("missing_data", self._missing, escalation.missing_data),
            ("gray_zone", self._gray_zone, escalation.gray_zone),
            ("vip", self._vip, escalation.vip),
            ("customer_signal", self._customer_signal, escalation.customer_signal),
            ("low_confidence", self._low_confidence, escalation.low_confidence),
        ]
        # only the triggers the policy turns on are evaluated; hardness is known per code up front
        self._checks = [(code, check, code in self.hard) for code, check, setting in checks if setting]
        self._custom = [(code, when, detail, hard or code in self.hard) for code, when, detail, hard in self._custom]
        required = escalation.missing_data.required if escalation.missing_data else []
        self._required_values: Callable[[Lead], tuple[object, ...]] | None = (
            (attrgetter(*required) if len(required) > 1 else (lambda lead: (getattr(lead, required[0], None),)))
            if required and all(name in _LEAD_ATTRS for name in required)
            else None
        )
        self._signal_events = (
            frozenset(escalation.customer_signal.events) if escalation.customer_signal else frozenset()
        )
        self.codes = [*BUILTIN_TRIGGERS, *(c.code for c in escalation.custom)]
        # triggers(facts, ctx): every trigger except duplicate_ownership (which needs the routed
        # owner), in order. The generated function itself, not a method that calls it: per lead
        self.triggers: Callable[[Facts, EscalationContext], list[Trigger]] = self._compile_triggers()

    def _compile_triggers(self) -> Callable[[Facts, EscalationContext], list[Trigger]]:
        """The enabled checks in order, then the custom triggers, as one generated function:
        the loop over ``_checks`` and ``_custom`` unrolled, and the triggers written in the
        condition language (vip, custom) tested inline (``core.policy.codegen``)."""
        b = SourceBuilder()
        b.namespace.update(_Trigger=Trigger, _new=tuple.__new__, _kind=_event_kind)  # Trigger(...) without its __new__
        for line in PROLOGUE:
            b.line(line)
        b.line("found = []")
        for code, check, hard in self._checks:
            trigger = f"_new(_Trigger, ({b.const(code)}, {{}}, {hard!r}))"
            if code == "vip" and self._vip_when is not None and self.cfg.vip is not None:
                detail = self.cfg.vip.detail or "matches the VIP rule"  # what _vip returns
                b.line(f"if {b.condition(self.cfg.vip.when)}:")
                b.line(f"found.append({trigger.format(b.const(detail))})", 2)
                continue
            guard = self._guard(code, b)
            indent = 1
            if guard is not None:  # most leads fire no trigger: the call is made only when it may
                b.line(f"if {guard}:")
                indent = 2
            b.line(f"detail = {b.const(check)}(facts, ctx)", indent)
            b.line("if detail is not None:", indent)
            b.line(f"found.append({trigger.format('detail')})", indent + 1)
        for custom, (code, _, detail, hard) in zip(self.cfg.custom, self._custom, strict=True):
            b.line(f"if {b.condition(custom.when)}:")
            b.line(f"found.append(_new(_Trigger, ({b.const(code)}, {b.const(detail)}, {hard!r})))", 2)
        b.line("return found")
        return b.build("triggers", "facts, ctx")

    def _guard(self, code: str, b: SourceBuilder) -> str | None:
        """An inline test that is false only where the check of ``code`` surely returns None
        (``None``: no such test, always call the check). The check still decides and writes the
        detail; the guard only spares the call for the leads it cannot fire on. Each guard is
        the check's own first test, restated (a property test holds the two equal)."""
        cfg = self.cfg
        if code == "strategic_account" and self._strategic_when is None:
            return "(account is not None and account.strategic)"
        if code == "high_deal_size" and cfg.high_deal_size is not None:
            return f"((v := lead.estimated_deal_size) is not None and not v < {b.const(cfg.high_deal_size.gte)})"
        if code == "regulated_industry":
            industry = "(lead.industry or (account.industry if account else None))"
            return f"((v := {industry}) and v.casefold() in {b.const(self._regulated)})"
        if code == "conflicting_signals" and cfg.conflicting_signals is not None:
            c = cfg.conflicting_signals
            test = f"((s := ctx.score).fit >= {b.const(c.fit_gte)} and s.intent <= {b.const(c.intent_lte)})"
            if c.intent_gte is not None and c.fit_lte is not None:
                test = f"({test} or (s.intent >= {b.const(c.intent_gte)} and s.fit <= {b.const(c.fit_lte)}))"
            return test
        if code == "score_volatility":
            return "(ctx.previous is not None)"
        if code == "missing_data" and self._required_values is not None:
            return f'(None in (r := {b.const(self._required_values)}(lead)) or "" in r)'
        if code == "gray_zone" and cfg.gray_zone is not None:
            width = b.const(cfg.gray_zone.width)
            total = "(total := ctx.score.total)"  # read once, by the first comparison
            near = [
                f"abs({total if i == 0 else 'total'} - {b.const(t)}) <= {width}" for i, (_, t) in enumerate(self.bands)
            ]
            return f"({' or '.join(near)})" if near else "False"
        if code == "customer_signal":
            # only a lead with one of the signal events can fire: most leads with events have
            # none, and for them the set test (C code) spares the check's Python loop
            return f"(lead.events and not {b.const(self._signal_events)}.isdisjoint(map(_kind, lead.events)))"
        if code == "low_confidence" and cfg.low_confidence is not None:
            return f"not ctx.confidence >= {b.const(cfg.low_confidence.below)}"
        return None

    def ownership(self, facts: Facts, ctx: EscalationContext) -> Trigger | None:
        """``duplicate_ownership``, once routing has chosen an owner."""
        detail = self._duplicate(facts, ctx)
        return Trigger("duplicate_ownership", detail, "duplicate_ownership" in self.hard) if detail else None

    # each check returns the detail when the trigger fires, else None

    def _strategic(self, facts: Facts, ctx: EscalationContext) -> str | None:
        cfg = self.cfg.strategic_account
        if not cfg:
            return None
        account: Account | None = facts.account
        if self._strategic_when is not None:
            return "matches the strategic-account rule" if self._strategic_when(facts) else None
        if account is not None and account.strategic:
            owner = self.roster.person_for_crm(account.source, account.owner_id)
            who = f" (owner: {self.roster.name(owner)})" if owner else ""
            return f"account {account.name or account.id} is strategic{who}"
        return None

    def _deal_size(self, facts: Facts, ctx: EscalationContext) -> str | None:
        cfg = self.cfg.high_deal_size
        size = facts.lead.estimated_deal_size
        if cfg is None or size is None or size < cfg.gte:
            return None
        return f"estimated deal size {_money(size)} ≥ {self._deal_threshold}"

    def _regulated_industry(self, facts: Facts, ctx: EscalationContext) -> str | None:
        industry = facts.lead.industry or (facts.account.industry if facts.account else None)
        if not self._regulated or not industry or industry.casefold() not in self._regulated:
            return None
        return f"industry {industry} is regulated"

    def _conflicting(self, facts: Facts, ctx: EscalationContext) -> str | None:
        cfg = self.cfg.conflicting_signals
        if cfg is None:
            return None
        fit, intent = ctx.score.fit, ctx.score.intent
        if fit >= cfg.fit_gte and intent <= cfg.intent_lte:
            return f"strong fit ({fit}) but no recent intent ({intent})"
        if cfg.intent_gte is not None and cfg.fit_lte is not None and intent >= cfg.intent_gte and fit <= cfg.fit_lte:
            return f"strong intent ({intent}) but weak fit ({fit})"
        return None

    def _volatility(self, facts: Facts, ctx: EscalationContext) -> str | None:
        cfg, prev = self.cfg.score_volatility, ctx.previous
        if cfg is None or prev is None or self._volatility_window is None:
            return None
        if facts.now - prev.at > self._volatility_window:
            return None
        delta = ctx.score.total - prev.total
        if abs(delta) < cfg.delta_gte:
            return None
        return f"score moved {prev.total} → {ctx.score.total} ({delta:+d}) in {format_span(facts.now - prev.at)}"

    def _missing(self, facts: Facts, ctx: EscalationContext) -> str | None:
        cfg = self.cfg.missing_data
        if cfg is None:
            return None
        lead: Lead = facts.lead
        if self._required_values is not None:  # one C call for all the fields, most leads have them
            values = self._required_values(lead)
            if None not in values and "" not in values:
                return None
        missing = [name for name in cfg.required if getattr(lead, name, None) in (None, "")]
        if not missing:
            return None
        parts = []
        for name in missing:
            problem = lead.problems.get(name)
            parts.append(f"{name} ({problem})" if problem else name)
        return "missing " + ", ".join(parts)

    def _duplicate(self, facts: Facts, ctx: EscalationContext) -> str | None:
        if not self.cfg.duplicate_ownership:
            return None
        routed = ctx.route.owner if ctx.route.owner_kind == "rep" else None
        notes = []
        account = facts.account
        if account is not None and account.owner_id and routed is not None:
            owner = self.roster.person_for_crm(account.source, account.owner_id)
            if owner is not None and self.roster.is_rep(owner) and owner != routed:
                notes.append(
                    f"account {account.name or account.id} is owned by {self.roster.name(owner)}, "
                    f"routing chose {self.roster.name(routed)}"
                )
        mine = routed or self.roster.person_for_crm(facts.lead.source, facts.lead.owner_id)
        for dup in ctx.duplicates:
            # only a rep owns a twin, as only a rep owns an account above: a twin parked in a
            # queue (nurture, unassigned) or held by a CRM user the policy does not know as a rep
            # is nobody's yet, and must not force a review at every trust level (a hard trigger)
            if self.roster.is_rep(dup.owner_rep) and dup.owner_rep != mine:
                notes.append(f"also in {dup.source} ({dup.id}) owned by {self.roster.name(dup.owner_rep)}")
        return "; ".join(notes) if notes else None

    def _gray_zone(self, facts: Facts, ctx: EscalationContext) -> str | None:
        cfg = self.cfg.gray_zone
        if cfg is None:
            return None
        total = ctx.score.total
        for name, threshold in self.bands:
            gap = total - threshold
            if abs(gap) <= cfg.width:
                where = f"{-gap} below" if gap < 0 else ("exactly at" if gap == 0 else f"{gap} above")
                where = f"{where} the {name} threshold ({threshold})" if gap else f"{where} the {name} threshold"
                return f"score {total} is {where}"
        return None

    def _vip(self, facts: Facts, ctx: EscalationContext) -> str | None:
        if self._vip_when is None or self.cfg.vip is None or not self._vip_when(facts):
            return None
        return self.cfg.vip.detail or "matches the VIP rule"

    def _customer_signal(self, facts: Facts, ctx: EscalationContext) -> str | None:
        cfg = self.cfg.customer_signal
        if cfg is None or self._signal_window is None:
            return None
        wanted, window, now = self._signal_events, self._signal_window, facts.now
        for kind, at in reversed(facts.lead.events):  # latest first; an Event is a (type, at) tuple
            if kind in wanted and now - at <= window:
                return f"{kind.replace('_', ' ')} {format_age(now - at)}: pause automation"
        return None

    def _low_confidence(self, facts: Facts, ctx: EscalationContext) -> str | None:
        cfg = self.cfg.low_confidence
        if cfg is None or ctx.confidence >= cfg.below:
            return None
        return f"confidence {ctx.confidence:.2f} is below {cfg.below:.2f}"
