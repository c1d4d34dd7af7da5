"""What loopgate writes into a CRM record for a decision, and when it must not (pure).

The policy's ``writeback`` section maps loopgate's keys to CRM field names per CRM; this module
turns one stored decision into those field values, decides whether the owner is written, and
judges whether a record's current owner means a person changed it since the decision (a
*conflict*: nothing is overwritten). The connectors do the I/O around it.

**Status vocabulary** written to the ``status`` field (stable; the HubSpot property's options
and the Salesforce picklist use exactly these):

=================  ======================================================================
``auto_assigned``  decided automatically (``auto``); the owner is written if the policy says so
``needs_review``   waiting for a person in Slack; score and reason are written, the owner is not
``reviewed``       a person approved, reassigned or overrode it; their owner is written
``suppressed``     decided not to route (``suppress``): fields are written, nobody is pinged
=================  ======================================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.leads import parse_time
from core.policy.schema import Policy, Queue, Rep
from core.salesforce_ids import salesforce_id18

__all__ = [
    "STATUSES",
    "STATUS_AUTO",
    "STATUS_REVIEW",
    "STATUS_REVIEWED",
    "STATUS_SUPPRESSED",
    "DecisionFacts",
    "OwnerPlan",
    "crm_time",
    "desired_fields",
    "is_conflict",
    "owner_plan",
    "same_owner",
    "status_of",
    "values_equal",
]

STATUS_AUTO = "auto_assigned"
STATUS_REVIEW = "needs_review"
STATUS_REVIEWED = "reviewed"
STATUS_SUPPRESSED = "suppressed"
STATUSES = (STATUS_AUTO, STATUS_REVIEW, STATUS_REVIEWED, STATUS_SUPPRESSED)

TEXT_LIMIT = 255  # a Salesforce Text(255) field; HubSpot single-line text takes more


@dataclass(frozen=True, slots=True)
class DecisionFacts:
    """The parts of a stored decision write-back needs (a ``decisions`` row, as values)."""

    pk: int
    source: str
    action: str
    state: str
    cause: str
    final_owner: str | None
    final_action: str | None
    score_total: int
    band: str
    segment: str
    policy_version: str
    decided_at: datetime
    suppressed_by: str | None
    crm_owner_before: str | None
    contract: Mapping[str, Any]
    # what a reviewer changed, when one did: the CRM shows the person's band and reason code
    review_band: str | None = None
    review_reason: str | None = None


@dataclass(frozen=True, slots=True)
class OwnerPlan:
    """The CRM owner id to write (``None``: leave the owner alone, and ``why`` says why)."""

    crm_id: str | None
    why: str


def status_of(facts: DecisionFacts) -> str | None:
    """The status word for a decision; ``None`` for one that must not be written (superseded)."""
    if facts.state == "pending_review":
        return STATUS_REVIEW
    if facts.state == "reviewed":
        return STATUS_REVIEWED
    if facts.state == "applied":
        return STATUS_SUPPRESSED if (facts.final_action or facts.action) == "suppress" else STATUS_AUTO
    return None


def _reason(facts: DecisionFacts) -> str:
    why = _automatic_reason(facts)
    if facts.review_reason:
        return f"reviewer: {facts.review_reason}" + (f"; {why}" if why else "")
    return why


def _automatic_reason(facts: DecisionFacts) -> str:
    action = facts.final_action or facts.action
    if action == "suppress" and facts.suppressed_by:
        return f"suppressed: {facts.suppressed_by}"
    triggers = facts.contract.get("triggers") or []
    if triggers:
        return "; ".join(f"{t.get('code')}: {t.get('detail')}" for t in triggers if isinstance(t, Mapping))
    return str(facts.contract.get("explanation") or "")


def crm_time(value: datetime) -> str:
    """A UTC instant as both CRMs accept it: ``2026-11-20T20:00:00.000Z``."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def desired_fields(facts: DecisionFacts, field_map: Mapping[str, str]) -> dict[str, Any]:
    """CRM field name → value for the policy's mapped keys (empty when nothing may be written)."""
    status = status_of(facts)
    if status is None:
        return {}
    nba = facts.contract.get("next_best_action") or {}
    values: dict[str, Any] = {
        "score": facts.score_total,
        "band": facts.review_band or facts.band,
        "status": status,
        "reason": _reason(facts)[:TEXT_LIMIT],
        "next_action": str(nba.get("label") or nba.get("code") or "")[:TEXT_LIMIT] if isinstance(nba, Mapping) else "",
        "segment": facts.segment,
        "policy_version": facts.policy_version,
        "decided_at": crm_time(facts.decided_at),
    }
    return {field: values[key] for key, field in field_map.items() if key in values}


