"""Who gets the lead: ordered rules, the account owner, a rep, a team rotation, a queue.

Rotation is proportionally fair ("Pfair", Baruah et al.): each eligible rep's *lag* — the
leads it should have had by its weight minus the leads it got — is kept strictly between −1
and 1 by giving each lead to the rep with the earliest pseudo-deadline among those whose lag
is positive. On one "processor" (one lead at a time) this schedule always exists, so over any
run with the same reps each rep's count stays within one lead of its weight share. (Smooth
weighted round-robin, the common choice, does not: with weights 1,1,1,5,5,5 a rep falls 1.06
leads behind after 11 leads.) State advances per lead, not per batch — routers that read state
once per batch hand a whole batch to one rep. Reps who are away accrue nothing while away, so
a rep back from holiday is not flooded with "owed" leads.

State lives behind :class:`RotationPort`: :class:`InMemoryRotation` here, a locked table row in
the store (so two deciders on PostgreSQL never hand out the same slot).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple, Protocol
from zoneinfo import ZoneInfo

from core.model import Account, Route
from core.policy.codegen import compile_first_match
from core.policy.conditions import Check, Facts, compile_condition
from core.policy.schema import Policy, Queue, Rep

__all__ = [
    "Candidate",
    "InMemoryRotation",
    "Roster",
    "RotationPort",
    "Router",
    "availability",
    "fair_pick",
    "out_of_office",
]

_new = tuple.__new__
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_EPSILON = 1e-9


class Candidate(NamedTuple):
    """A rep who may take a rotation lead now, with what capacity checks need."""

    rep: str
    weight: int
    daily_capacity: int | None
    local_day: str  # the rep's calendar day (capacity resets at their midnight)


class RotationPort(Protocol):
    """Hands out rotation slots. Implementations keep lags and daily loads."""

    def assign(self, team: str, candidates: Sequence[Candidate], lead_key: str, now: datetime) -> Candidate | None:
        """Pick one candidate under capacity and record the assignment; ``None`` if all are full."""
        ...

    def load(self, rep: str, local_day: str) -> int:
        """Round-robin assignments this rep already has on that local day."""
        ...


def fair_pick(lags: dict[str, float], candidates: Sequence[Candidate]) -> Candidate:
    """Give one lead to a candidate by earliest pseudo-deadline first; updates ``lags``.

    A candidate's lag grows by its share of the eligible weight each lead and falls by 1 when
    it takes one. Among candidates with positive lag (their next lead is "released"), the one
    whose next lead is due soonest — the smallest ⌈(1 − lag) / share⌉ — wins; ties go to the
    candidate listed first (policy order), so the sequence is deterministic.
    """
    total = sum(c.weight for c in candidates)
    if total <= 0:
        raise ValueError("no candidates with weight")
    best: Candidate | None = None
    best_due = 0
    for c in candidates:
        share = c.weight / total
        lag = lags.get(c.rep, 0.0) + share
        lags[c.rep] = lag
        if lag > _EPSILON:
            due = math.ceil((1.0 - lag) / share - _EPSILON)
            if best is None or due < best_due:
                best, best_due = c, due
    if best is None:  # lags sum to one after accrual, so someone is positive; guard float drift
        best = max(candidates, key=lambda c: lags[c.rep])
    lags[best.rep] -= 1.0
    return best


@dataclass
class InMemoryRotation:
    """The rotation's in-memory twin: for ``loopgate decide`` without a store, and tests."""

    lags: dict[str, dict[str, float]] = field(default_factory=dict)
    loads: dict[tuple[str, str], int] = field(default_factory=dict)
    seq: dict[str, int] = field(default_factory=dict)
    log: list[tuple[str, int, str, str]] = field(default_factory=list)
    keep_log: bool = False

    def load(self, rep: str, local_day: str) -> int:
        return self.loads.get((rep, local_day), 0)

    def assign(self, team: str, candidates: Sequence[Candidate], lead_key: str, now: datetime) -> Candidate | None:
        loads = self.loads
        open_ = []  # a loop, not a comprehension: that is a function call per lead in 3.11
        for c in candidates:
            if c.daily_capacity is None or loads.get((c.rep, c.local_day), 0) < c.daily_capacity:
                open_.append(c)
        if not open_:
            return None
        chosen = fair_pick(self.lags.setdefault(team, {}), open_)
        key = (chosen.rep, chosen.local_day)
        self.loads[key] = self.loads.get(key, 0) + 1
        self.seq[team] = self.seq.get(team, 0) + 1
        if self.keep_log:
            self.log.append((team, self.seq[team], chosen.rep, lead_key))
        return chosen


