"""One lead in, one explained decision out (DESIGN §3 step 2).

The order matters and is the same for every lead: segment → score → (calibrated) confidence
→ triggers that need no owner → suppression → route → ownership triggers → trust level →
action → next-best-action. Suppressed leads are not routed, so junk never spends a rotation
slot or a rep's capacity. Everything the engine reads is passed in: the lead, its context
(account, previous score, twins in the other CRM), the rotation state, the trust levels and
``now``. Same inputs and state, same decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Literal

from core.confidence import Calibration
from core.escalation import EscalationContext, Escalator, format_span
from core.leads import CLOCK_SKEW, account_domain, account_domains, lead_as_of
from core.model import (
    ACTIONS,
    Account,
    Decision,
    DuplicateRecord,
    Event,
    Evidence,
    Lead,
    PriorScore,
    Route,
    Score,
    Trigger,
    positional_builder,
)
from core.next_action import ActionPlanner
from core.policy import LoadedPolicy
from core.policy.codegen import compile_first_match
from core.policy.conditions import Facts, named_triggers
from core.routing import Roster, RotationPort, Router
from core.scoring import Scorer
from core.trust import choose_action, in_audit_sample

__all__ = ["DecisionEngine", "LeadContext"]

_build_decision = positional_builder(Decision)
_new = tuple.__new__  # a NamedTuple without its Python-level __new__ (see core.model)
_code = attrgetter("code")  # of a Trigger
_UNROUTED = Route("pending", "none", None, "none", "")
_NOT_YET = f"dated more than {format_span(CLOCK_SKEW)} after the decision, not counted"


@dataclass(frozen=True, slots=True)
class LeadContext:
    """What the engine knows about a lead besides the lead itself."""

    account: Account | None = None
    previous: PriorScore | None = None
    duplicates: tuple[DuplicateRecord, ...] = ()
    exclude_owners: frozenset[str] = field(default_factory=frozenset)
    # why some of ``exclude_owners`` get nothing ("inactive in salesforce"); the rest: a re-route
    exclude_why: Mapping[str, str] = field(default_factory=dict)


def _not_yet(later: tuple[Event, ...]) -> Evidence:
    """Evidence (no points) that events dated after the decision were left out, so a person
    sees the lead's data is off rather than a score that silently ignores what it sent."""
    kind, at = later[-1]
    return Evidence(
        "events.future",
        len(later),
        0,
        f"{_NOT_YET} (latest: {kind.replace('_', ' ')} at {at:%Y-%m-%d %H:%M} UTC)",
    )


