"""Simulated people for the demo: reviewers who click the real escalation messages and fill in
the real modals, and reps who answer their SLA nudges — every click a signed request from the
fake Slack to loopgate's ``/slack/events``, as Slack would send it.

The mix is fixed by a seeded random generator: most escalations approved, some reassigned or
overridden with a reason code, a few clicked first by someone not allowed to act (they are
refused), one modal submitted without a reason (the modal shows the error), and about one in
ten left alone so the SLA timers have something to do. An escalation a re-route sends to
someone new is answered by them, at the next SLA checkpoint: the demo shows a re-route that
works (a second lapse is not simulated).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from bot import ids
from core.store.db import Database
from core.store.models import Decision, SlackMessage
from loopgate.runtime import Runtime
from loopgate.sandbox.slack import FakeSlack

__all__ = ["Crowd", "Tally"]


@dataclass
class Tally:
    clicks: int = 0
    refused: int = 0
    modal_errors: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    first_touches: int = 0


@dataclass(frozen=True)
class _Escalation:
    decision_pk: int
    channel: str
    ts: str
    owner: str | None
    owner_kind: str
    team: str | None


class Crowd:
    """The people of the demo org, acting through the fake Slack against a running bot."""

    def __init__(self, runtime: Runtime, slack: FakeSlack, db: Database, *, seed: int = 11) -> None:
        self.runtime, self.slack, self.db = runtime, slack, db
        self.rules = runtime.context.rules
        self.rng = random.Random(seed)  # noqa: S311 - a simulation, not security
        self.tally = Tally()
        self._answered: set[tuple[str, str]] = set()
        self._looked_at: set[int] = set()

    # --- who --------------------------------------------------------------------------------

    def _slack_of(self, person: str | None) -> str | None:
        rep = self.rules.roster.reps.get(person or "")
        return rep.slack_user if rep is not None else None

    def _deciders(self, esc: _Escalation) -> list[str]:
        """Who may act: the proposed owner, the team's manager, the admin."""
        people = []
        if esc.owner_kind == "rep" and self._slack_of(esc.owner):
            people.append(str(self._slack_of(esc.owner)))
        team = self.rules.roster.teams.get(esc.team or "")
        if team is not None and self._slack_of(team.manager):
            people.append(str(self._slack_of(team.manager)))
        return people or ["U01REV"]

    def _outsider(self, esc: _Escalation) -> str:
        """A rep of another team: not allowed to decide this lead."""
        others = [r.slack_user for r in self.rules.roster.reps.values()
                  if r.slack_user and r.team and r.team != esc.team and "rep" in r.roles]  # fmt: skip
        return self.rng.choice(others) if others else "U0GUEST"

    # --- escalations --------------------------------------------------------------------------

    def pending(self) -> list[_Escalation]:
        """Escalations in the review channels still waiting for a person, oldest first."""
        with self.db.sessions() as s:
            rows = s.execute(
                select(SlackMessage.channel, SlackMessage.ts, Decision)
                .join(Decision, Decision.pk == SlackMessage.decision_pk)
                .where(SlackMessage.key.like("escalation:%:channel"), Decision.state == "pending_review")
                .order_by(Decision.pk)
            ).all()
        return [_Escalation(d.pk, ch, ts, d.owner, d.owner_kind, d.team) for ch, ts, d in rows]

    def review(self, share: float = 0.9) -> Tally:
        """Decide ``share`` of the pending escalations not looked at before (the rest wait: SLA
        timers run). Called again later, it answers only the escalations posted since — those
        a re-route sent to someone new."""
        for esc in self.pending():
            if esc.decision_pk in self._looked_at:
                continue
            self._looked_at.add(esc.decision_pk)
            if self.rng.random() >= share:
                continue
            deciders = self._deciders(esc)
            if self.rng.random() < 0.06:
                self._click(self._outsider(esc), ids.APPROVE, esc)
                self.tally.refused += 1
            roll = self.rng.random()
            if roll < 0.68:
                self._click(self.rng.choice(deciders), ids.APPROVE, esc)
                self.tally.kinds["approve"] += 1
            elif roll < 0.84:
                self._modal(deciders[-1], ids.REASSIGN, esc)
            else:
                self._modal(deciders[-1], ids.OVERRIDE, esc)
        self.runtime.pool.wait_idle(30)
        return self.tally

    def _click(self, user: str, action: str, esc: _Escalation) -> None:
        self.slack.click(user, action, channel=esc.channel, ts=esc.ts, value=str(esc.decision_pk))
        self.tally.clicks += 1
        self.runtime.pool.wait_idle(10)

    def _modal(self, user: str, action: str, esc: _Escalation) -> None:
        self._click(user, action, esc)
        views = self.slack.open_views(user)
        if not views:
            return
        view = views[-1]
        blocks = {b.get("block_id"): b for b in view.view.get("blocks", []) if b.get("type") == "input"}
        reasons = [o["value"] for o in _options(blocks.get(ids.BLOCK_REASON))]
        values: dict[str, Any] = {}
        if action == ids.REASSIGN:
            owners = [o["value"] for o in _options(blocks.get(ids.BLOCK_OWNER))]
            if not owners:
                return
            values[ids.BLOCK_OWNER] = self.rng.choice(owners)
        else:
            band = blocks.get(ids.BLOCK_BAND, {}).get("element", {})
            current = (band.get("initial_option") or {}).get("value")
            bands = [o["value"] for o in _options(blocks.get(ids.BLOCK_BAND)) if o["value"] != current]
            values[ids.BLOCK_BAND] = self.rng.choice(bands) if bands else None
        if self.tally.modal_errors == 0:  # once: the modal refuses a decision without a reason
            self.slack.submit(view.id, user, {**values, ids.BLOCK_REASON: None})
            self.tally.modal_errors += 1 if view.errors else 0
        values[ids.BLOCK_REASON] = self.rng.choice(reasons)
        self.slack.submit(view.id, user, values)
        if action == ids.REASSIGN:  # a refused owner (out of office, late before): pick another
            others = [o for o in owners if o != values[ids.BLOCK_OWNER]]
            self.rng.shuffle(others)
            while view.open and ids.BLOCK_OWNER in view.errors and others:
                values[ids.BLOCK_OWNER] = others.pop()
                self.slack.submit(view.id, user, values)
        if view.open and view.errors:
            return  # refused, and no other answer the simulated person would give
        self.tally.kinds["reassign" if action == ids.REASSIGN else "override"] += 1
        self.runtime.pool.wait_idle(10)

    # --- SLA nudges ---------------------------------------------------------------------------

    def answer_nudges(self, share: float = 0.85) -> int:
        """Reps press "I contacted them" on ``share`` of the nudges they have not answered."""
        answered = 0
        for message in self.slack.all_messages():
            key = (message.channel, message.ts)
            if key in self._answered or not message.channel.startswith("D"):
                continue
            elements = [e for b in message.blocks for e in [*b.get("elements", []), b.get("accessory") or {}]]
            buttons = [e for e in elements if isinstance(e, dict) and e.get("action_id") == ids.FIRST_TOUCH]
            if not buttons:
                continue
            self._answered.add(key)
            if self.rng.random() >= share:
                continue
            user = self.slack.channels[message.channel].im_user or "U01REV"
            self.slack.click(user, ids.FIRST_TOUCH, channel=message.channel, ts=message.ts, value=buttons[0]["value"])
            answered += 1
        self.runtime.pool.wait_idle(30)
        self.tally.first_touches += answered
        return answered


def _options(block: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not block:
        return []
    element = block.get("element", {})
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options += group.get("options", [])
    return options
