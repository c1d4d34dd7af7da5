"""The escalation message: why a lead needs a person, and the buttons to decide.

Read top to bottom it answers, in this order: who is the lead (header), how good is it and
whose is it (score, recommended owner and why, next-best-action, due time), why automation
stopped (each trigger with its detail), then the buttons — and below them the CRM facts and
the evidence behind every point, for whoever wants to check. After a decision the same
message is rebuilt with the outcome — who decided what, when, and why — in place of the
buttons.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import Block

from bot import ids
from bot.blocks.common import (
    Message,
    actions,
    button,
    context,
    header,
    quote,
    section,
    slack_date,
    validate_message,
)
from bot.cards import Card, LeadFacts
from bot.text import esc, mrkdwn_value, shown

__all__ = [
    "BAND_ICONS",
    "band_line",
    "decision_buttons",
    "escalation_message",
    "lead_fields",
    "outcome_line",
    "superseded_because",
    "trigger_lines",
]

BAND_ICONS = {"hot": "🔥", "warm": "🌤️", "cold": "🧊"}
TRIGGER_LABELS = {
    "strategic_account": "Strategic account",
    "high_deal_size": "High deal size",
    "regulated_industry": "Regulated industry",
    "conflicting_signals": "Conflicting signals",
    "score_volatility": "Score moved fast",
    "missing_data": "Missing data",
    "duplicate_ownership": "Owned elsewhere",
    "gray_zone": "On a band edge",
    "vip": "VIP",
    "customer_signal": "Customer asked to pause",
    "low_confidence": "Low confidence",
}
EVIDENCE_SHOWN = 12
# why an escalation no longer waits for its review, by what decided the lead again
# (``decisions.cause`` of the decision that replaced it); anything else: the lead changed
SUPERSEDED_BECAUSE = {
    "reroute": "its deadline passed and the lead was re-routed",
    "conflict": "its owner was changed in the CRM, so the lead was decided again",
    "unpark": "the lead was taken out of the queue for a rep with room",
}


def trigger_label(code: str) -> str:
    return TRIGGER_LABELS.get(code, code.replace("_", " ").capitalize())


def superseded_because(card: Card) -> str:
    """Why a superseded escalation is out of date, by its cause: someone refused because of an
    SLA re-route must not be told the lead changed."""
    return SUPERSEDED_BECAUSE.get(card.superseded_cause or "", "the lead changed and was decided again")


def band_line(card: Card, band: str | None = None) -> str:
    """Band, score and segment; ``band`` overrides automation's band (a person's review set it)."""
    score = card.contract.get("score") or {}
    band = band or str(score.get("band") or card.proposal.band)
    parts = [f"*{BAND_ICONS.get(band, '•')} {esc(band.capitalize())} · {score.get('total', card.proposal.score)}/100*"]
    breakdown = [f"{k} {score[k]}" for k in ("fit", "intent", "completeness") if k in score]
    if breakdown:
        parts.append(f"({' · '.join(breakdown)})")
    if "confidence" in score:
        parts.append(f"· confidence {round(float(score['confidence']) * 100)}%")
    parts.append(f"· {esc(str(card.contract.get('segment') or card.proposal.segment).replace('_', ' '))}")
    return " ".join(parts)


def owner_line(card: Card) -> str:
    who = esc(card.owner_name)
    if card.owner_slack:
        who = f"<@{card.owner_slack}> ({who})"
    elif card.proposal.owner_kind == "queue":
        who = f"queue *{who}*"
    route = card.contract.get("route") or {}
    detail = mrkdwn_value(route.get("detail") or route.get("rule") or "", 400)
    return f"*Recommended owner:* {who}" + (f" — {detail}" if detail else "")


def next_action_label(card: Card) -> str:
    return str((card.contract.get("next_best_action") or {}).get("label") or "")


def trigger_lines(card: Card, limit: int = 10) -> str:
    triggers: list[dict[str, Any]] = list(card.contract.get("triggers") or [])
    if not triggers:
        return "*Why it needs a person:* the segment's trust level asks a person to confirm every decision."
    lines = ["*Why it needs a person*"]
    for t in triggers[:limit]:
        lock = "🔒 " if t.get("hard") else ""
        lines.append(f"• {lock}*{esc(trigger_label(str(t.get('code'))))}* — {mrkdwn_value(t.get('detail') or '', 300)}")
    if len(triggers) > limit:
        lines.append(f"• …and {len(triggers) - limit} more")
    return "\n".join(lines)


def lead_fields(lead: LeadFacts) -> list[str]:
    """Up to 10 section fields of CRM facts, escaped and clipped."""
    deal = f"${shown(lead.deal_size)}" if lead.deal_size else None
    rows = [
        ("Title", lead.title),
        ("Company", lead.company),
        ("Email", lead.email),
        ("Country", lead.country),
        ("Employees", lead.employees),
        ("Industry", lead.industry),
        ("Deal size", deal),
        ("Lead source", lead.lead_source),
    ]
    return [f"*{name}*\n{mrkdwn_value(shown(value), 300)}" for name, value in rows]


def evidence_lines(card: Card) -> str:
    evidence: list[dict[str, Any]] = list(card.contract.get("evidence") or [])
    if not evidence:
        return ""
    ranked = sorted(evidence, key=lambda e: -abs(int(e.get("points") or 0)))
    lines = ["*Score evidence*"]
    for e in ranked[:EVIDENCE_SHOWN]:
        points = int(e.get("points") or 0)
        value = mrkdwn_value(shown(e.get("value")), 80)
        rule = mrkdwn_value(e.get("rule") or "", 120)
        lines.append(f"`{points:+d}` {esc(e.get('signal'))} = {value} — {rule}")
    if len(ranked) > EVIDENCE_SHOWN:
        rest = sum(int(e.get("points") or 0) for e in ranked[EVIDENCE_SHOWN:])
        lines.append(f"`{rest:+d}` from {len(ranked) - EVIDENCE_SHOWN} smaller signals")
    return "\n".join(lines)


def decision_buttons(card: Card, *, block_id: str) -> Block:
    """Approve, Reassign…, Override… and the next-best-action, valued with the decision pk."""
    pk = str(card.decision_pk)
    elements = [
        button("Approve", ids.APPROVE, pk, style="primary"),
        button("Reassign…", ids.REASSIGN, pk),
        button("Override…", ids.OVERRIDE, pk),
    ]
    label = next_action_label(card)
    if label and card.proposal.owner_kind == "rep":
        elements.append(button(f"▶ {label}", ids.NEXT_BEST_ACTION, pk))
    return actions(elements, block_id=block_id)


_VERBS = {"approve": ("✅", "Approved"), "reassign": ("↪️", "Reassigned"), "override": ("✏️", "Overridden")}


def outcome_line(card: Card) -> str:
    """Who decided what, when and why — or why nobody needs to any more."""
    o = card.outcome
    if o is not None:
        icon, verb = _VERBS.get(o.kind, ("•", o.kind))
        who = esc(o.by_name)
        line = f"{icon} *{verb}* by {who} {slack_date(o.at)}"
        if o.kind == "approve" and o.final_action == "suppress":
            line += " — stays suppressed: nobody is assigned or pinged"
        elif o.kind == "approve":
            line += f" — assigned to {esc(o.final_owner_name or card.owner_name)}"
            if o.took_next_best_action:
                line += f", who is on it: {mrkdwn_value(next_action_label(card), 200)}"
        elif o.changes:
            line += ": " + "; ".join(esc(c) for c in o.changes)
        if o.reason_label:
            line += f"\n*Reason:* {esc(o.reason_label)}"
        if o.note:
            line += "\n" + quote(o.note)
        return line
    if card.state == "superseded":
        newer = f" (decision #{card.superseded_by})" if card.superseded_by else ""
        return f"⏭️ *No longer needs this review:* {superseded_because(card)}{newer}."
    if card.state == "pending_review":
        return ""
    return f"ℹ️ This decision is *{esc(card.state.replace('_', ' '))}*."


def _footer(card: Card) -> str:
    c = card.contract
    lead = card.lead
    return (
        f"Decision #{card.decision_pk} · {esc(lead.source)} lead {mrkdwn_value(lead.lead_id, 64)}"
        f" · policy {esc(c.get('policy_version') or '')} · trust level {c.get('trust_level', '?')}"
        f" · decided {slack_date(card.decided_at)}"
    )


def _title(card: Card) -> str:
    lead = card.lead
    title = lead.name + (f" · {lead.company}" if lead.company else "")
    prefix = {"approve": "Approved", "reassign": "Reassigned", "override": "Overridden"}
    if card.outcome is not None:
        return f"{prefix.get(card.outcome.kind, 'Decided')}: {title}"
    if card.state == "superseded":
        return f"Out of date: {title}"
    if card.state == "applied":
        action = card.contract.get("action")
        return f"{'Suppressed' if action == 'suppress' else 'Assigned automatically'}: {title}"
    return f"Review: {title}"


def escalation_message(card: Card, *, audience: str = "channel") -> Message:
    """The escalation for the review channel (``channel``), the proposed owner's DM (``owner``)
    or a ``/loopgate lead`` lookup (``lookup``: no buttons, says where to decide)."""
    blocks: list[Block] = [header(_title(card))]
    if audience == "owner" and card.pending:
        blocks.append(section(f"You are the recommended owner of this lead. It is also in <#{card.channel}>."))
    summary = [band_line(card), owner_line(card)]
    label = next_action_label(card)
    if label:
        summary.append(f"*Next best action:* {mrkdwn_value(label, 300)}")
    if card.pending and card.due_text:
        summary.append(f"*Decide by:* {esc(card.due_text)}")
    blocks.append(section("\n".join(summary)))
    if card.state == "applied":
        explanation = card.contract.get("explanation") or "automation decided within the policy's trust level"
        blocks.append(section(f"*No person needed:* {mrkdwn_value(explanation, 1500)}"))
    else:
        blocks.append(section(trigger_lines(card)))
    # the decision right under the reasons for it; the details to check follow
    if card.pending and audience == "lookup":
        blocks.append(
            section(f"⏳ Waiting for a person: decide on the escalation in <#{card.channel}> or on the Home tab.")
        )
    elif card.pending:
        blocks.append(decision_buttons(card, block_id=f"review:{card.decision_pk}"))
    elif card.state != "applied":
        blocks.append(section(outcome_line(card)))
    blocks.append(section("", fields=lead_fields(card.lead)))
    evidence = evidence_lines(card)
    if evidence:
        blocks.append(section(evidence))
    blocks.append(context(_footer(card)))
    return validate_message(fallback_text(card), blocks, where=f"escalation {card.decision_pk}")


def fallback_text(card: Card) -> str:
    """The notification line (escaped: Slack parses this text too)."""
    lead = card.lead
    company = f" ({esc(lead.company)})" if lead.company else ""
    score = card.contract.get("score") or {}
    triggers = ", ".join(trigger_label(str(t.get("code"))) for t in card.contract.get("triggers") or [])
    if card.outcome is not None:
        return f"{_VERBS[card.outcome.kind][1]} by {esc(card.outcome.by_name)}: {esc(lead.name)}{company}"
    if card.state == "superseded":
        return f"Out of date: {esc(lead.name)}{company} was decided again"
    return (
        f"Review needed: {esc(lead.name)}{company} — {esc(score.get('band', ''))} {score.get('total', '')}"
        + (f", {esc(triggers)}" if triggers else "")
        + f". Recommended owner: {esc(card.owner_name)}."
    )
