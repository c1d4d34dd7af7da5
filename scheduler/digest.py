"""The weekly audit digest job, and the digest as text and HTML for ``loopgate digest``.

**The job** (every ``digest.weekly`` slot in ``digest.timezone``, e.g. Monday 08:00 New York)
posts the last complete ISO week: the summary, the chart (``files_upload_v2``) and the audit
sample with Confirm / Flag… — three outbox rows queued in one transaction with the week's
claim (``scheduler_periods``: ``digest`` × ``2026-W47``), so each week is posted once however
often the job runs. After downtime it catches up: every week since the last one posted is
posted, oldest first, up to :data:`CATCH_UP_WEEKS`; older missed weeks are audited as skipped
(``digest.skipped``), never dropped silently.

The claim keeps the week's audit sample (decision, lead, owner…), so the sample message can be
re-rendered with the verdicts as they come in without counting the week again.
"""

from __future__ import annotations

import base64
import html
import logging
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot.blocks.common import Message
from bot.blocks.digest import digest_message, sample_message
from bot.notifier import enqueue_message
from bot.uploads import enqueue_file
from core.digest import Digest, last_complete_week, week_bounds, week_label
from core.policy import LoadedPolicy
from core.store import audit_log
from core.store.audit_log import AuditRecord
from core.store.digest import weekly_digest
from core.store.periods import claim_period, last_period
from scheduler.chart import digest_chart
from scheduler.context import SchedulerContext

__all__ = [
    "CATCH_UP_WEEKS",
    "Rendered",
    "digest_html",
    "digest_text",
    "queue_digest",
    "render_digest",
    "run_weekly_digest",
]

log = logging.getLogger(__name__)

CATCH_UP_WEEKS = 4
JOB = "digest"


@dataclass(frozen=True)
class Rendered:
    summary: Message
    sample: Message | None
    chart: bytes


def render_digest(d: Digest, loaded: LoadedPolicy) -> Rendered:
    """The Slack payloads and the chart of a counted digest (pure but for matplotlib)."""
    reasons = {c.code: c.label for c in loaded.policy.reason_codes}
    sample = sample_message(d.week, d.sample, d.sampled_total, reasons=reasons) if d.sample else None
    return Rendered(digest_message(d), sample, digest_chart(d))


def queue_digest(session: Session, loaded: LoadedPolicy, d: Digest, rendered: Rendered, *, channel: str) -> bool:
    """Claim the week and queue its three effects (same transaction); False if already posted."""
    now = d.generated_at
    detail = {
        "decisions": d.decisions,
        "channel": channel,
        "policy_version": d.policy_version,
        "sampled_total": d.sampled_total,
        "sample": [asdict(item) for item in d.sample],
    }
    if not claim_period(session, JOB, d.week, now=now, detail=detail):
        return False
    key = f"digest:{d.week}"
    enqueue_message(session, f"{key}:summary", text=rendered.summary.text, blocks=rendered.summary.blocks,
                    channel=channel, now=now)  # fmt: skip
    enqueue_file(
        session,
        f"{key}:chart",
        channel=channel,
        filename=f"loopgate-digest-{d.week}.png",
        content=rendered.chart,
        title=f"loopgate weekly audit {d.week}",
        comment=f"Weekly audit {d.week}: decisions per day, score drift, agreement by segment",
        now=now,
    )
    if rendered.sample is not None:
        enqueue_message(session, f"{key}:sample", text=rendered.sample.text, blocks=rendered.sample.blocks,
                        channel=channel, now=now)  # fmt: skip
    audit_log.append(
        session,
        [
            AuditRecord(
                now,
                "scheduler",
                "digest.posted",
                f"digest:{d.week}",
                {
                    "channel": channel,
                    "decisions": d.decisions,
                    "sampled": len(d.sample),
                    "policy_version": d.policy_version,
                },
            )
        ],
    )
    return True


def _weeks_due(session: Session, latest: str, timezone: str) -> tuple[list[str], list[str]]:
    """(weeks to post, oldest first; weeks missed too long ago to post)."""
    last = last_period(session, JOB)
    if last is None or last >= latest:
        return ([] if last == latest else [latest]), []
    start, _ = week_bounds(last, timezone)
    weeks: list[str] = []
    day = start.date() + timedelta(days=10)  # a Thursday inside the week after the last one posted
    while (label := week_label(day)) <= latest:
        weeks.append(label)
        day += timedelta(days=7)
    return weeks[-CATCH_UP_WEEKS:], weeks[:-CATCH_UP_WEEKS]


