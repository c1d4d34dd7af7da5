"""Deciding stored leads: load context, run the engine, persist decision, effects and audit —
all in the caller's transaction, so a crash leaves either everything or nothing.

A lead is decided once per change: the decision's ``dedupe_key`` is the lead's content hash,
and ``leads.decided_hash`` marks what was decided last, so re-running after a crash or a
second sync decides nothing twice. Re-routing and conflict re-decisions carry their own keys.

Effects go to the outbox, keyed by decision: ``crm.writeback`` for every decision,
``slack.escalation`` for reviews, ``slack.assignment`` (tell the new owner) for automatic
assignments to a rep, ``slack.decision_update`` when a pending review is superseded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from core.engine import DecisionEngine, LeadContext
from core.model import Account as AccountValue
from core.model import Decision as DecisionValue
from core.model import DuplicateRecord, PriorScore
from core.model import Lead as LeadValue
from core.store import audit_log, outbox
from core.store.audit_log import AuditRecord
from core.store.models import Account, Decision, Lead, TrustState
from core.store.records import account_value, lead_value
from core.store.rotation import StoreRotation

__all__ = ["DecideRequest", "Decided", "decide_leads", "decide_pending", "trust_levels"]


@dataclass(frozen=True, slots=True)
class DecideRequest:
    """Decide this stored lead, for this reason, at most once per ``dedupe_key``."""

    lead: Lead
    cause: str  # new | changed | reroute | conflict | replay
    dedupe_key: str
    exclude: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Decided:
    decision_pk: int
    lead_pk: int
    decision: DecisionValue
    cause: str


def trust_levels(session: Session) -> dict[str, int]:
    """Current trust level per segment that has stored state (others use the policy's)."""
    # SQLAlchemy 2.1 deprecates Result.tuples(); rows unpack as tuples already (connectors branch)
    return dict(session.execute(select(TrustState.segment, TrustState.level)).all())


def decide_pending(
    session: Session,
    engine: DecisionEngine,
    *,
    now: datetime,
    lead_pks: Iterable[int] | None = None,
    limit: int = 1000,
    actor: str = "loopgate",
) -> list[Decided]:
    """Decide leads never decided or changed since their last decision (up to ``limit``).

    On PostgreSQL the chosen leads are locked (``SKIP LOCKED``), so parallel deciders split
    the work instead of deciding the same lead twice.
    """
    query = select(Lead).where(
        Lead.is_deleted.is_(False),
        Lead.content_hash.is_not(None),
        or_(Lead.decided_hash.is_(None), Lead.decided_hash != Lead.content_hash),
    )
    if lead_pks is not None:
        query = query.where(Lead.pk.in_(list(lead_pks)))
    rows = session.execute(query.order_by(Lead.pk).limit(limit).with_for_update(skip_locked=True)).scalars().all()
    requests = [
        DecideRequest(row, "new" if row.decided_hash is None else "changed", f"content:{row.content_hash}")
        for row in rows
    ]
    return decide_leads(session, engine, requests, now=now, actor=actor)


def decide_leads(
    session: Session,
    engine: DecisionEngine,
    requests: Sequence[DecideRequest],
    *,
    now: datetime,
    actor: str = "loopgate",
) -> list[Decided]:
    """Decide each request (skipping keys already decided) and persist everything."""
    if not requests:
        return []
    pks = [r.lead.pk for r in requests]
    done = set(
        session.execute(
            select(Decision.lead_pk, Decision.dedupe_key).where(
                Decision.lead_pk.in_(pks), Decision.dedupe_key.in_([r.dedupe_key for r in requests])
            )
        ).all()
    )
    todo = [r for r in requests if (r.lead.pk, r.dedupe_key) not in done]
    for r in requests:
        if (r.lead.pk, r.dedupe_key) in done and r.cause in ("new", "changed"):
            r.lead.decided_hash = r.lead.content_hash
    if not todo:
        return []

    leads = {r.lead.pk: lead_value(r.lead) for r in todo}
    accounts = _accounts(session, engine, todo, leads)
    previous, seqs = _previous(session, pks)
    twins = _duplicates(session, engine, todo)
    levels = trust_levels(session)
    rotation = StoreRotation(session)

    results: list[tuple[DecideRequest, DecisionValue]] = []
    for req in todo:
        pk = req.lead.pk
        ctx = LeadContext(
            account=accounts.get(pk),
            previous=previous.get(pk),
            duplicates=twins.get(pk, ()),
            exclude_owners=req.exclude,
        )
        results.append((req, engine.decide(leads[pk], ctx, rotation=rotation, now=now, trust_levels=levels)))
    rotation.flush(now)
    return _persist(session, results, seqs, now=now, actor=actor)


def _accounts(
    session: Session, engine: DecisionEngine, todo: Sequence[DecideRequest], leads: Mapping[int, LeadValue]
) -> dict[int, AccountValue]:
    """Each lead's account: the CRM's explicit link first, else a match by company domain."""
    linked = {r.lead.pk: r.lead.account_pk for r in todo if r.lead.account_pk is not None}
    domains = {}
    for r in todo:
        if r.lead.pk not in linked:
            domain = engine.account_domain(leads[r.lead.pk])
            if domain:
                domains[r.lead.pk] = domain
    rows: list[Account] = []
    if linked:
        rows += session.execute(select(Account).where(Account.pk.in_(set(linked.values())))).scalars().all()
    if domains:
        rows += (
            session.execute(
                select(Account)
                .where(Account.domain.in_(set(domains.values())), Account.is_deleted.is_(False))
                .order_by(Account.pk)
            )
            .scalars()
            .all()
        )
    by_pk = {a.pk: a for a in rows}
    by_domain: dict[str, list[Account]] = {}
    for a in rows:
        if a.domain:
            by_domain.setdefault(a.domain, []).append(a)
    out: dict[int, AccountValue] = {}
    for r in todo:
        pk = r.lead.pk
        if pk in linked and linked[pk] in by_pk:
            out[pk] = account_value(by_pk[linked[pk]])
        elif pk in domains and domains[pk] in by_domain:
            # an account in the lead's own CRM wins over the other CRM's
            matches = sorted(by_domain[domains[pk]], key=lambda a: (a.source != r.lead.source, a.pk))
            out[pk] = account_value(matches[0])
    return out


def _previous(session: Session, pks: Sequence[int]) -> tuple[dict[int, PriorScore], dict[int, int]]:
    """The latest acting decision's score per lead, and the highest sequence number."""
    latest = (
        select(Decision.lead_pk, func.max(Decision.seq).label("seq"))
        .where(Decision.lead_pk.in_(pks))
        .group_by(Decision.lead_pk)
        .subquery()
    )
    rows = session.execute(
        select(Decision.lead_pk, Decision.seq, Decision.score_total, Decision.decided_at, Decision.shadow).join(
            latest, (Decision.lead_pk == latest.c.lead_pk) & (Decision.seq == latest.c.seq)
        )
    ).all()
    previous = {r.lead_pk: PriorScore(r.score_total, r.decided_at) for r in rows if not r.shadow}
    return previous, {r.lead_pk: r.seq for r in rows}


def _duplicates(
    session: Session, engine: DecisionEngine, todo: Sequence[DecideRequest]
) -> dict[int, tuple[DuplicateRecord, ...]]:
    """Other records with the same email (the other CRM, or a twin in the same one)."""
    emails = {r.lead.email for r in todo if r.lead.email}
    if not emails:
        return {}
    rows = session.execute(
        select(Lead.pk, Lead.source, Lead.crm_id, Lead.email, Lead.owner_id).where(
            Lead.email.in_(emails), Lead.is_deleted.is_(False)
        )
    ).all()
    by_email: dict[str, list[tuple[int, DuplicateRecord]]] = {}
    for row in rows:
        twin = DuplicateRecord(
            row.source, row.crm_id, row.owner_id, engine.roster.person_for_crm(row.source, row.owner_id)
        )
        by_email.setdefault(row.email, []).append((row.pk, twin))
    return {
        r.lead.pk: tuple(t for pk, t in by_email.get(r.lead.email or "", []) if pk != r.lead.pk)
        for r in todo
        if r.lead.email
    }


def _contract_digest(contract: dict[str, object]) -> str:
    text = json.dumps(contract, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _persist(
    session: Session,
    results: list[tuple[DecideRequest, DecisionValue]],
    seqs: dict[int, int],
    *,
    now: datetime,
    actor: str,
) -> list[Decided]:
    pks = [req.lead.pk for req, _ in results]
    superseded = (
        session.execute(
            update(Decision)
            .where(Decision.lead_pk.in_(pks), Decision.state == "pending_review", Decision.shadow.is_(False))
            .values(state="superseded")
            .returning(Decision.pk)
        )
        .scalars()
        .all()
    )
    rows: list[tuple[DecideRequest, DecisionValue, Decision]] = []
    for req, d in results:
        seqs[req.lead.pk] = seqs.get(req.lead.pk, 0) + 1
        contract = d.to_dict()
        row = Decision(
            lead_pk=req.lead.pk,
            source=d.source,
            lead_id=d.lead_id,
            seq=seqs[req.lead.pk],
            dedupe_key=req.dedupe_key,
            cause=req.cause,
            shadow=False,
            policy_version=d.policy_version,
            action=d.action,
            owner=d.owner,
            owner_kind=d.owner_kind,
            team=d.route.team,
            segment=d.segment,
            trust_level=d.trust_level,
            score_total=d.score.total,
            band=d.score.band,
            confidence=d.score.confidence,
            trigger_codes="," + ",".join(t.code for t in d.triggers) + "," if d.triggers else "",
            audit_sample=d.audit_sample,
            suppressed_by=d.suppressed_by,
            decided_at=now,
            state="pending_review" if d.action == "review" else "applied",
            final_owner=None if d.action == "review" else d.owner,
            crm_owner_before=req.lead.owner_id,
            final_action=None if d.action == "review" else d.action,
            contract=contract,
        )
        session.add(row)
        rows.append((req, d, row))
        if req.cause in ("new", "changed"):
            req.lead.decided_hash = req.lead.content_hash
    session.flush()

    records: list[AuditRecord] = []
    # effects are collected and inserted in one statement: one INSERT per effect was half the
    # cost of deciding a sync page (connectors branch, bench/sync.py)
    effects: list[tuple[str, str, dict[str, Any]]] = []
    for req, d, row in rows:
        effects += _effects(row, d)
        records.append(
            AuditRecord(
                now,
                actor,
                "decision.made",
                f"lead:{d.source}:{d.lead_id}",
                {
                    "decision": row.pk,
                    "cause": req.cause,
                    "action": d.action,
                    "owner": d.owner,
                    "band": d.score.band,
                    "score": d.score.total,
                    "triggers": [t.code for t in d.triggers],
                    "policy_version": d.policy_version,
                    "contract_sha256": _contract_digest(row.contract),
                },
            )
        )
    for old in superseded:
        effects.append(("slack.decision_update", f"slack.decision_update:{old}:superseded", {"decision_pk": old}))
        records.append(AuditRecord(now, actor, "decision.superseded", f"decision:{old}", {"decision": old}))
    outbox.enqueue_many(session, effects, now=now)
    audit_log.append(session, records)
    return [Decided(row.pk, req.lead.pk, d, req.cause) for req, d, row in rows]


def _effects(row: Decision, d: DecisionValue) -> list[tuple[str, str, dict[str, Any]]]:
    pk = row.pk
    out: list[tuple[str, str, dict[str, Any]]] = [("crm.writeback", f"crm.writeback:{pk}", {"decision_pk": pk})]
    if d.action == "review":
        out.append(("slack.escalation", f"slack.escalation:{pk}", {"decision_pk": pk}))
    elif d.action == "auto" and d.owner_kind == "rep" and d.route.rule != "current_owner":
        out.append(("slack.assignment", f"slack.assignment:{pk}", {"decision_pk": pk}))
    return out
