"""Everything a message about one decision shows, read from the store in one place.

Builders in :mod:`bot.blocks` are pure functions of a :class:`Card`; this module is the only
one that turns rows (decision, lead, review) into a card, so the channel message, the owner's
DM, the App Home and ``/loopgate lead`` all tell the same story.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.sla import ReviewClock, local_time
from core.review import Proposal, ReviewRules
from core.store.models import Decision, Lead, Review, SlaClock
from core.store.reviews import proposal_for

__all__ = ["Card", "LeadFacts", "Outcome", "load_card", "load_cards"]


@dataclass(frozen=True, slots=True)
class LeadFacts:
    """The lead as its CRM describes it (raw CRM text: escape before showing in mrkdwn)."""

    source: str
    lead_id: str
    name: str
    title: str | None = None
    company: str | None = None
    email: str | None = None
    country: str | None = None
    employees: int | None = None
    industry: str | None = None
    deal_size: float | None = None
    lead_source: str | None = None

    @classmethod
    def of(cls, row: Lead) -> LeadFacts:
        data = row.data or {}
        parts = [p for p in (row.first_name, row.last_name) if p]
        name = " ".join(parts) if parts else (row.email or row.crm_id)
        return cls(
            source=row.source,
            lead_id=row.crm_id,
            name=name,
            title=row.title,
            company=row.company,
            email=row.email,
            country=row.country,
            employees=row.employees,
            industry=row.industry,
            deal_size=row.estimated_deal_size,
            lead_source=data.get("lead_source"),
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a person decided, for the message updated in place."""

    kind: str  # approve | reassign | override
    by_name: str
    by_slack: str | None
    at: datetime
    reason_label: str | None
    note: str | None
    changes: tuple[str, ...]
    final_owner_name: str | None
    final_action: str | None
    took_next_best_action: bool = False
    band: str | None = None  # the band the person set, when it is not automation's


@dataclass(frozen=True, slots=True)
class Card:
    decision_pk: int
    state: str  # pending_review | reviewed | superseded | applied
    decided_at: datetime
    contract: dict[str, Any]
    lead: LeadFacts
    proposal: Proposal
    owner_name: str
    owner_slack: str | None
    owner_timezone: str
    team_name: str | None
    channel: str
    due_at: datetime | None
    outcome: Outcome | None = None
    superseded_by: int | None = None
    # why it was superseded: the cause of the decision that replaced it (reroute, changed…)
    superseded_cause: str | None = None
    reason_labels: dict[str, str] = field(default_factory=dict)

    @property
    def pending(self) -> bool:
        return self.state == "pending_review"

    @property
    def due_text(self) -> str | None:
        """The due time in the proposed owner's time zone (everyone reads the same clock)."""
        return local_time(self.due_at, self.owner_timezone) if self.due_at else None

    @property
    def rendered(self) -> str:
        """A short key of what the card shows, to skip updates that change nothing."""
        if self.outcome is not None:
            return f"reviewed:{self.outcome.kind}"
        return self.state


def _outcome(review: Review, rules: ReviewRules, roster_name: Any) -> Outcome:
    reviewer = rules.roster.reps.get(review.reviewer_rep or "")
    labels = rules.reason_codes
    after = review.after or {}
    before = review.before or {}
    changes: list[str] = []
    if review.kind != "approve":
        if after.get("owner") != before.get("owner") and after.get("action") != "suppress":
            changes.append(f"owner {roster_name(before.get('owner'))} → {roster_name(after.get('owner'))}")
        if after.get("band") != before.get("band"):
            changes.append(f"band {before.get('band')} → {after.get('band')}")
        if after.get("action") == "suppress" and before.get("action") != "suppress":
            changes.append("suppressed: nobody is assigned or pinged")
        elif after.get("action") == "auto" and before.get("action") == "suppress":
            changes.append(f"suppression lifted: assigned to {roster_name(after.get('owner'))}")
    return Outcome(
        kind=review.kind,
        by_name=reviewer.name if reviewer else review.reviewer,
        by_slack=reviewer.slack_user if reviewer else None,
        at=review.decided_at,
        reason_label=labels[review.reason_code].label if review.reason_code in labels else (review.reason_code or None),
        note=review.note,
        changes=tuple(changes),
        final_owner_name=roster_name(after.get("owner")) if after.get("owner") else None,
        final_action=after.get("action"),
        took_next_best_action=bool(after.get("next_best_action")),
        band=after.get("band") if review.kind != "approve" and after.get("band") != before.get("band") else None,
    )


