"""Reading labels from the store: reviews and audit verdicts as :class:`Verdict` values, and
labelled decisions (with the lead, the person's correction and the CRM outcome) for tuning.

What is read from a review (the bot writes them): ``kind`` (approve | reassign | override),
``agree``, ``reason_code``, ``reviewer_rep`` (else ``reviewer``), ``decided_at``, and from the
``after`` object the values a person set: ``after["band"]`` (an override of the band) and
``after["owner"]`` (a reassignment). Audit verdicts: ``verdict`` (confirm | flag),
``reason_code``, ``reviewer``, ``at``. Outcomes: ``leads.converted`` and ``leads.outcome``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from core.learning.labels import LabelledDecision, Outcome, Verdict, one_per_decision
from core.store.db import in_chunks
from core.store.models import AuditVerdict, Decision, Lead, Review

__all__ = ["OUTCOME_WAIT", "labelled_decisions", "labels_for", "verdicts"]

OUTCOME_WAIT = timedelta(days=30)  # a lead not converted this long after its decision counts as "no"


def _raw_confidence() -> Any:
    return Decision.contract["score"]["raw_confidence"].as_float()


def verdicts(
    session: Session,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    policy_version: str | None = None,
    segment: str | None = None,
    decision_pks: Sequence[int] | None = None,
) -> list[Verdict]:
    """Reviews and audit verdicts on acting decisions (answered in ``[since, until)``),
    oldest first: every person's, so a decision several leaders judged appears once per
    leader (per-person agreement needs each). To count decisions, take
    :func:`core.learning.labels.one_per_decision` of them, as trust and tuning do."""
    columns = (
        Decision.pk,
        Decision.decided_at.label("made_at"),
        Decision.segment,
        Decision.trust_level,
        Decision.policy_version,
        Decision.confidence,
        Decision.suppressed_by,
        Decision.contract["triggers"].label("triggers"),
        _raw_confidence().label("raw"),
    )

    def narrowed(query: Select[Any], answered_at: Any) -> Select[Any]:
        query = query.where(Decision.shadow.is_(False))
        if since is not None:
            query = query.where(answered_at >= since)
        if until is not None:
            query = query.where(answered_at < until)
        if policy_version is not None:
            query = query.where(Decision.policy_version == policy_version)
        if segment is not None:
            query = query.where(Decision.segment == segment)
        if decision_pks is not None:
            query = query.where(Decision.pk.in_(list(decision_pks)))
        return query

    reviews = narrowed(
        select(
            Review.decided_at.label("at"),
            func.coalesce(Review.reviewer_rep, Review.reviewer).label("who"),
            Review.kind.label("kind"),
            Review.agree.label("agree"),
            Review.reason_code,
            *columns,
        ).join(Decision, Decision.pk == Review.decision_pk),
        Review.decided_at,
    )
    audits = narrowed(
        select(
            AuditVerdict.at.label("at"),
            AuditVerdict.reviewer.label("who"),
            AuditVerdict.verdict.label("kind"),
            (AuditVerdict.verdict == "confirm").label("agree"),
            AuditVerdict.reason_code,
            *columns,
        ).join(Decision, Decision.pk == AuditVerdict.decision_pk),
        AuditVerdict.at,
    )
    out = [
        Verdict(
            at=r.at,
            decided_at=r.made_at,
            segment=r.segment,
            reviewer=r.who,
            kind=r.kind,
            agree=bool(r.agree),
            trust_level=r.trust_level,
            policy_version=r.policy_version,
            reason_code=r.reason_code,
            raw_confidence=r.raw,
            confidence=r.confidence,
            decision_pk=r.pk,
            hard_trigger=any(t.get("hard") for t in r.triggers or ()),
            soft_trigger=any(not t.get("hard") for t in r.triggers or ()),
            suppressed=r.suppressed_by is not None,
        )
        for query in (reviews, audits)
        for r in session.execute(query)
    ]
    return sorted(out, key=lambda v: (v.at, v.decision_pk or 0))


def labelled_decisions(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    outcome_after: datetime | None = None,
) -> list[LabelledDecision]:
    """Acting decisions made in ``[since, until)`` — the latest per lead — with their labels,
    in decision order.

    An outcome is *negative* only when the lead is marked lost, or was not converted and was
    decided before ``outcome_after`` (long enough ago that "not yet" means "no").
    """
    latest = (
        select(Decision.lead_pk, Decision.pk)
        .where(Decision.shadow.is_(False), Decision.decided_at >= since, Decision.decided_at < until)
        .order_by(Decision.lead_pk, Decision.seq)
    )
    last: dict[int, int] = {}
    for lead_pk, pk in session.execute(latest):
        last[lead_pk] = pk
    found = labels_for(session, sorted(last.values()), outcome_after=outcome_after)
    return sorted(found.values(), key=lambda d: (d.decided_at, d.decision_pk))


def labels_for(
    session: Session, decision_pks: Sequence[int], *, outcome_after: datetime | None = None
) -> dict[int, LabelledDecision]:
    """These decisions with their labels, by decision pk."""
    out: dict[int, LabelledDecision] = {}
    for chunk in in_chunks(list(decision_pks)):
        rows = session.execute(
            select(
                Decision.pk,
                Decision.lead_pk,
                Decision.decided_at,
                Decision.contract,
                Lead.converted,
                Lead.outcome,
            )
            .join(Lead, Lead.pk == Decision.lead_pk)
            .where(Decision.pk.in_(chunk))
        ).all()
        found = {v.decision_pk: v for v in _verdicts_for(session, chunk)}
        after = _review_after(session, chunk)
        for r in rows:
            verdict = found.get(r.pk)
            band = r.contract["score"]["band"]
            human_band, human_owner = _human_view(verdict, after.get(r.pk, {}), band, r.contract.get("owner"))
            out[r.pk] = LabelledDecision(
                decision_pk=r.pk,
                lead_pk=r.lead_pk,
                decided_at=r.decided_at,
                contract=r.contract,
                verdict=verdict,
                human_band=human_band,
                human_owner=human_owner,
                outcome=_outcome(r.converted, r.outcome, r.decided_at, outcome_after),
            )
    return out


def _verdicts_for(session: Session, pks: Sequence[int]) -> list[Verdict]:
    """The verdict that stands per decision — the same rule trust levels count by
    (:func:`core.learning.labels.one_per_decision`: a review, else a flag over confirms)."""
    return one_per_decision(verdicts(session, decision_pks=pks))


def _review_after(session: Session, pks: Sequence[int]) -> dict[int, dict[str, Any]]:
    rows = session.execute(select(Review.decision_pk, Review.after).where(Review.decision_pk.in_(list(pks)))).all()
    return {pk: after or {} for pk, after in rows}


def _human_view(
    verdict: Verdict | None, after: dict[str, Any], band: str, owner: str | None
) -> tuple[str | None, str | None]:
    """What a person said the band and owner should be (``None`` where they did not say)."""
    if verdict is None:
        return None, None
    if verdict.kind == "flag":
        return None, None  # wrong, but we were not told what would be right
    human_band = after.get("band") if isinstance(after.get("band"), str) else band
    human_owner = after.get("owner") if isinstance(after.get("owner"), str) else owner
    return human_band, human_owner


def _outcome(converted: bool, outcome: str | None, decided_at: datetime, cutoff: datetime | None) -> Outcome | None:
    if converted or outcome == "won":
        return Outcome(converted=bool(converted), won=True if outcome == "won" else None)
    if outcome == "lost":
        return Outcome(converted=False, won=False)
    if cutoff is not None and decided_at < cutoff:
        return Outcome(converted=False)
    return None
