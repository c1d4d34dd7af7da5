"""Audit verdicts on sampled automatic decisions (the digest's Confirm / Flag…), and the sample
a posted digest showed.

Who may give one: admins and team managers — the leaders the digest is for. A flag needs a
reason code the policy offers for flags (``applies_to`` includes ``flag``). One verdict per
person per decision (``audit_verdicts`` is unique on both): a second answer is refused with
the first one, never stored twice. Each verdict is audited (``decision.audited``) and becomes a
label: agreement and trust count confirms as agreement and flags as disagreement
(:func:`core.store.labels.verdicts`); trust and tuning count a decision once, however many
leaders judged it, a flag outranking confirms (:func:`core.learning.labels.one_per_decision`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.digest import SampleItem
from core.policy.schema import Policy, Rep
from core.review import NOTE_MAX, InvalidReview, NotAllowed, NotPending
from core.store import audit_log
from core.store.audit_log import AuditRecord
from core.store.models import AuditVerdict, Decision
from core.store.periods import period_detail

__all__ = ["AlreadyJudged", "may_audit", "record_verdict", "sample_items", "verdicts_by_decision"]


class AlreadyJudged(NotPending):
    """This person gave their verdict on the decision before."""

    def __init__(self, decision_pk: int, verdict: str, at: datetime) -> None:
        self.verdict, self.at = verdict, at
        super().__init__(decision_pk, "audited", f"you already gave decision {decision_pk} a verdict ({verdict})")


def may_audit(policy: Policy, rep: Rep | None) -> bool:
    """Admins and team managers give audit verdicts."""
    return rep is not None and ("admin" in rep.roles or any(t.manager == rep.id for t in policy.teams))


def record_verdict(
    session: Session,
    policy: Policy,
    decision_pk: int,
    *,
    verdict: str,
    reviewer: str,
    rep: Rep | None,
    reason_code: str | None = None,
    note: str | None = None,
    now: datetime,
) -> AuditVerdict:
    """Store one person's verdict on an automatic decision, or raise (nothing written)."""
    row = session.get(Decision, decision_pk)
    if row is None or row.shadow or row.action != "auto":
        raise NotPending(decision_pk, "missing" if row is None else row.state, "only automatic decisions are audited")
    if not may_audit(policy, rep):
        raise NotAllowed(decision_pk, reviewer, "admins and team managers")
    who = rep.id if rep is not None else reviewer
    if verdict not in ("confirm", "flag"):
        raise InvalidReview(decision_pk, "kind", f"unknown verdict {verdict!r}")
    if verdict == "flag":
        allowed = {c.code for c in policy.reason_codes if "flag" in c.applies_to}
        if not reason_code:
            raise InvalidReview(decision_pk, "reason", "choose a reason for the flag")
        if reason_code not in allowed:
            raise InvalidReview(decision_pk, "reason", f"'{reason_code}' is not a reason for flags")
    if note is not None and len(note) > NOTE_MAX:
        raise InvalidReview(decision_pk, "note", f"keep the note under {NOTE_MAX} characters")
    earlier = session.execute(
        select(AuditVerdict).where(AuditVerdict.decision_pk == decision_pk, AuditVerdict.reviewer == who)
    ).scalar_one_or_none()
    if earlier is not None:
        raise AlreadyJudged(decision_pk, earlier.verdict, earlier.at)
    stored = AuditVerdict(
        decision_pk=decision_pk,
        verdict=verdict,
        reason_code=reason_code if verdict == "flag" else None,
        reviewer=who,
        note=(note or "").strip() or None,
        segment=row.segment,
        at=now,
    )
    try:
        with session.begin_nested():
            session.add(stored)
            session.flush()
    except IntegrityError:  # the same person, twice at once: the first one stands
        raise AlreadyJudged(decision_pk, verdict, now) from None
    audit_log.append(
        session,
        [
            AuditRecord(
                now,
                f"slack:{reviewer}",
                "decision.audited",
                f"lead:{row.source}:{row.lead_id}",
                {
                    "decision": decision_pk,
                    "verdict": verdict,
                    "reason_code": stored.reason_code,
                    "note": stored.note,
                    "reviewer": who,
                },
            )
        ],
    )
    return stored


def verdicts_by_decision(session: Session, pks: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """Verdicts given so far on these decisions, oldest first (verdict, reason_code, reviewer)."""
    out: dict[int, list[dict[str, Any]]] = {}
    if not pks:
        return out
    for v in session.execute(
        select(AuditVerdict).where(AuditVerdict.decision_pk.in_(list(pks))).order_by(AuditVerdict.pk)
    ).scalars():
        out.setdefault(v.decision_pk, []).append(
            {"verdict": v.verdict, "reason_code": v.reason_code, "reviewer": v.reviewer}
        )
    return out


def sample_items(session: Session, week: str) -> tuple[list[SampleItem], int]:
    """The audit sample the digest of ``week`` showed, and how many were sampled in all."""
    detail = period_detail(session, "digest", week) or {}
    items = [SampleItem(**{**raw, "verdicts": tuple(raw.get("verdicts") or ())}) for raw in detail.get("sample") or []]
    return items, int(detail.get("sampled_total") or 0)