def load_cards(session: Session, rules: ReviewRules, clock: ReviewClock, pks: Sequence[int]) -> dict[int, Card]:
    """Cards for these decisions (missing pks are left out), in four queries.

    A review's deadline is its SLA clock's, the one the scheduler nudges and breaches on: a
    lead decided again for the same reviewer carries its clock over (start and deadline), so
    the new decision's time plus the window would promise a later deadline than is enforced.
    ``clock`` computes it only for a decision without a stored clock."""
    if not pks:
        return {}
    rows = session.execute(select(Decision, Lead).join(Lead, Lead.pk == Decision.lead_pk).where(Decision.pk.in_(pks)))
    pairs = [(d, lead) for d, lead in rows]
    reviews = {r.decision_pk: r for r in session.execute(select(Review).where(Review.decision_pk.in_(pks))).scalars()}
    superseded = [d for d, _ in pairs if d.state == "superseded"]
    newer: dict[int, int] = {}
    causes: dict[int, str] = {}
    if superseded:
        for lead_pk, newest in session.execute(
            select(Decision.lead_pk, func.max(Decision.pk))
            .where(Decision.lead_pk.in_([d.lead_pk for d in superseded]), Decision.shadow.is_(False))
            .group_by(Decision.lead_pk)
        ):
            newer[lead_pk] = newest
        causes = _superseded_causes(session, superseded)
    reviewing = [d.pk for d, _ in pairs if d.action == "review"]
    deadlines: dict[int, datetime | None] = {}
    if reviewing:  # one review clock per decision at most (unique on decision_pk, kind)
        for decision_pk, due_at in session.execute(
            select(SlaClock.decision_pk, SlaClock.due_at).where(
                SlaClock.decision_pk.in_(reviewing), SlaClock.kind == "review"
            )
        ):
            deadlines[decision_pk] = due_at
    roster = rules.roster
    out: dict[int, Card] = {}
    for d, lead in pairs:
        proposal = proposal_for(d)
        owner_rep = roster.reps.get(d.owner or "") if d.owner_kind == "rep" else None
        team = rules.responsible_team(proposal)
        review = reviews.get(d.pk)
        out[d.pk] = Card(
            decision_pk=d.pk,
            state=d.state,
            decided_at=d.decided_at,
            contract=dict(d.contract or {}),
            lead=LeadFacts.of(lead),
            proposal=proposal,
            owner_name=roster.name(d.owner) if d.owner_kind != "none" else "nobody",
            owner_slack=owner_rep.slack_user if owner_rep else None,
            owner_timezone=owner_rep.timezone if owner_rep else (_manager_tz(rules, team) or "UTC"),
            team_name=(team.name or team.id) if team else None,
            channel=rules.review_channel(proposal),
            due_at=_review_due(d, deadlines, clock),
            outcome=_outcome(review, rules, roster.name) if review is not None else None,
            superseded_by=newer.get(d.lead_pk) if newer.get(d.lead_pk) != d.pk else None,
            superseded_cause=causes.get(d.pk),
            reason_labels={c.code: c.label for c in rules.policy.reason_codes},
        )
    return out


def _superseded_causes(session: Session, superseded: Sequence[Decision]) -> dict[int, str]:
    """Each superseded decision's replacement's cause (the next live decision of its lead): a
    person refused as out of date is told why — a re-route after a deadline is not a lead that
    changed."""
    rows = session.execute(
        select(Decision.lead_pk, Decision.pk, Decision.cause)
        .where(
            Decision.lead_pk.in_({d.lead_pk for d in superseded}),
            Decision.shadow.is_(False),
            Decision.pk > min(d.pk for d in superseded),
        )
        .order_by(Decision.pk)
    ).all()
    causes: dict[int, str] = {}
    for d in superseded:
        cause = next((c for lead_pk, pk, c in rows if lead_pk == d.lead_pk and pk > d.pk), None)
        if cause is not None:
            causes[d.pk] = cause
    return causes


def _review_due(d: Decision, deadlines: dict[int, datetime | None], clock: ReviewClock) -> datetime | None:
    if d.action != "review":
        return None
    if d.pk in deadlines:
        return deadlines[d.pk]
    return clock.due_at(d.decided_at, d.band, d.owner)


def _manager_tz(rules: ReviewRules, team: Any) -> str | None:
    manager = rules.roster.reps.get(team.manager) if team is not None else None
    return manager.timezone if manager else None


def load_card(session: Session, rules: ReviewRules, clock: ReviewClock, decision_pk: int) -> Card | None:
    return load_cards(session, rules, clock, [decision_pk]).get(decision_pk)
