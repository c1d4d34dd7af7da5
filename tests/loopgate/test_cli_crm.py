"""The CRM commands as a user runs them, against the fakes: sync, writeback, crm setup, and
one clear line (exit 2) for a missing or rejected credential."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopgate.sandbox.hubspot import FakeHubSpot
from loopgate.sandbox.salesforce import FakeSalesforce
from tests.connectors.builders import hs_contact, seed_hubspot_people, seed_salesforce_people, sf_lead
from tests.loopgate.cli_runner import ROOT, run_cli

POLICY = str(ROOT / "examples" / "policy.yaml")


@pytest.fixture
def hubspot(example_policy: object) -> Iterator[FakeHubSpot]:
    with FakeHubSpot() as fake:
        yield fake  # type: ignore[misc]


def _hubspot_env(db_url: str, fake: FakeHubSpot, token: str = "pat-sandbox-token") -> dict[str, str]:  # noqa: S107
    return {
        "LOOPGATE_DATABASE_URL": db_url,
        "LOOPGATE_POLICY": POLICY,
        "HUBSPOT_ACCESS_TOKEN": token,
        "HUBSPOT_BASE_URL": fake.url,
        "HUBSPOT_SEARCH_PER_SECOND": "5",
    }


def test_given_a_hubspot_portal_when_synced_and_written_back_by_cli_then_contacts_get_loopgate_fields(
    db_url: str, hubspot: FakeHubSpot, example_policy: object
) -> None:
    seed_hubspot_people(hubspot, example_policy)  # type: ignore[arg-type]
    ids = [hubspot.create("contacts", hs_contact()) for _ in range(3)]
    env = _hubspot_env(db_url, hubspot)

    synced = run_cli("sync", "--crm", "hubspot", env=env)
    written = run_cli("writeback", "--crm", "hubspot", env=env)

    assert synced.code == 0, synced.err
    assert synced.out.startswith("hubspot: 3 leads, 0 accounts, 5 owners, 0 deals, 0 deleted or merged; 3 decided")
    assert written.code == 0, written.err
    assert written.out.strip() == "write-back: 3 done, 0 to retry, 0 failed for good"
    assert all(hubspot.get("contacts", i)["loopgate_status"] == "auto_assigned" for i in ids)


def test_given_a_write_back_that_failed_for_good_when_fixed_and_retried_dead_then_it_is_written(
    db_url: str, hubspot: FakeHubSpot, example_policy: object
) -> None:
    seed_hubspot_people(hubspot, example_policy)  # type: ignore[arg-type]
    contact = hubspot.create("contacts", hs_contact())
    env = _hubspot_env(db_url, hubspot)
    assert run_cli("sync", "--crm", "hubspot", env=env).code == 0
    hubspot.fail_record(contact, "VALIDATION_ERROR", "loopgate_band: not an allowed option")  # a property misconfigured

    failed = run_cli("writeback", "--crm", "hubspot", env=env)
    untouched = run_cli("writeback", "--crm", "hubspot", env=env)  # a dead row is not tried again by itself
    retried = run_cli("writeback", "--crm", "hubspot", "--retry-dead", env=env)  # once the admin fixed it

    assert failed.code == 1 and failed.out.strip().endswith("0 done, 0 to retry, 1 failed for good")
    assert untouched.code == 0 and untouched.out.strip() == "write-back: 0 done, 0 to retry, 0 failed for good"
    assert retried.code == 0, retried.err
    assert retried.out.splitlines() == [
        "write-back: 1 failed for good put back in the queue",
        "write-back: 1 done, 0 to retry, 0 failed for good",
    ]
    assert hubspot.get("contacts", contact)["loopgate_status"] == "auto_assigned"


def test_given_dead_write_backs_of_hubspot_when_salesforces_are_retried_then_hubspots_stay_dead(
    db_url: str, hubspot: FakeHubSpot, example_policy: object
) -> None:
    """``--retry-dead`` with ``--crm`` re-queues that CRM's write-backs only: the other's may
    still be broken (and would die again, counted as put back)."""
    seed_hubspot_people(hubspot, example_policy)  # type: ignore[arg-type]
    contact = hubspot.create("contacts", hs_contact())
    with FakeSalesforce() as fake:
        seed_salesforce_people(fake, example_policy)  # type: ignore[arg-type]
        env = {
            **_hubspot_env(db_url, hubspot),
            "SALESFORCE_INSTANCE_URL": fake.url,
            "SALESFORCE_ACCESS_TOKEN": fake.access_token,
            "SALESFORCE_CA_BUNDLE": str(fake.ca_bundle),
        }
        assert run_cli("sync", "--crm", "hubspot", env=env).code == 0
        hubspot.fail_record(contact, "VALIDATION_ERROR", "loopgate_band: not an allowed option")
        assert run_cli("writeback", "--crm", "hubspot", env=env).code == 1

        salesforce = run_cli("writeback", "--crm", "salesforce", "--retry-dead", env=env)
        everything = run_cli("writeback", "--retry-dead", env=env)

    assert salesforce.code == 0, salesforce.err
    assert salesforce.out.splitlines()[0] == "write-back: 0 failed for good put back in the queue"
    assert everything.out.splitlines()[0] == "write-back: 1 failed for good put back in the queue"


def test_given_a_salesforce_org_behind_a_private_ca_when_synced_by_cli_then_the_json_report_counts_it(
    db_url: str, example_policy: object
) -> None:
    with FakeSalesforce() as fake:
        seed_salesforce_people(fake, example_policy)  # type: ignore[arg-type]
        stranger = fake.add_user("Pat Stranger")
        fake.create("Lead", sf_lead(OwnerId=stranger))
        env = {
            "LOOPGATE_DATABASE_URL": db_url,
            "LOOPGATE_POLICY": POLICY,
            "SALESFORCE_INSTANCE_URL": fake.url,
            "SALESFORCE_ACCESS_TOKEN": fake.access_token,
            "SALESFORCE_CA_BUNDLE": str(fake.ca_bundle),
        }

        result = run_cli("sync", "--crm", "salesforce", "--json", env=env)

    assert result.code == 0, result.err
    (report,) = json.loads(result.out)
    assert report["leads"] == 1 and report["owners"] == 8 and report["decided"] == 1
    assert report["unknown_owners"] == {stranger: {"name": "Pat Stranger", "leads": 1}}


def test_given_no_salesforce_credentials_when_syncing_it_then_one_line_names_the_variable(db_url: str) -> None:
    result = run_cli("sync", "--crm", "salesforce", env={"LOOPGATE_DATABASE_URL": db_url, "LOOPGATE_POLICY": POLICY})

    assert result.code == 2
    assert result.err.count("\n") == 1 and "SALESFORCE_ACCESS_TOKEN is not set" in result.err


def test_given_a_rejected_hubspot_token_when_syncing_then_one_line_names_the_variable_and_hides_the_token(
    db_url: str, hubspot: FakeHubSpot
) -> None:
    result = run_cli("sync", "--crm", "hubspot", env=_hubspot_env(db_url, hubspot, token="pat-na1-wrong-0042"))

    assert result.code == 2
    assert result.err.count("\n") == 1 and "HUBSPOT_ACCESS_TOKEN was rejected" in result.err
    assert "pat-na1-wrong-0042" not in result.err + result.out


def test_given_crm_setup_when_run_twice_then_hubspot_is_unchanged_the_second_time_and_salesforce_gets_files(
    db_url: str, tmp_path: Path
) -> None:
    with FakeHubSpot(loopgate_properties=False) as fake:
        env = _hubspot_env(db_url, fake)
        first = run_cli("crm", "setup", "hubspot", env=env)
        second = run_cli("crm", "setup", "hubspot", env=env)
    sf = run_cli("crm", "setup", "salesforce", "--out", str(tmp_path / "meta"), env={"LOOPGATE_POLICY": POLICY})

    assert first.code == 0 and "created contacts/loopgate_score" in first.out
    assert second.code == 0 and second.out.strip().endswith("0 created, 0 updated, 10 already as specified")
    assert sf.code == 0 and "sf project deploy start --metadata-dir" in sf.out
    assert (tmp_path / "meta" / "objects" / "Lead.object").is_file()


def _oauth_env(db_url: str, fake: FakeHubSpot) -> dict[str, str]:
    """An OAuth app's refresh credentials and no access token, as README and .env.example offer."""
    fake.oauth_clients["client-1"] = "app-secret"
    fake.refresh_tokens.add("refresh-1")
    env = _hubspot_env(db_url, fake)
    del env["HUBSPOT_ACCESS_TOKEN"]
    env.update(HUBSPOT_CLIENT_ID="client-1", HUBSPOT_CLIENT_SECRET="app-secret", HUBSPOT_REFRESH_TOKEN="refresh-1")
    return env


