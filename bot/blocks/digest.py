"""The weekly audit digest in Slack: the summary for the leaders' channel, and the audit sample
with Confirm / Flag… buttons (and the Flag modal, which asks for a reason code).

Read top to bottom, the summary answers what a leader asks on Monday: how much was decided and
how (shares), how fast people responded and whether SLAs held, where people disagreed with
automation and why (reason codes, reviewers), how much each segment's automation is trusted
and whether that changed, whether the score still predicts conversion, whether the score
distribution drifted, and whether review and suppression fall evenly across segments and
countries. Names and reason labels come from the policy; lead text from the CRM is escaped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk.models.blocks import Block, InputBlock, PlainTextInputElement, StaticSelectElement
from slack_sdk.models.views import View

from bot import ids
from bot.blocks.common import (
    Message,
    actions,
    button,
    context,
    divider,
    header,
    metadata_json,
    option,
    plain,
    section,
    slack_date,
    validate_message,
    validate_view,
)
from bot.text import esc, mrkdwn_value, span
from core.digest import Digest, SampleItem, Speed
from core.review import NOTE_MAX

__all__ = [
    "FlagOrigin",
    "digest_message",
    "flag_modal",
    "read_flag_origin",
    "sample_message",
    "verdict_line",
]

ROWS_SHOWN = 6
_LEVELS = {1: "verify everything", 2: "verify exceptions", 3: "periodic audit", 4: "strategic oversight"}
_BAND_ICONS = {"hot": "🔥", "warm": "🌤️", "cold": "🧊"}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _secs(value: float | None) -> str:
    return "—" if value is None else span(timedelta(seconds=value))


def _week_title(d: Digest) -> str:
    first_day = d.start.astimezone(ZoneInfo(d.timezone)).date()
    last_day = first_day + timedelta(days=6)
    return f"Weekly audit · {d.week} ({first_day:%d %b}–{last_day:%d %b})"


def _volume(d: Digest) -> str:
    if not d.decisions:
        return "*No decisions this week.*"
    return (
        f"*{d.decisions:,} decisions* — 🤖 automatic {_pct(d.share('auto'))} · 🙋 reviewed by a person "
        f"{_pct(d.share('review'))} · 🔇 suppressed {_pct(d.share('suppress'))}"
    )


def _speed_line(name: str, s: Speed) -> str:
    return f"{name} median {_secs(s.median)}, p90 {_secs(s.p90)} (n={s.n:,})"


def _timing(d: Digest) -> str:
    everything, review, touch = d.speed["all"], d.speed["review"], d.speed["first_touch"]
    lines = [f"*Speed to first response:* median {_secs(everything.median)} · p90 {_secs(everything.p90)}"]
    lines.append(f"   {_speed_line('reviews', review)} · {_speed_line('first touch', touch)}")
    att = d.sla.get("all")
    if att is None or att.met + att.missed + att.pending == 0:
        lines.append("*SLA attainment:* no deadlines this week")
    else:
        parts = [
            f"{label} {_pct(d.sla[kind].rate)}"
            for kind, label in (("review", "reviews"), ("first_touch", "first touch"))
            if kind in d.sla
        ]
        running = f"; {att.pending:,} still running" if att.pending else ""
        lines.append(
            f"*SLA attainment:* {_pct(att.rate)} ({att.met:,} of {att.met + att.missed:,} in time{running})"
            + (f" — {', '.join(parts)}" if parts else "")
        )
    return "\n".join(lines)


def _disagreement(d: Digest) -> str:
    if not d.reviews and not any(r.flags for r in d.by_reason):
        return "*Where people disagreed:* no reviews or audit flags this week"
    lines = [
        f"*Where people disagreed:* {d.overrides:,} of {d.reviews:,} reviews changed what automation proposed "
        f"({_pct(d.override_rate)})"
    ]
    for row in d.by_reason[:ROWS_SHOWN]:
        what = []
        if row.overrides:
            what.append(f"{row.overrides:,} override{'s' if row.overrides != 1 else ''}")
        if row.flags:
            what.append(f"{row.flags:,} audit flag{'s' if row.flags != 1 else ''}")
        lines.append(f"• {esc(row.label)} — {', '.join(what)}")
    if d.by_rep:
        reps = [f"{esc(r.name)} {r.overrides}/{r.reviews} ({_pct(r.rate)})" for r in d.by_rep[:ROWS_SHOWN]]
        lines.append("*Overrides by reviewer:* " + " · ".join(reps))
    return "\n".join(lines)


def _trust(d: Digest) -> str:
    lines = ["*Agreement and trust by segment* (reviews and audit verdicts this week)"]
    for s in d.segments:
        level = f"level {s.level} ({_LEVELS.get(s.level, '?')}){' 📌' if s.pinned else ''}"
        change = f" — *{esc(', '.join(s.changes))} this week*" if s.changes else ""
        agreement = f"{_pct(s.rate)} of {s.verdicts:,}" if s.verdicts else "no verdicts"
        lines.append(f"• {esc(s.segment)}: {agreement} · {level}{change}")
    return "\n".join(lines)


def _conversion(d: Digest) -> str:
    since = slack_date(d.conversion_since, "{date_short}")
    if not d.has_outcomes:
        return f"*Conversion by band:* no outcomes yet for leads first decided since {since}"
    rows = [
        f"{_BAND_ICONS.get(b.band, '•')} {esc(b.band)} {_pct(b.rate)} ({b.converted:,}/{b.leads:,})"
        + (f" · lift {b.lift:.1f}×" if b.lift is not None else "")
        for b in d.conversion
    ]
    return f"*Conversion by band* (leads first decided in the 4 weeks before): {' · '.join(rows)}"


def _drift(d: Digest) -> str:
    value = "—" if d.drift.psi is None else f"{d.drift.psi:.3f}"
    return f"*Score drift:* PSI {value} — {d.drift.label} (this week's scores against the 4 weeks before)"


def _fairness(d: Digest) -> list[str]:
    def rows(title: str, items: Sequence[Any]) -> str:
        lines = [f"*{title}* (review · suppress)"]
        lines += [
            f"{mrkdwn_value(r.group, 40)}: {_pct(r.review_rate)} · {_pct(r.suppress_rate)} (n={r.n:,})"
            for r in items[: ROWS_SHOWN + 3]
        ]
        return "\n".join(lines)

    return [rows("By segment", d.fairness_segment), rows("By country", d.fairness_country)]


def digest_message(d: Digest) -> Message:
    """The summary posted to the leaders' channel."""
    blocks: list[Block] = [
        header(_week_title(d)),
        section(_volume(d)),
        section(_timing(d)),
        divider(),
        section(_disagreement(d)),
        section(_trust(d)),
        divider(),
        section(_conversion(d)),
        section(_drift(d)),
        section("*Fairness:* how often review and suppression happen, by group", fields=_fairness(d)),
        context(
            f"policy {esc(d.policy_version)} · {esc(d.timezone)} week · generated {slack_date(d.generated_at)} · "
            f"audit sample: {d.sampled_total:,} automatic decisions · "
            f"full report: `loopgate digest --week {esc(d.week)} --html FILE`"
        ),
    ]
    text = (
        f"Weekly audit {d.week}: {d.decisions:,} decisions, {_pct(d.share('auto'))} automatic, "
        f"override rate {_pct(d.override_rate)}, SLA {_pct(d.sla['all'].rate if 'all' in d.sla else None)}"
    )
    return validate_message(text, blocks, where=f"digest {d.week}")


