"""Write-back: the outbox handler that puts decisions into the CRMs (``crm.writeback`` rows).

For a claimed batch it loads the decisions, works out per record what the CRM should hold
(:mod:`core.writeback`), and writes only what differs, per CRM in the largest batches the API
takes (Salesforce 200, HubSpot 100). Before an owner is changed, the record's current owner is
read fresh, in bulk: if a person changed it since the decision (it is neither the owner when
decided, nor what loopgate last wrote, nor what loopgate wants), nothing is written, a
conflict is recorded (``crm_conflicts`` and an audit event) and the lead is decided again with
the person's owner as its current owner (``keep_owner`` then keeps a rep's choice).

Each outbox row gets its own outcome: ``Done`` (written, nothing to write, superseded, record
gone, conflict handled), ``Deferred`` (rate limits with the CRM's wait, expired credentials,
missing permissions or fields: no attempt counted), ``Retry`` (outages, given up by age; row
locks, given up after the outbox's attempts) or ``Dead`` (the CRM refuses this record for
good). A batch the CRM rejects as a whole is split until the bad records are found, so one bad
record cannot hold back the rest. A refusal of the
owner alone (a user deactivated since the decision, an id the CRM does not know) costs only the
owner: the record's other fields are written again without it, once, and the refusal is kept in
the row's outcome (``owner_refused``) and the audit log (``crm.owner_refused``). A crash after
the CRM call but before the outcome is stored repeats the row: the write is then equal to the
CRM's values (nothing written) or the fresh owner read shows loopgate's own change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from connectors.errors import (
    AuthExpired,
    BadRequest,
    ConnectorError,
    CrmSetupMissing,
    Forbidden,
    NotFound,
    RateLimited,
)
from core.engine import DecisionEngine
from core.leads import content_hash
from core.ports import CrmPort, RecordUpdate, WriteResult
from core.store import audit_log
from core.store.audit_log import AuditRecord
from core.store.db import Database, dialect_insert
from core.store.decide import DecideRequest, decide_leads
from core.store.models import CrmConflict, Decision, Lead, Review, WritebackState
from core.store.outbox import Dead, Deferred, Done, OutboxItem, Outcome, Retry
from core.store.records import lead_value
from core.writeback import (
    DecisionFacts,
    OwnerPlan,
    desired_fields,
    is_conflict,
    owner_plan,
    same_owner,
    status_of,
    values_equal,
)

__all__ = ["KIND", "CrmWriteback"]

log = logging.getLogger(__name__)

# how long rows of a CRM this run does not write wait before they are due again: long enough
# that one drain does not take them over and over, short enough that the run (or the worker)
# that writes that CRM is hardly held up by them
LEFT_FOR_ITS_RUN = timedelta(minutes=1)
KIND = "crm.writeback"


@dataclass(slots=True)
class _Plan:
    item: OutboxItem
    facts: DecisionFacts
    lead_pk: int
    crm_id: str
    object_type: str
    snapshot_owner: str | None
    snapshot: dict[str, Any]
    owner_written: str | None
    fields: dict[str, Any]
    owner: OwnerPlan
    current_owner: str | None = None
    writes: dict[str, Any] = field(default_factory=dict)
    # the owner the CRM refused for good, taken out of ``writes``, and the CRM's words for it
    refused_owner: str | None = None
    owner_refusal: str | None = None


@dataclass(slots=True)
class _Conflict:
    plan: _Plan
    found: str | None


class CrmWriteback:
    """An :class:`core.store.outbox.EffectHandler` for ``crm.writeback`` over CRM ports.

    ``batch_size`` rows are claimed at a time. Owners are read in bulk per claimed batch
    (Salesforce up to 2,000 a call), and only some rows change an owner, so larger batches
    pack those reads fuller; 4,000 rows are written in well under the outbox lease.

    ``elsewhere`` names CRMs written by another run (``writeback --crm salesforce`` leaves
    HubSpot's rows to a HubSpot run): their rows are handed back untried, the attempt their
    claim counted given back. Rows of a CRM without a connector at all are retried, and die
    after the outbox's attempts: a CRM nobody configured is an error to surface."""

    kinds: tuple[str, ...] = (KIND,)

    def __init__(
        self,
        db: Database,
        engine: DecisionEngine,
        ports: Mapping[str, CrmPort],
        clock: Callable[[], datetime],
        *,
        batch_size: int = 4000,
        actor: str = "loopgate:writeback",
        elsewhere: Collection[str] = (),
    ) -> None:
        self.db = db
        self.engine = engine
        self.ports = dict(ports)
        self.clock = clock
        self.batch_size = batch_size
        self.actor = actor
        self.elsewhere = frozenset(elsewhere)

    # --- EffectHandler ----------------------------------------------------------------------------

    def perform(self, items: Sequence[OutboxItem]) -> Mapping[int, Outcome]:
        outcomes: dict[int, Outcome] = {}
        plans = self._plans(items, outcomes)
        by_source: dict[str, list[_Plan]] = {}
        for plan in plans:
            by_source.setdefault(plan.facts.source, []).append(plan)
        for source, group in by_source.items():
            port = self.ports.get(source)
            if port is None and source not in ("salesforce", "hubspot"):
                for plan in group:  # e.g. leads from `loopgate decide --store`: no CRM record to write
                    outcomes[plan.item.pk] = Done({"skipped": f"{source} records have no CRM to write to"})
                continue
            if port is None and source in self.elsewhere:
                for plan in group:  # another run's CRM (`writeback --crm salesforce`): not a failed attempt
                    outcomes[plan.item.pk] = Deferred(LEFT_FOR_ITS_RUN)
                continue
            if port is None:
                for plan in group:
                    outcomes[plan.item.pk] = Retry(f"no {source} connector is configured", timedelta(minutes=15))
                continue
            self._write_back(port, group, outcomes)
        return outcomes

    def _write_back(self, port: CrmPort, group: list[_Plan], outcomes: dict[int, Outcome]) -> None:
        """Write one CRM's plans and record what came of them."""
        written: list[_Plan] = []
        conflicts: list[_Conflict] = []
        converted: list[_Plan] = []
        may_have_landed: set[int] = set()
        try:
            self._write(port, group, outcomes, written, conflicts, converted)
        except ConnectorError as exc:
            log.warning("write-back to %s failed: %s", port.system, exc)
            for plan in group:
                if plan.item.pk not in outcomes:
                    outcomes[plan.item.pk] = _outcome_for(exc)
                    if not _refused_unapplied(exc):
                        may_have_landed.add(plan.item.pk)
        self._record(port, written, conflicts, outcomes, [p for p in group if p.refused_owner is not None])
        self._mark_converted(converted)
        self._forget_unwritten_owners(port, group, {p.item.pk for p in written} | may_have_landed)

    # --- planning -----------------------------------------------------------------------------------

    def _plans(self, items: Sequence[OutboxItem], outcomes: dict[int, Outcome]) -> list[_Plan]:
        wanted: dict[int, list[OutboxItem]] = {}
        for item in items:
            pk = item.payload.get("decision_pk")
            if not isinstance(pk, int) or isinstance(pk, bool):
                outcomes[item.pk] = Dead(f"payload has no decision_pk: {item.payload!r}")
                continue
            wanted.setdefault(pk, []).append(item)
        if not wanted:
            return []
        with self.db.transaction() as session:
            decisions = {
                d.pk: d for d in session.execute(select(Decision).where(Decision.pk.in_(list(wanted)))).scalars()
            }
            lead_pks = {d.lead_pk for d in decisions.values()}
            reviewed = [pk for pk, d in decisions.items() if d.state == "reviewed"]
            reviews: dict[int, Review] = {}
            if reviewed:
                found = session.execute(select(Review).where(Review.decision_pk.in_(reviewed))).scalars()
                reviews = {r.decision_pk: r for r in found}
            leads = {lead.pk: lead for lead in session.execute(select(Lead).where(Lead.pk.in_(lead_pks))).scalars()}
            states = {
                s.lead_pk: s
                for s in session.execute(select(WritebackState).where(WritebackState.lead_pk.in_(lead_pks))).scalars()
            }
            latest = dict(
                session.execute(
                    select(Decision.lead_pk, func.max(Decision.seq))
                    .where(Decision.lead_pk.in_(lead_pks), Decision.shadow.is_(False))
                    .group_by(Decision.lead_pk)
                ).all()
            )
        plans: dict[int, _Plan] = {}  # by lead: one write per record per batch, the newest decision
        for decision_pk, group in wanted.items():
            decision = decisions.get(decision_pk)
            if decision is None:
                for item in group:
                    outcomes[item.pk] = Dead(f"decision {decision_pk} does not exist")
                continue
            first, *duplicates = group
            for item in duplicates:
                outcomes[item.pk] = Done({"skipped": "the same decision is written by another row of this batch"})
            skip = self._skip_reason(decision, leads[decision.lead_pk], latest)
            if skip is not None:
                outcomes[first.pk] = Done({"skipped": skip})
                continue
            plan = self._plan(
                first, decision, leads[decision.lead_pk], states.get(decision.lead_pk), reviews.get(decision.pk)
            )
            if plan is None:
                outcomes[first.pk] = Done({"skipped": f"a {decision.state} decision is not written"})
                continue
            older = plans.get(plan.lead_pk)
            if older is not None:
                keep, drop = (plan, older) if plan.facts.pk > older.facts.pk else (older, plan)
                outcomes[drop.item.pk] = Done({"skipped": f"superseded by decision {keep.facts.pk}"})
                plan = keep
            plans[plan.lead_pk] = plan
        return list(plans.values())

    @staticmethod
    def _skip_reason(decision: Decision, lead: Lead, latest: Mapping[int, int]) -> str | None:
        if decision.shadow:
            return "shadow decisions are never written"
        if decision.seq < latest.get(decision.lead_pk, decision.seq):
            return "superseded by a newer decision"
        if lead.is_deleted:
            return "the record was deleted or merged in the CRM" + (
                f" (into {lead.merged_into})" if lead.merged_into else ""
            )
        if lead.source == "salesforce" and lead.object_type == "Lead" and lead.converted:
            return "converted Salesforce leads are read-only"
        return None

    def _plan(
        self, item: OutboxItem, decision: Decision, lead: Lead, state: WritebackState | None, review: Review | None
    ) -> _Plan | None:
        facts = DecisionFacts(
            pk=decision.pk,
            source=decision.source,
            action=decision.action,
            state=decision.state,
            cause=decision.cause,
            final_owner=decision.final_owner,
            final_action=decision.final_action,
            score_total=decision.score_total,
            band=decision.band,
            segment=decision.segment,
            policy_version=decision.policy_version,
            decided_at=decision.decided_at,
            suppressed_by=decision.suppressed_by,
            crm_owner_before=decision.crm_owner_before,
            contract=decision.contract or {},
            review_band=(review.after or {}).get("band") if review is not None else None,
            review_reason=_review_reason(review),
        )
        if status_of(facts) is None:
            return None
        field_map = getattr(self.engine.policy.writeback, facts.source, None) or {}
        fields = desired_fields(facts, field_map)
        object_type = lead.object_type or ("Lead" if facts.source == "salesforce" else "contact")
        return _Plan(
            item=item,
            facts=facts,
            lead_pk=lead.pk,
            crm_id=lead.crm_id,
            object_type=object_type,
            snapshot_owner=lead.owner_id,
            snapshot=dict(state.values) if state is not None else {},
            owner_written=state.owner_written if state is not None else None,
            fields=fields,
            owner=owner_plan(facts, self.engine.policy, facts.source, object_type),
        )

    # --- writing ------------------------------------------------------------------------------------

    def _write(
        self,
        port: CrmPort,
        plans: list[_Plan],
        outcomes: dict[int, Outcome],
        written: list[_Plan],
        conflicts: list[_Conflict],
        converted: list[_Plan],
    ) -> None:
        system = port.system
        # owners to change are checked against the CRM now; everything else against the snapshot
        check = [p for p in plans if p.owner.crm_id and not same_owner(system, p.snapshot_owner, p.owner.crm_id)]
        checked = {p.item.pk for p in check}
        fresh = self._current(port, check)
        todo: list[_Plan] = []
        for plan in plans:
            current: dict[str, Any]
            if plan.item.pk in checked:
                found = fresh.get((plan.object_type, plan.crm_id))
                if found is None:
                    outcomes[plan.item.pk] = Done({"skipped": "the record no longer exists in the CRM"})
                    continue
                current = found
                plan.current_owner = found.get(port.owner_field)
                assert plan.owner.crm_id is not None
                if is_conflict(
                    system,
                    before=plan.facts.crm_owner_before,
                    current=plan.current_owner,
                    wanted=plan.owner.crm_id,
                    last_written=plan.owner_written,
                ):
                    conflicts.append(_Conflict(plan, plan.current_owner))
                    continue
            else:
                current = plan.snapshot
                plan.current_owner = plan.snapshot_owner
            plan.writes = {f: v for f, v in plan.fields.items() if not values_equal(current.get(f), v)}
            if plan.owner.crm_id and not same_owner(system, plan.current_owner, plan.owner.crm_id):
                plan.writes[port.owner_field] = plan.owner.crm_id
            if not plan.writes:
                outcomes[plan.item.pk] = Done({"unchanged": True, "owner": plan.owner.why})
                continue
            todo.append(plan)
        self._intend_owners(port, todo)
        for start in range(0, len(todo), port.write_batch):
            self._update(port, todo[start : start + port.write_batch], outcomes, written, converted)

    def _intend_owners(self, port: CrmPort, todo: list[_Plan]) -> None:
        """Store the owners about to be written *before* writing them, so that whatever reads
        the CRM next — a sync racing this batch, or one after a crash between the CRM call
        and :meth:`_record` — recognises loopgate's own change instead of deciding the lead
        again (which re-opened reviewed escalations after a crash). A failed write takes it
        back (:meth:`_forget_unwritten_owners`). ``written_at`` is when it was stored: a sync
        forgets it only for a record the CRM changed after that (``core.store.ingest``)."""
        owners = [p for p in todo if port.owner_field in p.writes]
        if not owners:
            return
        now = self.clock()
        with self.db.transaction() as session:
            stmt = dialect_insert(session, WritebackState.__table__)
            session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["lead_pk"],
                    set_={"owner_written": stmt.excluded.owner_written, "written_at": stmt.excluded.written_at},
                ),
                [
                    {
                        "lead_pk": p.lead_pk,
                        "values": {},
                        "owner_written": str(p.writes[port.owner_field]),
                        "written_at": now,
                    }
                    for p in owners
                ],
            )

    def _mark_converted(self, plans: list[_Plan]) -> None:
        """The store learns at once what the CRM's refusal told: the lead was converted (sync
        reads the date later). So it counts as an outcome, and is not decided again."""
        if not plans:
            return
        with self.db.transaction() as session:
            session.execute(update(Lead).where(Lead.pk.in_([p.lead_pk for p in plans])).values(converted=True))

    def _forget_unwritten_owners(self, port: CrmPort, plans: list[_Plan], landed: Collection[int]) -> None:
        """Put back what loopgate last wrote where the owner stored by :meth:`_intend_owners`
        was not written: left there, it would pass a person who later chose that owner by hand
        for loopgate itself (sync would not decide the lead again; a newer decision's write
        would overwrite the person's owner). That is every row whose write the CRM answered
        with a failure — refused, converted, rate-limited, unavailable — whether it is retried,
        waits or is given up: a row that waits a day for a token, or dies of an outage, kept a
        phantom owner all that time. A retry stores it again before writing. Only a call whose
        answer leaves it open keeps it (``landed``, see :func:`_refused_unapplied`): that write
        may have gone through. A refused owner is put back even on a written row (its fields
        were sent without it)."""
        refused = [
            p
            for p in plans
            if p.refused_owner is not None or (port.owner_field in p.writes and p.item.pk not in landed)
        ]
        if not refused:
            return
        table: Table = WritebackState.__table__  # type: ignore[assignment]  # Core table: a plain executemany UPDATE
        with self.db.transaction() as session:
            session.execute(
                update(table)
                .where(table.c.lead_pk == bindparam("b_pk"), table.c.owner_written == bindparam("b_intended"))
                .values(owner_written=bindparam("b_before")),
                [{"b_pk": p.lead_pk, "b_intended": _intended(port, p), "b_before": p.owner_written} for p in refused],
            )

    def _current(self, port: CrmPort, plans: list[_Plan]) -> dict[tuple[str, str], dict[str, Any]]:
        out: dict[tuple[str, str], dict[str, Any]] = {}
        by_type: dict[str, list[_Plan]] = {}
        for plan in plans:
            by_type.setdefault(plan.object_type, []).append(plan)
        for object_type, group in by_type.items():
            fields = sorted({port.owner_field, *(f for p in group for f in p.fields)})
            values = port.current(object_type, [p.crm_id for p in group], fields)
            for record_id, current in values.items():
                if current is not None:
                    out[(object_type, record_id)] = current
        return out

    def _update(
        self,
        port: CrmPort,
        chunk: list[_Plan],
        outcomes: dict[int, Outcome],
        written: list[_Plan],
        converted: list[_Plan],
        *,
        owner_retry: bool = True,
    ) -> None:
        updates = [RecordUpdate(p.object_type, p.crm_id, p.writes) for p in chunk]
        try:
            results = port.update(updates)
        except CrmSetupMissing:
            raise
        except BadRequest as exc:
            if len(chunk) > 1:
                # the CRM refused the whole call: halve it until the records it refuses are found
                half = len(chunk) // 2
                self._update(port, chunk[:half], outcomes, written, converted, owner_retry=owner_retry)
                self._update(port, chunk[half:], outcomes, written, converted, owner_retry=owner_retry)
                return
            # one record's call refused whole (HubSpot answers an invalid owner so): its own refusal
            refusal = WriteResult(chunk[0].crm_id, False, exc.code, exc.message, fields=exc.fields)
            if not (owner_retry and _owner_refused(port, chunk[0], refusal)):
                outcomes[chunk[0].item.pk] = Dead(str(exc))
                return
            results = [refusal]
        without_owner: list[_Plan] = []
        for plan, result in zip(chunk, results, strict=True):
            if owner_retry and _owner_refused(port, plan, result):
                # the owner alone was refused: the record's other fields still go, once, without it
                plan.refused_owner = str(plan.writes.pop(port.owner_field))
                plan.owner_refusal = _error_text(result)
                if plan.writes:
                    without_owner.append(plan)
                else:
                    outcomes[plan.item.pk] = self._result_outcome(plan, WriteResult(plan.crm_id, True))
                continue
            outcomes[plan.item.pk] = self._result_outcome(plan, result)
            if result.ok:
                written.append(plan)
            elif result.converted:
                converted.append(plan)
        if without_owner:  # fewer than the chunk: one call
            self._update(port, without_owner, outcomes, written, converted, owner_retry=False)

    @staticmethod
    def _result_outcome(plan: _Plan, result: WriteResult) -> Outcome:
        refused: dict[str, Any] = {}
        if plan.refused_owner is not None:
            who = {"owner": plan.refused_owner, "person": plan.facts.final_owner, "error": plan.owner_refusal}
            refused = {"owner_refused": who}
        if result.ok:
            return Done({"written": sorted(plan.writes), "owner": plan.owner.why, **refused})
        text = _error_text(result)
        if result.gone:
            return Done({"skipped": f"the record no longer exists in the CRM ({text})"})
        if result.converted:  # converted since the sync read it: an outcome, and read-only from now on
            return Done({"skipped": f"converted ({text})", **refused})
        if refused:  # the fields failed too, without the owner: say both
            text = f"{text} (written without owner {plan.refused_owner}, which was refused: {plan.owner_refusal})"
        if result.retryable:
            return Retry(text)
        return Dead(text)

    # --- recording ----------------------------------------------------------------------------------

    def _record(
        self,
        port: CrmPort,
        written: list[_Plan],
        conflicts: list[_Conflict],
        outcomes: dict[int, Outcome],
        refused: list[_Plan],
    ) -> None:
        if not written and not conflicts and not refused:
            return
        now = self.clock()
        with self.db.transaction() as session:
            if written:
                self._remember(session, port, written, now)
            for conflict in conflicts:
                outcomes[conflict.plan.item.pk] = self._conflict(session, port.system, conflict, now)
            if refused:
                self._owners_refused(session, port, refused, {p.item.pk for p in written}, now)

    def _owners_refused(
        self, session: Session, port: CrmPort, plans: list[_Plan], written: set[int], now: datetime
    ) -> None:
        """One audit event per record whose owner the CRM refused, naming the owner, the
        person it stands for and the CRM's words, so someone can fix the policy's id or the
        user (the rest of the record was written without it)."""
        records = []
        for plan in plans:
            log.warning(
                "%s %s: owner %s (%s) refused: %s; the other fields are written without it",
                port.system,
                plan.crm_id,
                plan.refused_owner,
                plan.facts.final_owner,
                plan.owner_refusal,
            )
            records.append(
                AuditRecord(
                    now,
                    self.actor,
                    "crm.owner_refused",
                    f"lead:{plan.facts.source}:{plan.crm_id}",
                    {
                        "decision": plan.facts.pk,
                        "owner": plan.refused_owner,
                        "person": plan.facts.final_owner,
                        "error": plan.owner_refusal,
                        "written": sorted(plan.writes) if plan.item.pk in written else [],
                    },
                )
            )
        audit_log.append(session, records)

    def _remember(self, session: Session, port: CrmPort, written: list[_Plan], now: datetime) -> None:
        states = {
            s.lead_pk: s
            for s in session.execute(
                select(WritebackState).where(WritebackState.lead_pk.in_([p.lead_pk for p in written]))
            ).scalars()
        }
        rows = []
        records = []
        for plan in written:
            values = {k: v for k, v in plan.writes.items() if k != port.owner_field}
            state = states.get(plan.lead_pk)
            owner = plan.writes.get(port.owner_field)
            if owner is None and state is not None:
                # what loopgate last wrote: not the owner it meant to write, if the CRM refused that
                refused = plan.refused_owner is not None and state.owner_written == plan.refused_owner
                owner = plan.owner_written if refused else state.owner_written
            rows.append(
                {
                    "lead_pk": plan.lead_pk,
                    "values": {**(state.values if state is not None else {}), **values},
                    "owner_written": owner,
                    "decision_pk": plan.facts.pk,
                    "written_at": now,
                }
            )
            records.append(
                AuditRecord(
                    now,
                    self.actor,
                    "crm.written",
                    f"lead:{plan.facts.source}:{plan.crm_id}",
                    {"decision": plan.facts.pk, "values": plan.writes},
                )
            )
        stmt = dialect_insert(session, WritebackState.__table__)
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["lead_pk"],
                set_={k: stmt.excluded[k] for k in ("values", "owner_written", "decision_pk", "written_at")},
            ),
            rows,
        )
        self._mirror_owners(session, port, [p for p in written if port.owner_field in p.writes])
        audit_log.append(session, records)

    @staticmethod
    def _mirror_owners(session: Session, port: CrmPort, plans: list[_Plan]) -> None:
        """The stored lead takes the owner loopgate just wrote, as sync will read it back, so
        loopgate's own change is not mistaken for new content and decided again."""
        if not plans:
            return
        leads = {
            lead.pk: lead
            for lead in session.execute(
                select(Lead).where(Lead.pk.in_([p.lead_pk for p in plans])).with_for_update()
            ).scalars()
        }
        for plan in plans:
            lead = leads[plan.lead_pk]
            owner = str(plan.writes[port.owner_field])
            if lead.owner_id == owner:
                continue
            was_decided = lead.decided_hash is not None and lead.decided_hash == lead.content_hash
            lead.owner_id = owner
            lead.data = {**(lead.data or {}), "owner_id": owner}
            lead.content_hash = content_hash(lead_value(lead))
            if was_decided:
                lead.decided_hash = lead.content_hash

    def _conflict(self, session: Session, system: str, conflict: _Conflict, now: datetime) -> Outcome:
        plan = conflict.plan
        inserted = session.execute(
            dialect_insert(session, CrmConflict)
            .values(
                decision_pk=plan.facts.pk,
                lead_pk=plan.lead_pk,
                source=system,
                crm_id=plan.crm_id,
                owner_before=plan.facts.crm_owner_before,
                owner_found=conflict.found,
                owner_wanted=plan.owner.crm_id,
                detected_at=now,
            )
            .on_conflict_do_nothing(index_elements=["decision_pk"])
            .returning(CrmConflict.pk)
        ).scalar_one_or_none()
        lead = session.get(Lead, plan.lead_pk, with_for_update=True)
        if lead is None:  # pragma: no cover - leads are never deleted from the store
            return Dead(f"lead {plan.lead_pk} vanished")
        # the person's owner becomes the lead's current owner, then the lead is decided again
        lead.owner_id = conflict.found
        lead.data = {**(lead.data or {}), "owner_id": conflict.found}
        lead.content_hash = content_hash(lead_value(lead))
        decided = decide_leads(
            session,
            self.engine,
            [DecideRequest(lead, "conflict", f"conflict:{plan.facts.pk}")],
            now=now,
            actor=self.actor,
        )
        lead.decided_hash = lead.content_hash  # the re-decision decided exactly this content
        redecision = decided[0].decision_pk if decided else None
        if inserted is not None:
            session.execute(update(CrmConflict).where(CrmConflict.pk == inserted).values(redecision_pk=redecision))
            audit_log.append(
                session,
                [
                    AuditRecord(
                        now,
                        self.actor,
                        "crm.conflict",
                        f"lead:{system}:{plan.crm_id}",
                        {
                            "decision": plan.facts.pk,
                            "owner_before": plan.facts.crm_owner_before,
                            "owner_found": conflict.found,
                            "owner_wanted": plan.owner.crm_id,
                            "redecision": redecision,
                        },
                    )
                ],
            )
        log.info(
            "%s %s: owner changed to %s by a person since decision %s; not overwritten, decided again",
            system,
            plan.crm_id,
            conflict.found,
            plan.facts.pk,
        )
        return Done({"conflict": {"owner_found": conflict.found, "owner_wanted": plan.owner.crm_id},
                     "redecision": redecision})  # fmt: skip


