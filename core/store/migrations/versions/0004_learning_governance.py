"""Learning and governance: calibration curves, the policy lifecycle, monthly tuning reports.

Revision ID: 0004_learning
Revises: 0003_bot
Create Date: 2026-11-21 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_learning"
down_revision = "0003_bot"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "calibration_curves",
        sa.Column("fit", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("knots", _JSON, nullable=False),
        sa.Column("labels", sa.Integer(), nullable=False),
        sa.Column("accept_rate", sa.Float(), nullable=False),
        sa.Column("ece_raw", sa.Float(), nullable=True),
        sa.Column("ece_fitted", sa.Float(), nullable=True),
        sa.Column("policy_version", sa.String(length=16), nullable=True),
        sa.Column("fitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("fit", "segment", name=op.f("pk_calibration_curves")),
    )
    op.create_table(
        "policy_events",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("version", sa.String(length=16), nullable=False),
        sa.Column("role", sa.String(length=12), nullable=True),
        sa.Column("previous", sa.String(length=16), nullable=True),
        sa.Column("by", sa.String(length=128), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["version"], ["policy_versions.version"], name=op.f("fk_policy_events_version_policy_versions")
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_policy_events")),
    )
    with op.batch_alter_table("policy_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_policy_events_at"), ["at"], unique=False)
    op.create_table(
        "tuning_reports",
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("policy_version", sa.String(length=16), nullable=False),
        sa.Column("report", _JSON, nullable=False),
        sa.Column("challenger_text", sa.Text(), nullable=True),
        sa.Column("challenger_version", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("month", name=op.f("pk_tuning_reports")),
    )


def downgrade() -> None:
    op.drop_table("tuning_reports")
    with op.batch_alter_table("policy_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policy_events_at"))
    op.drop_table("policy_events")
    op.drop_table("calibration_curves")