# --- the audit sample ---------------------------------------------------------------------


def verdict_line(verdicts: Sequence[Mapping[str, Any]], reasons: Mapping[str, str]) -> str:
    """``✅ Confirmed by Lee · 🚩 Flagged by Mo (Bad data)`` for the verdicts given so far."""
    parts = []
    for v in verdicts:
        who = esc(v.get("by") or "someone")
        if v.get("verdict") == "confirm":
            parts.append(f"✅ Confirmed by {who}")
        else:
            reason = reasons.get(str(v.get("reason_code")), str(v.get("reason_code") or ""))
            parts.append(f"🚩 Flagged by {who}" + (f" ({esc(reason)})" if reason else ""))
    return " · ".join(parts)


def _sample_item(
    week: str, item: SampleItem, verdicts: Sequence[Mapping[str, Any]], reasons: Mapping[str, str]
) -> list[Block]:
    title = f"*{mrkdwn_value(item.lead, 150)}*" + (f" · {mrkdwn_value(item.company, 150)}" if item.company else "")
    facts = (
        f"{_BAND_ICONS.get(item.band, '•')} {esc(item.band)} {item.score} · {esc(item.segment)} · "
        f"→ {esc(item.owner)} · confidence {item.confidence:.0%} · decision #{item.decision_pk}"
    )
    done = verdict_line(verdicts, reasons)
    blocks: list[Block] = [section(f"{title}\n{facts}" + (f"\n{done}" if done else ""))]
    pk = str(item.decision_pk)
    blocks.append(
        actions(
            [
                button("Confirm", ids.AUDIT_CONFIRM, pk, style="primary"),
                button("Flag…", ids.AUDIT_FLAG, pk, style="danger"),
            ],
            block_id=f"audit:{week}:{pk}",
        )
    )
    return blocks


