"""Tables of loopgate's state (SQLAlchemy 2 declarative models).

The schema is owned by the Alembic migrations in ``core/store/migrations``; a test checks that
these models and the migrations agree. Times are stored as UTC and always come back aware.
JSON columns are JSONB on PostgreSQL. Identity of CRM records is ``(source, crm_id)``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    Unicode,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Account",
    "AuditEvent",
    "AuditHead",
    "AuditVerdict",
    "Base",
    "CalibrationCurve",
    "CrmConflict",
    "Deal",
    "DealLink",
    "Decision",
    "JobPeriod",
    "JobState",
    "Lead",
    "OutboxRow",
    "Owner",
    "PolicyEvent",
    "PolicyRole",
    "PolicyVersion",
    "RepLoad",
    "Review",
    "RotationAssignment",
    "RotationState",
    "SchedulerLease",
    "SlaClock",
    "SlaStep",
    "SlackMessage",
    "SyncCursor",
    "TrustState",
    "TuningReport",
    "UtcDateTime",
    "WritebackState",
    "apscheduler_jobs",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


NAIVE = "naive datetime given to the store; pass an aware UTC time"


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases (SQLite has no time zone type)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(NAIVE)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], Any] | None:
        """On SQLite, one step for what SQLAlchemy does in three (this class, its wrapper, then
        the dialect's ``%``-format of seven fields): the same text, ``YYYY-MM-DD HH:MM:SS.ffffff``,
        in a third of the time. A sync binds ~13 times per lead (bench/sync.py: 0.4 s per
        10,000 leads)."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is not UTC:
                if value.tzinfo is None:
                    raise ValueError(NAIVE)
                value = value.astimezone(UTC)
            return value.isoformat(" ", "microseconds")[:-6]  # without its "+00:00"

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JsonType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: JsonType,
        list[Any]: JsonType,
    }