def run_weekly_digest(ctx: SchedulerContext) -> dict[str, Any]:
    """Post every complete week not yet posted (see the module docstring)."""
    loaded = ctx.policy()
    config = loaded.policy.digest
    if config is None:
        return {"skipped": "the policy has no digest section"}
    now = ctx.clock()
    latest = last_complete_week(now, config.timezone)
    with ctx.db.sessions() as session:
        due, missed = _weeks_due(session, latest, config.timezone)
    posted: list[str] = []
    for week in due:
        with ctx.db.transaction() as session:
            d = weekly_digest(session, loaded, week=week, now=now, timezone=config.timezone)
            if queue_digest(session, loaded, d, render_digest(d, loaded), channel=config.channel):
                posted.append(week)
    if missed:
        log.warning("weekly digests %s were missed (scheduler down) and are too old to post", ", ".join(missed))
        with ctx.db.transaction() as session:
            records = [
                AuditRecord(now, ctx.actor, "digest.skipped", f"digest:{w}", {"why": "missed by more than 4 weeks"})
                for w in missed
                if claim_period(session, JOB, w, now=now, detail={"skipped": True})
            ]
            audit_log.append(session, records)
    return {"posted": posted, "skipped": missed}


# --- text and HTML (``loopgate digest --print`` / ``--html``) ------------------------------------


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _mins(value: float | None) -> str:
    return "—" if value is None else f"{value / 60:.1f} min"


def digest_lines(d: Digest) -> list[str]:
    """The digest as plain lines (figures only; CRM text kept raw, for a terminal)."""
    lines = [
        f"Weekly audit {d.week} ({d.start:%Y-%m-%d %H:%M}–{d.end:%Y-%m-%d %H:%M} UTC, {d.timezone} week)",
        f"policy {d.policy_version} · generated {d.generated_at:%Y-%m-%d %H:%M} UTC",
        "",
        f"decisions            {d.decisions:,}  auto {_pct(d.share('auto'))} · review {_pct(d.share('review'))}"
        f" · suppress {_pct(d.share('suppress'))}",
    ]
    for name in ("all", "review", "first_touch"):
        speed = d.speed[name]
        lines.append(f"first response {name:<11} median {_mins(speed.median)} · p90 {_mins(speed.p90)} (n={speed.n:,})")
    for name, a in d.sla.items():
        lines.append(
            f"SLA {name:<16} {_pct(a.rate)} in time ({a.met:,} met, {a.missed:,} missed, {a.pending:,} running)"
        )
    lines += ["", f"reviews              {d.reviews:,}, overrides {d.overrides:,} ({_pct(d.override_rate)})"]
    lines += [f"  reason {r.label}: {r.overrides:,} overrides, {r.flags:,} audit flags" for r in d.by_reason]
    lines += [f"  reviewer {r.name}: {r.overrides:,} of {r.reviews:,} ({_pct(r.rate)})" for r in d.by_rep]
    lines.append("")
    for seg in d.segments:
        change = f" — {', '.join(seg.changes)}" if seg.changes else ""
        lines.append(
            f"segment {seg.segment:<14} agreement {_pct(seg.rate)} of {seg.verdicts:,} · level {seg.level}{change}"
        )
    lines.append("")
    if d.has_outcomes:
        for b in d.conversion:
            lift = f"{b.lift:.2f}×" if b.lift is not None else "—"
            lines.append(f"conversion {b.band:<10} {_pct(b.rate)} ({b.converted:,}/{b.leads:,}) lift {lift}")
    else:
        lines.append(f"conversion           no outcomes yet (cohort since {d.conversion_since:%Y-%m-%d})")
    psi = "—" if d.drift.psi is None else f"{d.drift.psi:.4f}"
    lines.append(f"score drift (PSI)    {psi} — {d.drift.label}")
    lines.append("")
    for label, rows in (("segment", d.fairness_segment), ("country", d.fairness_country)):
        for f in rows:
            rates = f"review {_pct(f.review_rate)} · suppress {_pct(f.suppress_rate)}"
            lines.append(f"fairness {label} {f.group:<10} {rates} (n={f.n:,})")
    lines += ["", f"audit sample         {len(d.sample)} of {d.sampled_total:,} shown"]
    lines += [f"  #{i.decision_pk} {i.lead} ({i.company or '—'}) {i.band} {i.score} → {i.owner}" for i in d.sample]
    return lines


def digest_text(d: Digest) -> str:
    return "\n".join(digest_lines(d)) + "\n"


def digest_html(d: Digest, chart: bytes) -> str:
    """A standalone HTML page: the figures (every value escaped) and the chart inline."""
    body = "\n".join(html.escape(line) for line in digest_lines(d))
    image = base64.b64encode(chart).decode("ascii")
    title = html.escape(f"loopgate weekly audit {d.week}")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:72rem}"
        "pre{font-size:.9rem;line-height:1.35}img{max-width:100%}</style></head><body>\n"
        f'<h1>{title}</h1>\n<img alt="digest chart" src="data:image/png;base64,{image}">\n'
        f"<pre>{body}</pre>\n</body></html>\n"
    )
