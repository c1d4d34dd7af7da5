"""Deciding stored leads: load context, run the engine, persist decision, effects and audit —
all in the caller's transaction, so a crash leaves either everything or nothing.

A lead is decided once per change: the decision's ``dedupe_key`` is the lead's content hash,
and ``leads.decided_hash`` marks what was decided last, so re-running after a crash or a
second sync decides nothing twice. A lead that changes back to content decided before (a
campaign response deleted again, a title restored) is decided again — its latest decision is
about other content — under ``content:<hash>:after:<seq>``. Re-routing and conflict
re-decisions carry their own keys.

**Converted leads are never decided.** A converted lead (a Salesforce Lead with ``IsConverted``,
a HubSpot contact at opportunity, customer or evangelist) is an outcome, not work: it is
stored, for learning, but neither routed nor announced — a first sync of a real org would
otherwise hand its reps years of historical conversions, spending their capacity and their
DMs. :func:`decide_pending` does not select them, and :func:`decide_leads` drops any other
request for one (an SLA re-route, a write-back conflict, an unpark), so no path decides them.
Their past decisions stay, and ``policy simulate`` still replays those.

Effects go to the outbox, keyed by decision: ``crm.writeback`` for every decision,
``slack.escalation`` for reviews, ``slack.assignment`` (tell the new owner) for automatic
assignments to a rep, ``slack.decision_update`` when a pending review is superseded. In the
same transaction each acting decision starts (or carries over) its SLA clock — see
:mod:`core.store.sla_clocks` (the scheduler's timers, issue 6).

**Shadow** (the policy lifecycle, issue 7): while a challenger policy is published with
``--shadow``, every lead decided here is also decided by the challenger, in the same
transaction. Shadow decisions are ``Decision`` rows with ``shadow=True``, state ``shadow`` and
their own dedupe key (``shadow:<version>:<key>``); they are never acted on: no outbox effects,
no audit sample, no supersession, and their round-robin runs on an in-memory copy of the
rotation, so the real rotation state is never touched. A challenger that cannot be loaded
is skipped with a warning: shadowing must never stop real decisions.

**Following the champion**: a job that decides for the published champion (a CRM sync) builds
its engine once and decides batch after batch for minutes; a ``policy rollback`` meanwhile must
stop it acting on the rolled-back policy. With ``follow_champion`` each batch reads the
champion in its own transaction — on PostgreSQL ``FOR SHARE``, so a lifecycle command waits for
the batches in flight (and they for it: see :func:`core.store.policies._take_turn`) — and
raises :class:`ChampionChanged` if it is not the engine's version. Nothing of the batch is
stored; its leads stay undecided for the caller to decide again with a rebuilt engine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, func, insert, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from core.engine import DecisionEngine, LeadContext
from core.errors import ConcurrentUpdate, PolicyError
from core.model import Account as AccountValue
from core.model import Decision as DecisionValue
from core.model import DuplicateRecord, PriorScore
from core.model import Lead as LeadValue
from core.policy import parse_policy
from core.routing import InMemoryRotation
from core.store import audit_log, outbox, sla_clocks
from core.store.audit_log import AuditRecord
from core.store.db import EncodedJson, execute_many, json_text
from core.store.models import (
    Account,
    Decision,
    Lead,
    Owner,
    PolicyRole,
    PolicyVersion,
    RepLoad,
    RotationState,
    TrustState,
)
from core.store.records import StoredLead, account_value, lead_value
from core.store.rotation import StoreRotation

__all__ = [
    "ChampionChanged",
    "DecideRequest",
    "Decided",
    "ShadowChoice",
    "challenger_engine",
    "decide_leads",
    "decide_pending",
    "inactive_reps",
    "lead_contexts",
    "trust_levels",
]

log = logging.getLogger(__name__)

# True: shadow with the published challenger, if any; an engine: shadow with it; False: never
ShadowChoice = bool | DecisionEngine

_CONTENT_CAUSES = ("new", "changed")  # causes that decide a lead's content (and so mark it decided)


class ChampionChanged(ConcurrentUpdate):
    """The published champion is no longer the engine's policy (a publish, promote or rollback
    committed since the engine was built): nothing was decided; build the engine again."""

    def __init__(self, engine_version: str, champion: str) -> None:
        self.engine_version, self.champion = engine_version, champion
        super().__init__(f"the champion is now {champion}, not {engine_version}: decide with a rebuilt engine")


@dataclass(frozen=True, slots=True)
class DecideRequest:
    """Decide this stored lead, for this reason, at most once per ``dedupe_key``."""

    lead: Lead | StoredLead
    cause: str  # new | changed | reroute | conflict | replay
    dedupe_key: str
    exclude: frozenset[str] = field(default_factory=frozenset)
    excluded_because: str | None = None  # why ``exclude`` get nothing, for the route's detail

    def exclude_why(self, off: Mapping[str, str] | None) -> Mapping[str, str]:
        """Why each excluded rep gets nothing: inactive in the CRM (``off``), else this request's reason."""
        if self.excluded_because is None:
            return off or {}
        return {**dict.fromkeys(self.exclude, self.excluded_because), **(off or {})}


