"""Slack messages loopgate posted (channel + ts per escalation target, assignment or generic
message), so retried effects never post twice and reviews update every copy in place.

Revision ID: 0003_bot
Revises: 0002_connectors_crm
Create Date: 2026-11-21 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_bot"
down_revision = "0002_connectors_crm"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slack_messages",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("decision_pk", sa.Integer(), nullable=True),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("ts", sa.String(length=32), nullable=False),
        sa.Column("rendered", sa.String(length=64), nullable=True),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["decision_pk"], ["decisions.pk"], name=op.f("fk_slack_messages_decision_pk_decisions")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_slack_messages")),
        sa.UniqueConstraint("key", name=op.f("uq_slack_messages_key")),
    )
    with op.batch_alter_table("slack_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_slack_messages_decision_pk"), ["decision_pk"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("slack_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_slack_messages_decision_pk"))
    op.drop_table("slack_messages")
