"""Limits and faults, as the real APIs send them: rate limits honoured, 5xx and refused
connections retried a bounded number of times, expired sessions renewed when credentials allow,
and one clear error (without secrets) when they do not."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import responses
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError
from sqlalchemy import select

from connectors.errors import (
    AuthExpired,
    BadRequest,
    ConnectorError,
    CrmSetupMissing,
    Forbidden,
    RateLimited,
    Unavailable,
)
from connectors.hubspot.connector import HubSpotConnector
from connectors.salesforce.errors import translate
from connectors.sync import sync_crm
from connectors.writeback import CrmWriteback
from core.engine import DecisionEngine
from core.policy import LoadedPolicy
from core.store import outbox
from core.store.db import Database
from core.store.models import OutboxRow
from loopgate.sandbox.hubspot import FakeHubSpot
from loopgate.sandbox.salesforce import FakeSalesforce
from tests.connectors.builders import (
    Sleeps,
    fast_retry,
    hs_contact,
    hubspot_connector,
    salesforce_connector,
    seed_hubspot_people,
    sf_lead,
)
from tests.connectors.conftest import Clock

RATE_LIMITED = {
    "status": "error",
    "message": "You have reached your ten_secondly_rolling limit.",
    "errorType": "RATE_LIMIT",
    "correlationId": "c0ffee",
    "policyName": "TEN_SECONDLY_ROLLING",
}


# --- HubSpot rate limits -----------------------------------------------------------------------


def test_given_a_429_with_retry_after_when_reading_then_the_wait_is_honoured_and_the_read_succeeds(
    hs: FakeHubSpot, example_policy: LoadedPolicy
) -> None:
    hs.create("contacts", hs_contact())
    hs.inject(r"/search", 429, times=2, body=RATE_LIMITED, headers={"Retry-After": "3"})
    sleeps = Sleeps()
    port = hubspot_connector(hs, example_policy, retry=fast_retry(sleeps))

    pages = list(port.read("contacts", None))

    assert len(pages) == 1 and sleeps == [3.0, 3.0]


def test_given_a_429_without_retry_after_when_reading_then_the_rate_limit_window_is_waited(
    hs: FakeHubSpot, example_policy: LoadedPolicy
) -> None:
    hs.inject(r"/owners", 429, body=RATE_LIMITED, headers={"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"})
    hs.inject(r"/search", 429, body={**RATE_LIMITED, "policyName": "SECONDLY"})
    sleeps = Sleeps()
    port = hubspot_connector(hs, example_policy, retry=fast_retry(sleeps))

    list(port.read("owners", None))
    list(port.read("contacts", None))

    assert sleeps == [10.0, 1.0]


def test_given_the_daily_limit_is_spent_when_reading_then_it_stops_at_once_with_a_clear_error(
    hs: FakeHubSpot, example_policy: LoadedPolicy
) -> None:
    hs.inject(r"/search", 429, times=5, body={**RATE_LIMITED, "policyName": "DAILY"})
    sleeps = Sleeps()
    port = hubspot_connector(hs, example_policy, retry=fast_retry(sleeps))

    with pytest.raises(RateLimited) as caught:
        list(port.read("contacts", None))

    assert caught.value.daily and sleeps == [] and len(hs.calls("/search")) == 1


def test_given_hubspots_search_limit_enforced_when_paging_then_the_connector_paces_itself_under_it(
    clock: Clock, example_policy: LoadedPolicy
) -> None:
    with FakeHubSpot(search_per_second=3, clock=clock) as hs:
        for _ in range(5):
            hs.create("contacts", hs_contact(), modified=clock.advance(seconds=1))
        port = hubspot_connector(hs, example_policy, page_size=2, search_per_second=3)

        records = sum(len(p.leads) for p in port.read("contacts", None))

        assert records == 5
        assert [c.status for c in hs.calls("/search")] == [200, 200, 200]


def test_given_rate_limited_write_back_when_drained_then_rows_wait_the_crms_time(
    db: Database, hs: FakeHubSpot, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    seed_hubspot_people(hs, example_policy)
    hs.create("contacts", hs_contact())
    port = hubspot_connector(hs, example_policy, clock=clock, retry=fast_retry(attempts=1))
    sync_crm(db, port, engine, clock=clock)
    hs.inject(r"/batch/", 429, times=1, body=RATE_LIMITED, headers={"Retry-After": "42"})

    report = outbox.drain(db, [CrmWriteback(db, engine, {"hubspot": port}, clock)], "w", clock)

    assert report.retried == 1
    with db.transaction() as s:
        row = s.execute(select(OutboxRow).where(OutboxRow.kind == "crm.writeback")).scalar_one()
    assert row.available_at == clock.now + timedelta(seconds=42) and "429" in (row.last_error or "")


# --- Salesforce limits and faults --------------------------------------------------------------


def test_given_request_limit_exceeded_for_concurrency_when_reading_then_it_is_retried(
    sf: FakeSalesforce, example_policy: LoadedPolicy
) -> None:
    sf.create("Lead", sf_lead())
    body = [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "ConcurrentPerOrgLongTxn Limit exceeded."}]
    sf.inject(r"/queryAll/", 403, times=1, body=body)
    sleeps = Sleeps()

    pages = list(salesforce_connector(sf, example_policy, retry=fast_retry(sleeps)).read("leads", None))

    assert len(pages) == 1 and len(sleeps) == 1


def test_given_the_daily_request_allowance_spent_when_reading_then_it_stops_without_retrying(
    sf: FakeSalesforce, example_policy: LoadedPolicy
) -> None:
    spent = [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}]
    sf.inject(r"/queryAll/", 403, times=3, body=spent)
    sleeps = Sleeps()

    with pytest.raises(RateLimited) as caught:
        list(salesforce_connector(sf, example_policy, retry=fast_retry(sleeps)).read("leads", None))

    assert caught.value.daily and caught.value.code == "REQUEST_LIMIT_EXCEEDED" and caught.value.status == 403
    assert sleeps == [] and len(sf.calls("/queryAll/")) == 1


def test_given_a_429_with_retry_after_from_salesforce_when_reading_then_the_wait_is_honoured_and_the_read_succeeds(
    sf: FakeSalesforce, example_policy: LoadedPolicy
) -> None:
    """Salesforce's own limit is a 403, but orgs behind an API gateway (and some of
    Salesforce's edges) answer 429 Too Many Requests, with or without a JSON body."""
    sf.create("Lead", sf_lead())
    sf.inject(r"/queryAll/", 429, times=2, body="Too Many Requests", headers={"Retry-After": "3"})
    sleeps = Sleeps()

    pages = list(salesforce_connector(sf, example_policy, retry=fast_retry(sleeps)).read("leads", None))

    assert len(pages) == 1 and sleeps == [3.0, 3.0]