@dataclass(frozen=True, slots=True)
class Decided:
    decision_pk: int
    lead_pk: int
    decision: DecisionValue
    cause: str


def trust_levels(session: Session) -> dict[str, int]:
    """Current trust level per segment that has stored state (others use the policy's)."""
    return {segment: level for segment, level in session.execute(select(TrustState.segment, TrustState.level))}


def decide_pending(
    session: Session,
    engine: DecisionEngine,
    *,
    now: datetime,
    lead_pks: Iterable[int] | None = None,
    limit: int = 1000,
    actor: str = "loopgate",
    shadow: ShadowChoice = True,
    follow_champion: bool = False,
) -> list[Decided]:
    """Decide leads never decided or changed since their last decision (up to ``limit``),
    converted ones excepted (see the module doc).

    On PostgreSQL the chosen leads are locked (``SKIP LOCKED``), so parallel deciders split
    the work instead of deciding the same lead twice. ``follow_champion``: see
    :func:`decide_leads`.
    """
    table: Table = Lead.__table__  # type: ignore[assignment]  # plain rows: see StoredLead
    query = select(*(table.c[name] for name in StoredLead.COLUMNS)).where(
        table.c.is_deleted.is_(False),
        table.c.content_hash.is_not(None),
        table.c.converted.is_(False),
        or_(table.c.decided_hash.is_(None), table.c.decided_hash != table.c.content_hash),
    )
    if lead_pks is not None:
        query = query.where(table.c.pk.in_(list(lead_pks)))
    rows = [
        StoredLead(*row)
        for row in session.execute(query.order_by(table.c.pk).limit(limit).with_for_update(skip_locked=True))
    ]
    requests = [
        DecideRequest(row, "new" if row.decided_hash is None else "changed", f"content:{row.content_hash}")
        for row in rows
    ]
    return decide_leads(session, engine, requests, now=now, actor=actor, shadow=shadow, follow_champion=follow_champion)


