"""CRM setup: HubSpot properties created once and left alone after; Salesforce metadata that
parses, lists every field for the permission set, and is rewritten only when it changes."""

from __future__ import annotations

import xml.dom.minidom
from pathlib import Path

from connectors.hubspot.setup import ensure_properties
from connectors.salesforce.metadata import PERMISSION_SET, write_metadata
from connectors.setup_spec import DEFAULT_SALESFORCE_FIELDS, salesforce_fields
from core.policy import LoadedPolicy
from core.writeback import STATUSES
from loopgate.sandbox.hubspot import FakeHubSpot
from tests.connectors.builders import hubspot_connector


def _parse(path: Path) -> xml.dom.minidom.Document:
    return xml.dom.minidom.parse(str(path))  # noqa: S318 - our own output, written by the test


def test_given_a_portal_without_loopgate_properties_when_set_up_twice_then_the_second_run_changes_nothing(
    example_policy: LoadedPolicy,
) -> None:
    with FakeHubSpot(loopgate_properties=False) as hs:
        port = hubspot_connector(hs, example_policy)
        first = ensure_properties(port, example_policy.policy.writeback.hubspot)
        writes_after_first = len(hs.calls(method="POST")) + len(hs.calls(method="PATCH"))

        second = ensure_properties(port, example_policy.policy.writeback.hubspot)

        assert "contacts/group:loopgate" in first.created and "contacts/loopgate_status" in first.created
        assert "companies/loopgate_strategic" in first.created
        assert not second.changed and len(second.unchanged) == len(first.created)
        assert len(hs.calls(method="POST")) + len(hs.calls(method="PATCH")) == writes_after_first
        status = hs.properties["contacts"]["loopgate_status"]
        assert [o["value"] for o in status["options"]] == list(STATUSES)


def test_given_a_property_changed_by_hand_when_set_up_then_it_is_put_back(example_policy: LoadedPolicy) -> None:
    with FakeHubSpot() as hs:
        hs.properties["contacts"]["loopgate_band"]["label"] = "Renamed by an admin"

        report = ensure_properties(hubspot_connector(hs, example_policy), example_policy.policy.writeback.hubspot)

        assert report.updated == ["contacts/loopgate_band"] and not report.created
        assert hs.properties["contacts"]["loopgate_band"]["label"] == "Loopgate band"


def test_given_an_output_directory_when_salesforce_metadata_is_written_twice_then_it_parses_and_is_stable(
    tmp_path: Path,
) -> None:
    first = write_metadata(tmp_path)
    second = write_metadata(tmp_path)

    assert {p.relative_to(tmp_path).as_posix() for p in first.written} == {
        "package.xml", "objects/Lead.object", "objects/Contact.object", "objects/Account.object",
        f"permissionsets/{PERMISSION_SET}.permissionset",
    }  # fmt: skip
    assert second.written == [] and len(second.unchanged) == 5
    package = _parse(tmp_path / "package.xml")
    members = {m.firstChild.data for m in package.getElementsByTagName("members")}
    expected = {f"{o}.{n}" for o, n, _k, _s in salesforce_fields()}
    assert expected | {PERMISSION_SET} == members
    lead = _parse(tmp_path / "objects/Lead.object")
    names = [f.getElementsByTagName("fullName")[0].firstChild.data for f in lead.getElementsByTagName("fields")]
    assert names == list(DEFAULT_SALESFORCE_FIELDS.values())
    perms = _parse(tmp_path / f"permissionsets/{PERMISSION_SET}.permissionset")
    assert len(perms.getElementsByTagName("fieldPermissions")) == len(expected)
