"""A person's decision on an escalation: who may make it, and what it must contain.

Pure rules over the policy; :mod:`core.store.reviews` applies them in a transaction and the
Slack bot only translates clicks and modal fields into a :class:`ReviewChange`.

Who may act on an escalation (DESIGN §6): the proposed owner, the manager of the team
responsible for the decision, and policy admins. The responsible team is the decision's
routed team, else the proposed owner's team, else the team whose review channel shows the
escalation — so the manager who sees a lead in their channel can always act on it.

Where an escalation is shown (:meth:`ReviewRules.review_channel`): the responsible team's
channel; for a lead parked in a queue with a channel, that channel; otherwise the fallback
queue's channel, else the first team's channel in policy order.

::

    ReviewError                 a review that cannot be recorded (all carry decision_pk)
    ├── InvalidReview           the input is wrong; ``field`` names what to fix
    ├── NotAllowed              this person may not act on this decision
    └── NotPending              the decision is no longer waiting for a person
        └── AlreadyDecided      someone reviewed it first: who, what, when
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from core.errors import CoreError
from core.policy.schema import Policy, ReasonCode, Rep, Team
from core.routing import Roster, out_of_office

__all__ = [
    "OVERRIDE_ACTIONS",
    "REVIEW_KINDS",
    "AlreadyDecided",
    "Authority",
    "InvalidReview",
    "NotAllowed",
    "NotPending",
    "Proposal",
    "ReviewChange",
    "ReviewError",
    "ReviewOutcome",
    "ReviewRules",
]

ReviewKind = Literal["approve", "reassign", "override"]
REVIEW_KINDS: tuple[ReviewKind, ...] = ("approve", "reassign", "override")
Authority = Literal["owner", "manager", "admin"]
# what a person may make of a lead: assign it to an owner (as automation would have) or
# suppress it (fields written, nobody pinged, owner left as it is)
OVERRIDE_ACTIONS: dict[str, str] = {"auto": "Assign to the owner", "suppress": "Suppress (nobody pinged)"}
NOTE_MAX = 2000
CRM_NAMES = {"salesforce": "Salesforce", "hubspot": "HubSpot"}


class ReviewError(CoreError):
    """A review that cannot be recorded; nothing was written."""

    def __init__(self, decision_pk: int, message: str) -> None:
        self.decision_pk = decision_pk
        super().__init__(message)


class InvalidReview(ReviewError):
    """``field`` is one of ``owner``, ``reason``, ``note``, ``action``, ``band``, ``kind``."""

    def __init__(self, decision_pk: int, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(decision_pk, f"{field}: {message}")


class NotAllowed(ReviewError):
    """``who_may`` names the people who may act, for the refusal."""

    def __init__(self, decision_pk: int, reviewer: str, who_may: str) -> None:
        self.reviewer = reviewer
        self.who_may = who_may
        super().__init__(decision_pk, f"{reviewer} may not act on decision {decision_pk}; {who_may} may")


class NotPending(ReviewError):
    """``state`` is where the decision is now (reviewed, superseded, applied, missing)."""

    def __init__(self, decision_pk: int, state: str, message: str | None = None) -> None:
        self.state = state
        super().__init__(decision_pk, message or f"decision {decision_pk} is {state}, not pending review")


class AlreadyDecided(NotPending):
    """Someone reviewed first: their kind of review, ids and time, to say who decided."""

    def __init__(
        self, decision_pk: int, kind: str, reviewer: str, reviewer_rep: str | None, decided_at: datetime
    ) -> None:
        self.kind = kind
        self.reviewer = reviewer
        self.reviewer_rep = reviewer_rep
        self.decided_at = decided_at
        who = reviewer_rep or reviewer
        super().__init__(decision_pk, "reviewed", f"decision {decision_pk} was already decided ({kind}) by {who}")


@dataclass(frozen=True, slots=True)
class Proposal:
    """What automation proposed for the lead: the values a review starts from."""

    decision_pk: int
    owner: str | None
    owner_kind: str  # rep | queue | none
    team: str | None
    band: str
    score: int
    segment: str
    next_best_action: str | None = None
    source: str | None = None  # the CRM the lead lives in: whose user id a new owner needs
    # what automation would have done unasked: "suppress" when a suppression rule matched and
    # the trust level sent it to a person anyway (level 1); approving it keeps it suppressed
    action: str = "auto"


@dataclass(frozen=True, slots=True)
class ReviewChange:
    """What the person decided. ``owner``/``action``/``band`` are only read for the kinds that
    change them (reassign: owner; override: any of the three)."""

    kind: str
    reason_code: str | None = None
    note: str | None = None
    owner: str | None = None
    action: str | None = None
    band: str | None = None
    took_next_best_action: bool = False


@dataclass(frozen=True, slots=True)
class ReviewOutcome:
    """The validated review: what changed, and what the CRM should now hold."""

    kind: ReviewKind
    reason_code: str | None
    note: str | None
    agree: bool
    before: dict[str, Any]
    after: dict[str, Any]
    final_owner: str | None
    final_action: str  # auto (assign final_owner) | suppress (leave the owner)
    changes: list[str] = field(default_factory=list)


class ReviewRules:
    """The policy's review rules, indexed once per policy."""

    def __init__(self, policy: Policy, roster: Roster | None = None) -> None:
        self.policy = policy
        self.roster = roster or Roster(policy)
        self.by_slack: dict[str, Rep] = {r.slack_user: r for r in policy.reps if r.slack_user}
        self.reason_codes: dict[str, ReasonCode] = {c.code: c for c in policy.reason_codes}
        self.bands: list[str] = [
            name for name, _ in sorted(policy.scoring.bands.items(), key=lambda kv: kv[1], reverse=True)
        ] + ["cold"]

    # --- people -----------------------------------------------------------------------------

    def rep_for_slack(self, slack_user: str) -> Rep | None:
        """The policy person behind a Slack user id (``None`` for anyone else)."""
        return self.by_slack.get(slack_user)

    def person(self, picked: str | None) -> Rep | None:
        """The policy person a modal's owner picker named: a rep id from the static select, or
        a Slack user id from the users_select shown when the policy has over 100 reps (Slack's
        limit for a static select). Compare people by this, never by the raw value."""
        return (self.roster.reps.get(picked) or self.by_slack.get(picked)) if picked else None

    def assignable_reps(self) -> list[Rep]:
        """People a lead may be given to: reps who take leads, in policy order."""
        return [r for r in self.policy.reps if "rep" in r.roles]

    def unfit_owner(self, rep: Rep, proposal: Proposal, now: datetime) -> str | None:
        """Why ``rep`` cannot become this lead's owner (``None`` if they can), as a short phrase
        for a picker label.

        A rep without a user id in the lead's CRM cannot be written back as its owner: the
        review would say "Reassigned" while the CRM kept the old owner, and nobody would notice.
        A rep out of office would get a lead nobody works until they are back."""
        crm = self._crm_without(rep, proposal)
        return f"no {crm} user" if crm else out_of_office(rep, now)

    def _crm_without(self, rep: Rep, proposal: Proposal) -> str | None:
        """The lead's CRM, by name, when loopgate writes owners there and ``rep`` has no id in it."""
        if self.policy.writeback.owner and proposal.source and not getattr(rep.crm, proposal.source, None):
            return CRM_NAMES.get(proposal.source, proposal.source)
        return None

    def reasons_for(self, use: str) -> list[ReasonCode]:
        """Reason codes a person may give for ``use`` (override, reassign, flag)."""
        return [c for c in self.policy.reason_codes if use in c.applies_to]

    # --- where and who ------------------------------------------------------------------------

    def responsible_team(self, proposal: Proposal) -> Team | None:
        """The team whose manager may act on this decision (see the module docstring)."""
        teams = self.roster.teams
        if proposal.team and proposal.team in teams:
            return teams[proposal.team]
        owner_rep = self.roster.reps.get(proposal.owner or "") if proposal.owner_kind == "rep" else None
        if owner_rep is not None and owner_rep.team in teams:
            return teams[owner_rep.team]
        channel = self.review_channel(proposal)
        return next((t for t in self.policy.teams if t.channel == channel), None)

    def review_channel(self, proposal: Proposal) -> str:
        """The Slack channel that shows this escalation (see the module docstring)."""
        teams = self.roster.teams
        if proposal.team and proposal.team in teams:
            return teams[proposal.team].channel
        if proposal.owner_kind == "rep" and proposal.owner in self.roster.reps:
            team = self.roster.reps[proposal.owner].team
            if team in teams:
                return teams[team].channel
        if proposal.owner_kind == "queue" and proposal.owner in self.roster.queues:
            queue_channel = self.roster.queues[proposal.owner].channel
            if queue_channel:
                return queue_channel
        fallback = self.roster.queues.get(self.policy.fallback_queue)
        if fallback is not None and fallback.channel:
            return fallback.channel
        return self.policy.teams[0].channel

    def authority(self, proposal: Proposal, rep_id: str | None) -> Authority | None:
        """Why ``rep_id`` may act on this decision, or ``None`` if they may not."""
        rep = self.roster.reps.get(rep_id or "")
        if rep is None:
            return None
        if "admin" in rep.roles:
            return "admin"
        if proposal.owner_kind == "rep" and proposal.owner == rep.id:
            return "owner"
        team = self.responsible_team(proposal)
        if team is not None and team.manager == rep.id:
            return "manager"
        return None

    def who_may(self, proposal: Proposal) -> str:
        """A sentence naming the people who may act, for refusals."""
        names: list[str] = []
        if proposal.owner_kind == "rep" and proposal.owner:
            names.append(self.roster.name(proposal.owner))
        team = self.responsible_team(proposal)
        if team is not None:
            names.append(f"{self.roster.name(team.manager)} (manager of {team.name or team.id})")
        names.append("policy admins")
        return ", ".join(names)

    # --- validation ---------------------------------------------------------------------------

    def validate(self, proposal: Proposal, change: ReviewChange, *, now: datetime) -> ReviewOutcome:
        """Check a change against the policy and compute before/after. Raises InvalidReview.
        ``now`` decides who is out of office."""
        pk = proposal.decision_pk
        if change.kind not in REVIEW_KINDS:
            raise InvalidReview(pk, "kind", f"unknown review kind '{change.kind}'")
        note = (change.note or "").strip() or None
        if note is not None and len(note) > NOTE_MAX:
            raise InvalidReview(pk, "note", f"keep the note under {NOTE_MAX} characters")
        before = {
            "owner": proposal.owner,
            "owner_kind": proposal.owner_kind,
            "action": proposal.action,
            "band": proposal.band,
            "score": proposal.score,
        }
        if change.kind == "approve":
            after = {**before, "next_best_action": proposal.next_best_action if change.took_next_best_action else None}
            owner = proposal.owner if proposal.owner_kind != "none" else None
            return ReviewOutcome("approve", None, note, True, before, after, owner, proposal.action)
        if change.kind == "reassign":
            return self._reassign(proposal, change, note, before, now)
        return self._override(proposal, change, note, before, now)

    def _reassign(
        self, proposal: Proposal, change: ReviewChange, note: str | None, before: dict[str, Any], now: datetime
    ) -> ReviewOutcome:
        pk = proposal.decision_pk
        reason = self._reason(pk, "reassign", change.reason_code)
        picked = self.person(change.owner)
        if proposal.owner_kind == "rep" and picked is not None and picked.id == proposal.owner:
            raise InvalidReview(pk, "owner", f"{picked.name} is already the proposed owner; use Approve")
        owner_rep = self._owner(proposal, change.owner, now)
        after = {**before, "owner": owner_rep.id, "owner_kind": "rep", "action": "auto", "next_best_action": None}
        changes = [f"owner {self.roster.name(proposal.owner)} → {owner_rep.name}"]
        return ReviewOutcome("reassign", reason, note, False, before, after, owner_rep.id, "auto", changes)

    def _override(
        self, proposal: Proposal, change: ReviewChange, note: str | None, before: dict[str, Any], now: datetime
    ) -> ReviewOutcome:
        pk = proposal.decision_pk
        reason = self._reason(pk, "override", change.reason_code)
        action = change.action or proposal.action
        if action not in OVERRIDE_ACTIONS:
            raise InvalidReview(pk, "action", f"unknown action '{action}'")
        band = change.band or proposal.band
        if band not in self.bands:
            raise InvalidReview(pk, "band", f"unknown band '{band}'; the policy has {', '.join(self.bands)}")
        owner_id, owner_kind = proposal.owner, proposal.owner_kind
        picked = self.person(change.owner)
        # the picker is pre-filled with the proposed owner: left as it is, it changes nothing and
        # is not checked again (they may be away by now; a band-only override must still go in)
        if change.owner and (picked is None or picked.id != proposal.owner):
            owner_id, owner_kind = self._owner(proposal, change.owner, now).id, "rep"
        changes = []
        if owner_id != proposal.owner:
            changes.append(f"owner {self.roster.name(proposal.owner)} → {self.roster.name(owner_id)}")
        if band != proposal.band:
            changes.append(f"band {proposal.band} → {band}")
        if action != proposal.action:
            changes.append(f"action → {action}")
        if not changes:
            raise InvalidReview(pk, "action", "change the band, the action or the owner — or use Approve")
        assign = action == "auto"
        after = {
            "owner": owner_id if assign else None,
            "owner_kind": owner_kind if assign else "none",
            "action": action,
            "band": band,
            "score": proposal.score,
            "next_best_action": None,
        }
        final_owner = owner_id if assign and owner_kind != "none" else None
        return ReviewOutcome("override", reason, note, False, before, after, final_owner, action, changes)

    def _reason(self, pk: int, use: str, code: str | None) -> str:
        if not code:
            raise InvalidReview(pk, "reason", f"pick a reason for the {use}")
        reason = self.reason_codes.get(code)
        if reason is None:
            raise InvalidReview(pk, "reason", f"'{code}' is not a reason code in the policy")
        if use not in reason.applies_to:
            raise InvalidReview(pk, "reason", f"'{reason.label}' is not a reason for a {use}")
        return code

    def _owner(self, proposal: Proposal, owner: str | None, now: datetime) -> Rep:
        pk = proposal.decision_pk
        if not owner:
            raise InvalidReview(pk, "owner", "pick the new owner")
        rep = self.person(owner)
        if rep is None:
            raise InvalidReview(pk, "owner", "that person is not in the loopgate policy, so cannot own leads")
        if "rep" not in rep.roles:
            raise InvalidReview(pk, "owner", f"{rep.name} does not take leads (no 'rep' role in the policy)")
        crm = self._crm_without(rep, proposal)
        if crm is not None:
            raise InvalidReview(
                pk,
                "owner",
                f"{rep.name} has no {crm} user in the policy (reps[].crm), so {crm} cannot make them "
                "the owner; pick someone else, or ask RevOps to add their id",
            )
        away = out_of_office(rep, now)
        if away is not None:
            raise InvalidReview(pk, "owner", f"{rep.name} is {away}; pick someone who can work the lead now")
        return rep