def decide_leads(
    session: Session,
    engine: DecisionEngine,
    requests: Sequence[DecideRequest],
    *,
    now: datetime,
    actor: str = "loopgate",
    shadow: ShadowChoice = True,
    follow_champion: bool = False,
) -> list[Decided]:
    """Decide each request (skipping keys already decided, and converted leads) and persist
    everything; with a challenger published for shadowing, also record its decisions (see the
    module doc).

    ``follow_champion``: the engine decides for the published champion; raise
    :class:`ChampionChanged` (deciding nothing) if another version is champion now. Without it
    the engine is used as given (an explicit ``--policy`` file)."""
    requests = [r for r in requests if not r.lead.converted]
    if not requests:
        return []
    pks = [r.lead.pk for r in requests]
    todo, replayed = _to_decide(session, requests)
    _mark_decided(session, replayed)  # decided already (a replay): only the mark moves
    if not todo:
        return []
    if follow_champion:
        _require_champion(session, engine)

    leads = {r.lead.pk: lead_value(r.lead) for r in todo}
    accounts = _accounts(session, engine, todo, leads)
    previous, seqs = _previous(session, pks)
    twins = _duplicates(session, engine, todo)
    inactive = _inactive_reps(session, engine, todo)
    levels = trust_levels(session)
    rotation = StoreRotation(session)

    # a twin decided earlier in this batch is owned by whom that decision chose: deciding both
    # records of one person in a batch must not hand them to two reps unseen (see _duplicates)
    twin_pks = {tpk for found in twins.values() for tpk, _ in found}
    chosen: dict[int, str | None] = {}
    results: list[tuple[DecideRequest, DecisionValue]] = []
    for req in todo:
        pk = req.lead.pk
        found = twins.get(pk)
        off = inactive.get(req.lead.source)
        ctx = LeadContext(
            account=accounts.get(pk),
            previous=previous.get(pk),
            duplicates=_as_chosen(found, chosen) if found else (),
            exclude_owners=req.exclude.union(off) if off else req.exclude,
            exclude_why=req.exclude_why(off),
        )
        d = engine.decide(leads[pk], ctx, rotation=rotation, now=now, trust_levels=levels)
        if pk in twin_pks:
            chosen[pk] = d.owner  # None: it gave the lead nobody, and its CRM owner is nobody we know
        results.append((req, d))
    rotation.flush(now)
    decided = _persist(session, results, seqs, now=now, actor=actor)
    _start_sla_clocks(session, engine, todo, decided, now=now)
    challenger = challenger_engine(session, engine) if shadow is True else shadow or None
    if challenger is not None and challenger.version != engine.version:
        _shadow(session, challenger, todo, leads, previous, seqs, levels, now=now)
    return decided


def _require_champion(session: Session, engine: DecisionEngine) -> None:
    """One query per batch: the champion, held (``FOR SHARE``) until the batch commits, so a
    lifecycle command cannot change it under the batch. No champion published: the engine's
    policy is the ``LOOPGATE_POLICY`` file, and it decides."""
    current = session.execute(
        select(PolicyRole.version).where(PolicyRole.role == "champion").with_for_update(read=True)
    ).scalar_one_or_none()
    if current is not None and current != engine.version:
        raise ChampionChanged(engine.version, current)


def _to_decide(
    session: Session, requests: Sequence[DecideRequest]
) -> tuple[list[DecideRequest], list[Lead | StoredLead]]:
    """The requests still to decide, and the leads whose content is already what their latest
    decision decided (to mark only).

    A content request is done when the lead's latest acting decision is about that content. When
    an older decision is (the lead changed back), the request is re-keyed after the latest one,
    so deciding it again is itself idempotent. Other causes are done once their key exists.

    Decisions are read by ``lead_pk`` alone and matched here: with ``dedupe_key IN (…)`` beside
    it, SQLite probes the unique index once per pair of the two lists — 37 ms for a batch of 500
    leads, 0.57 s for 2,000 — where one list is a few milliseconds."""
    if not requests:
        return [], []
    keys: set[tuple[int, str]] = set()
    latest: dict[int, tuple[int, str]] = {}  # lead_pk → (seq, key) of its latest acting decision
    for pk, key, seq, shadow in session.execute(
        select(Decision.lead_pk, Decision.dedupe_key, Decision.seq, Decision.shadow).where(
            Decision.lead_pk.in_({r.lead.pk for r in requests})
        )
    ):
        keys.add((pk, key))
        if not shadow and seq > latest.get(pk, (-1, ""))[0]:
            latest[pk] = (seq, key)
    todo: list[DecideRequest] = []
    replayed: list[Lead | StoredLead] = []
    for r in requests:
        pk = r.lead.pk
        if r.cause not in _CONTENT_CAUSES:
            if (pk, r.dedupe_key) not in keys:
                todo.append(r)
            continue
        seq, last = latest.get(pk, (0, ""))
        if last.partition(":after:")[0] == r.dedupe_key:
            replayed.append(r.lead)
        elif (pk, r.dedupe_key) in keys:
            todo.append(dataclasses.replace(r, dedupe_key=f"{r.dedupe_key}:after:{seq}"))
        else:
            todo.append(r)
    return todo, replayed


