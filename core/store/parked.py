"""Leads parked in the fallback queue because nobody in their team could take them.

A rotation lead that arrives when every rep of its team is off duty, out of office or at
their daily capacity goes to the policy's fallback queue (``core.routing``). That is right at
the moment — yet a hot lead that came in at 02:00 should not wait there once the team starts
its day, and nobody owes it a first touch while it sits in a queue. :func:`unpark` decides
such leads again when their team has room, hottest first, at most as many as the team can
take, so a team still off duty or full is not re-decided into the same queue over and over.

A lead counts as parked when its latest acting decision sent it to the fallback queue by
``fallback_queue`` for a team (not a routing rule that names the queue: that is where the
policy wants it), automatically, within :data:`UNPARK_WITHIN`, and nobody has touched it in the
CRM since. Older parked leads are the queue's to work. A lead whose CRM record changed is
left to the sync, which decides it anyway. A lead parked by an SLA re-route keeps away from
every rep who let it breach since it was last answered (``sla_clocks.late_owners``): unparked,
it would go straight back to them; one parked after ``MAX_REROUTES`` re-routes stays in the
queue for a person to assign.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, select
from sqlalchemy.orm import Session, aliased

from core.engine import DecisionEngine
from core.store.decide import Decided, DecideRequest, decide_leads, inactive_reps
from core.store.models import Decision, Lead
from core.store.rotation import StoreRotation
from core.store.sla_clocks import MAX_REROUTES, late_owners

__all__ = ["UNPARK_WITHIN", "Parked", "parked_leads", "unpark"]

UNPARK_WITHIN = timedelta(days=7)
_HEAT = {"hot": 0, "warm": 1, "cold": 2}


@dataclass(frozen=True, slots=True)
class Parked:
    decision_pk: int
    lead_pk: int
    source: str
    team: str
    band: str
    decided_at: datetime
    exclude: frozenset[str] = frozenset()


def parked_leads(
    session: Session, fallback_queue: str, *, now: datetime, teams: Sequence[str] | None = None
) -> list[Parked]:
    """The leads waiting in the fallback queue for their team (or these teams; see the module
    docstring), hottest and then longest-waiting first."""
    newer = aliased(Decision)
    rows = session.execute(
        select(
            Decision.pk,
            Decision.lead_pk,
            Decision.source,
            Decision.team,
            Decision.band,
            Decision.decided_at,
            Decision.contract,
        )
        .join(Lead, Lead.pk == Decision.lead_pk)
        .where(
            Decision.owner == fallback_queue,
            Decision.owner_kind == "queue",
            Decision.action == "auto",
            Decision.shadow.is_(False),
            Decision.team.is_not(None) if teams is None else Decision.team.in_(list(teams)),
            Decision.decided_at >= now - UNPARK_WITHIN,
            Lead.is_deleted.is_(False),
            Lead.converted.is_(False),  # worked already: nobody's to pick up
            Lead.first_touch_at.is_(None),
            Lead.decided_hash == Lead.content_hash,
            ~exists().where(and_(newer.lead_pk == Decision.lead_pk, newer.seq > Decision.seq, newer.shadow.is_(False))),
        )
    ).all()
    rows = [row for row in rows if (row.contract.get("route") or {}).get("method") == "fallback_queue"]
    late = late_owners(session, [row.lead_pk for row in rows])
    parked = [
        Parked(pk, lead_pk, source, team, band, decided_at, frozenset(late.get(lead_pk, ())))
        for pk, lead_pk, source, team, band, decided_at, _ in rows
        if len(late.get(lead_pk, ())) <= MAX_REROUTES  # parked by the re-route limit: a person assigns it
    ]
    parked.sort(key=lambda p: (_HEAT.get(p.band, len(_HEAT)), p.decided_at, p.decision_pk))
    return parked


def unpark(session: Session, engine: DecisionEngine, *, now: datetime, actor: str = "scheduler") -> list[Decided]:
    """Decide parked leads again where their team has room now; returns the new decisions."""
    rotation = StoreRotation(session)  # reads loads only; decide_leads keeps its own
    # which teams have room at all, before reading any parked lead: at night, none
    teams = [t for t in engine.router.roster.teams if engine.router.open_slots(t, rotation, now) != 0]
    parked = parked_leads(session, engine.policy.fallback_queue, now=now, teams=teams) if teams else []
    if not parked:
        return []
    # a rep whose CRM user is deactivated takes nothing (decide_leads excludes them): counted as
    # room, the leads would be decided back into the queue every minute
    inactive = inactive_reps(session, engine, {p.source for p in parked})
    by_team: dict[tuple[str, frozenset[str]], list[Parked]] = defaultdict(list)
    for p in parked:
        by_team[p.team, p.exclude | frozenset(inactive.get(p.source, {}))].append(p)
    chosen: list[Parked] = []
    for (team, exclude), waiting in by_team.items():
        room = engine.router.open_slots(team, rotation, now, exclude=exclude)
        chosen.extend(waiting if room is None else waiting[:room])
    if not chosen:
        return []
    leads = {lead.pk: lead for lead in session.scalars(select(Lead).where(Lead.pk.in_([p.lead_pk for p in chosen])))}
    requests = [
        DecideRequest(
            leads[p.lead_pk], "unpark", f"unpark:{p.decision_pk}", p.exclude, "excluded (let it pass its SLA)"
        )
        for p in chosen
    ]
    return decide_leads(session, engine, requests, now=now, actor=actor)
