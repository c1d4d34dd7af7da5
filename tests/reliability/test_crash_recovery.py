"""Crash recovery, on HubSpot and on Salesforce: ``loopgate sync`` and ``loopgate serve`` killed
with SIGKILL at seeded random moments while the CRM changes and people approve escalations, then
restarted — nothing lost, nothing doubled, no owner a person set overwritten, the audit chain
intact. And the checker is checked: fed a doubled Slack post, a clobbered owner or an unsynced
lead, it counts them."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient

from bot import ids
from connectors.hubspot import HubSpotConnector
from connectors.salesforce import SalesforceConnector
from core.ports import RecordUpdate
from tests.connectors.builders import hubspot_connector, salesforce_connector
from tests.reliability.harness import (
    CRMS,
    HUBSPOT_TOKEN,
    FieldWrite,
    RecordingHubSpot,
    RecordingSalesforce,
    World,
    check,
    clobbers,
    crash_recovery,
)


@pytest.mark.parametrize("crm", CRMS)
def test_given_sync_and_serve_killed_at_random_when_restarted_then_nothing_is_lost_doubled_or_clobbered(
    db_url: str, crm: str
) -> None:
    seen: dict[str, str] = {}

    def keep_output(world: World) -> None:
        seen["output"] = world.output
        seen["export"] = world.audit_export()
        seen["secrets"] = "\n".join(world.secrets)

    report = crash_recovery(db_url, seed=12, rounds=10, leads=24, crm=crm, inspect=keep_output)

    assert report.faults_injected >= 5, report.line()  # kills that landed while the process ran
    assert report.details["decisions"] >= 24 and report.details["crm_field_writes"] > 0, report.line()
    assert (report.lost, report.duplicated, report.clobbered) == (0, 0, 0), report.line()
    assert report.details["audit_verified"]
    if crm == "salesforce":  # ties on SystemModstamp happened, and the Id tie-break settled them
        assert report.details["shared_modstamps"] > 0, report.line()
    # secrets: every line every process printed (logs, errors) and the audit export
    for secret in seen["secrets"].splitlines():
        assert secret not in seen["output"]
        assert secret not in seen["export"]


def test_given_a_message_posted_twice_when_checked_then_the_checker_counts_a_duplicate(db_url: str) -> None:
    with World(db_url, seed=1) as world:
        client = WebClient(token=world.slack.bot_token, base_url=world.slack.api_url)
        for _ in range(2):
            client.chat_postMessage(
                channel="C0MMREVIEW", text="lead", metadata={"event_type": ids.METADATA_EVENT,
                                                             "event_payload": {"key": "slack.escalation:1"}},
            )  # fmt: skip
        report = check(world, "self_test")
    assert report.duplicated == 1 and report.details["duplicated_by_kind"]["slack_post"] == 1


@pytest.mark.parametrize("crm", CRMS)
def test_given_a_lead_never_synced_when_checked_then_the_checker_counts_it_lost(db_url: str, crm: str) -> None:
    with World(db_url, seed=1, crm=crm) as world:
        world.new_leads(2)
        report = check(world, "self_test")
    assert report.lost == 2 and report.details["lost_by_kind"] == {"decision": 2}


def test_given_an_owner_a_person_set_when_a_write_replaces_it_then_the_checker_counts_a_clobber() -> None:
    human = [("1001", "102", 10.0)]
    owner = "hubspot_owner_id"
    assert clobbers([FieldWrite("1001", owner, "102", "101", 11.0)], human, owner) == 1
    assert clobbers([FieldWrite("1001", owner, "101", "102", 9.0)], human, owner) == 0  # before the person
    assert clobbers([FieldWrite("1001", owner, "102", "102", 11.0)], human, owner) == 0  # same value: no change
    assert clobbers([FieldWrite("1001", "loopgate_status", "a", "b", 11.0)], human, owner) == 0  # not the owner


@pytest.mark.parametrize("crm", CRMS)
def test_given_a_write_back_call_replacing_an_owner_a_person_set_when_checked_then_a_clobber_is_counted(
    db_url: str, crm: str
) -> None:
    with World(db_url, seed=1, crm=crm) as world:
        (record,) = world.new_leads(1)
        world.crm.human_owner(record, world.owners["ana"])
        port: HubSpotConnector | SalesforceConnector
        if isinstance(world.crm, RecordingSalesforce):
            port, object_type = salesforce_connector(world.crm, world.loaded), "Lead"
        else:
            assert isinstance(world.crm, RecordingHubSpot)
            port, object_type = hubspot_connector(world.crm, world.loaded, token=HUBSPOT_TOKEN), "contacts"
        # the connector's own write call, as the write-back handler makes it
        [result] = port.update([RecordUpdate(object_type, record, {world.crm.owner_field: world.owners["ben"]})])

        assert result.ok
        assert [(w.field, w.old, w.new) for w in world.crm.writes] == [
            (world.crm.owner_field, world.owners["ana"], world.owners["ben"])
        ]
        assert clobbers(world.crm.writes, world.crm.human_edits, world.crm.owner_field) == 1


@pytest.mark.parametrize("crm", CRMS)
def test_given_a_crm_record_not_showing_its_latest_decision_when_checked_then_the_checker_counts_it_lost(
    db_url: str, crm: str
) -> None:
    with World(db_url, seed=1, crm=crm) as world:
        first, _ = world.new_leads(2)
        assert world.spawn("sync", "--crm", crm).wait(120) == 0
        serve = world.serve("--no-scheduler")
        world.until(lambda: world.outbox_waiting() == 0, 60, "the outbox to drain")
        assert serve.stop() == 0
        field = getattr(world.loaded.policy.writeback, crm)["status"]
        shown = world.crm.fields(first)[field]
        world.crm.overwrite(first, {field: "reviewed" if shown != "reviewed" else "needs_review"})
        report = check(world, "self_test")
    assert report.lost == 1 and report.details["lost_by_kind"] == {"crm_write": 1}, report.line()


@pytest.mark.parametrize("crm", CRMS)
def test_given_intent_the_store_never_saw_when_checked_then_the_checker_counts_it_lost(db_url: str, crm: str) -> None:
    with World(db_url, seed=1, crm=crm) as world:
        first, _ = world.new_leads(2)
        assert world.spawn("sync", "--crm", crm).wait(120) == 0
        world.crm.show_intent(first)  # shown in the CRM after the last sync
        report = check(world, "self_test")
    assert report.details["lost_by_kind"].get("intent_event") == 1, report.line()
