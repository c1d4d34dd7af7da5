"""Replaying stored leads through two policies, and pairing shadow decisions with real ones.

``replay`` is what ``policy simulate`` runs: the leads whose latest acting decision falls in a
window are decided again — by the current policy and by the new one — as of that decision's
time, with today's trust levels and calibration, each policy on its own in-memory rotation.
Nothing is written: no decision, no rotation slot, no outbox row, no audit event (the caller's
session is only read). ``shadow_pairs`` is what ``policy compare`` runs: the challenger's
shadow decisions beside the champion decisions made for the same lead change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.engine import DecisionEngine
from core.learning.comparison import Pair
from core.learning.labels import LabelledDecision
from core.model import Decision as DecisionValue
from core.model import PriorScore
from core.routing import InMemoryRotation
from core.store.db import in_chunks
from core.store.decide import DecideRequest, lead_contexts, trust_levels
from core.store.labels import labelled_decisions, labels_for
from core.store.models import Decision
from core.store.records import lead_value, leads_by_pk

__all__ = ["Replayed", "replay", "replay_decisions", "shadow_pairs"]


@dataclass(frozen=True, slots=True)
class Replayed:
    """A stored decision (with its labels) and what each policy decides for it now."""

    stored: LabelledDecision
    current: DecisionValue
    new: DecisionValue

    def pair(self) -> Pair:
        s = self.stored
        return Pair(
            lead=f"{self.current.source}:{self.current.lead_id}",
            before=self.current.to_dict(),
            after=self.new.to_dict(),
            human_band=s.human_band,
            human_owner=s.human_owner,
            outcome=s.outcome,
        )


def _priors(session: Session, stored: Sequence[LabelledDecision]) -> dict[int, PriorScore]:
    """Each replayed lead's acting decision just before the replayed one (for volatility)."""
    wanted = select(Decision.lead_pk, Decision.seq).where(Decision.pk.in_([s.decision_pk for s in stored]))
    seqs: dict[int, int] = {lead_pk: seq for lead_pk, seq in session.execute(wanted)}
    rows = session.execute(
        select(Decision.lead_pk, Decision.seq, Decision.score_total, Decision.decided_at)
        .where(Decision.lead_pk.in_(list(seqs)), Decision.shadow.is_(False))
        .order_by(Decision.lead_pk, Decision.seq)
    ).all()
    out: dict[int, PriorScore] = {}
    for r in rows:
        if r.seq < seqs[r.lead_pk]:
            out[r.lead_pk] = PriorScore(r.score_total, r.decided_at)
    return out


def replay(
    session: Session,
    current: DecisionEngine,
    new: DecisionEngine,
    *,
    since: datetime,
    until: datetime,
    outcome_after: datetime | None = None,
) -> list[Replayed]:
    """Decide again, with both engines, the leads last decided in ``[since, until)``."""
    stored = labelled_decisions(session, since=since, until=until, outcome_after=outcome_after)
    return replay_decisions(session, current, new, stored)


def replay_decisions(
    session: Session, current: DecisionEngine, new: DecisionEngine, stored: Sequence[LabelledDecision]
) -> list[Replayed]:
    """Replay these stored decisions (in their order) through both engines."""
    if not stored:
        return []
    rows = leads_by_pk(session, [s.lead_pk for s in stored])
    requests = [DecideRequest(rows[s.lead_pk], "replay", "") for s in stored]
    values = {pk: lead_value(row) for pk, row in rows.items()}
    priors = _priors(session, stored)
    levels = trust_levels(session)
    ctx_current = lead_contexts(session, current, requests, values, priors)
    ctx_new = lead_contexts(session, new, requests, values, priors)
    rot_current, rot_new = InMemoryRotation(), InMemoryRotation()
    out: list[Replayed] = []
    for s in stored:
        lead = values[s.lead_pk]
        now = s.decided_at
        a = current.decide(lead, ctx_current[s.lead_pk], rotation=rot_current, now=now, trust_levels=levels)
        b = new.decide(lead, ctx_new[s.lead_pk], rotation=rot_new, now=now, trust_levels=levels)
        out.append(Replayed(s, a, b))
    return out


def shadow_pairs(
    session: Session,
    version: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    outcome_after: datetime | None = None,
) -> list[Pair]:
    """The challenger ``version``'s shadow decisions made in ``[since, until)`` (the window
    :func:`replay` takes) beside the champion's for the same change. Each pair's ``before``
    carries the version that made the acting decision, which may not be today's champion."""
    query = select(Decision.pk, Decision.lead_pk, Decision.dedupe_key, Decision.contract).where(
        Decision.shadow.is_(True), Decision.policy_version == version
    )
    if since is not None:
        query = query.where(Decision.decided_at >= since)
    if until is not None:
        query = query.where(Decision.decided_at < until)
    shadows = session.execute(query.order_by(Decision.decided_at, Decision.pk)).all()
    prefix = f"shadow:{version}:"
    wanted = {(s.lead_pk, s.dedupe_key.removeprefix(prefix)) for s in shadows}
    acting: dict[tuple[int, str], int] = {}
    lead_pks = sorted({lead_pk for lead_pk, _ in wanted})
    for chunk in in_chunks(lead_pks):
        for pk, lead_pk, key in session.execute(
            select(Decision.pk, Decision.lead_pk, Decision.dedupe_key).where(
                Decision.lead_pk.in_(chunk), Decision.shadow.is_(False)
            )
        ):
            if (lead_pk, key) in wanted:
                acting[(lead_pk, key)] = pk
    labelled = labels_for(session, list(acting.values()), outcome_after=outcome_after)
    out: list[Pair] = []
    for s in shadows:
        champion_pk = acting.get((s.lead_pk, s.dedupe_key.removeprefix(prefix)))
        if champion_pk is None or champion_pk not in labelled:
            continue
        ld = labelled[champion_pk]
        out.append(
            Pair(
                lead=f"{ld.contract['source']}:{ld.contract['lead_id']}",
                before=ld.contract,
                after=s.contract,
                human_band=ld.human_band,
                human_owner=ld.human_owner,
                outcome=ld.outcome,
            )
        )
    return out