def _decided(session: Session, wanted: Sequence[tuple[int, str]]) -> set[tuple[int, str]]:
    """The ``(lead_pk, dedupe_key)`` pairs of ``wanted`` that already have a decision (read by
    ``lead_pk`` alone, as :func:`_to_decide` says why)."""
    if not wanted:
        return set()
    pairs = set(wanted)
    rows = session.execute(
        select(Decision.lead_pk, Decision.dedupe_key).where(Decision.lead_pk.in_({pk for pk, _ in pairs}))
    )
    return {(pk, key) for pk, key in rows if (pk, key) in pairs}


def _start_sla_clocks(
    session: Session,
    engine: DecisionEngine,
    todo: Sequence[DecideRequest],
    decided: Sequence[Decided],
    *,
    now: datetime,
) -> None:
    """The scheduler's response clocks (issue 6), born in the decision's transaction: see
    :mod:`core.store.sla_clocks`. Kept apart from ``_persist`` on purpose."""
    made = [
        sla_clocks.NewDecision(
            d.decision_pk,
            d.lead_pk,
            d.decision.action,
            d.decision.owner,
            d.decision.owner_kind,
            d.decision.route.team,
            d.decision.score.band,
            d.decision.segment,
        )
        for d in decided
    ]
    sla_clocks.start_clocks(session, engine.policy, made, {r.lead.pk: r.lead for r in todo}, now=now)


# --- shadow decisions -----------------------------------------------------------------------

_SHADOW_ENGINES: dict[tuple[str, str], DecisionEngine] = {}


def challenger_engine(session: Session, champion: DecisionEngine) -> DecisionEngine | None:
    """The published challenger as an engine (with the champion's calibration), or None.

    Engines are cached by (version, calibration): versions are content hashes, so a cached
    engine can never be stale.
    """
    row = session.execute(
        select(PolicyVersion.version, PolicyVersion.text)
        .join(PolicyRole, PolicyRole.version == PolicyVersion.version)
        .where(PolicyRole.role == "challenger")
    ).first()
    if row is None:
        return None
    key = (row.version, champion.calibration.version)
    cached = _SHADOW_ENGINES.get(key)
    if cached is None:
        try:
            loaded = parse_policy(row.text, f"stored:{row.version}")
        except PolicyError as exc:
            log.warning("challenger policy %s no longer validates; not shadowing: %s", row.version, exc)
            return None
        cached = DecisionEngine(loaded, calibration=champion.calibration)
        if len(_SHADOW_ENGINES) >= 8:
            _SHADOW_ENGINES.clear()
        _SHADOW_ENGINES[key] = cached
    return cached


def _rotation_snapshot(session: Session, now: datetime) -> InMemoryRotation:
    """A copy of the stored rotation (lags and recent daily loads) the shadow may spend."""
    lags = {
        team: {k: float(v) for k, v in (stored or {}).items()}
        for team, stored in session.execute(select(RotationState.team, RotationState.lags))
    }
    since = (now - timedelta(days=2)).date().isoformat()
    loads = {
        (rep, day): count
        for rep, day, count in session.execute(
            select(RepLoad.rep, RepLoad.day, RepLoad.count).where(RepLoad.day >= since)
        )
    }
    return InMemoryRotation(lags=lags, loads=loads)


def _shadow(
    session: Session,
    challenger: DecisionEngine,
    todo: Sequence[DecideRequest],
    leads: Mapping[int, LeadValue],
    previous: Mapping[int, PriorScore],
    seqs: dict[int, int],
    levels: Mapping[str, int],
    *,
    now: datetime,
) -> None:
    keys = {r.lead.pk: f"shadow:{challenger.version}:{r.dedupe_key}"[:160] for r in todo}
    done = _decided(session, list(keys.items()))
    todo = [r for r in todo if (r.lead.pk, keys[r.lead.pk]) not in done]
    if not todo:
        return
    contexts = lead_contexts(session, challenger, todo, leads, previous)
    rotation = _rotation_snapshot(session, now)
    rows: list[dict[str, object]] = []
    for req in todo:
        pk = req.lead.pk
        # never acted on, so never sampled for a person's audit
        d = dataclasses.replace(
            challenger.decide(leads[pk], contexts[pk], rotation=rotation, now=now, trust_levels=levels),
            audit_sample=False,
        )
        seqs[pk] = seqs.get(pk, 0) + 1
        rows.append(
            {
                **_row_values(req, d, seqs[pk], now),
                "dedupe_key": keys[pk],
                "shadow": True,
                "state": "shadow",
                "final_owner": None,
                "final_action": None,
            }
        )
    _insert_decisions(session, rows)


