"""The Reassign and Override modals. Choices come from the policy (reps, bands, reason codes
whose ``applies_to`` includes the use), and the decision travels in ``private_metadata``.
``now`` marks the reps who are out of office today in the owner picker.

Each input block has a stable block id (:mod:`bot.ids`) with one element whose action id is
``value``; :func:`read_submission` reads a ``view_submission`` back into plain values, and
validation errors are returned against those block ids with ``response_action: errors``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    InputBlock,
    Option,
    PlainTextInputElement,
    StaticSelectElement,
    UserSelectElement,
)
from slack_sdk.models.views import View

from bot import ids
from bot.blocks.common import metadata_json, option, option_group, plain, section, validate_view
from bot.blocks.escalation import band_line
from bot.cards import Card
from bot.text import esc
from core.policy.schema import Rep
from core.review import NOTE_MAX, OVERRIDE_ACTIONS, Proposal, ReviewRules

__all__ = ["Origin", "Submission", "override_modal", "read_origin", "read_submission", "reassign_modal"]

STATIC_OPTIONS_MAX = 100


@dataclass(frozen=True, slots=True)
class Origin:
    """Where the modal was opened from, so the reply lands in the same place."""

    decision_pk: int
    channel: str | None = None  # the channel or DM of the clicked message
    message_ts: str | None = None
    home: bool = False

    def encode(self) -> str:
        return metadata_json({"d": self.decision_pk, "c": self.channel, "t": self.message_ts, "h": int(self.home)})


def read_origin(private_metadata: str) -> Origin:
    data = json.loads(private_metadata or "{}")
    return Origin(int(data["d"]), data.get("c"), data.get("t"), bool(data.get("h")))


@dataclass(frozen=True, slots=True)
class Submission:
    owner: str | None
    reason_code: str | None
    note: str | None
    action: str | None
    band: str | None


def _value(values: dict[str, Any], block: str) -> str | None:
    element = (values.get(block) or {}).get(ids.INPUT_ELEMENT) or {}
    kind = element.get("type")
    if kind == "static_select":
        selected = element.get("selected_option") or {}
        return selected.get("value")
    if kind == "users_select":
        return element.get("selected_user")
    value = element.get("value")
    return str(value) if value is not None else None


def read_submission(view: dict[str, Any]) -> Submission:
    values = (view.get("state") or {}).get("values") or {}
    return Submission(
        owner=_value(values, ids.BLOCK_OWNER),
        reason_code=_value(values, ids.BLOCK_REASON),
        note=_value(values, ids.BLOCK_NOTE),
        action=_value(values, ids.BLOCK_ACTION),
        band=_value(values, ids.BLOCK_BAND),
    )


def _select(options: list[Option], *, initial: str | None = None, placeholder: str = "Choose…") -> StaticSelectElement:
    chosen = next((o for o in options if o.value == initial), None)
    return StaticSelectElement(
        action_id=ids.INPUT_ELEMENT, options=options, initial_option=chosen, placeholder=plain(placeholder, 150)
    )


def _owner_element(
    rules: ReviewRules, proposal: Proposal, now: datetime, *, exclude: str | None, initial: str | None
) -> Any:
    """The policy's reps grouped by team; a user picker when there are too many to list.

    Reps who cannot own this lead stay listed, marked with why, so the person looking for them
    learns the reason here rather than wondering where they went (picking one is refused)."""
    reps = [r for r in rules.assignable_reps() if r.id != exclude]
    if len(reps) > STATIC_OPTIONS_MAX:
        initial_user = rules.roster.reps[initial].slack_user if initial in rules.roster.reps else None
        return UserSelectElement(
            action_id=ids.INPUT_ELEMENT, initial_user=initial_user, placeholder=plain("Pick a rep", 150)
        )
    teams = {t.id: t.name or t.id for t in rules.policy.teams}
    grouped: dict[str, list[Option]] = {}
    labels = {r.id: _rep_label(rules, proposal, r, now) for r in reps}
    for rep in reps:
        grouped.setdefault(teams.get(rep.team or "", "No team"), []).append(option(labels[rep.id], rep.id))
    chosen = next((option(labels[r.id], r.id) for r in reps if r.id == initial), None)
    if len(grouped) == 1:
        return StaticSelectElement(
            action_id=ids.INPUT_ELEMENT,
            options=next(iter(grouped.values())),
            initial_option=chosen,
            placeholder=plain("Pick a rep", 150),
        )
    return StaticSelectElement(
        action_id=ids.INPUT_ELEMENT,
        option_groups=[option_group(label, opts) for label, opts in grouped.items()],
        initial_option=chosen,
        placeholder=plain("Pick a rep", 150),
    )


def _rep_label(rules: ReviewRules, proposal: Proposal, rep: Rep, now: datetime) -> str:
    unfit = rules.unfit_owner(rep, proposal, now)
    return f"{rep.name} ({unfit})" if unfit else rep.name


def _reason_block(rules: ReviewRules, use: str) -> InputBlock:
    reasons = [option(c.label, c.code) for c in rules.reasons_for(use)][:STATIC_OPTIONS_MAX]
    return InputBlock(block_id=ids.BLOCK_REASON, label=plain("Reason", 2000), element=_select(reasons))


def _note_block() -> InputBlock:
    return InputBlock(
        block_id=ids.BLOCK_NOTE,
        label=plain("Note", 2000),
        optional=True,
        element=PlainTextInputElement(action_id=ids.INPUT_ELEMENT, multiline=True, max_length=NOTE_MAX),
        hint=plain("Optional: what the next person should know. Kept with the decision.", 2000),
    )


def _summary(card: Card) -> Block:
    lead = card.lead
    title = esc(lead.name) + (f" · {esc(lead.company)}" if lead.company else "")
    return section(f"*{title}*\n{band_line(card)}\n*Recommended owner:* {esc(card.owner_name)}")


def reassign_modal(card: Card, rules: ReviewRules, origin: Origin, now: datetime) -> dict[str, Any]:
    exclude = card.proposal.owner if card.proposal.owner_kind == "rep" else None
    blocks: list[Block] = [
        _summary(card),
        InputBlock(
            block_id=ids.BLOCK_OWNER,
            label=plain("New owner", 2000),
            element=_owner_element(rules, card.proposal, now, exclude=exclude, initial=None),
        ),
        _reason_block(rules, "reassign"),
        _note_block(),
    ]
    view = View(
        type="modal",
        callback_id=ids.REASSIGN_VIEW,
        title=plain("Reassign lead", 24),
        submit=plain("Reassign", 24),
        close=plain("Cancel", 24),
        private_metadata=origin.encode(),
        blocks=blocks,
    )
    return validate_view(view, where=f"reassign modal {card.decision_pk}")


def override_modal(card: Card, rules: ReviewRules, origin: Origin, now: datetime) -> dict[str, Any]:
    actions = [option(label, code) for code, label in OVERRIDE_ACTIONS.items()]
    bands = [option(b.capitalize(), b) for b in rules.bands]
    owner = card.proposal.owner if card.proposal.owner_kind == "rep" else None
    blocks: list[Block] = [
        _summary(card),
        InputBlock(
            block_id=ids.BLOCK_ACTION,
            label=plain("Action", 2000),
            element=_select(actions, initial=card.proposal.action),
        ),
        InputBlock(
            block_id=ids.BLOCK_BAND, label=plain("Band", 2000), element=_select(bands, initial=card.proposal.band)
        ),
        InputBlock(
            block_id=ids.BLOCK_OWNER,
            label=plain("Owner", 2000),
            optional=True,
            element=_owner_element(rules, card.proposal, now, exclude=None, initial=owner),
            hint=plain("Leave as it is to keep the recommended owner.", 2000),
        ),
        _reason_block(rules, "override"),
        _note_block(),
    ]
    view = View(
        type="modal",
        callback_id=ids.OVERRIDE_VIEW,
        title=plain("Override decision", 24),
        submit=plain("Override", 24),
        close=plain("Cancel", 24),
        private_metadata=origin.encode(),
        blocks=blocks,
    )
    return validate_view(view, where=f"override modal {card.decision_pk}")