def test_given_a_429_from_salesforce_on_write_back_when_drained_then_the_row_waits_the_time_asked(
    db: Database, sf: FakeSalesforce, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    sf.create("Lead", sf_lead())
    port = salesforce_connector(sf, example_policy, retry=fast_retry(attempts=1))
    sync_crm(db, port, engine, clock=clock)
    sf.inject(r"/composite/sobjects$", 429, times=1, headers={"Retry-After": "42"})

    report = outbox.drain(db, [CrmWriteback(db, engine, {"salesforce": port}, clock)], "w", clock)

    assert report.retried == 1
    with db.transaction() as s:
        row = s.execute(select(OutboxRow).where(OutboxRow.kind == "crm.writeback")).scalar_one()
    assert row.available_at == clock.now + timedelta(seconds=42) and "429" in (row.last_error or "")


def test_given_the_org_near_its_daily_allowance_when_reading_then_loopgate_stops_itself(
    clock: Clock, example_policy: LoadedPolicy
) -> None:
    with FakeSalesforce(api_limit=20, clock=clock) as sf:
        sf.api_used = 18  # other integrations used most of today's allowance
        port = salesforce_connector(sf, example_policy)
        list(port.read("users", None))  # 19/20 reported back in Sforce-Limit-Info

        with pytest.raises(RateLimited) as caught:
            list(port.read("queues", None))

        assert caught.value.code == "API_USAGE_GUARD" and sf.api_used == 19


def test_given_the_usage_guard_tripped_when_the_allowance_frees_up_then_calls_resume_after_the_recheck(
    clock: Clock, example_policy: LoadedPolicy
) -> None:
    ticks = [0.0]
    with FakeSalesforce(api_limit=20, clock=clock) as sf:
        sf.api_used = 18
        port = salesforce_connector(sf, example_policy)
        port.usage_recheck, port.monotonic = timedelta(minutes=15), lambda: ticks[0]
        list(port.read("users", None))  # 19/20
        for minutes in (0.0, 14.0):  # refused without a call, however often asked, until the recheck
            ticks[0] = minutes * 60
            with pytest.raises(RateLimited, match="19 of 20"):
                list(port.read("queues", None))
        assert sf.api_used == 19

        sf.api_used = 2  # the rolling 24 hours moved on: the org has room again
        ticks[0] = 15 * 60
        list(port.read("queues", None))  # one call reads the figure again, and it is low
        list(port.read("accounts", None))

    assert sf.api_used == 4


def test_given_server_errors_when_reading_then_retries_are_bounded_with_growing_waits(
    sf: FakeSalesforce, example_policy: LoadedPolicy
) -> None:
    sf.inject(r"/queryAll/", 503, times=10, body=[{"errorCode": "SERVER_UNAVAILABLE", "message": "maintenance"}])
    sleeps = Sleeps()

    with pytest.raises(Unavailable):
        list(salesforce_connector(sf, example_policy, retry=fast_retry(sleeps, attempts=4)).read("leads", None))

    assert len(sf.calls("/queryAll/")) == 4 and len(sleeps) == 3


def test_given_an_unreachable_crm_when_reading_then_it_is_unavailable_after_bounded_retries(
    example_policy: LoadedPolicy,
) -> None:
    hs = FakeHubSpot().start()
    port = hubspot_connector(hs, example_policy, retry=fast_retry(attempts=2))  # type: ignore[arg-type]
    hs.stop()

    with pytest.raises(Unavailable) as caught:
        list(port.read("contacts", None))

    assert caught.value.system == "hubspot" and caught.value.status is None


def test_given_missing_loopgate_fields_when_syncing_salesforce_then_the_error_says_to_run_setup(
    db: Database, clock: Clock, engine: DecisionEngine, example_policy: LoadedPolicy
) -> None:
    with FakeSalesforce(loopgate_fields=False, clock=clock) as sf, pytest.raises(CrmSetupMissing) as caught:
        sync_crm(db, salesforce_connector(sf, example_policy), engine, clock=clock)

    assert "loopgate crm setup salesforce" in str(caught.value)


# --- authentication ------------------------------------------------------------------------------


def test_given_an_expired_session_and_login_credentials_when_reading_then_it_logs_in_again_once(
    sf: FakeSalesforce, example_policy: LoadedPolicy
) -> None:
    sf.create("Lead", sf_lead())
    sf.logins["integration@acme.test"] = "s3cret" + "TOKEN123"
    port = salesforce_connector(
        sf, example_policy, username="integration@acme.test", password="s3cret", security_token="TOKEN123",
        login_url=sf.url,
    )  # fmt: skip
    list(port.read("users", None))
    sf.expire_tokens()

    pages = list(port.read("leads", None))

    assert len(pages) == 1 and len(sf.calls(r"/services/Soap/u/")) == 1


def test_given_client_credentials_when_the_token_expires_then_a_new_one_is_fetched(
    sf: FakeSalesforce, example_policy: LoadedPolicy
) -> None:
    sf.clients["3MVG9-client"] = "client-secret"
    port = salesforce_connector(
        sf, example_policy, client_id="3MVG9-client", client_secret="client-secret", login_url=sf.url
    )
    sf.expire_tokens()

    list(port.read("users", None))

    assert [c.status for c in sf.calls(r"/services/oauth2/token")] == [200]


def test_given_an_expired_static_token_when_reading_then_one_clear_error_names_the_variable_without_secrets(
    sf: FakeSalesforce, example_policy: LoadedPolicy, caplog: pytest.LogCaptureFixture
) -> None:
    port = salesforce_connector(sf, example_policy)
    token = sf.access_token
    sf.expire_tokens()

    with caplog.at_level(logging.DEBUG), pytest.raises(AuthExpired) as caught:
        list(port.read("users", None))

    message = str(caught.value)
    assert "SALESFORCE_ACCESS_TOKEN" in message and token not in message
    assert token not in caplog.text and token.split("!")[1] not in message


def _expired_oauth_connector(hs: FakeHubSpot, policy: LoadedPolicy, *, refresh_known: bool = True) -> HubSpotConnector:
    """A HubSpot app connection whose access token has expired (the refresh token is known to
    HubSpot unless told otherwise: then the app was uninstalled)."""
    hs.oauth_clients["client-1"] = "shh"
    if refresh_known:
        hs.refresh_tokens.add("refresh-1")
    hs.tokens.add("oauth-old")
    hs.expire_token("oauth-old")
    return hubspot_connector(
        hs, policy, token="oauth-old", client_id="client-1", client_secret="shh", refresh_token="refresh-1"
    )


def test_given_an_expired_hubspot_token_and_a_refresh_token_when_reading_then_it_is_refreshed(
    hs: FakeHubSpot, example_policy: LoadedPolicy
) -> None:
    hs.create("contacts", hs_contact())
    port = _expired_oauth_connector(hs, example_policy)

    pages = list(port.read("contacts", None))

    assert len(pages) == 1 and port.auth.access_token.startswith("oauth-")
    assert port.auth.access_token != "oauth-old" and len(hs.calls("/oauth/v1/token")) == 1


def test_given_a_revoked_hubspot_refresh_token_when_reading_then_the_error_names_the_variable(
    hs: FakeHubSpot, example_policy: LoadedPolicy
) -> None:
    port = _expired_oauth_connector(hs, example_policy, refresh_known=False)  # the app was uninstalled

    with pytest.raises(AuthExpired) as caught:
        list(port.read("contacts", None))

    message = str(caught.value)
    assert "HUBSPOT_REFRESH_TOKEN" in message and "BAD_REFRESH_TOKEN" in message and "\n" not in message


def test_given_hubspot_refreshes_failing_when_write_back_runs_then_its_rows_wait_for_credentials_not_die(
    db: Database, hs: FakeHubSpot, engine: DecisionEngine, example_policy: LoadedPolicy, clock: Clock
) -> None:
    seed_hubspot_people(hs, example_policy)
    hs.oauth_clients["client-1"] = "shh"
    hs.refresh_tokens.add("refresh-1")
    for _ in range(3):
        hs.create("contacts", hs_contact())
    port = hubspot_connector(hs, example_policy, clock=clock, client_id="client-1", client_secret="shh",
                             refresh_token="refresh-1")  # fmt: skip
    sync_crm(db, port, engine, clock=clock)
    hs.refresh_tokens.clear()  # the grant is revoked, then the access token expires
    hs.expire_token("pat-sandbox-token")
    clock.advance(minutes=1)

    report = outbox.drain(db, [CrmWriteback(db, engine, {"hubspot": port}, clock)], "w", clock)

    assert (report.retried, report.dead) == (3, 0)
    with db.transaction() as s:
        errors = s.execute(select(OutboxRow.last_error).where(OutboxRow.kind == "crm.writeback")).scalars().all()
    assert all("HUBSPOT_REFRESH_TOKEN" in (e or "") for e in errors)


def test_given_hubspot_token_service_down_when_refreshing_then_it_is_unavailable_not_an_auth_failure(
    hs: FakeHubSpot, example_policy: LoadedPolicy
) -> None:
    port = _expired_oauth_connector(hs, example_policy)
    hs.inject(r"^/oauth/v1/token$", 503, body={"status": "error", "message": "try later"})

    with pytest.raises(Unavailable):
        list(port.read("contacts", None))


def test_given_a_revoked_private_app_token_when_reading_then_the_error_names_the_variable(
    hs: FakeHubSpot, example_policy: LoadedPolicy
) -> None:
    port = hubspot_connector(hs, example_policy, token="pat-revoked-xyz")

    with pytest.raises(AuthExpired) as caught:
        list(port.read("contacts", None))

    assert "HUBSPOT_ACCESS_TOKEN" in str(caught.value) and "pat-revoked-xyz" not in str(caught.value)


# --- error mapping at the requests level ---------------------------------------------------------


def test_given_salesforce_error_bodies_when_translated_then_each_maps_to_its_meaning() -> None:
    url = "https://org.example.test/services/data/v59.0/query/"
    cases = [
        (401, [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}], AuthExpired),
        (400, [{"errorCode": "INVALID_FIELD", "message": "No such column 'Loopgate_Score__c'"}], CrmSetupMissing),
        (400, [{"errorCode": "MALFORMED_QUERY", "message": "unexpected token"}], BadRequest),
        (403, [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}], RateLimited),
        (429, [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "ConcurrentRequests Limit exceeded."}], RateLimited),
        (429, "Too Many Requests", RateLimited),  # a gateway's plain text
        (403, [{"errorCode": "INSUFFICIENT_ACCESS", "message": "no access"}], Forbidden),
        (500, [{"errorCode": "UNKNOWN_EXCEPTION", "message": "boom"}], Unavailable),
    ]
    sf = Salesforce(session_id="00Dxx!token-value", instance_url="https://org.example.test")
    for status, body, expected in cases:
        with responses.RequestsMock() as mock:
            mock.add(responses.GET, url, json=body, status=status)
            with pytest.raises(SalesforceError) as raw:
                sf.query("SELECT Id FROM Lead")
        error: ConnectorError = translate(raw.value, "query Lead")
        assert type(error) is expected, (status, body)
        assert error.system == "salesforce" and error.status == status and "token-value" not in str(error)
