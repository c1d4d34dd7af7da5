"""CRM settings fail fast with one line naming the variable; secrets never show."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from loopgate import logs
from loopgate.crm import open_ports
from loopgate.logs import RedactSecrets
from loopgate.settings import ConfigError, Settings, load_settings
from loopgate.wiring import read_policy
from tests.loopgate.cli_runner import ROOT, run_cli


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


_SETTING_PREFIXES = ("LOOPGATE_", "SALESFORCE_", "HUBSPOT_", "SLACK_")


def _env_example_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **values: str) -> Settings:
    """The committed ``.env.example`` copied to a ``.env``, some of its lines filled in (an
    empty value left as the example has it), read as a user's run reads it."""
    for name in list(os.environ):
        if name.startswith(_SETTING_PREFIXES):
            monkeypatch.delenv(name)
    lines = []
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        name = line.split("=", 1)[0]
        lines.append(f"{name}={values[name]}" if name in values and "=" in line else line)
    env = tmp_path / ".env"
    env.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Settings(_env_file=env)  # type: ignore[call-arg]


def test_given_the_env_example_filled_in_for_salesforce_only_when_read_then_the_empty_lines_are_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _env_example_with(tmp_path, monkeypatch, SALESFORCE_ACCESS_TOKEN="00D!token")
    assert settings.salesforce_configured and not settings.hubspot_configured
    creds = settings.require_salesforce()  # SALESFORCE_CA_BUNDLE= is no bundle, not the folder "."
    assert creds.ca_bundle is None and creds.access_token is not None
    assert settings.salesforce_username is None and settings.salesforce_login_url is None
    assert settings.slack_bot_token is None


def test_given_an_empty_policy_setting_when_a_command_needs_the_policy_then_it_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _env_example_with(tmp_path, monkeypatch, LOOPGATE_POLICY="")
    with pytest.raises(ConfigError, match=r"^LOOPGATE_POLICY is not set"):
        settings.require_policy_path()
    result = run_cli("decide", "--leads", "-", env={"LOOPGATE_POLICY": ""}, stdin='{"id": "a"}\n')
    assert result.code == 2
    assert result.err.strip() == "error: LOOPGATE_POLICY is not set: point it at your policy.yaml (or pass --policy)"


def test_given_empty_hubspot_and_salesforce_tokens_when_syncing_all_then_no_crm_is_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _env_example_with(tmp_path, monkeypatch)
    assert not settings.salesforce_configured and not settings.hubspot_configured
    with pytest.raises(ConfigError, match=r"^no CRM is configured"):
        open_ports(settings, read_policy(ROOT / "examples" / "policy.yaml"))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"hubspot_client_id": "c"}, "HUBSPOT_CLIENT_SECRET is not set"),
        ({"hubspot_client_id": "c", "hubspot_client_secret": "s"}, "HUBSPOT_REFRESH_TOKEN is not set"),
        ({"hubspot_refresh_token": "r"}, "HUBSPOT_CLIENT_ID is not set"),
    ],
)
def test_given_part_of_hubspot_oauth_when_required_then_the_missing_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, object], expected: str
) -> None:
    for name in ("HUBSPOT_ACCESS_TOKEN", "HUBSPOT_CLIENT_ID", "HUBSPOT_CLIENT_SECRET", "HUBSPOT_REFRESH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    settings = _settings(**values)
    assert settings.hubspot_configured  # sync --crm all tries it, and says what is missing
    with pytest.raises(ConfigError) as caught:
        settings.require_hubspot_token()
    assert str(caught.value).startswith(expected) and "\n" not in str(caught.value)


def test_given_hubspot_oauth_refresh_credentials_only_when_required_then_no_token_yet_and_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HUBSPOT_ACCESS_TOKEN", raising=False)
    settings = _settings(hubspot_client_id="c", hubspot_client_secret="s", hubspot_refresh_token="r")
    assert settings.hubspot_configured and settings.require_hubspot_token() is None


def test_given_settings_of_spaces_or_with_a_pasted_newline_when_read_then_blank_is_unset_and_the_rest_trimmed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `HUBSPOT_ACCESS_TOKEN=" "` was a configured HubSpot whose every call failed later
    settings = _env_example_with(
        tmp_path, monkeypatch, HUBSPOT_ACCESS_TOKEN='" "', LOOPGATE_POLICY='" "', LOOPGATE_LOG_LEVEL="debug"
    )
    assert not settings.hubspot_configured and settings.loopgate_policy is None
    assert settings.loopgate_log_level == "DEBUG"
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1\n")
    assert Settings(_env_file=None).slack_bot_token.get_secret_value() == "xoxb-1"  # type: ignore[call-arg,union-attr]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        # serve and the scheduler configure logging with it: a traceback of 40 lines
        ({"LOOPGATE_LOG_LEVEL": "verbose"}, "error: LOOPGATE_LOG_LEVEL: Input should be 'DEBUG', 'INFO'"),
        # a folder: "/tmp: cannot read: Is a directory", exit 1, and the variable not named
        ({"LOOPGATE_POLICY": "/"}, "error: LOOPGATE_POLICY: cannot read /: Is a directory"),
    ],
)
def test_given_a_wrong_setting_when_a_command_starts_then_one_line_names_the_variable_and_exit_2(
    env: dict[str, str], expected: str
) -> None:
    result = run_cli("decide", "--leads", "-", env=env, stdin='{"id": "a"}\n')
    assert result.code == 2 and result.err.startswith(expected) and len(result.err.splitlines()) == 1, result