class Account(Base):
    """A CRM account or company; leads match it by domain."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("source", "crm_id"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    crm_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(Text)
    domain: Mapped[str | None] = mapped_column(String(255), index=True)
    owner_id: Mapped[str | None] = mapped_column(String(64))
    strategic: Mapped[bool] = mapped_column(Boolean, default=False)
    tier: Mapped[str | None] = mapped_column(String(64))
    industry: Mapped[str | None] = mapped_column(Text)
    employees: Mapped[int | None] = mapped_column(Integer)
    is_customer: Mapped[bool] = mapped_column(Boolean, default=False)
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    crm_updated_at: Mapped[datetime | None]
    synced_at: Mapped[datetime | None]


class Lead(Base):
    """A lead (Salesforce Lead/Contact, HubSpot contact) as last seen in its CRM."""

    __tablename__ = "leads"
    __table_args__ = (UniqueConstraint("source", "crm_id"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    crm_id: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    email_domain: Mapped[str | None] = mapped_column(String(255))  # never looked up by: no index (0006)
    first_name: Mapped[str | None] = mapped_column(Text)
    last_name: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    company: Mapped[str | None] = mapped_column(Text)
    domain: Mapped[str | None] = mapped_column(String(255))
    industry: Mapped[str | None] = mapped_column(Text)
    country: Mapped[str | None] = mapped_column(String(64))
    employees: Mapped[int | None] = mapped_column(Integer)
    estimated_deal_size: Mapped[float | None] = mapped_column(Float)
    owner_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str | None] = mapped_column(String(64))
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    merged_into: Mapped[str | None] = mapped_column(String(64))
    converted: Mapped[bool] = mapped_column(Boolean, default=False)
    converted_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(10))  # won | lost
    outcome_at: Mapped[datetime | None]
    outcome_amount: Mapped[float | None] = mapped_column(Float)
    first_touch_at: Mapped[datetime | None]
    crm_created_at: Mapped[datetime | None]
    crm_updated_at: Mapped[datetime | None]
    synced_at: Mapped[datetime | None]
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    decided_hash: Mapped[str | None] = mapped_column(String(64))  # content_hash when last decided
    account_pk: Mapped[int | None] = mapped_column(ForeignKey("accounts.pk"), index=True)


class Owner(Base):
    """A CRM user, HubSpot owner or Salesforce queue. Mapping to reps comes from the policy."""

    __tablename__ = "owners"
    __table_args__ = (UniqueConstraint("source", "crm_id"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    crm_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(10))  # user | queue
    name: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(String(320))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    synced_at: Mapped[datetime | None]


class Decision(Base):
    """One decision for one lead; ``contract`` is the full decision object (DESIGN §4).

    ``dedupe_key`` makes deciding idempotent: a lead is decided once per change (content
    hash + policy version), once per reroute step, once per write-back conflict.
    """

    __tablename__ = "decisions"
    __table_args__ = (
        UniqueConstraint("lead_pk", "dedupe_key"),
        Index("ix_decisions_lead_pk_seq", "lead_pk", "seq"),
        # the weekly digest reads weeks of decisions by time: volume, shares and score drift
        # come from this index alone, without touching the (wide) rows; it serves every other
        # time range too (so there is no (decided_at, action) index: migration 0006)
        Index("ix_decisions_digest", "decided_at", "shadow", "action", "segment", "score_total", "band", "cause"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    lead_pk: Mapped[int] = mapped_column(ForeignKey("leads.pk"))
    source: Mapped[str] = mapped_column(String(20))
    lead_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    dedupe_key: Mapped[str] = mapped_column(String(160))
    cause: Mapped[str] = mapped_column(String(20))  # new | changed | reroute | conflict | replay
    shadow: Mapped[bool] = mapped_column(Boolean, default=False)
    policy_version: Mapped[str] = mapped_column(String(16), index=True)
    action: Mapped[str] = mapped_column(String(10))
    owner: Mapped[str | None] = mapped_column(String(64), index=True)
    owner_kind: Mapped[str] = mapped_column(String(10))
    team: Mapped[str | None] = mapped_column(String(64))
    segment: Mapped[str] = mapped_column(String(64))  # no index of its own: read with others (0006)
    trust_level: Mapped[int] = mapped_column(Integer)
    score_total: Mapped[int] = mapped_column(Integer)
    band: Mapped[str] = mapped_column(String(20))
    confidence: Mapped[float] = mapped_column(Float)
    trigger_codes: Mapped[str] = mapped_column(Text, default="")  # ",code,code," for LIKE
    audit_sample: Mapped[bool] = mapped_column(Boolean, default=False)
    suppressed_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime]
    # lifecycle: pending_review → reviewed; applied; superseded (a newer decision replaced it)
    state: Mapped[str] = mapped_column(String(20), index=True)
    final_owner: Mapped[str | None] = mapped_column(String(64))
    # the CRM owner id when decided: write-back refuses to overwrite an owner a person changed since
    crm_owner_before: Mapped[str | None] = mapped_column(String(64))
    final_action: Mapped[str | None] = mapped_column(String(10))
    contract: Mapped[dict[str, Any]] = mapped_column()


class Review(Base):
    """A person's decision on an escalation; one per decision (the first one wins)."""

    __tablename__ = "reviews"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    decision_pk: Mapped[int] = mapped_column(ForeignKey("decisions.pk"), unique=True)
    lead_pk: Mapped[int] = mapped_column(ForeignKey("leads.pk"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # approve | reassign | override
    reviewer: Mapped[str] = mapped_column(String(64))  # Slack user id (or cli:<name>)
    reviewer_rep: Mapped[str | None] = mapped_column(String(64))
    reason_code: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    agree: Mapped[bool] = mapped_column(Boolean)
    segment: Mapped[str] = mapped_column(String(64), index=True)
    before: Mapped[dict[str, Any]] = mapped_column()
    after: Mapped[dict[str, Any]] = mapped_column()
    decided_at: Mapped[datetime] = mapped_column(index=True)


class AuditVerdict(Base):
    """A leader's verdict on a sampled automatic decision (Confirm / Flag in the digest)."""

    __tablename__ = "audit_verdicts"
    __table_args__ = (UniqueConstraint("decision_pk", "reviewer"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    decision_pk: Mapped[int] = mapped_column(ForeignKey("decisions.pk"))
    verdict: Mapped[str] = mapped_column(String(10))  # confirm | flag
    reason_code: Mapped[str | None] = mapped_column(String(64))
    reviewer: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    segment: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]


class AuditEvent(Base):
    """Append-only, hash-chained. ``body`` is the exact canonical JSON that was hashed."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str | None] = mapped_column(String(200))  # never looked up by: no index (0006)
    body: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row: the last sequence number and hash, locked by whoever appends."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    hash: Mapped[str] = mapped_column(String(64))


class OutboxRow(Base):
    """An external side effect (Slack post, CRM write) to perform at least once, keyed once."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_kind_available_at", "status", "kind", "available_at"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending|claimed|done|dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    done_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JsonType)


class SyncCursor(Base):
    """Where incremental sync of one CRM stream stopped: ``(ts, id)`` of the last record."""

    __tablename__ = "sync_cursors"

    source: Mapped[str] = mapped_column(String(20), primary_key=True)
    stream: Mapped[str] = mapped_column(String(40), primary_key=True)
    cursor_ts: Mapped[datetime | None]
    cursor_id: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime]


class PolicyVersion(Base):
    __tablename__ = "policy_versions"

    version: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(128))


