"""Rows for digest tests: leads, decisions, reviews, verdicts and clocks with exactly the values
a test names, so every figure of the digest can be computed by hand.

(Elsewhere tests let the real engine make decisions; the digest only counts what is stored, and
hand-checked numbers need hand-chosen rows.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.store.db import Database
from core.store.models import AuditVerdict, Decision, Lead, Review, SlaClock


@dataclass
class DigestWorld:
    db: Database
    _leads: int = 0
    made: dict[str, int] = field(default_factory=dict)

    def decision(
        self,
        name: str,
        at: datetime,
        *,
        action: str = "auto",
        segment: str = "smb",
        country: str | None = "US",
        score: int = 50,
        band: str = "warm",
        owner: str | None = "ana",
        cause: str = "new",
        shadow: bool = False,
        audit_sample: bool = False,
        converted: bool = False,
        outcome: str | None = None,
        again: str | None = None,
    ) -> int:
        """A decision for a new lead, or (``again``: a decision's name) a newer one for its lead."""
        with self.db.transaction() as s:
            if again is not None:
                earlier = s.get(Decision, self.made[again])
                assert earlier is not None
                lead = s.get(Lead, earlier.lead_pk)
                assert lead is not None
                seq = earlier.seq + 1
            else:
                self._leads += 1
                lead = Lead(
                    source="salesforce",
                    crm_id=f"00Q{self._leads:012d}",
                    first_name=name,
                    last_name="Lead",
                    company=f"{name} Inc",
                    country=country,
                    converted=converted,
                    outcome=outcome,
                    data={},
                )
                s.add(lead)
                s.flush()
                seq = 1
            row = Decision(
                lead_pk=lead.pk,
                source="salesforce",
                lead_id=lead.crm_id,
                seq=seq,
                dedupe_key=f"k:{name}",
                cause=cause,
                shadow=shadow,
                policy_version="v1",
                action=action,
                owner=owner,
                owner_kind="rep" if owner else "none",
                team="mm",
                segment=segment,
                trust_level=3,
                score_total=score,
                band=band,
                confidence=0.7,
                trigger_codes="",
                audit_sample=audit_sample,
                suppressed_by="x" if action == "suppress" else None,
                decided_at=at,
                state={"review": "pending_review"}.get(action, "applied"),
                final_owner=owner,
                crm_owner_before=None,
                final_action=None if action == "review" else action,
                contract={},
            )
            s.add(row)
            s.flush()
            self.made[name] = row.pk
            return row.pk

    def review(
        self, decision: str, at: datetime, *, rep: str, agree: bool, kind: str = "approve", reason: str | None = None,
        segment: str = "smb",
    ) -> None:  # fmt: skip
        with self.db.transaction() as s:
            row = s.get(Decision, self.made[decision])
            assert row is not None
            s.add(
                Review(
                    decision_pk=row.pk,
                    lead_pk=row.lead_pk,
                    kind=kind,
                    reviewer=f"U{rep.upper()}",
                    reviewer_rep=rep,
                    reason_code=reason,
                    note=None,
                    agree=agree,
                    segment=segment,
                    before={},
                    after={},
                    decided_at=at,
                )
            )

    def verdict(self, decision: str, at: datetime, *, verdict: str, reason: str | None = None) -> None:
        with self.db.transaction() as s:
            row = s.get(Decision, self.made[decision])
            assert row is not None
            s.add(
                AuditVerdict(
                    decision_pk=row.pk,
                    verdict=verdict,
                    reason_code=reason,
                    reviewer="lee",
                    note=None,
                    segment=row.segment,
                    at=at,
                )
            )

    def clock(
        self,
        decision: str,
        kind: str,
        started: datetime,
        *,
        due: timedelta | None,
        met: timedelta | None = None,
        state: str | None = None,
        **extra: Any,
    ) -> None:
        with self.db.transaction() as s:
            row = s.get(Decision, self.made[decision])
            assert row is not None
            s.add(
                SlaClock(
                    decision_pk=row.pk,
                    lead_pk=row.lead_pk,
                    kind=kind,
                    owner=row.owner,
                    owner_kind=row.owner_kind,
                    team=row.team,
                    band=row.band,
                    segment=row.segment,
                    started_at=started,
                    due_at=started + due if due is not None else None,
                    business_hours=False,
                    plan=[],
                    next_at=None,
                    state=state or ("met" if met is not None else "open"),
                    met_at=started + met if met is not None else None,
                    met_via="crm" if met is not None else None,
                    **extra,
                )
            )
