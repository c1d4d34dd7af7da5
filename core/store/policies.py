"""Stored policy versions: every version that ever decided anything is kept, by its hash."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.policy import LoadedPolicy
from core.store.audit_log import AuditRecord, append
from core.store.models import PolicyVersion

__all__ = ["ensure_version"]


def ensure_version(session: Session, loaded: LoadedPolicy, *, now: datetime, by: str) -> bool:
    """Store this policy version if it is new (audited); returns whether it was added."""
    if session.execute(select(PolicyVersion.version).where(PolicyVersion.version == loaded.version)).first():
        return False
    session.add(
        PolicyVersion(
            version=loaded.version,
            name=loaded.policy.name,
            source=loaded.source,
            text=loaded.text,
            created_at=now,
            created_by=by,
        )
    )
    append(session, [AuditRecord(now, by, "policy.stored", f"policy:{loaded.version}", {"source": loaded.source})])
    return True
