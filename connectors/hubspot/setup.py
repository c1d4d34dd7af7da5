"""``loopgate crm setup hubspot``: create the loopgate property group and properties, idempotently.

Each group and property is read first; missing ones are created, ones that differ from the
spec (label, type, field type, group, options) are updated, equal ones are left alone. A
second run therefore only reads. A create that races another run (``409``) counts as present.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.errors import ConnectorError, NotFound
from connectors.hubspot.connector import HubSpotConnector
from connectors.setup_spec import hubspot_properties

__all__ = ["SetupReport", "ensure_properties"]

_COMPARED = ("label", "type", "fieldType", "groupName", "description")


@dataclass(slots=True)
class SetupReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)


def _get(connector: HubSpotConnector, resource: str, fn: Any) -> Any | None:
    try:
        return connector.call(resource, fn)
    except NotFound:
        return None


def _options(values: Any) -> list[tuple[str, str]]:
    out = []
    for option in values or []:
        label = option["label"] if isinstance(option, Mapping) else option.label
        value = option["value"] if isinstance(option, Mapping) else option.value
        out.append((str(value), str(label)))
    return sorted(out)


def _differs(current: Any, wanted: Mapping[str, Any]) -> bool:
    have = current.to_dict() if hasattr(current, "to_dict") else dict(current)
    names = {"fieldType": "field_type", "groupName": "group_name"}
    for key in _COMPARED:
        if key in wanted and have.get(names.get(key, key)) != wanted[key]:
            return True
    return "options" in wanted and _options(have.get("options")) != _options(wanted["options"])


def ensure_properties(connector: HubSpotConnector, field_map: Mapping[str, str] | None = None) -> SetupReport:
    """Make the loopgate properties exist as specified; report what changed."""
    report = SetupReport()
    for object_type, group, props in hubspot_properties(field_map):
        _ensure_group(connector, object_type, group, report)
        for prop in props:
            _ensure_property(connector, object_type, prop, report)
    return report


def _ensure_group(connector: HubSpotConnector, object_type: str, group: dict[str, Any], report: SetupReport) -> None:
    label = f"{object_type}/group:{group['name']}"

    def read() -> Any:  # the API object is looked up per call: a token refresh replaces it
        return connector.api("groups").get_by_name(object_type, group["name"])

    def create() -> Any:
        return connector.api("groups").create(object_type, property_group_create=group)

    if _get(connector, f"property group {label}", read) is None:
        _create(connector, label, create, report)
    else:
        report.unchanged.append(label)


def _ensure_property(connector: HubSpotConnector, object_type: str, prop: dict[str, Any], report: SetupReport) -> None:
    label = f"{object_type}/{prop['name']}"
    update = {k: v for k, v in prop.items() if k != "name"}

    def read() -> Any:
        return connector.api("properties").get_by_name(object_type, prop["name"])

    def create() -> Any:
        return connector.api("properties").create(object_type, property_create=prop)

    def change() -> Any:
        return connector.api("properties").update(object_type, prop["name"], property_update=update)

    current = _get(connector, f"property {label}", read)
    if current is None:
        _create(connector, label, create, report)
    elif _differs(current, prop):
        connector.call(f"update property {label}", change)
        report.updated.append(label)
    else:
        report.unchanged.append(label)


def _create(connector: HubSpotConnector, label: str, fn: Any, report: SetupReport) -> None:
    try:
        connector.call(f"create {label}", fn)
    except ConnectorError as exc:
        if exc.status != 409:
            raise
        report.unchanged.append(label)  # created meanwhile by someone else
        return
    report.created.append(label)
