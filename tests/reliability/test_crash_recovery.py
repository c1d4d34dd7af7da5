"""Crash recovery: ``loopgate sync`` and ``loopgate serve`` killed with SIGKILL at seeded random
moments while the CRM changes and people approve escalations, then restarted — nothing lost,
nothing doubled, no owner a person set overwritten, the audit chain intact. And the checker is
checked: fed a doubled Slack post, a clobbered owner or an unsynced contact, it counts them."""

from __future__ import annotations

from slack_sdk import WebClient

from bot import ids
from tests.reliability.harness import OWNER_FIELD, FieldWrite, World, check, clobbers, crash_recovery


def test_given_sync_and_serve_killed_at_random_when_restarted_then_nothing_is_lost_doubled_or_clobbered(
    db_url: str,
) -> None:
    seen: dict[str, str] = {}

    def keep_output(world: World) -> None:
        seen["output"] = world.output
        seen["export"] = world.audit_export()
        seen["secrets"] = "\n".join(world.secrets)

    report = crash_recovery(db_url, seed=7, rounds=10, contacts=24, inspect=keep_output)

    assert report.faults_injected >= 5, report.line()  # kills that landed while the process ran
    assert report.details["decisions"] >= 24 and report.details["crm_field_writes"] > 0, report.line()
    assert (report.lost, report.duplicated, report.clobbered) == (0, 0, 0), report.line()
    assert report.details["audit_verified"]
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


def test_given_a_contact_never_synced_when_checked_then_the_checker_counts_it_lost(db_url: str) -> None:
    with World(db_url, seed=1) as world:
        world.new_contacts(2)
        report = check(world, "self_test")
    assert report.lost == 2 and report.details["lost_by_kind"] == {"decision": 2}


def test_given_an_owner_a_person_set_when_a_write_replaces_it_then_the_checker_counts_a_clobber() -> None:
    human = [("1001", "102", 10.0)]
    assert clobbers([FieldWrite("1001", OWNER_FIELD, "102", "101", 11.0)], human) == 1
    assert clobbers([FieldWrite("1001", OWNER_FIELD, "101", "102", 9.0)], human) == 0  # before the person
    assert clobbers([FieldWrite("1001", OWNER_FIELD, "102", "102", 11.0)], human) == 0  # same value: no change
    assert clobbers([FieldWrite("1001", "loopgate_status", "a", "b", 11.0)], human) == 0  # not the owner