def _outcome_for(exc: ConnectorError) -> Outcome:
    """How a failed CRM call settles the rows it carried. Nothing is wrong with the rows
    themselves unless the CRM said so (a bad request): a spent allowance, a revoked token, a
    missing permission or field wait, uncounted, for as long as it takes someone to fix them
    (Salesforce's allowance is a rolling 24 h, a token revoked at night is renewed next
    morning), and an outage is retried for as long as ``RetryPolicy.max_age``. Counting them
    as attempts killed every pending write-back within hours, and nothing re-queued them."""
    if isinstance(exc, RateLimited):
        wait = timedelta(hours=1) if exc.daily else timedelta(seconds=exc.retry_after or 30)
        return Deferred(wait, str(exc))
    if isinstance(exc, CrmSetupMissing | AuthExpired | Forbidden):
        return Deferred(timedelta(minutes=15), str(exc))
    if isinstance(exc, BadRequest | NotFound):
        return Dead(str(exc))
    return Retry(str(exc), transient=exc.retryable)


def _refused_unapplied(exc: ConnectorError) -> bool:
    """Whether the CRM's answer says the call was not applied: a 4xx (rate limits and
    credentials included) or 503 (unable to handle it). No answer, or a 500, 502 or 504 (a
    gateway that gave up waiting), may come after the CRM applied the write."""
    return exc.status is not None and (400 <= exc.status < 500 or exc.status == 503)


def _owner_refused(port: CrmPort, plan: _Plan, result: WriteResult) -> bool:
    """Whether the CRM refused this record for good because of its owner alone, as the CRM's
    own field list says (a refusal naming no field, or other fields too, is not the owner's)."""
    return (
        not result.ok
        and not (result.retryable or result.gone or result.converted)
        and port.owner_field in plan.writes
        and bool(result.fields)
        and set(result.fields) <= {port.owner_field}
    )


def _error_text(result: WriteResult) -> str:
    return f"{result.code}: {result.message}" if result.message else str(result.code)


def _intended(port: CrmPort, plan: _Plan) -> str:
    """The owner :meth:`CrmWriteback._intend_owners` stored for this plan."""
    return plan.refused_owner if plan.refused_owner is not None else str(plan.writes[port.owner_field])


def _review_reason(review: Review | None) -> str | None:
    """``override (timing)`` for the CRM's reason field; an approval keeps the automatic reason."""
    if review is None or review.kind == "approve":
        return None
    return f"{review.kind} ({review.reason_code})" if review.reason_code else review.kind
