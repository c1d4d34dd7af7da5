"""The weekly audit digest, counted in SQL: every figure is an aggregate the database computes
(``GROUP BY``, ``percentile_disc``, ``ORDER BY … OFFSET``); Python only reshapes the few
grouped rows that come back. A million stored decisions is a few index range scans.

What is counted, for ISO week W (Monday to Monday in the digest's time zone), acting
decisions only (never shadow ones):

* decisions made in W, by action, per day, per segment and per country (the fairness view);
* SLA clocks started in W: speed to first response (discrete median and p90 of
  ``met_at − started_at``) and attainment (answered by the deadline / late or never / running);
  a breached clock is missed even when a later decision cancelled it;
* reviews made in W: overrides (a person changed what automation proposed) by reason code and
  by reviewer; audit flags in W by reason code;
* agreement per segment: reviews and audit verdicts answered in W; the trust level now and the
  changes audited in W;
* conversion by band over the *cohort* of leads first decided in the four weeks before W (leads
  need time to convert), with lift = band rate / cohort rate;
* score drift: PSI of W's score distribution against the four weeks before W;
* the audit sample: W's automatic decisions the engine flagged for audit (the policy's sample
  rate) and still standing (not replaced by a newer decision, lead not deleted), up to
  ``sample_size`` of them chosen at random, reproducibly per week.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Float, case, cast, exists, extract, func, literal, or_, select, union_all
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import ColumnElement

from core.digest import (
    SCORE_BINS,
    Attainment,
    BandConversion,
    DailyCount,
    Digest,
    Drift,
    FairnessRow,
    ReasonRow,
    RepRow,
    SampleItem,
    SegmentTrust,
    Speed,
    psi,
    rank_offset,
    week_bounds,
)
from core.policy import LoadedPolicy
from core.store.models import AuditEvent, AuditVerdict, Decision, Lead, Review, SlaClock, TrustState, UtcDateTime
from core.store.trust_state import segments_of

__all__ = ["COUNTRIES_SHOWN", "weekly_digest"]

COUNTRIES_SHOWN = 8
BASELINE_WEEKS = 4
_TRUST_KINDS = ("trust.promoted", "trust.demoted", "trust.capped", "trust.pinned", "trust.unpinned")


def _seconds(session: Session, start: Any, end: Any) -> ColumnElement[float]:
    """``end − start`` in seconds, on either database."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(extract("epoch", end - start), Float)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def _at(value: datetime) -> Any:
    """A time parameter stored like the columns it is compared with (UTC, naive on SQLite)."""
    return literal(value, UtcDateTime())


def _acting_between(start: datetime, end: datetime) -> list[ColumnElement[bool]]:
    return [Decision.decided_at >= start, Decision.decided_at < end, Decision.shadow.is_(False)]


# --- decisions: volume, days, fairness, drift ---------------------------------------------


def _daily(session: Session, start: datetime, end: datetime, zone: str) -> tuple[dict[str, int], list[DailyCount]]:
    """Decisions per action, and per action on each of the week's seven local days. A decision
    counts on the local date it was made: day i begins at local midnight, which is not
    ``start + i × 24 h`` once the clocks change (a spring-forward week lasts 6 days 23 hours)."""
    tz = ZoneInfo(zone)
    local_days = [start.astimezone(tz).date() + timedelta(days=i) for i in range(7)]
    midnights = [datetime.combine(d, time(0), tz).astimezone(UTC) for d in local_days[1:]]
    day = case(*((Decision.decided_at < _at(m), i) for i, m in enumerate(midnights)), else_=len(midnights)).label("day")
    rows = session.execute(
        select(day, Decision.action, func.count()).where(*_acting_between(start, end)).group_by(day, Decision.action)
    ).all()
    actions: dict[str, int] = {}
    days = {i: {"auto": 0, "review": 0, "suppress": 0} for i in range(len(local_days))}
    for index, action, n in rows:
        actions[action] = actions.get(action, 0) + n
        if index in days and action in days[index]:
            days[index][action] += n
    daily = [DailyCount(local_days[i], c["auto"], c["review"], c["suppress"]) for i, c in days.items()]
    return dict(sorted(actions.items())), daily


