"""Recording a person's review of an escalation: first one wins, everything in one transaction.

The decision row is locked (``FOR UPDATE`` on PostgreSQL; SQLite's write transactions already
exclude each other) and its state re-read, so when two replicas record a click at once the
second finds the decision reviewed and raises :class:`AlreadyDecided` naming who was first;
``reviews.decision_pk`` is unique as the last line of defence. With the review the same
transaction sets the decision's final owner and action, appends an audit event and queues the
effects: ``slack.decision_update`` (update every message shown for the decision),
``crm.writeback`` keyed ``crm.writeback:{pk}:review`` and, when the lead now belongs to a rep
who was neither proposed nor the reviewer, ``slack.assignment`` keyed
``slack.assignment:{pk}:review`` with that rep as ``owner`` (nobody else would tell them).
Reviews are the labels automation learns from (``agree`` = the person approved the
recommendation).

This module knows nothing of Slack: reviewers are opaque ids (a Slack user id, or
``cli:<name>``) with the policy rep they map to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.review import AlreadyDecided, NotAllowed, NotPending, Proposal, ReviewChange, ReviewRules
from core.store import audit_log, outbox
from core.store.audit_log import AuditRecord
from core.store.models import Decision, Review

__all__ = ["RecordedReview", "ReviewRequest", "proposal_for", "record_review", "review_for"]


@dataclass(frozen=True, slots=True)
class ReviewRequest:
    decision_pk: int
    reviewer: str  # Slack user id, or cli:<name>
    reviewer_rep: str | None  # the policy rep behind the reviewer
    change: ReviewChange
    # when the person decided, if before it is recorded: a click the ack stored is recorded by
    # a worker later (after a dead worker's lease, or once the store is back). ``None``: now
    decided_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RecordedReview:
    pk: int
    decision_pk: int
    lead_pk: int
    kind: str
    reviewer: str
    reviewer_rep: str | None
    reason_code: str | None
    note: str | None
    agree: bool
    before: dict[str, Any]
    after: dict[str, Any]
    decided_at: datetime

    @classmethod
    def of(cls, row: Review) -> RecordedReview:
        """A detached copy of a stored review (safe to use after the session closes)."""
        return cls(
            row.pk,
            row.decision_pk,
            row.lead_pk,
            row.kind,
            row.reviewer,
            row.reviewer_rep,
            row.reason_code,
            row.note,
            row.agree,
            dict(row.before),
            dict(row.after),
            row.decided_at,
        )


def proposal_for(row: Decision) -> Proposal:
    """What automation proposed in a stored decision, as the review rules read it."""
    nba = (row.contract or {}).get("next_best_action") or {}
    return Proposal(
        decision_pk=row.pk,
        owner=row.owner,
        owner_kind=row.owner_kind,
        team=row.team,
        band=row.band,
        score=row.score_total,
        segment=row.segment,
        next_best_action=nba.get("code"),
        source=row.source,
        action="suppress" if _parked_by_suppression(row) else "auto",
    )


def _parked_by_suppression(row: Decision) -> bool:
    """A suppression rule matched and was not overruled by a hard trigger (which routes the
    lead as usual and keeps ``suppressed_by`` only as evidence): the lead was parked."""
    route = (row.contract or {}).get("route") or {}
    return bool(row.suppressed_by) and route.get("rule") == "suppressed"


def review_for(session: Session, decision_pk: int) -> RecordedReview | None:
    """The review of a decision, if someone has made it."""
    row = session.execute(select(Review).where(Review.decision_pk == decision_pk)).scalar_one_or_none()
    return RecordedReview.of(row) if row is not None else None


def record_review(session: Session, rules: ReviewRules, request: ReviewRequest, *, now: datetime) -> RecordedReview:
    """Record the review in the caller's transaction, or raise a :class:`core.review.ReviewError`.

    Order of checks: the decision must still be pending (else :class:`AlreadyDecided` with who
    was first, or :class:`NotPending`), the reviewer must be allowed (:class:`NotAllowed`), and
    the change must be valid for the policy (:class:`InvalidReview`). Nothing is written unless
    all pass.

    The review's time (``decided_at``, its audit event, the review SLA it answers, the time
    to decide) is the request's ``decided_at`` — when the person decided — not when a worker
    got round to recording it; never later than ``now`` (another replica's clock may run
    ahead). Its effects are queued ``now``.
    """
    at = min(request.decided_at, now) if request.decided_at is not None else now
    pk = request.decision_pk
    row = session.execute(select(Decision).where(Decision.pk == pk).with_for_update()).scalar_one_or_none()
    if row is None:
        raise NotPending(pk, "missing", f"decision {pk} does not exist")
    if row.state != "pending_review" or row.shadow:
        existing = review_for(session, pk)
        if existing is not None:
            raise AlreadyDecided(pk, existing.kind, existing.reviewer, existing.reviewer_rep, existing.decided_at)
        raise NotPending(pk, row.state)
    proposal = proposal_for(row)
    if rules.authority(proposal, request.reviewer_rep) is None:
        raise NotAllowed(pk, request.reviewer_rep or request.reviewer, rules.who_may(proposal))
    outcome = rules.validate(proposal, request.change, now=at)

    review = Review(
        decision_pk=pk,
        lead_pk=row.lead_pk,
        kind=outcome.kind,
        reviewer=request.reviewer,
        reviewer_rep=request.reviewer_rep,
        reason_code=outcome.reason_code,
        note=outcome.note,
        agree=outcome.agree,
        segment=row.segment,
        before=outcome.before,
        after=outcome.after,
        decided_at=at,
    )
    # The decision's row lock (FOR UPDATE; on SQLite the write transaction holds the whole
    # database) lets one review through. The unique key on reviews.decision_pk stays as the last
    # guard: were it ever hit, the caller's whole transaction rolls back and nothing is half-written.
    # (A savepoint to turn that unreachable case into AlreadyDecided cost two round trips per review.)
    session.add(review)
    session.flush()

    row.state = "reviewed"
    row.final_owner = outcome.final_owner
    row.final_action = outcome.final_action
    audit_log.append(
        session,
        [
            AuditRecord(
                at,
                f"slack:{request.reviewer}" if not request.reviewer.startswith("cli:") else request.reviewer,
                "decision.reviewed",
                f"lead:{row.source}:{row.lead_id}",
                {
                    "decision": pk,
                    "review": review.pk,
                    "kind": outcome.kind,
                    "reviewer_rep": request.reviewer_rep,
                    "reason_code": outcome.reason_code,
                    "note": outcome.note,
                    "agree": outcome.agree,
                    "before": outcome.before,
                    "after": outcome.after,
                    **({"recorded_at": now.isoformat()} if at != now else {}),
                },
            )
        ],
    )
    outbox.enqueue(session, "slack.decision_update", f"slack.decision_update:{pk}:review", {"decision_pk": pk}, now=now)
    outbox.enqueue(session, "crm.writeback", f"crm.writeback:{pk}:review", {"decision_pk": pk}, now=now)
    if _told_nothing(proposal, outcome.final_owner, outcome.after.get("owner_kind"), request.reviewer_rep):
        payload = {"decision_pk": pk, "owner": outcome.final_owner}
        outbox.enqueue(session, "slack.assignment", f"slack.assignment:{pk}:review", payload, now=now)
    return RecordedReview.of(review)


def _told_nothing(proposal: Proposal, final_owner: str | None, owner_kind: Any, reviewer_rep: str | None) -> bool:
    """Whether the lead's new owner has heard nothing of it: the proposed owner saw the
    escalation and the reviewer made the choice, but a third rep given the lead would otherwise
    learn of it only from the CRM."""
    if final_owner is None or owner_kind != "rep" or final_owner == reviewer_rep:
        return False
    return not (proposal.owner_kind == "rep" and proposal.owner == final_owner)
