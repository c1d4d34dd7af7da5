"""Intent events that are CRM records of their own (Salesforce campaign responses), per lead.

A CampaignMember is added without touching its Lead's ``SystemModstamp``, so its events are
synced by a stream of their own and kept here, one row per (member, lead or contact), then
merged into the stored lead the engine decides (``core.store.lead_events``).

Revision ID: 0007_lead_events
Revises: 0006_unread_indexes
Create Date: 2026-11-21 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_lead_events"
down_revision = "0006_unread_indexes"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "lead_events",
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("lead_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("synced_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("source", "event_id", "lead_id", name=op.f("pk_lead_events")),
    )
    with op.batch_alter_table("lead_events", schema=None) as batch_op:
        batch_op.create_index("ix_lead_events_source_lead_id", ["source", "lead_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("lead_events", schema=None) as batch_op:
        batch_op.drop_index("ix_lead_events_source_lead_id")
    op.drop_table("lead_events")