def lead_contexts(
    session: Session,
    engine: DecisionEngine,
    requests: Sequence[DecideRequest],
    leads: Mapping[int, LeadValue],
    previous: Mapping[int, PriorScore] | None = None,
) -> dict[int, LeadContext]:
    """The context ``decide_leads`` gives the engine (account, twins, exclusions), for callers
    that replay stored leads without deciding them (``policy simulate``, tuning)."""
    accounts = _accounts(session, engine, requests, leads)
    twins = _duplicates(session, engine, requests)
    inactive = _inactive_reps(session, engine, requests)
    return {
        r.lead.pk: LeadContext(
            account=accounts.get(r.lead.pk),
            previous=(previous or {}).get(r.lead.pk),
            duplicates=tuple(twin for _, twin in twins.get(r.lead.pk, ())),
            exclude_owners=r.exclude.union(inactive.get(r.lead.source, {})),
            exclude_why=r.exclude_why(inactive.get(r.lead.source)),
        )
        for r in requests
    }


def _inactive_reps(
    session: Session, engine: DecisionEngine, requests: Sequence[DecideRequest]
) -> dict[str, dict[str, str]]:
    """Per CRM, the policy's reps whose user there is deactivated (a Salesforce user with
    ``IsActive`` false, an archived HubSpot owner), each with why, for the leads of that CRM.

    The policy names who may take leads; the CRM says who still can. A rep who left keeps their
    place in the policy until someone edits it, and meanwhile was handed rotation leads (and
    kept the ones they own) that the CRM then refused to assign to them — the whole record's
    write-back died with the owner. One query per batch; few users are ever inactive."""
    return inactive_reps(session, engine, {r.lead.source for r in requests})


def inactive_reps(session: Session, engine: DecisionEngine, sources: Iterable[str]) -> dict[str, dict[str, str]]:
    """Per CRM of ``sources``, the policy's reps whose user there is deactivated, each with why
    (see :func:`_inactive_reps`)."""
    sources = set(sources)
    if not sources:
        return {}
    out: dict[str, dict[str, str]] = {}
    for source, crm_id in session.execute(
        select(Owner.source, Owner.crm_id).where(
            Owner.source.in_(sources), Owner.active.is_(False), Owner.kind == "user"
        )
    ):
        rep = engine.roster.person_for_crm(source, crm_id)
        if rep is not None and rep in engine.roster.reps:  # a queue is never inactive
            out.setdefault(source, {})[rep] = f"inactive in {source}"
    return out


