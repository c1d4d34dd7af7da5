"""The SLA scan (every minute): settle clocks that were answered, then carry out due steps.

Each due clock is handled in its own transaction with the clock row locked: its due steps
are claimed (``sla_steps``, unique per clock and step) in the same transaction as their
effects — the DM in the outbox, the re-decision — so a crash, a restart, a misfired run or a
second scheduler can never send a nudge twice, and a step that was never claimed is simply
done on the next scan.

**Catching up** after downtime: every due step still runs once, in order, and its lateness is
recorded (``sla_steps.late_seconds``, the audit event, a warning over two minutes). Owner
nudges are the one thing coalesced: of several nudges due at once only the newest is sent
(the older ones are recorded as ``coalesced``), and none when the same scan re-routes the
lead — a stack of stale reminders helps nobody. Breach steps always run.

**Who hears what**: nudges go to the owner (a rep with a Slack user), else to the responsible
team's manager; breach notices to the team's manager, else the team's channel; a re-route
re-decides the lead without the late owner nor any rep who let it pass a deadline before since
it was last answered (``late_owners``; ``decide_leads`` with ``exclude``) — the new decision
brings its own escalation or assignment DM to the new owner — and the late owner is told where
the lead went.

**Clicks in flight**: a re-route waits while a click on the decision is acknowledged but not
yet recorded (:func:`bot.click_inbox.clicks_waiting`): Slack told the person their Approve was
taken, so it must not be refused as out of date. The clock stays due; the next scan looks again.

**Parking**: when nobody who has not let it pass is free, or after ``MAX_REROUTES`` re-routes
(the next one excludes every rep), the re-route leaves the lead in the fallback queue and the
manager is told, once: the queue's own clock, if it has one, is not re-routed past the limit,
and ``unpark`` neither brings it back to a late rep nor takes it out past the limit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from bot.blocks.common import Message
from bot.blocks.sla import ClockFacts, breach_message, nudge_message, rerouted_message
from bot.cards import Card, load_card
from bot.click_inbox import clicks_waiting
from bot.notifier import enqueue_message
from core.engine import DecisionEngine
from core.policy import LoadedPolicy
from core.review import Proposal, ReviewRules
from core.sla import PolicySlaClock, Step
from core.store import audit_log
from core.store.audit_log import AuditRecord
from core.store.decide import DecideRequest, decide_leads
from core.store.models import Decision, Lead, SlaClock
from core.store.rotation import StoreRotation
from core.store.sla_clocks import (
    MAX_REROUTES,
    claim_step,
    close,
    due_clocks,
    late_owners,
    lock_open,
    remaining_steps,
    reroute_key,
    rerouted_queues,
    settle,
    steps_done,
)
from scheduler.context import SchedulerContext

__all__ = ["FAILED_RETRY_AFTER", "LATE_AFTER", "ScanReport", "run_sla_scan"]

log = logging.getLogger(__name__)

LATE_AFTER = timedelta(minutes=2)  # a step this late is logged as late (it is always recorded)
# a clock whose steps failed is tried again this much later: due clocks are taken oldest first,
# so left due it would come first (and fail first) in every scan
FAILED_RETRY_AFTER = timedelta(minutes=5)


@dataclass(slots=True)
class ScanReport:
    met: int = 0
    cancelled: int = 0
    handed_over: int = 0
    expired: int = 0
    steps: dict[str, int] = field(default_factory=dict)
    late: int = 0

    def count(self, outcome: str) -> None:
        self.steps[outcome] = self.steps.get(outcome, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "met": self.met,
            "cancelled": self.cancelled,
            "handed_over": self.handed_over,
            "expired": self.expired,
            "steps": dict(self.steps),
            "late": self.late,
        }


class _Scan:
    """One scan: the policy, rules and clocks it reads, and the engine built only if needed."""

    def __init__(self, ctx: SchedulerContext, loaded: LoadedPolicy, now: datetime) -> None:
        self.ctx, self.loaded, self.now = ctx, loaded, now
        self.policy = loaded.policy
        self.rules = ReviewRules(self.policy)
        self.review_clock = PolicySlaClock(self.policy)
        self._engine: DecisionEngine | None = None
        self.report = ScanReport()

    @property
    def engine(self) -> DecisionEngine:
        if self._engine is None:
            self._engine = self.ctx.engine(self.loaded)
        return self._engine

    # --- people -------------------------------------------------------------------------------

    def _team(self, clock: SlaClock) -> Any:
        teams = self.rules.roster.teams
        if clock.team in teams:
            return teams[clock.team]
        proposal = Proposal(clock.decision_pk, clock.owner, clock.owner_kind, clock.team, clock.band, 0, clock.segment)
        return self.rules.responsible_team(proposal)

    def _slack_of(self, person: str | None) -> str | None:
        rep = self.rules.roster.reps.get(person or "")
        return rep.slack_user if rep is not None else None

    def owner_target(self, clock: SlaClock) -> dict[str, str] | None:
        """Where the owner's nudge goes: the owner, else the team's manager."""
        if clock.owner_kind == "rep" and self._slack_of(clock.owner):
            return {"user": str(self._slack_of(clock.owner))}
        return self.manager_target(clock)

    def manager_target(self, clock: SlaClock) -> dict[str, str] | None:
        team = self._team(clock)
        if team is None:
            return None
        manager = self._slack_of(team.manager)
        return {"user": manager} if manager else {"channel": team.channel}

    def facts(self, clock: SlaClock) -> ClockFacts:
        rep = self.rules.roster.reps.get(clock.owner or "") if clock.owner_kind == "rep" else None
        return ClockFacts(
            clock.pk,
            clock.kind,
            self.rules.roster.name(clock.owner),
            clock.started_at,
            clock.due_at,
            owner_timezone=rep.timezone if rep is not None else None,
        )

    # --- one clock ------------------------------------------------------------------------------

    def clock(self, session: Session, clock_pk: int) -> None:
        clock = lock_open(session, clock_pk)
        if clock is None:
            return
        settled = settle(session, self.policy, now=self.now, clock_pks=[clock_pk])
        self.report.met += settled.met
        self.report.cancelled += settled.cancelled
        self.report.handed_over += len(settled.opened)
        if clock.state != "open":
            return
        card = load_card(session, self.rules, self.review_clock, clock.decision_pk)
        lead = session.get(Lead, clock.lead_pk)
        if card is None or lead is None or lead.is_deleted:
            close(clock, "cancelled", "lead or decision gone", self.now)
            self.report.cancelled += 1
            return
        due = [s for s in remaining_steps(clock, steps_done(session, clock_pk)) if s.at <= self.now]
        rerouting = any(s.do == "reroute" for s in due)
        held = self._held(session, clock, card, lead) if rerouting else None
        if held is not None:
            # nothing of the re-route is claimed, so the next scan finds it due and looks again;
            # the nudges and the breach notice due before it still go out
            self.report.count(held)
            ahead, due, rerouting = due, due[: next(i for i, s in enumerate(due) if s.do == "reroute")], False
        else:
            ahead = due
        last_nudge = max((i for i, s in enumerate(due) if s.do == "nudge_owner"), default=-1)
        records: list[AuditRecord] = []
        for index, step in enumerate(due):
            if step.do == "nudge_owner" and (index != last_nudge or rerouting):
                outcome, detail = "coalesced", {"why": "re-routed in the same scan" if rerouting else "a newer nudge"}
            else:
                outcome, detail = self.perform(session, clock, card, lead, step, ahead[index + 1 :])
            if not claim_step(session, clock, step, now=self.now, outcome=outcome, detail=detail):
                raise _Raced(clock_pk)  # someone carried this step out first: undo ours
            records.append(self.audit(lead, clock, step, outcome, detail))
            self.report.count(outcome)
            if clock.state != "open":
                break
        if clock.state == "open":
            done = steps_done(session, clock_pk)
            rest = remaining_steps(clock, done)
            clock.next_at = rest[0].at if rest else None
        audit_log.append(session, records)

    def audit(self, lead: Lead, clock: SlaClock, step: Step, outcome: str, detail: dict[str, Any]) -> AuditRecord:
        late = max(int((self.now - step.at).total_seconds()), 0)
        if late > LATE_AFTER.total_seconds():
            self.report.late += 1
            log.warning("SLA step %s of clock %s ran %ss late (%s)", step.key, clock.pk, late, outcome)
        return AuditRecord(
            self.now,
            self.ctx.actor,
            f"sla.{step.do}" if outcome != "coalesced" else "sla.coalesced",
            f"lead:{lead.source}:{lead.crm_id}",
            {
                "clock": clock.pk,
                "kind": clock.kind,
                "step": step.key,
                "due_at": step.at.isoformat(),
                "late_seconds": late,
                "outcome": outcome,
                "owner": clock.owner,
                **detail,
            },
        )

    def perform(
        self, session: Session, clock: SlaClock, card: Card, lead: Lead, step: Step, later: list[Step]
    ) -> tuple[str, dict[str, Any]]:
        """Carry out one step's effect; returns (outcome, detail) to record with it."""
        if step.do == "breach":
            clock.breached_at = step.at
            return "recorded", {}
        if step.do == "nudge_owner":
            target = self.owner_target(clock)
            message = nudge_message(card, self.facts(clock), now=self.now)
            return self._send(session, clock, step, target, message)
        if step.do == "notify_manager":
            target = self.manager_target(clock)
            upcoming = next((s for s in (*later, *self._future(session, clock)) if s.do == "reroute"), None)
            plan: str | None = None
            if upcoming is not None:
                late, when = self._late(session, clock, lead), f"{upcoming.at:%Y-%m-%d %H:%M} UTC"
                if self._parked(session, clock, lead, late):
                    plan = "none: parked by an earlier re-route, it waits in the queue for a person"
                elif self._team_off_duty(session, clock):
                    plan = f"re-route once its team has room (not before {when}) unless it is answered"
                elif len(late) > MAX_REROUTES:
                    plan = f"park it in the fallback queue {when} unless it is answered"
                else:
                    plan = f"re-route {when} unless it is answered"
            message = breach_message(card, self.facts(clock), now=self.now, next_step=plan)
            return self._send(session, clock, step, target, message)
        return self._reroute(session, clock, card, lead, step)

    def _future(self, session: Session, clock: SlaClock) -> list[Step]:
        return [s for s in remaining_steps(clock, steps_done(session, clock.pk)) if s.at > self.now]

    def _send(
        self, session: Session, clock: SlaClock, step: Step, target: dict[str, str] | None, message: Message
    ) -> tuple[str, dict[str, Any]]:
        if target is None:
            log.warning("SLA step %s of clock %s has nobody to tell (no owner, team or manager)", step.key, clock.pk)
            return "nobody", {"why": "no owner, team or manager to tell"}
        enqueue_message(
            session,
            f"sla:{clock.pk}:{step.key}",
            text=message.text,
            blocks=message.blocks,
            now=self.now,
            sla_clock=clock.pk,
            **target,
        )
        return "sent", {"to": target}

    def _reroute(
        self, session: Session, clock: SlaClock, card: Card, lead: Lead, step: Step
    ) -> tuple[str, dict[str, Any]]:
        late_owner = clock.owner
        if lead.converted:  # an outcome now, never decided again (core.store.decide): nobody owes it a touch
            close(clock, "cancelled", "lead converted", self.now)
            return "cancelled", {"why": "lead converted"}
        late = self._late(session, clock, lead)
        if self._parked(session, clock, lead, late):
            return "parked", {"why": "parked by an earlier re-route: it waits in the queue", "late": late}
        capped = len(late) > MAX_REROUTES
        close(clock, "rerouted", f"{step.key} at {step.at.isoformat()}", self.now)
        session.flush()  # the re-decision looks for open clocks of this lead
        # past the limit nobody is tried again: every rep excluded leaves the fallback queue
        exclude = frozenset(self.rules.roster.reps) if capped else frozenset(late)
        if late_owner:
            exclude |= {late_owner}
        because = f"excluded (re-routed {len(late) - 1} times already)" if capped else "excluded (let it pass its SLA)"
        request = DecideRequest(lead, "reroute", reroute_key(clock.pk), exclude=exclude, excluded_because=because)
        decided = decide_leads(session, self.engine, [request], now=self.now, actor=self.ctx.actor)
        if not decided:
            return "rerouted", {"why": "already re-decided"}
        new = decided[0].decision
        new_owner = self.rules.roster.name(new.owner) if new.owner_kind != "none" else "nobody"
        detail: dict[str, Any] = {"decision": decided[0].decision_pk, "to": new.owner, "action": new.action}
        late_slack = self._slack_of(late_owner) if clock.owner_kind == "rep" else None
        if late_slack:
            message = rerouted_message(card, self.facts(clock), new_owner=new_owner, now=self.now)
            enqueue_message(
                session,
                f"sla:{clock.pk}:{step.key}:told",
                text=message.text,
                blocks=message.blocks,
                now=self.now,
                user=late_slack,
            )
        if clock.owner_kind == "rep" and new.owner_kind != "rep":
            # parked: nobody who has not already let it pass is free, or the limit is reached.
            # The manager hears once — the queue's own clock is not re-routed after this
            detail |= {"parked": "limit" if capped else "nobody else", "late": late}
            self._tell_parked(session, clock, card, step, new_owner, late, capped=capped, review=new.action == "review")
        return "rerouted", detail

    def _parked(self, session: Session, clock: SlaClock, lead: Lead, late: list[str]) -> bool:
        """Whether a queue's clock waits in its queue instead of being re-routed: a re-route
        put it there (reps let it pass, or a queue's clock was re-routed once already). Deciding
        it again would mostly land it in the same queue, with another escalation and breach
        notice each time (:func:`core.store.sla_clocks.rerouted_queues`). A lead in the
        fallback queue only because its team was off duty is held until the team has room
        instead (:meth:`_team_off_duty`), so it is not parked for good by a night."""
        return clock.owner_kind != "rep" and bool(late or rerouted_queues(session, lead.pk))

    def _held(self, session: Session, clock: SlaClock, card: Card, lead: Lead) -> str | None:
        """Why a due re-route waits for a later scan, if it does."""
        if clicks_waiting(session, clock.decision_pk):
            # an acknowledged Approve not yet recorded (its worker slow, or dead until its lease
            # ends): re-routing now would refuse what Slack already told the person it took
            log.info(
                "SLA clock %s: a click on decision %s waits to be recorded; re-route held", clock.pk, card.decision_pk
            )
            return "held_for_click"
        if self._team_off_duty(session, clock) and not self._parked(
            session, clock, lead, self._late(session, clock, lead)
        ):
            # an escalation in the fallback queue because its team was off duty or full: deciding
            # it again now lands it in the same queue (a new escalation and breach notice every
            # 2.5 h, all night); it is re-routed once the team has room
            log.info("SLA clock %s: its team has no room yet; re-route held", clock.pk)
            return "held_for_team"
        return None

    def _team_off_duty(self, session: Session, clock: SlaClock) -> bool:
        """Whether the clock's decision put the lead in the fallback queue for a team that still
        has no room for it (nobody on duty, or everyone at capacity). Asked of clocks that are
        not :meth:`_parked` (those wait for a person, not for the team)."""
        if clock.owner_kind == "rep":
            return False
        decision = session.get(Decision, clock.decision_pk)
        if decision is None or decision.team is None:
            return False
        if (decision.contract.get("route") or {}).get("method") != "fallback_queue":
            return False
        return self.engine.router.open_slots(decision.team, StoreRotation(session), self.now) == 0

    def _late(self, session: Session, clock: SlaClock, lead: Lead) -> list[str]:
        """The reps who let this lead pass a deadline since it was last answered, this clock's too."""
        late = late_owners(session, [lead.pk]).get(lead.pk, [])
        return [*late, clock.owner] if clock.owner_kind == "rep" and clock.owner else late

    def _tell_parked(
        self,
        session: Session,
        clock: SlaClock,
        card: Card,
        step: Step,
        queue: str,
        late: list[str],
        *,
        capped: bool,
        review: bool,
    ) -> None:
        names = ", ".join(self.rules.roster.name(rep) for rep in dict.fromkeys(late))
        if capped:
            why = f"it was re-routed {len(late) - 1} times already: it is not re-routed again, assign it by hand"
        elif review:
            why = "nobody else can take it now: the escalation waits in the queue for a person"
        else:
            why = "nobody else can take it now: it goes to the first rep who has not let it pass once one has room"
        plan = f"parked in {queue}: {names} let it pass its deadline; {why}."
        message = breach_message(card, self.facts(clock), now=self.now, next_step=plan)
        self._send(session, clock, Step(f"{step.key}:parked", step.at, step.do), self.manager_target(clock), message)