@pytest.mark.parametrize("crm", ["hubspot", "all"])
def test_given_only_hubspot_oauth_refresh_credentials_when_synced_and_written_back_then_a_token_is_fetched(
    db_url: str, hubspot: FakeHubSpot, example_policy: object, crm: str
) -> None:
    seed_hubspot_people(hubspot, example_policy)  # type: ignore[arg-type]
    ids = [hubspot.create("contacts", hs_contact()) for _ in range(3)]
    env = _oauth_env(db_url, hubspot)

    synced = run_cli("sync", "--crm", crm, env=env)
    written = run_cli("writeback", "--crm", crm, env=env)

    assert synced.code == 0, synced.err
    assert synced.out.startswith("hubspot: 3 leads")
    assert written.code == 0, written.err
    assert all(hubspot.get("contacts", i)["loopgate_status"] == "auto_assigned" for i in ids)
    assert len(hubspot.calls("/oauth/v1/token")) == 2  # one per command: each is its own process


def test_given_only_hubspot_oauth_refresh_credentials_when_setting_up_then_the_properties_are_created(
    db_url: str, hubspot: FakeHubSpot
) -> None:
    result = run_cli("crm", "setup", "hubspot", env=_oauth_env(db_url, hubspot))
    assert result.code == 0, result.err
    assert "created" in result.out