def out_of_office(rep: Rep, now: datetime) -> str | None:
    """Why the rep is away today (``None`` if they are not), in their time zone.

    Unlike :func:`availability`, working hours do not count: a rep off for the evening still
    owns their accounts, and a customer's lead waits for them rather than going to a stranger."""
    today = now.astimezone(ZoneInfo(rep.timezone)).date()
    for away in rep.out_of_office:
        if away.start <= today <= away.end:
            return f"out of office until {away.end.isoformat()}"
    return None


def availability(rep: Rep, now: datetime) -> str | None:
    """Why the rep cannot take a new lead now (``None`` if they can), in their time zone."""
    local = now.astimezone(ZoneInfo(rep.timezone))
    absent = out_of_office(rep, now)
    if absent:
        return absent
    hours = rep.working_hours
    if hours is not None:
        if _WEEKDAYS[local.weekday()] not in hours.days:
            return f"not working on {_WEEKDAYS[local.weekday()]}"
        if not hours.start <= local.time() < hours.end:
            return f"outside working hours ({hours.start:%H:%M}–{hours.end:%H:%M} {rep.timezone})"
    return None


def _excluded(rep_id: str, why: Mapping[str, str]) -> str:
    """Why an excluded rep gets nothing: the reason given, else a re-route away from them."""
    return why.get(rep_id, "excluded (re-route)")


def _local_day(rep: Rep, now: datetime) -> date:
    return now.astimezone(ZoneInfo(rep.timezone)).date()


class Roster:
    """The policy's people, indexed the ways routing needs."""

    def __init__(self, policy: Policy) -> None:
        self.reps = {r.id: r for r in policy.reps}
        self.teams = {t.id: t for t in policy.teams}
        self.queues = {q.id: q for q in policy.queues}
        self.team_members = {
            t.id: [r for r in policy.reps if r.team == t.id and "rep" in r.roles and r.weight > 0] for t in policy.teams
        }
        # what name() answers, per rep or queue id (a rep's name wins over a queue's of the same id)
        self._names = {q.id: q.name or q.id for q in policy.queues} | {r.id: r.name for r in policy.reps}
        self.by_crm: dict[tuple[str, str], str] = {}
        people: list[Rep | Queue] = [*policy.reps, *policy.queues]
        for person in people:
            for system in ("salesforce", "hubspot"):
                crm_id = getattr(person.crm, system)
                if crm_id:
                    self.by_crm[(system, crm_id)] = person.id
                    if system == "salesforce" and len(crm_id) == 18:
                        self.by_crm[(system, crm_id[:15])] = person.id

    def person_for_crm(self, source: str, owner_id: str | None) -> str | None:
        """The rep or queue id behind a CRM owner id (15- and 18-char Salesforce ids alike)."""
        if not owner_id:
            return None
        return self.by_crm.get((source, owner_id)) or (
            self.by_crm.get((source, owner_id[:15])) if source == "salesforce" else None
        )

    def is_rep(self, person: str | None) -> bool:
        return person is not None and person in self.reps and "rep" in self.reps[person].roles

    def name(self, person: str | None) -> str:
        """How people call a rep or queue; an unknown id as it is, and nobody as "nobody"."""
        return self._names.get(person, person or "nobody")  # type: ignore[arg-type]  # None: not a key


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    when: Check | None
    kind: str  # account_owner | rep | team | queue
    target: str | None
    method: str | None


