"""Builders for policies and leads: small, explicit, overridable — instead of giant fixtures."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

import yaml

from core.leads import normalize_lead
from core.model import Lead
from core.policy import LoadedPolicy, parse_policy

_BASE: dict[str, Any] = {
    "name": "test policy",
    "reason_codes": [{"code": "territory_exception", "label": "Territory exception"}],
    "reps": [
        {"id": "ana", "name": "Ana", "slack_user": "U0ANA", "team": "mm", "weight": 2, "timezone": "UTC",
         "crm": {"salesforce": "005000000000AAA", "hubspot": "1"}},
        {"id": "ben", "name": "Ben", "slack_user": "U0BEN", "team": "mm", "weight": 1, "timezone": "UTC",
         "crm": {"salesforce": "005000000000BBB", "hubspot": "2"}},
        {"id": "lee", "name": "Lee", "slack_user": "U0LEE", "roles": ["admin"], "timezone": "UTC"},
    ],
    "teams": [{"id": "mm", "manager": "lee", "channel": "C0MM"}],
    "queues": [{"id": "unassigned", "crm": {"salesforce": "00G000000000UNA"}}],
    "segments": {"enterprise": {"employees": {"gte": 1000}}, "smb": {"employees": {"lt": 1000}}},
    "scoring": {
        "fit": [{"signal": "employees", "gte": 100, "points": 30}, {"signal": "industry", "in": ["software"], "points": 20}],
        "intent": {"half_life_days": 10, "window_days": 60, "max_points": 50, "events": {"demo_request": 40, "webinar": 10}},
        "bands": {"hot": 70, "warm": 40},
    },
    "routing": [{"name": "default", "to": {"team": "mm"}}],
    "fallback_queue": "unassigned",
    "next_best_action": [{"code": "follow_up", "label": "Follow up with {name}"}],
    "trust": {"default_level": 3},
}  # fmt: skip


def policy_dict(**overrides: Any) -> dict[str, Any]:
    """The base test policy with top-level sections replaced (deep-copied)."""
    data = copy.deepcopy(_BASE)
    for key, value in overrides.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def make_policy(**overrides: Any) -> LoadedPolicy:
    return parse_policy(yaml.safe_dump(policy_dict(**overrides), sort_keys=False), "test-policy.yaml")


def make_lead(now: datetime | None = None, events: list[tuple[str, timedelta]] | None = None, **fields: Any) -> Lead:
    """A lead; ``events`` are (type, age) pairs relative to ``now``."""
    raw: dict[str, Any] = {"id": "L1", "source": "salesforce", **fields}
    if events:
        assert now is not None, "events need a now"
        raw["events"] = [{"type": kind, "at": (now - age).isoformat()} for kind, age in events]
    return normalize_lead(raw)