def test_given_a_revoked_hubspot_refresh_token_and_no_access_token_when_syncing_then_one_line_names_it(
    db_url: str, hubspot: FakeHubSpot
) -> None:
    env = _oauth_env(db_url, hubspot)
    hubspot.refresh_tokens.clear()
    result = run_cli("sync", "--crm", "hubspot", env=env)
    assert result.code == 2
    assert result.err.count("\n") == 1 and "HUBSPOT_REFRESH_TOKEN was rejected" in result.err
    assert "refresh-1" not in result.err + result.out and "app-secret" not in result.err + result.out


def test_given_a_published_champion_when_setting_up_without_a_policy_then_its_field_names_are_created(
    db_url: str, tmp_path: Path
) -> None:
    # setup read only --policy or LOOPGATE_POLICY: with the policy published it said "no policy
    # given", created loopgate_* and left write-back writing into fields that did not exist
    custom = tmp_path / "custom.yaml"
    text = Path(POLICY).read_text(encoding="utf-8")
    assert "hubspot: {score: loopgate_score" in text, "fixture drifted"
    custom.write_text(text.replace("hubspot: {score: loopgate_score", "hubspot: {score: acme_lead_score"))
    assert run_cli("policy", "publish", str(custom), env={"LOOPGATE_DATABASE_URL": db_url}).code == 0
    with FakeHubSpot(loopgate_properties=False) as fake:
        env = _hubspot_env(db_url, fake)
        del env["LOOPGATE_POLICY"]
        result = run_cli("crm", "setup", "hubspot", env=env)
    assert result.code == 0, result.err
    assert "created contacts/acme_lead_score" in result.out and "contacts/loopgate_score" not in result.out
    assert "using the policy that decides now" in result.err


def test_given_no_store_and_no_policy_when_setting_up_salesforce_then_default_names_and_no_stray_database(
    tmp_path: Path,
) -> None:
    result = run_cli("crm", "setup", "salesforce", "--out", "meta", cwd=tmp_path)
    assert result.code == 0, result.err
    assert "using loopgate's default field names" in result.err
    assert not (tmp_path / "loopgate.db").exists()  # setup comes before the store: it makes none


def test_given_salesforce_rejecting_its_token_when_syncing_all_then_hubspot_is_still_synced_and_exit_2(
    db_url: str, hubspot: FakeHubSpot, example_policy: object
) -> None:
    # the first failing CRM ended the command: HubSpot's leads waited for Salesforce to recover
    seed_hubspot_people(hubspot, example_policy)  # type: ignore[arg-type]
    hubspot.create("contacts", hs_contact())
    with FakeSalesforce() as sf:
        env = _hubspot_env(db_url, hubspot) | {
            "SALESFORCE_INSTANCE_URL": sf.url,
            "SALESFORCE_ACCESS_TOKEN": "not-the-token",
            "SALESFORCE_CA_BUNDLE": str(sf.ca_bundle),
        }
        shown = run_cli("sync", env=env)
        as_json = run_cli("sync", "--json", env=env)

    assert shown.code == 2 and shown.err.startswith("error: ") and shown.err.count("\n") == 1, shown.err
    assert "salesforce" in shown.err.lower() and shown.out.startswith("hubspot: 1 leads"), shown
    assert as_json.code == 2
    hubspot_report, failure = json.loads(as_json.out)
    assert hubspot_report["system"] == "hubspot" and failure["system"] == "salesforce" and failure["error"]
