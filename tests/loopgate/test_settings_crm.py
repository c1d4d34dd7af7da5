"""CRM settings fail fast with one line naming the variable; secrets never show."""

from __future__ import annotations

import logging

import pytest

from loopgate import logs
from loopgate.logs import RedactSecrets
from loopgate.settings import ConfigError, Settings, load_settings


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, "SALESFORCE_ACCESS_TOKEN is not set"),
        ({"salesforce_access_token": "00D!secret-token"}, "SALESFORCE_INSTANCE_URL is not set"),
        (
            {"salesforce_access_token": "00D!secret-token", "salesforce_instance_url": "acme.my.salesforce.com"},
            "SALESFORCE_INSTANCE_URL: 'acme.my.salesforce.com' is not an https:// URL",
        ),
        (
            {"salesforce_client_id": "id", "salesforce_client_secret": "s3cret", "salesforce_login_url": "http://x"},
            "SALESFORCE_LOGIN_URL: 'http://x' is not an https:// URL",
        ),
        (
            {
                "salesforce_access_token": "t",
                "salesforce_instance_url": "https://x",
                "salesforce_ca_bundle": "/nope.pem",
            },
            "SALESFORCE_CA_BUNDLE: no such file /nope.pem",
        ),
    ],
)
def test_given_incomplete_salesforce_settings_when_required_then_one_line_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, object], expected: str
) -> None:
    for name in ("SALESFORCE_ACCESS_TOKEN", "SALESFORCE_INSTANCE_URL", "SALESFORCE_USERNAME", "SALESFORCE_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError) as caught:
        _settings(**values).require_salesforce()
    assert str(caught.value).startswith(expected)
    assert "secret" not in str(caught.value) and "\n" not in str(caught.value)


def test_given_client_credentials_when_required_then_the_login_url_follows_the_domain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    creds = _settings(
        salesforce_client_id="id", salesforce_client_secret="s", salesforce_domain="acme.my"
    ).require_salesforce()
    assert creds.login_url == "https://acme.my.salesforce.com" and creds.can_reauthenticate


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, "HUBSPOT_ACCESS_TOKEN is not set"),
        ({"hubspot_access_token": "pat-x", "hubspot_base_url": "api.hubapi.com"}, "HUBSPOT_BASE_URL"),
        ({"hubspot_access_token": "pat-x", "hubspot_search_per_second": 9}, "HUBSPOT_SEARCH_PER_SECOND"),
    ],
)
def test_given_bad_hubspot_settings_when_required_then_one_line_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, object], expected: str
) -> None:
    monkeypatch.delenv("HUBSPOT_ACCESS_TOKEN", raising=False)
    with pytest.raises(ConfigError) as caught:
        _settings(**values).require_hubspot_token()
    assert str(caught.value).startswith(expected) and "pat-x" not in str(caught.value)


def test_given_every_crm_secret_when_a_log_line_quotes_them_then_the_filter_removes_each() -> None:
    secrets = {
        "salesforce_access_token": "00D5e000000AbCd!AQ-access",
        "salesforce_password": "hunter2-password",
        "salesforce_security_token": "Sx9secu-token",
        "salesforce_client_secret": "C1i3nt-secret-sf",
        "hubspot_access_token": "pat-na1-access-token",
        "hubspot_client_secret": "hs-client-secret",
        "hubspot_refresh_token": "na1-refresh-token",
        "slack_bot_token": "xoxb-1-bot-token",
    }
    redact = RedactSecrets(_settings(**secrets).secret_values())
    assert redact.scrub(" ".join(secrets.values())) == " ".join(["[redacted]"] * len(secrets))


def test_given_settings_read_by_a_one_shot_command_when_a_log_line_holds_a_secret_then_it_is_scrubbed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``sync`` and ``writeback`` run without ``serve``'s logging setup: reading the settings
    is what hands the process's filter (the one the CLI puts on every handler) their secrets."""
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-na1-one-shot-secret")
    load_settings()
    record = logging.LogRecord(
        "loopgate.sync", logging.WARNING, __file__, 1, "refresh failed: %s", ("pat-na1-one-shot-secret",), None
    )
    assert logs.process_filter().filter(record)
    assert record.getMessage() == "refresh failed: [redacted]"