def sample_message(
    week: str,
    items: Sequence[SampleItem],
    total: int,
    *,
    verdicts: Mapping[int, Sequence[Mapping[str, Any]]] | None = None,
    reasons: Mapping[str, str] | None = None,
) -> Message:
    """The week's sampled automatic decisions, each to confirm or flag (≤ 24 fit one message)."""
    shown = list(items)[:24]
    blocks: list[Block] = [
        header(f"Audit sample · {week}"),
        section(
            f"{len(shown)} of the {total:,} automatic decisions sampled this week. Would you have decided the same? "
            "*Confirm* or *Flag…* (with a reason): your answers count towards each segment's trust level."
        ),
    ]
    for item in shown:
        blocks += _sample_item(week, item, (verdicts or {}).get(item.decision_pk, ()), reasons or {})
    return validate_message(f"Audit sample {week}: {len(shown)} automatic decisions to confirm or flag", blocks)


@dataclass(frozen=True, slots=True)
class FlagOrigin:
    """Where the Flag… button was clicked: the decision, and the sample message to refresh."""

    decision_pk: int
    week: str
    channel: str | None
    message_ts: str | None


def read_flag_origin(private_metadata: str) -> FlagOrigin:
    data = json.loads(private_metadata or "{}")
    return FlagOrigin(int(data["d"]), str(data.get("w") or ""), data.get("c"), data.get("t"))


def flag_modal(item_title: str, reasons: Sequence[tuple[str, str]], origin: FlagOrigin) -> dict[str, Any]:
    """Flag an automatic decision: a reason code (required) and an optional note."""
    blocks: list[Block] = [
        section(f"Flag decision #{origin.decision_pk}: {item_title}"),
        InputBlock(
            block_id=ids.BLOCK_REASON,
            label=plain("Reason", 2000),
            element=StaticSelectElement(
                action_id=ids.INPUT_ELEMENT,
                options=[option(label, code) for code, label in reasons][:100],
                placeholder=plain("Choose…", 150),
            ),
        ),
        InputBlock(
            block_id=ids.BLOCK_NOTE,
            label=plain("Note", 2000),
            optional=True,
            element=PlainTextInputElement(action_id=ids.INPUT_ELEMENT, multiline=True, max_length=NOTE_MAX),
            hint=plain("Optional: what automation missed. Kept with the verdict.", 2000),
        ),
    ]
    metadata = metadata_json({"d": origin.decision_pk, "w": origin.week, "c": origin.channel, "t": origin.message_ts})
    view = View(
        type="modal",
        callback_id=ids.AUDIT_FLAG_VIEW,
        title=plain("Flag decision", 24),
        submit=plain("Flag", 24),
        close=plain("Cancel", 24),
        private_metadata=metadata,
        blocks=blocks,
    )
    return validate_view(view, where=f"flag modal {origin.decision_pk}")
