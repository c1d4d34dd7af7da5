"""Drop indexes no query reads: every decision, audit event and lead paid to keep them.

- ``ix_decisions_decided_at_action``: ``ix_decisions_digest`` leads with ``decided_at`` too and
  serves every time range over decisions (digest, labels, the bot's stats);
- ``ix_decisions_segment``: decisions are filtered by segment only after a join by key
  (``labels.verdicts``) or grouped inside a time range (the digest index holds the segment);
- ``ix_audit_events_subject``: nothing looks events up by subject (export and verify read the
  chain in order, the digest by kind and time);
- ``ix_leads_email_domain``: leads are matched to accounts by the account's domain, never
  looked up by their own email domain.

A sync of 10,000 leads writes 10,000 decisions, 10,000+ audit events and 10,000 leads: each
index here was one more B-tree insert per row (bench/sync.py).

Revision ID: 0006_unread_indexes
Revises: 0005_scheduler
Create Date: 2026-11-21 14:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0006_unread_indexes"
down_revision = "0005_scheduler"
branch_labels = None
depends_on = None

_DROPPED = (
    ("ix_decisions_decided_at_action", "decisions", ["decided_at", "action"]),
    ("ix_decisions_segment", "decisions", ["segment"]),
    ("ix_audit_events_subject", "audit_events", ["subject"]),
    ("ix_leads_email_domain", "leads", ["email_domain"]),
)


def upgrade() -> None:
    for name, table, _columns in _DROPPED:
        op.drop_index(name, table_name=table)


def downgrade() -> None:
    for name, table, columns in _DROPPED:
        op.create_index(name, table, columns, unique=False)
