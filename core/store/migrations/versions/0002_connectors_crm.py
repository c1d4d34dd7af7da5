"""CRM connectors: deals and their links to leads (outcomes), the write-back state of each
lead's loopgate fields, and write-back conflicts.

Revision ID: 0002_connectors_crm
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_connectors_crm"
down_revision = "0001"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "deal_links",
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("deal_id", sa.String(length=64), nullable=False),
        sa.Column("lead_id", sa.String(length=64), nullable=False),
        sa.Column("origin", sa.String(length=8), nullable=False),
        sa.PrimaryKeyConstraint("source", "deal_id", "lead_id", "origin", name=op.f("pk_deal_links")),
    )
    op.create_index("ix_deal_links_source_lead_id", "deal_links", ["source", "lead_id"], unique=False)
    op.create_table(
        "deals",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("crm_id", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.String(length=128), nullable=True),
        sa.Column("is_closed", sa.Boolean(), nullable=False),
        sa.Column("is_won", sa.Boolean(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), nullable=False),
        sa.Column("crm_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_deals")),
        sa.UniqueConstraint("source", "crm_id", name=op.f("uq_deals_source_crm_id")),
    )
    op.create_table(
        "writeback_state",
        sa.Column("lead_pk", sa.Integer(), nullable=False),
        sa.Column("values", _JSON, nullable=False),
        sa.Column("owner_written", sa.String(length=64), nullable=True),
        sa.Column("decision_pk", sa.Integer(), nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["lead_pk"], ["leads.pk"], name=op.f("fk_writeback_state_lead_pk_leads")),
        sa.PrimaryKeyConstraint("lead_pk", name=op.f("pk_writeback_state")),
    )
    op.create_table(
        "crm_conflicts",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("decision_pk", sa.Integer(), nullable=False),
        sa.Column("lead_pk", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("crm_id", sa.String(length=64), nullable=False),
        sa.Column("owner_before", sa.String(length=64), nullable=True),
        sa.Column("owner_found", sa.String(length=64), nullable=True),
        sa.Column("owner_wanted", sa.String(length=64), nullable=True),
        sa.Column("redecision_pk", sa.Integer(), nullable=True),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["decision_pk"], ["decisions.pk"], name=op.f("fk_crm_conflicts_decision_pk_decisions")),
        sa.ForeignKeyConstraint(["lead_pk"], ["leads.pk"], name=op.f("fk_crm_conflicts_lead_pk_leads")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_crm_conflicts")),
        sa.UniqueConstraint("decision_pk", name=op.f("uq_crm_conflicts_decision_pk")),
    )
    op.create_index(op.f("ix_crm_conflicts_detected_at"), "crm_conflicts", ["detected_at"], unique=False)
    op.create_index(op.f("ix_crm_conflicts_lead_pk"), "crm_conflicts", ["lead_pk"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_crm_conflicts_lead_pk"), table_name="crm_conflicts")
    op.drop_index(op.f("ix_crm_conflicts_detected_at"), table_name="crm_conflicts")
    op.drop_table("crm_conflicts")
    op.drop_table("writeback_state")
    op.drop_table("deals")
    op.drop_index("ix_deal_links_source_lead_id", table_name="deal_links")
    op.drop_table("deal_links")