def _fairness(session: Session, start: datetime, end: datetime) -> tuple[list[FairnessRow], list[FairnessRow]]:
    rows = session.execute(
        select(Decision.segment, Lead.country, Decision.action, func.count())
        .join(Lead, Lead.pk == Decision.lead_pk)
        .where(*_acting_between(start, end))
        .group_by(Decision.segment, Lead.country, Decision.action)
    ).all()
    by_segment: dict[str, list[int]] = {}
    by_country: dict[str, list[int]] = {}
    for segment, country, action, n in rows:
        for table, key in ((by_segment, segment), (by_country, (country or "").strip().upper() or "unknown")):
            counts = table.setdefault(key, [0, 0, 0])
            counts[0] += n
            counts[1] += n if action == "review" else 0
            counts[2] += n if action == "suppress" else 0
    segments = [FairnessRow(k, *v) for k, v in sorted(by_segment.items(), key=lambda kv: (-kv[1][0], kv[0]))]
    ranked = sorted(by_country.items(), key=lambda kv: (-kv[1][0], kv[0]))
    countries = [FairnessRow(k, *v) for k, v in ranked[:COUNTRIES_SHOWN]]
    rest = ranked[COUNTRIES_SHOWN:]
    if rest:
        countries.append(FairnessRow(f"{len(rest)} others", *(sum(v[i] for _, v in rest) for i in range(3))))
    return segments, countries