class _Raced(Exception):
    """A step was claimed by another scheduler between our read and our insert."""

    def __init__(self, clock_pk: int) -> None:
        super().__init__(f"clock {clock_pk}: a step was carried out concurrently")
        self.clock_pk = clock_pk


def run_sla_scan(ctx: SchedulerContext, *, limit: int = 500) -> ScanReport:
    """Settle answered clocks, then carry out every due step (see the module docstring)."""
    loaded = ctx.policy()
    scan = _Scan(ctx, loaded, ctx.clock())
    with ctx.db.transaction() as session:
        settled = settle(session, loaded.policy, now=scan.now)
    scan.report.met += settled.met
    scan.report.cancelled += settled.cancelled
    scan.report.handed_over += len(settled.opened)
    scan.report.expired += settled.expired
    with ctx.db.sessions() as session:
        due = due_clocks(session, now=scan.now, limit=limit)
    if due:
        # build the engine (a re-route needs it) before any clock's transaction: building it
        # reads the store, and on SQLite a read begun inside the scan's write transaction
        # waits for that very transaction until the busy timeout
        _ = scan.engine
    for clock_pk in due:
        try:
            with ctx.db.transaction() as session:
                scan.clock(session, clock_pk)
        except _Raced as exc:
            log.info("%s; left to the other run", exc)
        except Exception:
            # one clock whose steps cannot be carried out (its transaction rolled back) must
            # not keep the nudges and breaches of every clock behind it from happening
            log.exception("SLA clock %s failed; trying it again in %s", clock_pk, FAILED_RETRY_AFTER)
            _retry_later(ctx, clock_pk, scan.now + FAILED_RETRY_AFTER)
    return scan.report


def _retry_later(ctx: SchedulerContext, clock_pk: int, at: datetime) -> None:
    """Move a failed clock's next step to ``at``; its due steps stay unclaimed, so they run then.
    If even this fails, the store itself is failing: the scan stops, as it would anyway."""
    with ctx.db.transaction() as session:
        session.execute(update(SlaClock).where(SlaClock.pk == clock_pk, SlaClock.state == "open").values(next_at=at))
