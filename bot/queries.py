"""What the bot reads from the store: a person's queue, the team's numbers, a lead by email or id."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from bot.cards import Card, load_cards
from bot.sla import ReviewClock
from core.policy.schema import Rep
from core.review import ReviewRules
from core.store.models import Decision, Lead, Review, SlaClock
from core.store.reviews import proposal_for

__all__ = ["Stats", "find_lead_decisions", "pending_for", "team_stats"]

QUEUE_SCAN_MAX = 5000

# a decision's review clock: one at most (unique on decision_pk, kind)
_REVIEW_CLOCK = and_(SlaClock.decision_pk == Decision.pk, SlaClock.kind == "review")


def _due(
    clock: ReviewClock,
    decided_at: datetime,
    band: str,
    owner: str | None,
    clock_pk: int | None,
    due_at: datetime | None,
) -> datetime | None:
    """The deadline the scheduler breaches on: the stored clock's. A lead decided again for the
    same reviewer carries its clock over (start and deadline), so the new decision's time plus
    the window would be later than enforced. Computed, as the cards do, only without a clock."""
    return due_at if clock_pk is not None else clock.due_at(decided_at, band, owner)


def pending_for(
    session: Session, rules: ReviewRules, clock: ReviewClock, rep: Rep, *, now: datetime, limit: int
) -> tuple[list[Card], int]:
    """Pending reviews ``rep`` may act on, most urgent first (due time, then score); and how
    many there are in all."""
    query = (
        select(Decision, SlaClock.pk, SlaClock.due_at)
        .outerjoin(SlaClock, _REVIEW_CLOCK)
        .where(Decision.state == "pending_review", Decision.shadow.is_(False))
    )
    if "admin" not in rep.roles:
        managed = [t.id for t in rules.policy.teams if t.manager == rep.id]
        if not managed:
            query = query.where(Decision.owner == rep.id, Decision.owner_kind == "rep")
    rows = session.execute(query.order_by(Decision.decided_at).limit(QUEUE_SCAN_MAX)).all()
    due = {d.pk: _due(clock, d.decided_at, d.band, d.owner, clock_pk, due_at) for d, clock_pk, due_at in rows}
    mine = [d for d, _, _ in rows if rules.authority(proposal_for(d), rep.id) is not None]
    far = now + timedelta(days=3650)

    def urgency(d: Decision) -> tuple[datetime, int, int]:
        return (due[d.pk] or far, -d.score_total, d.pk)

    mine.sort(key=urgency)
    chosen = [d.pk for d in mine[:limit]]
    cards = load_cards(session, rules, clock, chosen)
    return [cards[pk] for pk in chosen if pk in cards], len(mine)


@dataclass(frozen=True, slots=True)
class Stats:
    since: datetime
    decisions: dict[str, int]
    pending: int
    overdue: int
    reviews: dict[str, int]
    agreement: float | None
    agreement_by_segment: dict[str, tuple[int, float]] = field(default_factory=dict)
    median_review_minutes: float | None = None


def team_stats(session: Session, clock: ReviewClock, *, now: datetime, days: int = 7) -> Stats:
    """The last ``days`` days: decisions by action, the review queue, reviews and agreement."""
    since = now - timedelta(days=days)
    decisions = dict(
        session.execute(
            select(Decision.action, func.count())
            .where(Decision.decided_at >= since, Decision.shadow.is_(False))
            .group_by(Decision.action)
        ).all()
    )
    pending_rows = session.execute(
        select(Decision.decided_at, Decision.band, Decision.owner, SlaClock.pk, SlaClock.due_at)
        .outerjoin(SlaClock, _REVIEW_CLOCK)
        .where(Decision.state == "pending_review", Decision.shadow.is_(False))
    ).all()
    overdue = sum(1 for row in pending_rows if (due := _due(clock, *row)) and due <= now)
    review_rows = session.execute(
        select(Review.kind, Review.agree, Review.segment, Review.decided_at, Decision.decided_at)
        .join(Decision, Decision.pk == Review.decision_pk)
        .where(Review.decided_at >= since)
    ).all()
    kinds: dict[str, int] = {}
    by_segment: dict[str, list[bool]] = {}
    minutes: list[float] = []
    for kind, agree, segment, reviewed_at, decided_at in review_rows:
        kinds[kind] = kinds.get(kind, 0) + 1
        by_segment.setdefault(segment, []).append(bool(agree))
        minutes.append((reviewed_at - decided_at).total_seconds() / 60)
    agreed = [a for values in by_segment.values() for a in values]
    minutes.sort()
    return Stats(
        since=since,
        decisions={str(k): int(v) for k, v in decisions.items()},
        pending=len(pending_rows),
        overdue=overdue,
        reviews=kinds,
        agreement=sum(agreed) / len(agreed) if agreed else None,
        agreement_by_segment={s: (len(v), sum(v) / len(v)) for s, v in sorted(by_segment.items())},
        median_review_minutes=minutes[len(minutes) // 2] if minutes else None,
    )


def find_lead_decisions(session: Session, query: str, *, limit: int = 3) -> list[int]:
    """The newest decision of each lead whose email or CRM id is ``query``."""
    needle = query.strip().strip("<>").split("|")[-1]  # Slack may send an email as <mailto:x|x>
    needle = needle.removeprefix("mailto:")
    leads = (
        session.execute(
            select(Lead.pk)
            .where(or_(func.lower(Lead.email) == needle.lower(), Lead.crm_id == needle))
            .order_by(Lead.pk)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    if not leads:
        return []
    newest = session.execute(
        select(func.max(Decision.pk))
        .where(Decision.lead_pk.in_(leads), Decision.shadow.is_(False))
        .group_by(Decision.lead_pk)
    ).scalars()
    return sorted(pk for pk in newest if pk is not None)
