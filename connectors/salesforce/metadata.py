"""``loopgate crm setup salesforce``: deployable Metadata API source for the loopgate fields.

Salesforce custom fields are metadata, deployed by an admin with the Salesforce CLI (or any
Metadata API client), not created through the REST data API. This writes a metadata
directory — ``package.xml``, the fields per object, and a permission set that gives the
integration user read/edit access to them (a field nobody can see does not exist for the
API) — and the commands to deploy it. Writing is idempotent: equal files are left untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from connectors.salesforce.auth import API_VERSION
from connectors.setup_spec import help_text, label, salesforce_fields

__all__ = ["PERMISSION_SET", "MetadataReport", "deploy_instructions", "write_metadata"]

PERMISSION_SET = "Loopgate_Fields"
_NS = "http://soap.sforce.com/2006/04/metadata"


@dataclass(slots=True)
class MetadataReport:
    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)


def _field_xml(name: str, key: str, spec: Mapping[str, Any]) -> str:
    lines = [
        "    <fields>",
        f"        <fullName>{name}</fullName>",
        f"        <label>{escape(label(key))}</label>",
        f"        <inlineHelpText>{escape(help_text(key))}</inlineHelpText>",
        f"        <description>{escape(help_text(key))} Written by loopgate.</description>",
    ]
    kind = spec["type"]
    if kind == "Checkbox":
        lines += ["        <defaultValue>false</defaultValue>", "        <type>Checkbox</type>"]
    else:
        lines += ["        <externalId>false</externalId>", "        <required>false</required>"]
        lines.append(f"        <type>{kind}</type>")
        if kind == "Number":
            lines += [f"        <precision>{spec['precision']}</precision>", f"        <scale>{spec['scale']}</scale>"]
        elif kind == "Text":
            lines.append(f"        <length>{spec['length']}</length>")
        elif kind == "Picklist":
            lines += [
                "        <valueSet>",
                "            <restricted>true</restricted>",
                "            <valueSetDefinition>",
                "                <sorted>false</sorted>",
            ]
            for value in spec["values"]:
                lines += [
                    "                <value>",
                    f"                    <fullName>{value}</fullName>",
                    "                    <default>false</default>",
                    f"                    <label>{value.replace('_', ' ')}</label>",
                    "                </value>",
                ]
            lines += ["            </valueSetDefinition>", "        </valueSet>"]
    lines.append("    </fields>")
    return "\n".join(lines)


def _documents(field_map: Mapping[str, str] | None) -> dict[str, str]:
    fields = salesforce_fields(field_map)
    docs: dict[str, str] = {}
    by_object: dict[str, list[str]] = {}
    for sobject, name, key, spec in fields:
        by_object.setdefault(sobject, []).append(_field_xml(name, key, spec))
    for sobject, parts in by_object.items():
        body = "\n".join(parts)
        docs[f"objects/{sobject}.object"] = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<CustomObject xmlns="{_NS}">\n{body}\n</CustomObject>\n'
        )
    members = "\n".join(f"        <members>{sobject}.{name}</members>" for sobject, name, _k, _s in fields)
    docs["package.xml"] = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Package xmlns="{_NS}">\n    <types>\n{members}\n'
        "        <name>CustomField</name>\n    </types>\n    <types>\n"
        f"        <members>{PERMISSION_SET}</members>\n        <name>PermissionSet</name>\n    </types>\n"
        f"    <version>{API_VERSION}</version>\n</Package>\n"
    )
    permissions = "\n".join(
        "    <fieldPermissions>\n        <editable>true</editable>\n"
        f"        <field>{sobject}.{name}</field>\n        <readable>true</readable>\n    </fieldPermissions>"
        for sobject, name, _k, _s in fields
    )
    docs[f"permissionsets/{PERMISSION_SET}.permissionset"] = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<PermissionSet xmlns="{_NS}">\n'
        "    <description>Read and edit the loopgate fields (assign to the loopgate integration user).</description>\n"
        f"{permissions}\n    <hasActivationRequired>false</hasActivationRequired>\n"
        "    <label>Loopgate fields</label>\n</PermissionSet>\n"
    )
    return docs


def write_metadata(out_dir: Path, field_map: Mapping[str, str] | None = None) -> MetadataReport:
    """Write the metadata directory; files that already hold the same text are left alone."""
    report = MetadataReport()
    for relative, text in _documents(field_map).items():
        path = out_dir / relative
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            report.unchanged.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        report.written.append(path)
    return report


def deploy_instructions(out_dir: Path) -> str:
    return (
        "Deploy with the Salesforce CLI (sf), then give the integration user the permission set:\n"
        f"  sf project deploy start --metadata-dir {out_dir} --target-org <your-org-alias>\n"
        f"  sf org assign permset --name {PERMISSION_SET} --target-org <your-org-alias> "
        "--on-behalf-of <integration-username>\n"
        "Then run `loopgate sync --crm salesforce`: the sync reads these fields and fails with a clear error until "
        "they are deployed."
    )
