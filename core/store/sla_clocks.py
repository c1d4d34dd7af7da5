"""SLA clocks in the store: started with the decision, settled when the response comes, and
each step claimed exactly once.

**Where clocks are born.** :func:`start_clocks` runs inside ``decide_leads``' transaction, so a
decision never exists without its clock (and a rolled-back decision leaves no clock). The plan
(nudges, breach, breach steps) is computed then, with the owner's working hours, and stored:
a policy edit later does not move deadlines already promised, and the scan is an indexed
range query (``state = 'open' AND next_at <= now``) instead of re-deriving clocks from every
decision each minute.

**A new decision for the same lead** either carries the open clock over (same kind, same
owner: a lead that keeps changing in the CRM must not restart its clock each time) or cancels
it (the lead went to someone else; that owner's clock starts fresh). Carried over only while
the new decision's plan, started now, is not due sooner: a cold lead that turns hot (a demo
request) must not keep its two-day deadline — its clock is cancelled as ``replanned`` (the
closing reason) and the hot band's clock starts now, when the lead became hot.

**Settling** (:func:`settle`, each scan): a review clock is met by the person's decision
(``reviews.decided_at``); a first-touch clock by the owner's first activity in the CRM
(``leads.first_touch_at``, filled by the connectors' sync). When a review leaves the lead
assigned to a rep (approved by its owner, by a manager, or handed to another rep), that rep's
first-touch clock starts at the review.

**Expiry**: a clock still unanswered 30 days after its deadline, with every step done, is
closed as ``expired`` (still breached for attainment) — a response that late answers nothing.

**Exactly once** (:func:`claim_step`): a step is carried out only by whoever inserts its
``(clock_pk, step)`` row, in the same transaction as the step's effect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, insert, or_, select, update
from sqlalchemy.orm import Session

from core.policy.schema import Policy
from core.sla import ClockKind, Step, clock_kind, plan, sla_window, window_for
from core.store import audit_log
from core.store.audit_log import AuditRecord
from core.store.db import EncodedJson, dialect_insert, execute_many, json_text
from core.store.models import Decision, Lead, Review, SlaClock, SlaStep
from core.store.records import StoredLead

__all__ = [
    "EXPIRE_AFTER",
    "MAX_REROUTES",
    "REROUTE_PREFIX",
    "NewDecision",
    "SettleReport",
    "answered",
    "claim_step",
    "close",
    "due_clocks",
    "late_owners",
    "lock_open",
    "mark_contacted",
    "new_clock",
    "remaining_steps",
    "reroute_key",
    "rerouted_queues",
    "settle",
    "start_clocks",
    "steps_done",
]


EXPIRE_AFTER = timedelta(days=30)

# the response a clock waits for has come (or its decision is no longer pending), for a query
# joined with the clock's decision and lead: tested in SQL, so only the clocks that change are read
_ANSWERED = or_(
    and_(SlaClock.kind == "review", Decision.state != "pending_review"),
    and_(SlaClock.kind == "first_touch", Lead.first_touch_at.is_not(None)),
)


class _Planner:
    """Deadlines and plans for clocks started together. Every clock of a batch starts at the
    same moment, so without business hours the plan depends only on (kind, band): computed once
    per pair, not once per lead (deciding a sync page of thousands of leads must stay cheap)."""

    def __init__(self, policy: Policy, *, encoded: bool = False) -> None:
        self.policy = policy
        self.reps = {r.id: r for r in policy.reps}
        # rows for a Core insert carry the plan as JSON text, encoded once per plan rather than
        # once per clock; ORM rows (``new_clock``) need the list itself
        self.encoded = encoded
        self._plans: dict[tuple[str, str, str | None, datetime], tuple[datetime | None, Any, datetime | None]] = {}

    def values(
        self,
        *,
        decision_pk: int,
        lead_pk: int,
        kind: ClockKind,
        owner: str | None,
        owner_kind: str,
        team: str | None,
        band: str,
        segment: str,
        started_at: datetime,
    ) -> dict[str, Any]:
        rep = self.reps.get(owner or "") if owner_kind == "rep" else None
        hours = self.policy.sla.business_hours and rep is not None
        key = (kind, band, owner if hours else None, started_at)
        if key not in self._plans:
            length = sla_window(self.policy, kind, band)
            due: datetime | None = None
            steps: list[Step] = []
            if length is not None:
                due, steps = plan(self.policy, started_at, length, window_for(rep))
            planned = [s.to_dict() for s in steps]
            next_at = datetime.fromisoformat(planned[0]["at"]) if planned else None
            self._plans[key] = (due, EncodedJson(json_text(planned)) if self.encoded else planned, next_at)
        due, planned, next_at = self._plans[key]
        return {
            "decision_pk": decision_pk,
            "lead_pk": lead_pk,
            "kind": kind,
            "owner": owner,
            "owner_kind": owner_kind,
            "team": team,
            "band": band,
            "segment": segment,
            "started_at": started_at,
            "due_at": due,
            "business_hours": hours,
            "plan": planned,
            "next_at": next_at,
            "state": "open",
        }


def new_clock(
    policy: Policy,
    *,
    decision_pk: int,
    lead_pk: int,
    kind: ClockKind,
    owner: str | None,
    owner_kind: str,
    team: str | None,
    band: str,
    segment: str,
    started_at: datetime,
) -> SlaClock:
    """A clock row with its deadline and plan (unsaved)."""
    return SlaClock(
        **_Planner(policy).values(
            decision_pk=decision_pk,
            lead_pk=lead_pk,
            kind=kind,
            owner=owner,
            owner_kind=owner_kind,
            team=team,
            band=band,
            segment=segment,
            started_at=started_at,
        )
    )


@dataclass(frozen=True, slots=True)
class NewDecision:
    """What starting a clock needs to know of a decision just made (no ORM row to load)."""

    pk: int
    lead_pk: int
    action: str
    owner: str | None
    owner_kind: str
    team: str | None
    band: str
    segment: str


def start_clocks(
    session: Session,
    policy: Policy,
    decided: Sequence[NewDecision],
    leads: Mapping[int, Lead | StoredLead],
    *,
    now: datetime,
) -> int:
    """Start (or carry over) the response clock of each new acting decision; returns how many
    clocks were started. New clocks are inserted in one statement."""
    if not decided:
        return 0
    open_by_lead: dict[int, list[SlaClock]] = {}
    for clock in _open_clocks(session, [row.lead_pk for row in decided]):
        open_by_lead.setdefault(clock.lead_pk, []).append(clock)
    planner = _Planner(policy, encoded=True)
    rows: list[dict[str, Any]] = []
    for row in decided:
        lead_pk = row.lead_pk
        kind = clock_kind(row.action, row.owner_kind)
        lead = leads.get(lead_pk)
        touched = kind == "first_touch" and lead is not None and lead.first_touch_at is not None
        fresh = (
            planner.values(
                decision_pk=row.pk,
                lead_pk=lead_pk,
                kind=kind,
                owner=row.owner,
                owner_kind=row.owner_kind,
                team=row.team,
                band=row.band,
                segment=row.segment,
                started_at=now,
            )
            if kind is not None
            else None
        )
        carried = False
        for clock in open_by_lead.pop(lead_pk, []):
            if fresh is not None and not carried and clock.kind == kind and clock.owner == row.owner:
                if touched or not _sooner(fresh["due_at"], clock.due_at):
                    clock.decision_pk = row.pk  # the same person still owes the same response
                    carried = True
                    continue
                # the lead turned hot: the cold deadline days away is not the promise any more
                close(clock, "cancelled", f"replanned ({row.band}) by decision {row.pk}", now)
            else:
                close(clock, "cancelled", f"replaced by decision {row.pk}", now)
        if fresh is None or carried or touched:
            continue  # touched: first touch happens once per lead, and it has happened
        rows.append(fresh)
    session.flush()  # the carried and cancelled clocks, before the new ones
    if rows:
        # the Core table: an ORM bulk insert builds a state per row and splits the batch by
        # which columns are NULL (due_at, next_at, owner, team): a fifth of starting a page's clocks
        execute_many(session, _INSERT_CLOCK, rows)
    return len(rows)


_INSERT_CLOCK = insert(cast(Table, SlaClock.__table__))  # the Core table: built once, see execute_many


def _sooner(due: datetime | None, than: datetime | None) -> bool:
    """Whether a deadline comes before another (``None``: no deadline, never due)."""
    return due is not None and (than is None or due < than)


def _open_clocks(session: Session, lead_pks: Sequence[int]) -> Sequence[SlaClock]:
    """The open clocks of these leads, oldest first.

    Found by ``lead_pk`` alone and loaded by key: with ``lead_pk IN (…) AND state = 'open'``
    in one statement SQLite chose the (state, next_at) index and read every open clock in the
    table for each batch of decisions — a quadratic first sync (bench/sync.py, 50,000 leads).
    New leads have no clocks, and then nothing is loaded."""
    wanted = [
        pk
        for pk, state in session.execute(select(SlaClock.pk, SlaClock.state).where(SlaClock.lead_pk.in_(lead_pks)))
        if state == "open"
    ]
    if not wanted:
        return []
    return (
        session.execute(select(SlaClock).where(SlaClock.pk.in_(wanted), SlaClock.state == "open").order_by(SlaClock.pk))
        .scalars()
        .all()
    )


REROUTE_PREFIX = "reroute:"

# how often one lead is re-routed before a breach parks it in the fallback queue instead: three
# reps in a row who let it pass its deadline say more about the lead (or the day) than about
# the reps, and a fourth hand-off is one more reminder, breach notice and CRM owner rewrite
MAX_REROUTES = 3


def reroute_key(clock_pk: int) -> str:
    """The dedupe key of the decision a breached clock's re-route makes: it names the clock, so
    whoever reads the decision later (``core.store.parked``) can tell whom it was taken from."""
    return f"{REROUTE_PREFIX}{clock_pk}"


def late_owners(session: Session, lead_pks: Sequence[int]) -> dict[int, list[str]]:
    """The reps who let each lead pass an SLA deadline since it was last answered, oldest first:
    the owners of its rep clocks closed by a re-route (each named by the re-route decision's
    :func:`reroute_key`) after its last met clock. A re-route keeps away from all of them, not
    only the last one — else a lead of a two-rep team would bounce between them for ever.

    Read from the clocks, not by following re-route keys from decision to decision: a clock
    carried over to a newer decision (the lead edited in the CRM) would break that chain."""
    return _rerouted_since_answered(session, lead_pks, reps=True)


def rerouted_queues(session: Session, lead_pk: int) -> list[str]:
    """The queues whose clock of this lead a re-route closed since it was last answered. A
    queue's clock is re-routed once: an escalation routed to a queue by a rule, or to the
    fallback queue when its team is off duty, mostly lands in the same queue again, and each
    re-route is a new decision, escalation and breach notice — every 2.5 h, all night."""
    return _rerouted_since_answered(session, [lead_pk], reps=False).get(lead_pk, [])


def _rerouted_since_answered(session: Session, lead_pks: Sequence[int], *, reps: bool) -> dict[int, list[str]]:
    if not lead_pks:
        return {}
    rows = session.execute(
        select(SlaClock.lead_pk, SlaClock.state, SlaClock.owner, SlaClock.owner_kind)
        .where(SlaClock.lead_pk.in_(list(lead_pks)))
        .order_by(SlaClock.lead_pk, SlaClock.closed_at, SlaClock.pk)
    ).all()
    chains: dict[int, list[str]] = {}
    for lead_pk, state, owner, owner_kind in rows:
        chain = chains.setdefault(lead_pk, [])
        if state == "met":
            chain.clear()  # someone answered it: a new run of lateness starts from here
        elif state == "rerouted" and owner and (owner_kind == "rep") == reps:
            chain.append(owner)
    return {pk: chain for pk, chain in chains.items() if chain}


def close(clock: SlaClock, state: str, reason: str, now: datetime) -> None:
    """End a clock: ``met``, ``rerouted`` or ``cancelled``; no step fires after this."""
    clock.state = state
    clock.closed_at = now
    clock.closed_reason = reason[:64]
    clock.next_at = None


def _met(clock: SlaClock, at: datetime, via: str, now: datetime) -> None:
    clock.met_at = max(at, clock.started_at)  # a CRM activity dated before the clock is "at once"
    clock.met_via = via
    if clock.due_at is not None and clock.met_at > clock.due_at and clock.breached_at is None:
        clock.breached_at = clock.due_at
    close(clock, "met", f"responded ({via})", now)


@dataclass(slots=True)
class SettleReport:
    met: int = 0
    cancelled: int = 0
    expired: int = 0
    opened: list[int] = field(default_factory=list)


def settle(session: Session, policy: Policy, *, now: datetime, clock_pks: Sequence[int] | None = None) -> SettleReport:
    """Close open clocks whose response has come (or whose decision is gone); start the
    first-touch clock of a rep a reviewer handed the lead to. Only open clocks are read."""
    report = SettleReport()
    # only the clocks that change come back, so the cost of the minutely scan does not grow
    # with the number of clocks still waiting
    query = (
        select(SlaClock, Decision.state, Lead.first_touch_at)
        .join(Decision, Decision.pk == SlaClock.decision_pk)
        .join(Lead, Lead.pk == SlaClock.lead_pk)
        .where(SlaClock.state == "open", _ANSWERED)
        .order_by(SlaClock.pk)
    )
    if clock_pks is not None:
        query = query.where(SlaClock.pk.in_(list(clock_pks)))
    rows = session.execute(query).all()
    reviewed = [c.decision_pk for c, state, _ in rows if c.kind == "review" and state == "reviewed"]
    reviews = (
        {r.decision_pk: r for r in session.execute(select(Review).where(Review.decision_pk.in_(reviewed))).scalars()}
        if reviewed
        else {}
    )
    for clock, state, first_touch_at in rows:
        if clock.kind == "review":
            review = reviews.get(clock.decision_pk)
            if review is not None:
                _met(clock, review.decided_at, "review", now)
                report.met += 1
                handed = _handed_over(session, policy, clock, review, first_touch_at)
                if handed is not None:
                    report.opened.append(handed)
            elif state not in ("pending_review", "reviewed"):
                close(clock, "cancelled", f"decision {state}", now)
                report.cancelled += 1
        elif first_touch_at is not None:
            _met(clock, first_touch_at, "crm", now)
            report.met += 1
    if clock_pks is None:
        report.expired = _expire(session, now)
    session.flush()
    return report


def _expire(session: Session, now: datetime) -> int:
    """Close clocks still unanswered :data:`EXPIRE_AFTER` past their deadline (a response that
    late answers nothing): they stay breached, and the open set stays small."""
    result = session.execute(
        update(SlaClock)
        .where(SlaClock.state == "open", SlaClock.due_at < now - EXPIRE_AFTER, SlaClock.next_at.is_(None))
        .values(state="expired", closed_at=now, closed_reason="no response within 30 days of the deadline")
        .returning(SlaClock.pk)
    )
    return len(result.all())


def _handed_over(
    session: Session, policy: Policy, clock: SlaClock, review: Review, first_touch_at: datetime | None
) -> int | None:
    """The review left the lead assigned to a rep: that rep owes a first touch from the review —
    whoever reviewed. An escalation's owner approving it is the review's response, not the
    customer's: without a clock the strategic, big-deal and regulated leads (the ones that
    are escalated) would be the only ones with no nudge, breach or re-route if never called.
    An approved suppression (``action`` stays ``suppress``) leaves nobody to touch it."""
    after: dict[str, Any] = review.after or {}
    owner = after.get("owner")
    reps = {r.id: r for r in policy.reps}
    if (
        after.get("action") != "auto"
        or owner not in reps
        or "rep" not in reps[owner].roles
        or first_touch_at is not None
    ):
        return None
    exists = session.execute(
        select(SlaClock.pk).where(SlaClock.decision_pk == clock.decision_pk, SlaClock.kind == "first_touch")
    ).first()
    if exists is not None:
        return None
    handed = new_clock(
        policy,
        decision_pk=clock.decision_pk,
        lead_pk=clock.lead_pk,
        kind="first_touch",
        owner=owner,
        owner_kind="rep",
        team=reps[owner].team,
        band=str(after.get("band") or clock.band),
        segment=clock.segment,
        started_at=review.decided_at,
    )
    session.add(handed)
    session.flush()
    return handed.pk


def answered(session: Session, clock_pk: int) -> bool:
    """Whether reminders about the clock are moot: it is met or cancelled (the lead went to
    someone else), or its response has come and the next scan has yet to settle it (a review,
    a first touch the CRM reports). A re-routed clock is not answered: its breach was real, and
    the manager hears of it even when the same scan re-routes the lead."""
    query = (
        select(SlaClock.pk)
        .join(Decision, Decision.pk == SlaClock.decision_pk)
        .join(Lead, Lead.pk == SlaClock.lead_pk)
        .where(
            SlaClock.pk == clock_pk,
            or_(SlaClock.state.in_(("met", "cancelled")), and_(SlaClock.state == "open", _ANSWERED)),
        )
    )
    return session.execute(query).first() is not None


def due_clocks(session: Session, *, now: datetime, limit: int = 500) -> list[int]:
    """Open clocks with a step due, oldest first."""
    return list(
        session.execute(
            select(SlaClock.pk)
            .where(SlaClock.state == "open", SlaClock.next_at <= now)
            .order_by(SlaClock.next_at, SlaClock.pk)
            .limit(limit)
        ).scalars()
    )


def lock_open(session: Session, clock_pk: int) -> SlaClock | None:
    """The clock, locked for this transaction (``FOR UPDATE`` on PostgreSQL), if still open."""
    clock = session.execute(select(SlaClock).where(SlaClock.pk == clock_pk).with_for_update()).scalar_one_or_none()
    return clock if clock is not None and clock.state == "open" else None


def steps_done(session: Session, clock_pk: int) -> set[str]:
    return set(session.execute(select(SlaStep.step).where(SlaStep.clock_pk == clock_pk)).scalars())


def remaining_steps(clock: SlaClock, done: set[str]) -> list[Step]:
    """The clock's planned steps not carried out yet, in plan order."""
    return [s for s in (Step.from_dict(d) for d in clock.plan) if s.key not in done]