def _accounts(
    session: Session, engine: DecisionEngine, todo: Sequence[DecideRequest], leads: Mapping[int, LeadValue]
) -> dict[int, AccountValue]:
    """Each lead's account: the CRM's explicit link first, else a match by company domain (the
    first of ``engine.account_domains`` an account has: a subdomain finds its parent's account).
    Every candidate of the batch is looked up in one query."""
    linked = {r.lead.pk: r.lead.account_pk for r in todo if r.lead.account_pk is not None}
    domains: dict[int, tuple[str, ...]] = {}
    for r in todo:
        if r.lead.pk not in linked:
            candidates = engine.account_domains(leads[r.lead.pk])
            if candidates:
                domains[r.lead.pk] = candidates
    rows: list[Account] = []
    if linked:
        rows += session.execute(select(Account).where(Account.pk.in_(set(linked.values())))).scalars().all()
    if domains:
        wanted = {d for candidates in domains.values() for d in candidates}
        rows += (
            session.execute(
                select(Account).where(Account.domain.in_(wanted), Account.is_deleted.is_(False)).order_by(Account.pk)
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
        elif pk in domains:
            domain = next((d for d in domains[pk] if d in by_domain), None)
            if domain is not None:
                # an account in the lead's own CRM wins over the other CRM's
                matches = sorted(by_domain[domain], key=lambda a: (a.source != r.lead.source, a.pk))
                out[pk] = account_value(matches[0])
    return out


def _previous(session: Session, pks: Sequence[int]) -> tuple[dict[int, PriorScore], dict[int, int]]:
    """The latest acting decision's score per lead, and the highest sequence number.

    The two maxima differ while a challenger shadows: each lead's highest ``seq`` is then its
    shadow decision, and taking the score from that row (then dropping it as a shadow) left
    no previous score at all — ``score_volatility`` never fired during a shadow run."""
    latest = (
        select(
            Decision.lead_pk,
            func.max(Decision.seq).label("seq"),
            func.max(case((Decision.shadow.is_(False), Decision.seq))).label("acting"),
        )
        .where(Decision.lead_pk.in_(pks))
        .group_by(Decision.lead_pk)
        .subquery()
    )
    rows = session.execute(
        select(latest.c.lead_pk, latest.c.seq, Decision.score_total, Decision.decided_at).outerjoin(
            Decision, (Decision.lead_pk == latest.c.lead_pk) & (Decision.seq == latest.c.acting)
        )
    ).all()
    previous = {r.lead_pk: PriorScore(r.score_total, r.decided_at) for r in rows if r.decided_at is not None}
    return previous, {r.lead_pk: r.seq for r in rows}


def _duplicates(
    session: Session, engine: DecisionEngine, todo: Sequence[DecideRequest]
) -> dict[int, tuple[tuple[int, DuplicateRecord], ...]]:
    """Other records with the same email (the other CRM, or a twin in the same one), with
    their lead keys.

    A twin's owner is the one loopgate last gave it — its latest acting decision's owner (the
    reviewer's, once reviewed; the proposed one while the review waits) — not the CRM's owner
    field, which changes only once write-back lands and the twin is synced again: until then a
    twin just routed to a rep looked unowned, and the other record went to another rep with no
    ``duplicate_ownership``. The CRM's owner counts when the twin was never decided, when its
    decision gave it no owner (suppressed and routed nowhere, or suppressed by a reviewer), and
    when the CRM changed owner since that decision (a person's later edit, or the write-back
    itself, is newer).
    :func:`decide_leads` then overlays the owners its batch chooses (:func:`_as_chosen`)."""
    emails = {r.lead.email for r in todo if r.lead.email}
    if not emails:
        return {}
    rows = session.execute(
        select(Lead.pk, Lead.source, Lead.crm_id, Lead.email, Lead.owner_id).where(
            Lead.email.in_(emails), Lead.is_deleted.is_(False)
        )
    ).all()
    per_email = Counter(row.email for row in rows)
    decided = _decided_owners(session, [row.pk for row in rows if per_email[row.email] > 1])
    by_email: dict[str, list[tuple[int, DuplicateRecord]]] = {}
    for row in rows:
        owner = engine.roster.person_for_crm(row.source, row.owner_id)
        if row.pk in decided:
            decided_owner, crm_owner_before = decided[row.pk]
            if decided_owner is not None and row.owner_id == crm_owner_before:
                owner = decided_owner
        twin = DuplicateRecord(row.source, row.crm_id, row.owner_id, owner)
        by_email.setdefault(row.email, []).append((row.pk, twin))
    return {
        r.lead.pk: tuple((pk, t) for pk, t in by_email.get(r.lead.email or "", []) if pk != r.lead.pk)
        for r in todo
        if r.lead.email
    }


def _decided_owners(session: Session, lead_pks: Sequence[int]) -> dict[int, tuple[str | None, str | None]]:
    """Per lead, its latest acting decision's owner (the final one once reviewed) and the CRM
    owner id it was decided against; one query for the batch (none without twins)."""
    if not lead_pks:
        return {}
    latest = (
        select(Decision.lead_pk, func.max(Decision.seq).label("seq"))
        .where(Decision.lead_pk.in_(lead_pks), Decision.shadow.is_(False))
        .group_by(Decision.lead_pk)
        .subquery()
    )
    rows = session.execute(
        select(Decision.lead_pk, Decision.state, Decision.owner, Decision.final_owner, Decision.crm_owner_before).join(
            latest, (Decision.lead_pk == latest.c.lead_pk) & (Decision.seq == latest.c.seq)
        )
    )
    return {r.lead_pk: (r.final_owner if r.state == "reviewed" else r.owner, r.crm_owner_before) for r in rows}


def _as_chosen(
    twins: tuple[tuple[int, DuplicateRecord], ...], chosen: Mapping[int, str | None]
) -> tuple[DuplicateRecord, ...]:
    """The twins, each owned by whom this batch's decision of it chose (if it was decided)."""
    return tuple(dataclasses.replace(twin, owner_rep=chosen[pk]) if pk in chosen else twin for pk, twin in twins)


def _contract_json(contract: object) -> EncodedJson:
    """The contract's canonical JSON (sorted keys, no spaces): hashed for the audit record and
    stored as it is, so a decision's contract is encoded once (twice was ~6% of a sync)."""
    return EncodedJson(json_text(contract, sort_keys=True, separators=(",", ":"), ensure_ascii=False))


def _contract_digest(contract: EncodedJson) -> str:
    return hashlib.sha256(contract.text.encode()).hexdigest()


def _persist(
    session: Session,
    results: list[tuple[DecideRequest, DecisionValue]],
    seqs: dict[int, int],
    *,
    now: datetime,
    actor: str,
) -> list[Decided]:
    superseded = _supersede(session, [req.lead.pk for req, _ in results])
    values: list[dict[str, object]] = []
    for req, d in results:
        seqs[req.lead.pk] = seqs.get(req.lead.pk, 0) + 1
        values.append(
            {
                **_row_values(req, d, seqs[req.lead.pk], now),
                "dedupe_key": req.dedupe_key,
                "shadow": False,
                "state": "pending_review" if d.action == "review" else "applied",
                "final_owner": None if d.action == "review" else d.owner,
                "final_action": None if d.action == "review" else d.action,
            }
        )
    decision_pks = _insert_decisions(session, values)
    _mark_decided(session, [req.lead for req, _ in results if req.cause in _CONTENT_CAUSES])

    records: list[AuditRecord] = []
    # effects are collected and inserted in one statement: one INSERT per effect was half the
    # cost of deciding a sync page (connectors branch, bench/sync.py)
    effects: list[tuple[str, str, dict[str, Any]]] = []
    for (req, d), pk, row in zip(results, decision_pks, values, strict=True):
        effects += _effects(pk, d)
        records.append(
            AuditRecord(
                now,
                actor,
                "decision.made",
                f"lead:{d.source}:{d.lead_id}",
                {
                    "decision": pk,
                    "cause": req.cause,
                    "action": d.action,
                    "owner": d.owner,
                    "band": d.score.band,
                    "score": d.score.total,
                    "triggers": [t.code for t in d.triggers],
                    "policy_version": d.policy_version,
                    "contract_sha256": _contract_digest(cast(EncodedJson, row["contract"])),
                },
            )
        )
    for old in superseded:
        effects.append(("slack.decision_update", f"slack.decision_update:{old}:superseded", {"decision_pk": old}))
        records.append(AuditRecord(now, actor, "decision.superseded", f"decision:{old}", {"decision": old}))
    outbox.enqueue_many(session, effects, now=now)
    audit_log.append(session, records)
    return [Decided(pk, req.lead.pk, d, req.cause) for (req, d), pk in zip(results, decision_pks, strict=True)]


def _supersede(session: Session, lead_pks: Sequence[int]) -> list[int]:
    """Mark these leads' pending reviews superseded; returns their decision keys.

    The candidates are found by ``lead_pk`` alone, then updated by key, still only while
    pending. With ``lead_pk IN (…) AND state = 'pending_review'`` in one statement, SQLite
    chose the state index and read every pending review in the table for each batch — a
    quadratic first sync: 9% of deciding 50,000 leads, against 1% at 10,000 (bench/sync.py).
    A first sync of new leads finds no decisions and issues no UPDATE."""
    candidates = [
        pk
        for pk, state, shadow in session.execute(
            select(Decision.pk, Decision.state, Decision.shadow).where(Decision.lead_pk.in_(lead_pks))
        )
        if state == "pending_review" and not shadow
    ]
    if not candidates:
        return []
    return list(
        session.execute(
            update(Decision)
            .where(Decision.pk.in_(candidates), Decision.state == "pending_review")
            .values(state="superseded")
            .returning(Decision.pk)
        ).scalars()
    )


def _mark_decided(session: Session, leads: Sequence[Lead | StoredLead]) -> None:
    """Set ``decided_hash`` to the content just decided, in one executemany UPDATE; loaded ORM
    rows get the value as committed state. (As ORM changes, the flush cost ~50 µs a lead.)"""
    if not leads:
        return
    execute_many(session, _MARK_DECIDED, [{"b_pk": lead.pk, "b_hash": lead.content_hash} for lead in leads])
    for lead in leads:
        if isinstance(lead, StoredLead):
            lead.decided_hash = lead.content_hash
        else:
            set_committed_value(lead, "decided_hash", lead.content_hash)


def _insert_decisions(session: Session, rows: Sequence[Mapping[str, object]]) -> list[int]:
    """Insert decision rows in one statement and return their primary keys, in order.

    The Core table, not ORM objects: the ORM's flush split a page's decisions into an INSERT
    per distinct pattern of NULL columns (owner, team, suppressed_by, final_*), ~1,800
    statements per 10,000 decisions, and building the objects cost as much again; together
    the larger part of deciding a sync page (bench/sync.py). The keys are read back by
    ``(lead_pk, dedupe_key)``, which is unique: ``INSERT … RETURNING`` in parameter order
    cost 3x as much on PostgreSQL (SQLAlchemy renders a sorted ``VALUES`` form per batch)."""
    if not rows:
        return []
    table: Table = Decision.__table__  # type: ignore[assignment]  # Core table: one executemany INSERT
    execute_many(session, _INSERT_DECISION, rows)
    found = {
        (lead_pk, key): pk
        for lead_pk, key, pk in session.execute(
            select(table.c.lead_pk, table.c.dedupe_key, table.c.pk).where(
                table.c.lead_pk.in_({row["lead_pk"] for row in rows})
            )
        )
    }
    return [found[(row["lead_pk"], row["dedupe_key"])] for row in rows]


_LEADS: Table = Lead.__table__  # type: ignore[assignment]  # Core tables: plain executemany statements
_MARK_DECIDED = update(_LEADS).where(_LEADS.c.pk == bindparam("b_pk")).values(decided_hash=bindparam("b_hash"))
_INSERT_DECISION = insert(cast(Table, Decision.__table__))


def _row_values(req: DecideRequest, d: DecisionValue, seq: int, now: datetime) -> dict[str, object]:
    """The columns every decision row has, acting or shadow."""
    return {
        "lead_pk": req.lead.pk,
        "source": d.source,
        "lead_id": d.lead_id,
        "seq": seq,
        "cause": req.cause,
        "policy_version": d.policy_version,
        "action": d.action,
        "owner": d.owner,
        "owner_kind": d.owner_kind,
        "team": d.route.team,
        "segment": d.segment,
        "trust_level": d.trust_level,
        "score_total": d.score.total,
        "band": d.score.band,
        "confidence": d.score.confidence,
        "trigger_codes": "," + ",".join(t.code for t in d.triggers) + "," if d.triggers else "",
        "audit_sample": d.audit_sample,
        "suppressed_by": d.suppressed_by,
        "decided_at": now,
        "crm_owner_before": req.lead.owner_id,
        "contract": _contract_json(d.to_dict()),
    }


def _effects(pk: int, d: DecisionValue) -> list[tuple[str, str, dict[str, Any]]]:
    out: list[tuple[str, str, dict[str, Any]]] = [("crm.writeback", f"crm.writeback:{pk}", {"decision_pk": pk})]
    if d.action == "review":
        out.append(("slack.escalation", f"slack.escalation:{pk}", {"decision_pk": pk}))
    elif d.action == "auto" and d.owner_kind == "rep" and d.route.rule != "current_owner":
        out.append(("slack.assignment", f"slack.assignment:{pk}", {"decision_pk": pk}))
    return out