def _drift(session: Session, start: datetime, end: datetime) -> Drift:
    # counted per score (~100 groups per period) and binned here; two range scans are cheaper
    # than one with a CASE per row to tell the periods apart
    periods = []
    for since, until in ((start, end), (start - timedelta(weeks=BASELINE_WEEKS), start)):
        bins = [0] * SCORE_BINS
        for score, n in session.execute(
            select(Decision.score_total, func.count())
            .where(*_acting_between(since, until))
            .group_by(Decision.score_total)
        ):
            bins[min(max(int(score) // 10, 0), SCORE_BINS - 1)] += n
        periods.append(bins)
    now_bins, base_bins = periods
    return Drift(psi(base_bins, now_bins), tuple(now_bins), tuple(base_bins))


def _conversion(session: Session, start: datetime) -> tuple[list[BandConversion], datetime]:
    since = start - timedelta(weeks=BASELINE_WEEKS)
    positive = or_(Lead.converted.is_(True), Lead.outcome == "won")
    rows = session.execute(
        select(Decision.band, func.count(), func.sum(case((positive, 1), else_=0)))
        .join(Lead, Lead.pk == Decision.lead_pk)
        .where(*_acting_between(since, start), Decision.cause == "new")
        .group_by(Decision.band)
    ).all()
    leads = sum(int(n) for _, n, _ in rows)
    wins = sum(int(k or 0) for _, _, k in rows)
    overall = wins / leads if leads else None
    out = []
    for band, n, k in rows:
        rate = int(k or 0) / n if n else None
        lift = rate / overall if rate is not None and overall else None
        out.append(BandConversion(band, int(n), int(k or 0), lift))
    return out, since


# --- clocks: speed and attainment ---------------------------------------------------------


def _speeds(session: Session, start: datetime, end: datetime) -> dict[str, Speed]:
    """Discrete median and p90 of response seconds, per clock kind and for all, in one pass:
    rows are ranked in SQL (``row_number``) and only the ranks ⌈q·n⌉ come back."""
    seconds = _seconds(session, SlaClock.started_at, SlaClock.met_at).label("seconds")
    answered = (
        select(SlaClock.kind.label("kind"), seconds)
        .where(SlaClock.started_at >= start, SlaClock.started_at < end, SlaClock.met_at.is_not(None))
        .cte("answered")
    )
    per_kind = select(
        answered.c.kind,
        answered.c.seconds,
        func.row_number().over(partition_by=answered.c.kind, order_by=answered.c.seconds).label("rank"),
        func.count().over(partition_by=answered.c.kind).label("n"),
    )
    overall = select(
        literal("all").label("kind"),
        answered.c.seconds,
        func.row_number().over(order_by=answered.c.seconds).label("rank"),
        func.count().over().label("n"),
    )
    ranked = union_all(per_kind, overall).subquery("ranked")
    n = ranked.c.n
    # ⌈n/2⌉ and ⌈9n/10⌉ in integer arithmetic (SQLite has no ceil without its math extension)
    median_rank, p90_rank = (n + 1) // 2, (9 * n + 9) // 10
    rows = session.execute(
        select(ranked.c.kind, n, ranked.c.rank, ranked.c.seconds).where(
            or_(ranked.c.rank == median_rank, ranked.c.rank == p90_rank)
        )
    ).all()
    found: dict[str, dict[str, Any]] = {}
    for kind, count, rank, value in rows:
        entry = found.setdefault(kind, {"n": int(count)})
        if rank == rank_offset(0.5, int(count)) + 1:
            entry["median"] = _ms(value)
        if rank == rank_offset(0.9, int(count)) + 1:
            entry["p90"] = _ms(value)
    return {
        name: Speed(found.get(name, {}).get("n", 0), found.get(name, {}).get("median"), found.get(name, {}).get("p90"))
        for name in ("all", "review", "first_touch")
    }


def _ms(seconds: Any) -> float | None:
    """Seconds to the millisecond (SQLite's julianday arithmetic carries float noise)."""
    return round(float(seconds), 3) if seconds is not None else None


def _attainment(session: Session, start: datetime, end: datetime, now: datetime) -> dict[str, Attainment]:
    on_time = (SlaClock.met_at.is_not(None)) & (SlaClock.met_at <= SlaClock.due_at)
    # a breach the scan recorded stays missed whatever happened to the clock after: a re-decision
    # cancels it (the lead edited, its owner changed in the CRM) but the deadline had passed.
    # Only a clock cancelled before its deadline (the lead went elsewhere in time) counts nowhere
    late = ~on_time & (
        SlaClock.breached_at.is_not(None)
        | (SlaClock.met_at > SlaClock.due_at)
        | ((SlaClock.met_at.is_(None)) & (SlaClock.due_at <= now) & (SlaClock.state != "cancelled"))
    )
    running = (SlaClock.met_at.is_(None)) & (SlaClock.due_at > now) & (SlaClock.state == "open")
    rows = session.execute(
        select(
            SlaClock.kind,
            func.sum(case((on_time, 1), else_=0)),
            func.sum(case((late, 1), else_=0)),
            func.sum(case((running, 1), else_=0)),
        )
        .where(SlaClock.started_at >= start, SlaClock.started_at < end, SlaClock.due_at.is_not(None))
        .group_by(SlaClock.kind)
    ).all()
    out = {kind: Attainment(int(met or 0), int(missed or 0), int(pending or 0)) for kind, met, missed, pending in rows}
    out["all"] = Attainment(
        sum(a.met for a in out.values()), sum(a.missed for a in out.values()), sum(a.pending for a in out.values())
    )
    return out


# --- people: overrides, agreement, trust ----------------------------------------------------


def _overrides(
    session: Session, loaded: LoadedPolicy, start: datetime, end: datetime
) -> tuple[int, int, list[ReasonRow], list[RepRow]]:
    in_week = [Review.decided_at >= start, Review.decided_at < end]
    who = func.coalesce(Review.reviewer_rep, Review.reviewer).label("who")
    changed = func.sum(case((Review.agree.is_(False), 1), else_=0))
    reps = session.execute(select(who, func.count(), changed).where(*in_week).group_by(who)).all()
    reasons: dict[str | None, int] = {
        code: n
        for code, n in session.execute(
            select(Review.reason_code, func.count())
            .where(*in_week, Review.agree.is_(False))
            .group_by(Review.reason_code)
        )
    }
    flags: dict[str | None, int] = {
        code: n
        for code, n in session.execute(
            select(AuditVerdict.reason_code, func.count())
            .where(AuditVerdict.at >= start, AuditVerdict.at < end, AuditVerdict.verdict == "flag")
            .group_by(AuditVerdict.reason_code)
        )
    }
    labels = {c.code: c.label for c in loaded.policy.reason_codes}
    names = {r.id: r.name for r in loaded.policy.reps}
    codes = sorted(set(reasons) | set(flags), key=lambda c: (-(reasons.get(c, 0) + flags.get(c, 0)), str(c)))
    by_reason = [
        ReasonRow(code or "none", labels.get(code or "", code or "no reason"), reasons.get(code, 0), flags.get(code, 0))
        for code in codes
    ]
    by_rep = sorted(
        (RepRow(rep, names.get(rep, rep), int(n), int(k or 0)) for rep, n, k in reps),
        key=lambda r: (-r.overrides, -r.reviews, r.rep),
    )
    return sum(r.reviews for r in by_rep), sum(r.overrides for r in by_rep), by_reason, by_rep


def _segments(session: Session, loaded: LoadedPolicy, start: datetime, end: datetime) -> list[SegmentTrust]:
    answered = union_all(
        select(Review.segment.label("segment"), case((Review.agree.is_(True), 1), else_=0).label("agree")).where(
            Review.decided_at >= start, Review.decided_at < end
        ),
        select(
            AuditVerdict.segment.label("segment"), case((AuditVerdict.verdict == "confirm", 1), else_=0).label("agree")
        ).where(AuditVerdict.at >= start, AuditVerdict.at < end),
    ).subquery()
    counts = {
        segment: (int(n), int(agreed or 0))
        for segment, n, agreed in session.execute(
            select(answered.c.segment, func.count(), func.sum(answered.c.agree)).group_by(answered.c.segment)
        )
    }
    trust = loaded.policy.trust
    levels = {s: (trust.segments.get(s, trust.default_level), False) for s in segments_of(loaded)}
    for row in session.execute(select(TrustState)).scalars():
        levels[row.segment] = (row.level, row.pinned)
    changes: dict[str, list[str]] = {}
    for subject, body in session.execute(
        select(AuditEvent.subject, AuditEvent.body)
        .where(AuditEvent.kind.in_(_TRUST_KINDS), AuditEvent.at >= start, AuditEvent.at < end)
        .order_by(AuditEvent.seq)
    ):
        data = json.loads(body).get("data") or {}
        segment = (subject or "").removeprefix("segment:")
        kind = json.loads(body).get("kind", "").removeprefix("trust.")
        changes.setdefault(segment, []).append(f"{kind} {data.get('from')}→{data.get('to')}")
    order = list(dict.fromkeys([*levels, *counts]))
    return [
        SegmentTrust(
            s,
            counts.get(s, (0, 0))[0],
            counts.get(s, (0, 0))[1],
            levels.get(s, (trust.default_level, False))[0],
            levels.get(s, (trust.default_level, False))[1],
            tuple(changes.get(s, ())),
        )
        for s in order
    ]


# --- the audit sample -------------------------------------------------------------------------


def _sample(
    session: Session, loaded: LoadedPolicy, week: str, start: datetime, end: datetime, size: int
) -> tuple[list[SampleItem], int]:
    """Up to ``size`` of the week's decisions flagged for audit, chosen at random — the same
    choice every time the week is counted (seeded by the week), a different one each week —
    among those still standing: a decision since replaced by a newer one for its lead, or
    whose lead was deleted or merged away, is not worth a reviewer's time. Returns the sample
    and how many it was drawn from.

    The candidates are read as keys only and chosen in Python, so SQLite and PostgreSQL draw
    the same sample. They are bounded by the policy's sample rate (``trust.audit_sample`` of a
    week's automatic decisions: ~15,000 keys for 100,000 a week)."""
    newer = aliased(Decision)
    candidates = list(
        session.execute(
            select(Decision.pk)
            .join(Lead, Lead.pk == Decision.lead_pk)
            .where(
                *_acting_between(start, end),
                Decision.audit_sample.is_(True),
                Decision.action == "auto",
                Decision.state != "superseded",
                Lead.is_deleted.is_(False),
                ~exists().where(newer.lead_pk == Decision.lead_pk, newer.seq > Decision.seq, newer.shadow.is_(False)),
            )
            .order_by(Decision.pk)
        ).scalars()
    )
    # not for secrecy: a fair pick a reviewer cannot predict, reproducible for the week
    chosen = random.Random(f"digest-sample:{week}").sample(candidates, min(size, len(candidates)))  # noqa: S311
    found = {
        r.pk: r
        for r in session.execute(
            select(
                Decision.pk,
                Decision.owner,
                Decision.band,
                Decision.score_total,
                Decision.segment,
                Decision.confidence,
                Lead.first_name,
                Lead.last_name,
                Lead.email,
                Lead.crm_id,
                Lead.company,
            )
            .join(Lead, Lead.pk == Decision.lead_pk)
            .where(Decision.pk.in_(chosen))
        )
    }
    rows = [found[pk] for pk in chosen]
    total = len(candidates)
    verdicts: dict[int, list[str]] = {}
    if rows:
        for pk, verdict in session.execute(
            select(AuditVerdict.decision_pk, AuditVerdict.verdict)
            .where(AuditVerdict.decision_pk.in_([r.pk for r in rows]))
            .order_by(AuditVerdict.pk)
        ):
            verdicts.setdefault(pk, []).append(verdict)
    names = {r.id: r.name for r in loaded.policy.reps} | {q.id: q.name or q.id for q in loaded.policy.queues}
    items = [
        SampleItem(
            decision_pk=r.pk,
            lead=" ".join(p for p in (r.first_name, r.last_name) if p) or r.email or r.crm_id,
            company=r.company,
            owner=names.get(r.owner or "", r.owner or "nobody"),
            band=r.band,
            score=r.score_total,
            segment=r.segment,
            confidence=r.confidence,
            verdicts=tuple(verdicts.get(r.pk, ())),
        )
        for r in rows
    ]
    return items, total


def weekly_digest(
    session: Session,
    loaded: LoadedPolicy,
    *,
    week: str,
    now: datetime,
    timezone: str | None = None,
    sample_size: int = 10,
) -> Digest:
    """Count week ``week`` (``2026-W47``) as of ``now`` (see the module docstring)."""
    zone = timezone or (loaded.policy.digest.timezone if loaded.policy.digest else "UTC")
    start, end = week_bounds(week, zone)
    actions, daily = _daily(session, start, end, zone)
    fairness_segment, fairness_country = _fairness(session, start, end)
    reviews, overrides, by_reason, by_rep = _overrides(session, loaded, start, end)
    conversion, since = _conversion(session, start)
    sample, sampled_total = _sample(session, loaded, week, start, end, sample_size)
    speed = _speeds(session, start, end)
    return Digest(
        week=week,
        start=start,
        end=end,
        timezone=zone,
        generated_at=now,
        policy_version=loaded.version,
        decisions=sum(actions.values()),
        actions=actions,
        speed=speed,
        sla=_attainment(session, start, end, now),
        reviews=reviews,
        overrides=overrides,
        by_reason=by_reason,
        by_rep=by_rep,
        segments=_segments(session, loaded, start, end),
        conversion=_ordered_bands(loaded, conversion),
        conversion_since=since,
        drift=_drift(session, start, end),
        fairness_segment=fairness_segment,
        fairness_country=fairness_country,
        sample=sample,
        sampled_total=sampled_total,
        daily=daily,
    )


def _ordered_bands(loaded: LoadedPolicy, rows: list[BandConversion]) -> list[BandConversion]:
    order = [b for b, _ in sorted(loaded.policy.scoring.bands.items(), key=lambda kv: -kv[1])] + ["cold"]
    return sorted(rows, key=lambda r: (order.index(r.band) if r.band in order else len(order), r.band))
