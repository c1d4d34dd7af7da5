"""Settings, read once at the entry point from the environment (and a ``.env`` file).

Secrets are ``SecretStr``: they print as ``**********`` in reprs, logs and errors. Each
integration asks for its credentials with a ``require_*`` method, which names the missing
variable in one line instead of failing later inside a client library.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.store.outbox import RetryPolicy
from loopgate.logs import redact

__all__ = ["ConfigError", "SalesforceCredentials", "Settings", "load_settings"]


class ConfigError(Exception):
    """A setting is missing or wrong; the message names the environment variable."""


class SalesforceCredentials:
    """One of: an access token (+ instance URL), username/password/token, or client credentials."""

    def __init__(self, settings: Settings) -> None:
        self.instance_url = settings.salesforce_instance_url
        self.access_token = settings.salesforce_access_token
        self.username = settings.salesforce_username
        self.password = settings.salesforce_password
        self.security_token = settings.salesforce_security_token
        self.domain = settings.salesforce_domain
        self.client_id = settings.salesforce_client_id
        self.client_secret = settings.salesforce_client_secret
        self.ca_bundle = settings.salesforce_ca_bundle
        self.login_url = settings.salesforce_login_url or f"https://{settings.salesforce_domain}.salesforce.com"

    @property
    def can_reauthenticate(self) -> bool:
        return bool(self.username and self.password) or bool(self.client_id and self.client_secret)


class Settings(BaseSettings):
    # an empty value is no value: `.env.example` copied with only some lines filled in leaves
    # `SALESFORCE_CA_BUNDLE=`, `HUBSPOT_ACCESS_TOKEN=`, `LOOPGATE_POLICY=`, which would otherwise
    # be the folder ".", a configured HubSpot with no token, a policy path that is a folder
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True)

    loopgate_database_url: str = "sqlite:///loopgate.db"
    loopgate_policy: Path | None = None
    loopgate_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # how long a worker holds claimed outbox rows (a killed worker's rows return after it) and
    # the first retry delay; how long the elected scheduler's lease lives without renewal
    loopgate_outbox_lease_seconds: float = Field(default=120.0, gt=0)
    loopgate_outbox_retry_seconds: float = Field(default=5.0, gt=0)
    loopgate_scheduler_lease_seconds: float = Field(default=30.0, gt=0)
    loopgate_policy_follow_seconds: float = Field(default=30.0, gt=0)

    salesforce_instance_url: str | None = None
    salesforce_access_token: SecretStr | None = None
    salesforce_username: str | None = None
    salesforce_password: SecretStr | None = None
    salesforce_security_token: SecretStr | None = None
    salesforce_domain: str = "login"
    salesforce_client_id: str | None = None
    salesforce_client_secret: SecretStr | None = None
    salesforce_ca_bundle: Path | None = None
    salesforce_login_url: str | None = None  # default https://{SALESFORCE_DOMAIN}.salesforce.com

    hubspot_access_token: SecretStr | None = None
    hubspot_base_url: str = "https://api.hubapi.com"
    hubspot_client_id: str | None = None
    hubspot_client_secret: SecretStr | None = None
    hubspot_refresh_token: SecretStr | None = None
    hubspot_search_per_second: float = 4.0

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, values: Any) -> Any:
        # a value of spaces (or a token pasted with its newline) is the value without them, and
        # nothing but spaces is no value, as empty is: `HUBSPOT_ACCESS_TOKEN=" "` was accepted
        # and failed every call later
        if not isinstance(values, dict):
            return values
        stripped = {k: v.strip() if isinstance(v, str) else v for k, v in values.items()}
        return {k: v for k, v in stripped.items() if not (isinstance(v, str) and not v)}

    @field_validator("loopgate_log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    def secret_values(self) -> list[str]:
        """Every secret that is set (each ``SecretStr`` setting: Slack's, the CRMs' tokens and
        passwords), for the log filter (:mod:`loopgate.logs`); a secret added later is included
        without anyone remembering to list it."""
        values = (getattr(self, name) for name in type(self).model_fields)
        return [v.get_secret_value() for v in values if isinstance(v, SecretStr) and v.get_secret_value()]

    def outbox_retry_policy(self) -> RetryPolicy:
        """The outbox workers' claim lease and first retry delay."""
        return RetryPolicy(
            base=timedelta(seconds=self.loopgate_outbox_retry_seconds),
            lease=timedelta(seconds=self.loopgate_outbox_lease_seconds),
        )

    def require_policy_path(self) -> Path:
        if self.loopgate_policy is None:
            raise ConfigError("LOOPGATE_POLICY is not set: point it at your policy.yaml (or pass --policy)")
        return self.loopgate_policy

    def require_salesforce(self) -> SalesforceCredentials:
        creds = SalesforceCredentials(self)
        if creds.access_token is not None and not self.salesforce_instance_url:
            raise ConfigError("SALESFORCE_INSTANCE_URL is not set (needed with SALESFORCE_ACCESS_TOKEN)")
        if creds.access_token is None and not creds.can_reauthenticate:
            raise ConfigError(
                "SALESFORCE_ACCESS_TOKEN is not set (or set SALESFORCE_USERNAME, SALESFORCE_PASSWORD "
                "and SALESFORCE_SECURITY_TOKEN, or SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET)"
            )
        if creds.ca_bundle is not None and not creds.ca_bundle.is_file():
            raise ConfigError(f"SALESFORCE_CA_BUNDLE: no such file {creds.ca_bundle}")
        for name, url in (("SALESFORCE_INSTANCE_URL", creds.instance_url), ("SALESFORCE_LOGIN_URL", creds.login_url)):
            if url is not None and not _is_url(url, https_only=True):
                raise ConfigError(f"{name}: {url!r} is not an https:// URL")
        return creds

    def _hubspot_oauth(self) -> dict[str, object]:
        return {
            "HUBSPOT_CLIENT_ID": self.hubspot_client_id,
            "HUBSPOT_CLIENT_SECRET": self.hubspot_client_secret,
            "HUBSPOT_REFRESH_TOKEN": self.hubspot_refresh_token,
        }

    def require_hubspot_token(self) -> SecretStr | None:
        """The access token (a private app's, or an OAuth app's current one); None when only an
        OAuth app's refresh credentials are set, with which the connector gets a token itself."""
        token = self.hubspot_access_token if self.hubspot_access_token else None  # SecretStr("") is falsy
        if token is None:
            oauth = self._hubspot_oauth()
            missing = [name for name, value in oauth.items() if not value]
            if len(missing) == len(oauth):
                raise ConfigError(
                    "HUBSPOT_ACCESS_TOKEN is not set (a private app token, pat-…; or set HUBSPOT_CLIENT_ID, "
                    "HUBSPOT_CLIENT_SECRET and HUBSPOT_REFRESH_TOKEN of an OAuth app)"
                )
            if missing:
                given = ", ".join(name for name in oauth if name not in missing)
                raise ConfigError(
                    f"{missing[0]} is not set (needed with {given} to get HubSpot access tokens; "
                    "or set HUBSPOT_ACCESS_TOKEN)"
                )
        if not _is_url(self.hubspot_base_url, https_only=False):
            raise ConfigError(f"HUBSPOT_BASE_URL: {self.hubspot_base_url!r} is not an http(s):// URL")
        if self.hubspot_search_per_second <= 0 or self.hubspot_search_per_second > 5:
            raise ConfigError("HUBSPOT_SEARCH_PER_SECOND must be above 0 and at most 5 (HubSpot's search limit)")
        return token

    @property
    def salesforce_configured(self) -> bool:
        """Whether any Salesforce credential is set (``sync --crm all`` syncs configured CRMs)."""
        return bool(self.salesforce_access_token or self.salesforce_username or self.salesforce_client_id)

    @property
    def hubspot_configured(self) -> bool:
        """Whether any HubSpot credential is set: a token, or any of an OAuth app's refresh
        credentials (``sync --crm all`` then tries HubSpot, and names what is missing)."""
        return bool(self.hubspot_access_token) or any(self._hubspot_oauth().values())

    def require_slack(self) -> tuple[SecretStr, SecretStr | None]:
        """The bot token and, for HTTP mode, the signing secret."""
        if self.slack_bot_token is None or not self.slack_bot_token.get_secret_value():
            raise ConfigError("SLACK_BOT_TOKEN is not set (xoxb-…)")
        if self.slack_app_token is None and self.slack_signing_secret is None:
            raise ConfigError(
                "SLACK_SIGNING_SECRET is not set (needed in HTTP mode; set SLACK_APP_TOKEN for Socket Mode)"
            )
        return self.slack_bot_token, self.slack_signing_secret


def _is_url(value: str, *, https_only: bool) -> bool:
    schemes = ("https://",) if https_only else ("https://", "http://")
    return value.startswith(schemes) and len(value.split("://", 1)[1]) > 0


def load_settings() -> Settings:
    """Read and validate settings once; any problem is one line naming the variable."""
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        raise ConfigError(f"{name}: {first['msg']}") from None
    redact(settings.secret_values())
    return settings
