"""Builders for learning and governance tests: stored leads decided by the real engine, then
labels (reviews, audit verdicts, outcomes) added the way the bot and the scheduler will."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from core.engine import DecisionEngine
from core.leads import normalize_lead
from core.policy import LoadedPolicy, parse_policy
from core.store.db import Database
from core.store.decide import Decided, ShadowChoice, decide_pending
from core.store.models import AuditVerdict, Decision, Lead, Review
from core.store.records import LeadRow, upsert_leads

TITLES = ("VP Sales", "Sales Manager", "Engineer", "Head of Ops", "Analyst", "IT Manager")


def lead_input(i: int, *, at: datetime, **overrides: Any) -> dict[str, Any]:
    """A plausible inbound lead; ``i`` varies size, title and intent deterministically."""
    raw: dict[str, Any] = {
        "id": f"00Q5e00000T{i:04d}",
        "source": "salesforce",
        "email": f"person{i}@company{i}.com",
        "first_name": f"P{i}",
        "last_name": "Test",
        "title": TITLES[i % len(TITLES)],
        "company": f"Company {i}",
        "industry": ("software", "retail", "manufacturing", "saas")[i % 4],
        "employees": (40, 90, 150, 400, 900, 1500)[(i // 2) % 6],
        "country": "US",
        "lead_source": "web",
        "created_at": (at - timedelta(hours=1)).isoformat(),
        "updated_at": (at - timedelta(minutes=30)).isoformat(),
        "events": [{"type": "demo_request", "at": (at - timedelta(days=i % 5)).isoformat()}] if i % 3 == 0 else [],
    }
    raw.update(overrides)
    return raw


def decide_leads_at(
    db: Database,
    engine: DecisionEngine,
    raws: Sequence[dict[str, Any]],
    *,
    now: datetime,
    shadow: ShadowChoice = True,
) -> list[Decided]:
    """Store these leads and decide them as of ``now`` (one transaction)."""
    with db.transaction() as session:
        pks = upsert_leads(session, [LeadRow(normalize_lead(r)) for r in raws], now=now)
        return decide_pending(session, engine, now=now, lead_pks=pks.values(), limit=len(pks), shadow=shadow)


def add_review(
    session: Session,
    decision_pk: int,
    *,
    agree: bool,
    at: datetime,
    reason: str | None = None,
    after: dict[str, Any] | None = None,
    reviewer_rep: str = "ana",
) -> None:
    """A person's decision on a recommendation, as the bot stores it."""
    d = session.execute(select(Decision).where(Decision.pk == decision_pk)).scalar_one()
    before = {"owner": d.owner, "band": d.band, "action": d.action}
    kind = "approve" if agree else ("reassign" if after and set(after) == {"owner"} else "override")
    session.add(
        Review(
            decision_pk=decision_pk,
            lead_pk=d.lead_pk,
            kind=kind,
            reviewer=f"U{reviewer_rep.upper()}",
            reviewer_rep=reviewer_rep,
            reason_code=None if agree else (reason or "wrong_segment"),
            note=None,
            agree=agree,
            segment=d.segment,
            before=before,
            after={**before, **(after or {})},
            decided_at=at,
        )
    )
    session.flush()


def add_audit_verdict(
    session: Session,
    decision_pk: int,
    *,
    confirm: bool,
    at: datetime,
    reviewer: str = "lee",
    pk: int | None = None,
) -> None:
    """A leader's Confirm / Flag on a sampled automatic decision (``pk``: as a writer that took
    its pk earlier than others but commits later would leave it)."""
    segment = session.execute(select(Decision.segment).where(Decision.pk == decision_pk)).scalar_one()
    session.add(
        AuditVerdict(
            pk=pk,
            decision_pk=decision_pk,
            verdict="confirm" if confirm else "flag",
            reason_code=None if confirm else "wrong_segment",
            reviewer=reviewer,
            note=None,
            segment=segment,
            at=at,
        )
    )
    session.flush()


def set_outcome(session: Session, lead_pk: int, *, converted: bool, at: datetime) -> None:
    session.execute(
        update(Lead).where(Lead.pk == lead_pk).values(converted=converted, converted_at=at if converted else None)
    )


def variant(loaded: LoadedPolicy, old: str, new: str) -> LoadedPolicy:
    """The policy with one piece of its text replaced (must stay valid)."""
    assert old in loaded.text, old
    return parse_policy(loaded.text.replace(old, new), "variant.yaml")


def wait_for_a_lock_waiter(db: Database, *, give_up_after: float = 60.0) -> None:
    """Return once another session of this PostgreSQL database waits for a lock: the transaction
    a test started in another thread has reached the point where it must wait its turn. (Not a
    timing: ``give_up_after`` only keeps a broken test from hanging.)"""
    deadline = time.monotonic() + give_up_after
    while time.monotonic() < deadline:
        with db.sessions() as s:  # a new transaction per look: pg_stat_activity is a snapshot
            waiting = s.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        if waiting:
            return
        time.sleep(0.01)
    raise AssertionError(f"no session waited for a lock within {give_up_after} s")
