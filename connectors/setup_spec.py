"""The loopgate fields each CRM needs, as data: what ``loopgate crm setup`` creates, what the
sync reads and what write-back writes. One place, so setup, sync and the fakes agree.

Lead/contact fields come from the policy's ``writeback`` map (key → CRM field name); the
account/company fields ``strategic`` and ``tier`` feed the policy's ``account.strategic`` and
``account.tier`` conditions and have fixed names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.writeback import STATUSES

__all__ = [
    "DEFAULT_HUBSPOT_FIELDS",
    "DEFAULT_SALESFORCE_FIELDS",
    "HUBSPOT_COMPANY_FIELDS",
    "HUBSPOT_GROUP",
    "SALESFORCE_ACCOUNT_FIELDS",
    "hubspot_properties",
    "salesforce_fields",
]

DEFAULT_SALESFORCE_FIELDS = {
    "score": "Loopgate_Score__c",
    "band": "Loopgate_Band__c",
    "status": "Loopgate_Status__c",
    "reason": "Loopgate_Reason__c",
    "next_action": "Loopgate_Next_Action__c",
    "segment": "Loopgate_Segment__c",
    "policy_version": "Loopgate_Policy_Version__c",
    "decided_at": "Loopgate_Decided_At__c",
}
DEFAULT_HUBSPOT_FIELDS = {key: f"loopgate_{key}" for key in DEFAULT_SALESFORCE_FIELDS}
SALESFORCE_ACCOUNT_FIELDS = {"strategic": "Loopgate_Strategic__c", "tier": "Loopgate_Tier__c"}
HUBSPOT_COMPANY_FIELDS = {"strategic": "loopgate_strategic", "tier": "loopgate_tier"}
HUBSPOT_GROUP = "loopgate"

_LABELS = {
    "score": "Loopgate score",
    "band": "Loopgate band",
    "status": "Loopgate status",
    "reason": "Loopgate reason",
    "next_action": "Loopgate next action",
    "segment": "Loopgate segment",
    "policy_version": "Loopgate policy version",
    "decided_at": "Loopgate decided at",
    "strategic": "Loopgate strategic account",
    "tier": "Loopgate account tier",
}
_HELP = {
    "score": "Total lead score (0-100) from the loopgate policy.",
    "band": "Score band (hot, warm, cold, or the policy's own).",
    "status": "auto_assigned, needs_review, reviewed or suppressed.",
    "reason": "Why loopgate decided as it did (triggers or explanation).",
    "next_action": "The recommended next step for the owner.",
    "segment": "The policy segment the lead fell in.",
    "policy_version": "The policy version that decided.",
    "decided_at": "When loopgate decided.",
    "strategic": "Strategic accounts are routed to their owner and reviewed.",
    "tier": "Target-account tier used by the scoring policy (e.g. tier1).",
}

# (HubSpot type, fieldType) per key
_HUBSPOT_TYPES = {
    "score": ("number", "number"),
    "band": ("string", "text"),
    "status": ("enumeration", "select"),
    "reason": ("string", "textarea"),
    "next_action": ("string", "text"),
    "segment": ("string", "text"),
    "policy_version": ("string", "text"),
    "decided_at": ("datetime", "date"),
    "strategic": ("enumeration", "booleancheckbox"),
    "tier": ("string", "text"),
}


def _hubspot_property(key: str, name: str, order: int) -> dict[str, Any]:
    kind, field_type = _HUBSPOT_TYPES[key]
    body: dict[str, Any] = {
        "name": name,
        "label": _LABELS[key],
        "description": _HELP[key],
        "groupName": HUBSPOT_GROUP,
        "type": kind,
        "fieldType": field_type,
        "displayOrder": order,
    }
    if key == "status":
        body["options"] = [
            {"label": s.replace("_", " "), "value": s, "displayOrder": i} for i, s in enumerate(STATUSES)
        ]
    elif key == "strategic":
        body["options"] = [{"label": "Yes", "value": "true", "displayOrder": 0}, {"label": "No", "value": "false",
                                                                                   "displayOrder": 1}]  # fmt: skip
    return body


def hubspot_properties(
    field_map: Mapping[str, str] | None = None,
) -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """(object type, property group, properties) that ``loopgate crm setup hubspot`` ensures."""
    fields = dict(field_map if field_map is not None else DEFAULT_HUBSPOT_FIELDS)
    group = {"name": HUBSPOT_GROUP, "label": "loopgate", "displayOrder": -1}
    contacts = [_hubspot_property(key, name, i) for i, (key, name) in enumerate(fields.items())]
    companies = [_hubspot_property(key, name, i) for i, (key, name) in enumerate(HUBSPOT_COMPANY_FIELDS.items())]
    return [("contacts", group, contacts), ("companies", dict(group), companies)]


def salesforce_fields(field_map: Mapping[str, str] | None = None) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(object, field API name, key, type spec) for the Salesforce custom fields."""
    fields = dict(field_map if field_map is not None else DEFAULT_SALESFORCE_FIELDS)
    specs: dict[str, dict[str, Any]] = {
        "score": {"type": "Number", "precision": 3, "scale": 0},
        "band": {"type": "Text", "length": 20},
        "status": {"type": "Picklist", "values": list(STATUSES)},
        "reason": {"type": "Text", "length": 255},
        "next_action": {"type": "Text", "length": 255},
        "segment": {"type": "Text", "length": 64},
        "policy_version": {"type": "Text", "length": 16},
        "decided_at": {"type": "DateTime"},
        "strategic": {"type": "Checkbox"},
        "tier": {"type": "Text", "length": 40},
    }
    out = [(obj, name, key, specs[key]) for obj in ("Lead", "Contact") for key, name in fields.items()]
    out += [("Account", name, key, specs[key]) for key, name in SALESFORCE_ACCOUNT_FIELDS.items()]
    return out


def label(key: str) -> str:
    return _LABELS[key]


def help_text(key: str) -> str:
    return _HELP[key]
