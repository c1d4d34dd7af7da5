"""Scheduler: SLA clocks and their steps, periodic job claims and state, APScheduler's job store,
and the index the weekly digest reads decisions through.

Revision ID: 0005_scheduler
Revises: 0004_learning
Create Date: 2026-11-23 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005_scheduler"
down_revision = "0004_learning"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sla_clocks",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("decision_pk", sa.Integer(), nullable=False),
        sa.Column("lead_pk", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("owner_kind", sa.String(length=10), nullable=False),
        sa.Column("team", sa.String(length=64), nullable=True),
        sa.Column("band", sa.String(length=20), nullable=False),
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("due_at", _TS, nullable=True),
        sa.Column("business_hours", sa.Boolean(), nullable=False),
        sa.Column("plan", _JSON, nullable=False),
        sa.Column("next_at", _TS, nullable=True),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("met_at", _TS, nullable=True),
        sa.Column("met_via", sa.String(length=12), nullable=True),
        sa.Column("breached_at", _TS, nullable=True),
        sa.Column("closed_at", _TS, nullable=True),
        sa.Column("closed_reason", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["decision_pk"], ["decisions.pk"], name=op.f("fk_sla_clocks_decision_pk_decisions")),
        sa.ForeignKeyConstraint(["lead_pk"], ["leads.pk"], name=op.f("fk_sla_clocks_lead_pk_leads")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_sla_clocks")),
        sa.UniqueConstraint("decision_pk", "kind", name=op.f("uq_sla_clocks_decision_pk_kind")),
    )
    with op.batch_alter_table("sla_clocks", schema=None) as batch_op:
        batch_op.create_index("ix_sla_clocks_state_next_at", ["state", "next_at"], unique=False)
        batch_op.create_index("ix_sla_clocks_started_at", ["started_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_sla_clocks_lead_pk"), ["lead_pk"], unique=False)
    op.create_table(
        "sla_steps",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("clock_pk", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=40), nullable=False),
        sa.Column("do", sa.String(length=20), nullable=False),
        sa.Column("due_at", _TS, nullable=False),
        sa.Column("fired_at", _TS, nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("late_seconds", sa.Integer(), nullable=False),
        sa.Column("detail", _JSON, nullable=False),
        sa.ForeignKeyConstraint(["clock_pk"], ["sla_clocks.pk"], name=op.f("fk_sla_steps_clock_pk_sla_clocks")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_sla_steps")),
        sa.UniqueConstraint("clock_pk", "step", name=op.f("uq_sla_steps_clock_pk_step")),
    )
    op.create_table(
        "scheduler_periods",
        sa.Column("job", sa.String(length=40), nullable=False),
        sa.Column("period", sa.String(length=40), nullable=False),
        sa.Column("done_at", _TS, nullable=False),
        sa.Column("detail", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("job", "period", name=op.f("pk_scheduler_periods")),
    )
    op.create_table(
        "scheduler_jobs_state",
        sa.Column("job", sa.String(length=80), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("detail", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_scheduler_jobs_state")),
    )
    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Unicode(length=191), nullable=False),
        sa.Column("next_run_time", sa.Float(precision=25), nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apscheduler_jobs")),
    )
    with op.batch_alter_table("apscheduler_jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_apscheduler_jobs_next_run_time"), ["next_run_time"], unique=False)
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_decisions_digest",
            ["decided_at", "shadow", "action", "segment", "score_total", "band", "cause"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_decisions_digest")
    with op.batch_alter_table("apscheduler_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_apscheduler_jobs_next_run_time"))
    op.drop_table("apscheduler_jobs")
    op.drop_table("scheduler_jobs_state")
    op.drop_table("scheduler_periods")
    op.drop_table("sla_steps")
    with op.batch_alter_table("sla_clocks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sla_clocks_lead_pk"))
        batch_op.drop_index("ix_sla_clocks_started_at")
        batch_op.drop_index("ix_sla_clocks_state_next_at")
    op.drop_table("sla_clocks")