class Router:
    """The routing section of a policy, compiled once."""

    def __init__(self, policy: Policy, roster: Roster) -> None:
        self.roster = roster
        self.fallback_queue = policy.fallback_queue
        # availability depends only on the rep and ``now``; a batch decided at one ``now``
        # asks the same question thousands of times
        self._cached_at: datetime | None = None
        self._away: dict[str, str | None] = {}
        self._absent: dict[str, str | None] = {}  # out of office only: for account owners
        self._days: dict[str, str] = {}
        self._teams_now: dict[tuple[str, str], tuple[list[Candidate], str, str]] = {}
        self.rules: list[_Rule] = []
        for rule in policy.routing:
            when = compile_condition(rule.when) if rule.when else None
            if rule.to == "account_owner":
                self.rules.append(_Rule(rule.name, when, "account_owner", None, None))
            else:
                ((kind, target),) = rule.to.items()
                method = rule.method or (roster.teams[target].method if kind == "team" else None)
                self.rules.append(_Rule(rule.name, when, kind, target, method))
        # the rules' conditions as one generated function (``rule.when`` stays for reference)
        self._first_rule = compile_first_match(
            [rule.when or None for rule in policy.routing], "routing", resumable=True
        )

    def route(
        self,
        facts: Facts,
        rotation: RotationPort,
        *,
        keep_owner: bool,
        exclude: frozenset[str],
        why: Mapping[str, str] | None = None,
    ) -> Route:
        """Apply the rules in order; the first that yields an owner wins. Reps in ``exclude``
        get nothing, not even a lead they own; ``why`` says why for some of them (``inactive
        in salesforce``), the others are being re-routed away from."""
        why = why or {}
        lead, now = facts.lead, facts.now
        skipped: list[str] = []
        current = self.roster.person_for_crm(lead.source, lead.owner_id) if lead.owner_id else None
        if keep_owner and current is not None and self.roster.is_rep(current) and current not in exclude:
            # as for account owners: off for the evening they keep it, out of office they don't —
            # a demo request must not wait two weeks for its owner's return
            away = self._out_of_office(self.roster.reps[current], now)
            if not away:
                return Route("current_owner", "keep", current, "rep", f"already owned by {self.roster.name(current)}")
            skipped.append(f"current owner {self.roster.name(current)} {away}")
        if current is not None and current in exclude:
            skipped.append(f"{self.roster.name(current)} {_excluded(current, why)}")
        first, rules = self._first_rule, self.rules
        i = first(facts, 0)
        while i >= 0:
            routed = self._apply(rules[i], facts.account, facts, rotation, exclude, why, skipped, now)
            if routed is not None:
                # say why earlier matching rules did not decide: "why not the account owner?"
                return routed._replace(detail=f"{routed.detail}; {'; '.join(skipped)}") if skipped else routed
            i = first(facts, i + 1)
        detail = "no routing rule matched" if not skipped else "; ".join(skipped)
        return Route("fallback", "fallback_queue", self.fallback_queue, "queue", detail)

    def _apply(
        self,
        rule: _Rule,
        account: Account | None,
        facts: Facts,
        rotation: RotationPort,
        exclude: frozenset[str],
        why: Mapping[str, str],
        skipped: list[str],
        now: datetime,
    ) -> Route | None:
        if rule.kind == "queue":
            assert rule.target is not None
            return Route(rule.name, "queue", rule.target, "queue", f"sent to queue {self.roster.name(rule.target)}")
        if rule.kind == "rep":
            assert rule.target is not None
            return self._direct(rule.name, "named_rep", rule.target, exclude, why, skipped, now)
        if rule.kind == "account_owner":
            if account is None:
                skipped.append(f"{rule.name}: no matching account")
                return None
            owner = self.roster.person_for_crm(account.source, account.owner_id)
            if not self.roster.is_rep(owner):
                skipped.append(f"{rule.name}: account owner {account.owner_id or 'none'} is not a rep in the policy")
                return None
            assert owner is not None
            return self._direct(rule.name, "account_owner", owner, exclude, why, skipped, now, account)
        assert rule.target is not None and rule.method is not None
        return self._rotate(rule.name, rule.target, rule.method, facts, rotation, exclude, why, now)

    def open_slots(
        self, team_id: str, rotation: RotationPort, now: datetime, *, exclude: frozenset[str] = frozenset()
    ) -> int | None:
        """How many more rotation leads the team can take now: the room under capacity of its
        available reps (``None``: no limit, someone available has no cap; 0: nobody can).

        Asked before leads parked in the fallback queue are decided again, so a team still
        off duty or full is not re-decided into the same queue over and over."""
        if team_id not in self.roster.team_members:
            return 0
        room = 0
        for candidate in self._candidates(team_id, "round_robin", exclude, {}, now)[0]:
            if candidate.daily_capacity is None:
                return None
            room += max(candidate.daily_capacity - rotation.load(candidate.rep, candidate.local_day), 0)
        return room

    def _candidates(
        self, team_id: str, method: str, exclude: frozenset[str], why: Mapping[str, str], now: datetime
    ) -> tuple[list[Candidate], list[str]]:
        """Who in the team may take a lead now, and why the others may not."""
        candidates: list[Candidate] = []
        away: list[str] = []
        for rep in self.roster.team_members[team_id]:
            reason = _excluded(rep.id, why) if rep.id in exclude else self._availability(rep, now)
            if reason:
                away.append(f"{rep.name} {reason}")
                continue
            weight = rep.weight if method == "weighted_round_robin" else 1
            candidates.append(Candidate(rep.id, weight, rep.daily_capacity, self._days[rep.id]))
        return candidates, away

    def _at(self, now: datetime) -> None:
        """Forget what was cached for another ``now``."""
        if now != self._cached_at:
            self._cached_at, self._away, self._days, self._teams_now, self._absent = now, {}, {}, {}, {}

    def _availability(self, rep: Rep, now: datetime) -> str | None:
        self._at(now)
        if rep.id not in self._away:
            self._away[rep.id] = availability(rep, now)
            self._days[rep.id] = _local_day(rep, now).isoformat()
        return self._away[rep.id]

    def _out_of_office(self, rep: Rep, now: datetime) -> str | None:
        self._at(now)
        if rep.id not in self._absent:
            self._absent[rep.id] = out_of_office(rep, now)
        return self._absent[rep.id]

    def _direct(
        self,
        rule: str,
        method: str,
        rep_id: str,
        exclude: frozenset[str],
        why: Mapping[str, str],
        skipped: list[str],
        now: datetime,
        account: Account | None = None,
    ) -> Route | None:
        rep = self.roster.reps[rep_id]
        # working hours decide who gets new rotation leads; they do not take a customer's lead
        # from its account owner at 18:01 (the lead waits for the morning). Out of office does.
        present = self._out_of_office if method == "account_owner" else self._availability
        away = _excluded(rep_id, why) if rep_id in exclude else present(rep, now)
        if away:
            skipped.append(f"{rule}: {rep.name} {away}")
            return None
        owns = f"owner of account {account.name or account.id}" if account is not None else "named rep"
        return Route(rule, method, rep_id, "rep", f"{rep.name}: {owns}")

    def _rotate(
        self,
        rule: str,
        team_id: str,
        method: str,
        facts: Facts,
        rotation: RotationPort,
        exclude: frozenset[str],
        why: Mapping[str, str],
        now: datetime,
    ) -> Route:
        key = (team_id, method)
        if exclude or now != self._cached_at or key not in self._teams_now:
            team = self.roster.teams[team_id]
            team_name = team.name or team.id
            candidates, away = self._candidates(team_id, method, exclude, why, now)
            # what the detail says besides the chosen rep depends only on the team, the method
            # and who is away: written once per (team, method, now), as is the detail for when
            # the rotation has no open slot (then every candidate is at capacity)
            how = f" by {method.replace('_', ' ')} in {team_name}" + ("; skipped " + "; ".join(away) if away else "")
            full = [f"{self.roster.name(c.rep)} at capacity ({c.daily_capacity}/day)" for c in candidates]
            nobody = f"nobody in {team_name} can take it: " + "; ".join(away + full)
            if not exclude:
                self._teams_now[key] = (candidates, how, nobody)
        else:
            candidates, how, nobody = self._teams_now[key]
        chosen = (
            rotation.assign(team_id, candidates, f"{facts.lead.source}:{facts.lead.id}", now) if candidates else None
        )
        if chosen is None:
            return _new(Route, (rule, "fallback_queue", self.fallback_queue, "queue", nobody, team_id))
        rep = self.roster.reps[chosen.rep]
        load = rotation.load(chosen.rep, chosen.local_day)
        cap = f", {load}/{rep.daily_capacity} today" if rep.daily_capacity else f", {load} today"
        detail = f"{rep.name} (weight {chosen.weight}{cap}){how}"
        return _new(Route, (rule, method, chosen.rep, "rep", detail, team_id))  # Route(...), see core.model