# Salesforce objects a queue may own (and custom objects): a Contact or Account must be owned by a user
SALESFORCE_QUEUE_OWNED = frozenset({"Lead", "Case"})


def owner_plan(facts: DecisionFacts, policy: Policy, system: str, object_type: str | None = None) -> OwnerPlan:
    """Whether (and to which CRM id) the owner is written for this decision, to a record of
    ``object_type`` (``None``: the CRM's lead object)."""
    if not policy.writeback.owner:
        return OwnerPlan(None, "the policy does not write owners")
    if facts.state not in ("applied", "reviewed") or not facts.final_owner:
        return OwnerPlan(None, "no final owner yet")
    if facts.cause == "conflict" and facts.state == "applied":
        # an automatic re-decision after a conflict never overrides the person's owner; a
        # reviewed one may (a person chose)
        return OwnerPlan(None, "automatic re-decision after a conflict keeps the person's owner")
    return _mapped(policy, system, facts.final_owner, object_type)


def _mapped(policy: Policy, system: str, person: str, object_type: str | None) -> OwnerPlan:
    entries: list[Rep | Queue] = [*policy.reps, *policy.queues]
    for entry in entries:
        if entry.id == person:
            crm_id = getattr(entry.crm, system, None)
            if crm_id and _queue_refused(entry, system, object_type):
                # Salesforce refuses a queue owner on a Contact (FIELD_INTEGRITY_EXCEPTION), and the
                # record's other fields died with it: they are written, the owner left as it is
                return OwnerPlan(None, f"{person} is a queue; a Salesforce {object_type} cannot be queue-owned")
            if crm_id:
                # the form the CRM returns, so what loopgate stores matches what sync reads back
                crm_id = salesforce_id18(crm_id) if system == "salesforce" else crm_id
                return OwnerPlan(crm_id, f"{person} is {crm_id} in {system}")
            return OwnerPlan(None, f"{person} has no {system} id in the policy (reps[].crm / queues[].crm)")
    return OwnerPlan(None, f"{person} is not a rep or queue of the policy")


def _queue_refused(entry: Rep | Queue, system: str, object_type: str | None) -> bool:
    return (
        isinstance(entry, Queue)
        and system == "salesforce"
        and object_type is not None
        and object_type not in SALESFORCE_QUEUE_OWNED
    )


def same_owner(system: str, a: str | None, b: str | None) -> bool:
    """Owner ids compare exactly, except Salesforce's 15- and 18-character forms of one id."""
    if not a or not b:
        return not a and not b
    if system == "salesforce":
        return a[:15] == b[:15]
    return a == b


def is_conflict(system: str, *, before: str | None, current: str | None, wanted: str, last_written: str | None) -> bool:
    """True when the record's owner changed since the decision and not by loopgate: a person
    chose it, so write-back must not overwrite it."""
    if same_owner(system, current, wanted) or same_owner(system, current, before):
        return False
    return not (last_written and same_owner(system, current, last_written))


def _canonical(value: Any) -> Any:
    """One comparable form for what a CRM returns and what loopgate sends: HubSpot returns
    every property as text, Salesforce numbers as floats, datetimes in several spellings."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number(float(value))
    if isinstance(value, datetime):
        return ("t", int(value.timestamp() * 1000))
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None and math.isfinite(number):
        return _number(number)
    if "T" in text and ":" in text:
        parsed = parse_time(text)
        if parsed is not None:
            return ("t", int(parsed.timestamp() * 1000))
    return text


def _number(number: float) -> Any:
    return ("n", int(number)) if number.is_integer() else ("n", round(number, 6))


def values_equal(a: Any, b: Any) -> bool:
    """Whether a CRM's current value already is the value loopgate would write."""
    return bool(_canonical(a) == _canonical(b))