class PolicyRole(Base):
    """Which stored version is the champion (acts) and which the challenger (shadow only)."""

    __tablename__ = "policy_roles"

    role: Mapped[str] = mapped_column(String(12), primary_key=True)  # champion | challenger
    version: Mapped[str] = mapped_column(ForeignKey("policy_versions.version"))
    since: Mapped[datetime]
    by: Mapped[str] = mapped_column(String(128))


class RotationState(Base):
    """A team's rotation lags (leads owed per rep); the row is locked while a slot is handed out."""

    __tablename__ = "rotation_state"

    team: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    lags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime]


class RotationAssignment(Base):
    """Each handed-out slot, once: ``(team, seq)`` is unique."""

    __tablename__ = "rotation_assignments"
    __table_args__ = (UniqueConstraint("team", "seq"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    team: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    rep: Mapped[str] = mapped_column(String(64))
    lead_key: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime]


class RepLoad(Base):
    """Round-robin assignments per rep per local day, for daily capacity."""

    __tablename__ = "rep_load"

    rep: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class TrustState(Base):
    __tablename__ = "trust_state"

    segment: Mapped[str] = mapped_column(String(64), primary_key=True)
    level: Mapped[int] = mapped_column(Integer)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    since: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text)


class SchedulerLease(Base):
    """Who runs the scheduler; a replica takes over when ``expires_at`` has passed."""

    __tablename__ = "scheduler_lease"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]
    acquired_at: Mapped[datetime]


# --- learning and governance (issue 7; migration 0004_learning) ---------------------------


class CalibrationCurve(Base):
    """A fitted calibration curve (raw confidence → P(reviewer accepts)) for one segment.

    Curves are fitted together; the newest ``fit`` is the calibration in use, older fits stay
    for the record. Segment ``*`` is the pooled curve for segments with too few labels.
    """

    __tablename__ = "calibration_curves"

    fit: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    segment: Mapped[str] = mapped_column(String(64), primary_key=True)
    knots: Mapped[list[Any]] = mapped_column()
    labels: Mapped[int] = mapped_column(Integer)
    accept_rate: Mapped[float] = mapped_column(Float)
    ece_raw: Mapped[float | None] = mapped_column(Float)
    ece_fitted: Mapped[float | None] = mapped_column(Float)
    policy_version: Mapped[str | None] = mapped_column(String(16))
    fitted_at: Mapped[datetime]


class PolicyEvent(Base):
    """The lifecycle of policy versions, in order: what became champion or challenger, when,
    by whom, and what it replaced (``policy history``; ``policy rollback`` reads it)."""

    __tablename__ = "policy_events"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    action: Mapped[str] = mapped_column(String(20))  # publish | shadow | promote | rollback | withdraw
    version: Mapped[str] = mapped_column(ForeignKey("policy_versions.version"))
    role: Mapped[str | None] = mapped_column(String(12))  # the role it took (None: withdrawn)
    previous: Mapped[str | None] = mapped_column(String(16))  # what held that role before
    by: Mapped[str] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)


class TuningReport(Base):
    """The monthly tuning report and the challenger policy it proposes (latest run per month)."""

    __tablename__ = "tuning_reports"

    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # 2026-11
    created_at: Mapped[datetime]
    policy_version: Mapped[str] = mapped_column(String(16))
    report: Mapped[dict[str, Any]] = mapped_column()
    challenger_text: Mapped[str | None] = mapped_column(Text)
    challenger_version: Mapped[str | None] = mapped_column(String(16))