class DecisionEngine:
    """A policy compiled for deciding. Build once per policy version; decide many times."""

    def __init__(self, loaded: LoadedPolicy, calibration: Calibration | None = None) -> None:
        policy = loaded.policy
        self.loaded = loaded
        self.policy = policy
        self.version = loaded.version
        self.calibration = calibration or Calibration()
        self.roster = Roster(policy)
        self.scorer = Scorer(policy.scoring)
        self.router = Router(policy, self.roster)
        self.escalator = Escalator(policy.escalation, self.roster, self.scorer.bands)
        signal = policy.escalation.customer_signal
        self.planner = ActionPlanner(policy.next_best_action, signal.events if signal else ())
        # first match wins in both lists: one generated function per list (core.policy.codegen)
        # each list ends with what "no match" (-1) means, so that the index -1 picks it: the
        # default segment, no suppression
        self._segment_names = [*policy.segments, policy.default_segment]
        self._first_segment = compile_first_match(list(policy.segments.values()), "segment")
        self._suppressions: list[tuple[str, str | None] | None] = [(r.reason, r.queue) for r in policy.suppress]
        self._suppressions.append(None)
        self._first_suppression = compile_first_match([r.when for r in policy.suppress], "suppression")
        # a hard trigger overrules a suppression, except one the rule itself asks for: "cold and
        # the customer asked to pause" is written for exactly the customer_signal it names
        self._suppression_names = [named_triggers(r.when) for r in policy.suppress] + [frozenset()]
        self.free_domains = frozenset(d.lower() for d in policy.enrichment.free_email_domains)
        self._ownership = policy.escalation.duplicate_ownership
        self._trigger_order = {code: i for i, code in enumerate(self.escalator.codes)}
        # without any fitted curve calibration returns the raw value: skip the call per lead
        self._calibrated = bool(self.calibration.curves) or self.calibration.pooled is not None
        # what every decision reads from the policy, looked up once per engine (as the compiled
        # sections are): the policy of an engine never changes
        trust = policy.trust
        # every level is capped at the policy's max_level: a stored or pinned level (or a
        # starting level) from before the policy lowered it must not decide above it
        self._max_level = trust.max_level
        self._levels = {segment: min(level, trust.max_level) for segment, level in trust.segments.items()}
        self._default_level = min(trust.default_level, trust.max_level)
        self._auto_confidence, self._seed, self._keep_owner = trust.auto_confidence, trust.seed, policy.keep_owner
        self._sample_rates = {level: trust.sample_rate(level) for level in range(1, 5)}
        # how the explanation writes each band and action (str.capitalize per lead was two calls)
        self._capitalized = {word: word.capitalize() for word in (*policy.scoring.bands, "cold", *ACTIONS)}

    def account_domain(self, lead: Lead) -> str | None:
        """The domain to look the lead's account up by (never a personal mail domain)."""
        return account_domain(lead, self.free_domains)

    def account_domains(self, lead: Lead) -> tuple[str, ...]:
        """The domains to look the lead's account up by, best first (core.leads.account_domains)."""
        return account_domains(lead, self.free_domains)

    def trust_level(self, segment: str, levels: Mapping[str, int] | None = None) -> int:
        """The segment's current level: stored state first, then the policy's starting level;
        never above the policy's ``max_level`` (the stored level may predate the policy)."""
        if levels is not None and segment in levels:
            return min(levels[segment], self._max_level)
        return self._levels.get(segment, self._default_level)

    def decide(
        self,
        lead: Lead,
        ctx: LeadContext,
        *,
        rotation: RotationPort,
        now: datetime,
        trust_levels: Mapping[str, int] | None = None,
    ) -> Decision:
        events = lead.events
        later: tuple[Event, ...] = ()
        if events and events[-1].at > now:  # sorted by time: most leads have nothing after now
            # events dated after now have not happened: no score, trigger, condition or label
            # may see them, and the evidence says they were left out
            lead, later = lead_as_of(lead, now)
        facts = Facts(lead, ctx.account, now, lead.email_domain in self.free_domains)
        facts.segment = segment = self._segment(facts)
        parts = self.scorer.score(facts)
        if later:
            parts = parts._replace(evidence=(*parts.evidence, _not_yet(later)))
        raw_confidence = parts.raw_confidence
        confidence = self.calibration.apply(segment, raw_confidence) if self._calibrated else raw_confidence
        # learning (issue 7): the raw value is recorded so calibration can be refitted from labels;
        # the per-lead NamedTuples are built by tuple.__new__, without their Python-level __new__
        score = _new(
            Score, (parts.fit, parts.intent, parts.completeness, parts.total, parts.band, confidence, raw_confidence)
        )
        facts.score = score

        # triggers that do not depend on who owns the lead decide suppression; routing after
        esc = _new(EscalationContext, (parts, confidence, _UNROUTED, ctx.previous, ctx.duplicates))
        before_routing = self.escalator.triggers(facts, esc)
        if before_routing:  # map with a C getter: a comprehension is a function call per lead
            facts.trigger_codes = frozenset(map(_code, before_routing))
        matched = self._first_suppression(facts, 0)
        suppression, named = self._suppressions[matched], self._suppression_names[matched]
        if suppression is not None and not any(t.hard and t.code not in named for t in before_routing):
            route = self._parked(lead, suppression)
        else:
            route = self.router.route(
                facts, rotation, keep_owner=self._keep_owner, exclude=ctx.exclude_owners, why=ctx.exclude_why
            )
        ownership = None
        # duplicate ownership needs an account or a twin to disagree with: most leads have neither
        if self._ownership and (ctx.account is not None or ctx.duplicates):
            routed = EscalationContext(parts, confidence, route, ctx.previous, ctx.duplicates)
            ownership = self.escalator.ownership(facts, routed)
        triggers = tuple(before_routing) if ownership is None else self._ordered(before_routing, ownership)
        if ownership is not None:
            facts.trigger_codes = frozenset(map(_code, triggers))

        level = (
            self._levels.get(segment, self._default_level)
            if trust_levels is None
            else self.trust_level(segment, trust_levels)
        )
        action, why = choose_action(
            level,
            triggers,
            confidence,
            suppressed=suppression is not None,
            auto_confidence=self._auto_confidence,
            named=named,
        )
        sampled = action == "auto" and in_audit_sample(
            self._seed,
            f"{lead.source}:{lead.id}",
            f"{lead.updated_at.isoformat() if lead.updated_at else ''}:{self.version}",
            self._sample_rates[level] if level in self._sample_rates else self.policy.trust.sample_rate(level),
        )
        owner_name = self.roster.name(route.owner)
        nba = self.planner.plan(facts, parts.evidence, triggers, owner_name)
        # positional, in field order, through the slot stores: the frozen __init__ is
        # measurable per lead (core.model.positional_builder)
        return _build_decision(
            lead.id,
            lead.source,
            action,
            route.owner,
            route.owner_kind,
            route,
            segment,
            score,
            triggers,
            parts.evidence,
            nba,
            level,
            sampled,
            suppression[0] if suppression is not None else None,
            self.version,
            now,
            self._explain(score, segment, route, owner_name, action, why),
        )

    def _segment(self, facts: Facts) -> str:
        return self._segment_names[self._first_segment(facts, 0)]  # -1: the default, listed last

    def _parked(self, lead: Lead, suppression: tuple[str, str | None]) -> Route:
        reason, queue = suppression
        if queue is not None:
            return Route(
                "suppressed", "queue", queue, "queue", f"suppressed ({reason}): parked in {self.roster.name(queue)}"
            )
        current = self.roster.person_for_crm(lead.source, lead.owner_id)
        if current is not None:
            kind: Literal["rep", "queue"] = "rep" if current in self.roster.reps else "queue"
            return Route("suppressed", "keep", current, kind, f"suppressed ({reason}): owner left as is")
        return Route("suppressed", "none", None, "none", f"suppressed ({reason}): not routed")

    def _ordered(self, before: list[Trigger], ownership: Trigger | None) -> tuple[Trigger, ...]:
        """Triggers in the policy's documented order (duplicate_ownership after missing_data)."""
        if ownership is None:
            return tuple(before)
        order = self._trigger_order
        return tuple(sorted([*before, ownership], key=lambda t: order.get(t.code, len(order))))

    def _explain(self, score: Score, segment: str, route: Route, owner: str, action: str, why: str) -> str:
        if route.rule == "current_owner":
            where = f"stays with {owner}"
        elif route.rule == "suppressed":  # the route's detail says why and where: "suppressed (reason): …"
            where = route.detail
        else:
            where = f"routed to {owner} by rule {route.rule}" if route.owner else "not routed"
        # bands and actions come from a small known set: capitalised once per engine
        band = self._capitalized.get(score.band) or score.band.capitalize()
        verb = self._capitalized.get(action) or action.capitalize()
        return f"{band} lead ({score.total}) in {segment}, {where}. {verb}: {why}."