def claim_step(
    session: Session,
    clock: SlaClock,
    step: Step,
    *,
    now: datetime,
    outcome: str,
    detail: dict[str, Any] | None = None,
) -> bool:
    """Record that ``step`` of ``clock`` is carried out now; False if it already was (then the
    caller must do nothing). Call in the transaction that performs the step's effect."""
    late = max(int((now - step.at).total_seconds()), 0)
    inserted = session.execute(
        dialect_insert(session, SlaStep)
        .values(
            clock_pk=clock.pk,
            step=step.key,
            do=step.do,
            due_at=step.at,
            fired_at=now,
            outcome=outcome,
            late_seconds=late,
            detail=detail or {},
        )
        .on_conflict_do_nothing(index_elements=["clock_pk", "step"])
        .returning(SlaStep.pk)
    ).first()
    return inserted is not None


def mark_contacted(session: Session, clock_pk: int, *, by: str, now: datetime) -> SlaClock | None:
    """The owner says (in Slack) they reached out: the first-touch clock is met now, and the
    lead counts as first touched (unless the CRM already said so earlier). ``None`` when the
    clock is not an open first-touch clock any more (answered, re-routed…)."""
    clock = lock_open(session, clock_pk)
    if clock is None or clock.kind != "first_touch":
        return None
    _met(clock, now, "slack", now)
    lead = session.get(Lead, clock.lead_pk)
    if lead is not None and lead.first_touch_at is None:
        # the lead has been touched: without this a later decision for it (the title edited
        # after the call) would start a new first-touch clock and nudge the owner again
        lead.first_touch_at = now
    audit_log.append(
        session,
        [
            AuditRecord(
                now,
                by,
                "sla.contacted",
                f"lead:{lead.source}:{lead.crm_id}" if lead else f"clock:{clock_pk}",
                {"clock": clock_pk, "owner": clock.owner, "breached": clock.breached_at is not None},
            )
        ],
    )
    return clock