# --- Slack messages (issue 5; migration 0003_bot) ------------------------------------------


class SlackMessage(Base):
    """A message loopgate posted to Slack, by a stable ``key`` (one per escalation target,
    assignment or generic message), so a retried effect never posts twice and a later review
    or supersession can update every message shown for a decision in place.

    ``rendered`` is what the message currently shows (e.g. ``reviewed:approve``): an update
    that would render the same thing again is skipped.
    """

    __tablename__ = "slack_messages"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    decision_pk: Mapped[int | None] = mapped_column(ForeignKey("decisions.pk"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))  # escalation | assignment | message
    channel: Mapped[str] = mapped_column(String(32))
    ts: Mapped[str] = mapped_column(String(32))
    rendered: Mapped[str | None] = mapped_column(String(64))
    posted_at: Mapped[datetime]
    updated_at: Mapped[datetime | None]


# --- CRM connectors (migration 0002) ---------------------------------------------------------


class Deal(Base):
    """A Salesforce opportunity or HubSpot deal: where a lead's outcome (won / lost) comes from."""

    __tablename__ = "deals"
    __table_args__ = (UniqueConstraint("source", "crm_id"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    crm_id: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str | None] = mapped_column(String(128))
    is_closed: Mapped[bool] = mapped_column(Boolean, default=False)
    is_won: Mapped[bool] = mapped_column(Boolean, default=False)
    amount: Mapped[float | None] = mapped_column(Float)
    closed_at: Mapped[datetime | None]
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    crm_updated_at: Mapped[datetime | None]
    synced_at: Mapped[datetime | None]


class DealLink(Base):
    """Which leads/contacts a deal belongs to. ``origin`` says which side reported the link
    (``deal``: the deal's contacts; ``lead``: a converted lead's opportunity), so a deal's own
    list can be replaced without forgetting what the leads said."""

    __tablename__ = "deal_links"
    __table_args__ = (Index("ix_deal_links_source_lead_id", "source", "lead_id"),)

    source: Mapped[str] = mapped_column(String(20), primary_key=True)
    deal_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    lead_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    origin: Mapped[str] = mapped_column(String(8), primary_key=True)


class LeadEvent(Base):
    """An intent event kept as a CRM record of its own (a Salesforce campaign response), one row
    per lead or contact it belongs to. ``event_id`` is the CRM record's id (the CampaignMember),
    so reading it again replaces it; ``lead_id`` is the lead's ``crm_id`` (the lead may not be
    stored yet). The stored lead's ``data`` and ``content_hash`` include these events
    (:mod:`core.store.lead_events`)."""

    __tablename__ = "lead_events"
    __table_args__ = (Index("ix_lead_events_source_lead_id", "source", "lead_id"),)

    source: Mapped[str] = mapped_column(String(20), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    lead_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    synced_at: Mapped[datetime | None]


class WritebackState(Base):
    """What the CRM holds in a lead's loopgate fields, as last seen by sync or last written by
    write-back (CRM field name → value), and the owner loopgate itself last wrote — so that
    equal values are not written again and loopgate's own owner change is not taken for a
    person's."""

    __tablename__ = "writeback_state"

    lead_pk: Mapped[int] = mapped_column(ForeignKey("leads.pk"), primary_key=True)
    values: Mapped[dict[str, Any]] = mapped_column(default=dict)
    owner_written: Mapped[str | None] = mapped_column(String(64))
    decision_pk: Mapped[int | None] = mapped_column(Integer)
    seen_at: Mapped[datetime | None]
    written_at: Mapped[datetime | None]


class CrmConflict(Base):
    """A write-back that found the CRM owner changed by a person since the decision: nothing
    was overwritten; the lead was decided again (``redecision_pk``)."""

    __tablename__ = "crm_conflicts"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    decision_pk: Mapped[int] = mapped_column(ForeignKey("decisions.pk"), unique=True)
    lead_pk: Mapped[int] = mapped_column(ForeignKey("leads.pk"), index=True)
    source: Mapped[str] = mapped_column(String(20))
    crm_id: Mapped[str] = mapped_column(String(64))
    owner_before: Mapped[str | None] = mapped_column(String(64))
    owner_found: Mapped[str | None] = mapped_column(String(64))
    owner_wanted: Mapped[str | None] = mapped_column(String(64))
    redecision_pk: Mapped[int | None] = mapped_column(Integer)
    detected_at: Mapped[datetime] = mapped_column(index=True)


# --- scheduler (issue 6; migration 0005_scheduler) ----------------------------------------


class SlaClock(Base):
    """One response clock: the owner's first touch of an automatically assigned lead, or a
    person's review of an escalation (DESIGN §3 step 5).

    Created in the transaction that makes the decision (``core.store.sla_clocks``), with its
    whole plan — nudges, breach, breach steps — computed then from the policy and the owner's
    working hours, so a later policy edit never moves a deadline already promised and the scan
    is an indexed range query on ``next_at``. ``due_at`` is the deadline (``None``: the policy
    sets no SLA here; the clock still records speed to first response). ``breached_at`` is set
    when the deadline passes unanswered; ``met_at`` when the response comes (even late).
    """

    __tablename__ = "sla_clocks"
    __table_args__ = (
        UniqueConstraint("decision_pk", "kind"),
        Index("ix_sla_clocks_state_next_at", "state", "next_at"),
        Index("ix_sla_clocks_started_at", "started_at"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    decision_pk: Mapped[int] = mapped_column(ForeignKey("decisions.pk"))
    lead_pk: Mapped[int] = mapped_column(ForeignKey("leads.pk"), index=True)
    kind: Mapped[str] = mapped_column(String(12))  # first_touch | review
    owner: Mapped[str | None] = mapped_column(String(64))
    owner_kind: Mapped[str] = mapped_column(String(10))
    team: Mapped[str | None] = mapped_column(String(64))
    band: Mapped[str] = mapped_column(String(20))
    segment: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime]
    due_at: Mapped[datetime | None]
    business_hours: Mapped[bool] = mapped_column(Boolean, default=False)
    plan: Mapped[list[Any]] = mapped_column()  # [{"key", "at", "do"}], in order
    next_at: Mapped[datetime | None]  # when the next unfired step is due (None: none left)
    state: Mapped[str] = mapped_column(String(12))  # open | met | rerouted | cancelled | expired
    met_at: Mapped[datetime | None]
    met_via: Mapped[str | None] = mapped_column(String(12))  # crm | review | slack
    breached_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    closed_reason: Mapped[str | None] = mapped_column(String(64))


class SlaStep(Base):
    """A step of a clock that was carried out — once: ``(clock_pk, step)`` is unique and the
    row is inserted in the same transaction as the step's effect (the outbox row, the
    re-decision), so restarts, misfires and a second scheduler can never repeat it."""

    __tablename__ = "sla_steps"
    __table_args__ = (UniqueConstraint("clock_pk", "step"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    clock_pk: Mapped[int] = mapped_column(ForeignKey("sla_clocks.pk"))
    step: Mapped[str] = mapped_column(String(40))  # nudge:0.5 | breach | breach:0:notify_manager
    do: Mapped[str] = mapped_column(String(20))
    due_at: Mapped[datetime]
    fired_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(20))  # sent | coalesced | recorded | rerouted | parked | nobody
    late_seconds: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class JobPeriod(Base):
    """A periodic job's work for one period (``digest`` × ``2026-W47``, ``tuning`` × ``2026-11``),
    claimed once: inserted in the transaction that does the work."""

    __tablename__ = "scheduler_periods"

    job: Mapped[str] = mapped_column(String(40), primary_key=True)
    period: Mapped[str] = mapped_column(String(40), primary_key=True)
    done_at: Mapped[datetime]
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class JobState(Base):
    """The last run of each scheduled job and who ran it (``loopgate scheduler status``)."""

    __tablename__ = "scheduler_jobs_state"

    job: Mapped[str] = mapped_column(String(80), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(12))  # running | ok | failed | skipped
    runs: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


# APScheduler's persistent job store (``SQLAlchemyJobStore(tablename="apscheduler_jobs")``): the
# same columns APScheduler 3 creates, declared here so the migrations own the table too
apscheduler_jobs = Table(
    "apscheduler_jobs",
    Base.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)
