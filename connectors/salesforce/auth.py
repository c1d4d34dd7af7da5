"""Salesforce sessions: an access token, or a login that can be repeated when it expires.

simple-salesforce only refreshes sessions it logged in itself, against ``*.salesforce.com``;
loopgate logs in through the same client functions (SOAP ``login`` for username + password +
security token, the OAuth token endpoint for client credentials or the password grant) but
against a configurable login URL, so a sandbox, a My Domain or the local fake all work, and
then hands the session to ``Salesforce(session_id=…, instance_url=…)``. An expired static
token cannot be renewed: that is an :class:`~connectors.errors.AuthExpired` naming the variable.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from urllib.request import getproxies

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.login import SalesforceLogin, token_login

from connectors.errors import AuthExpired
from connectors.salesforce.errors import SYSTEM, translate

__all__ = ["API_VERSION", "SalesforceAuth", "http_session"]

API_VERSION = "59.0"


def http_session(ca_bundle: Path | None) -> requests.Session:
    """A requests session. With a private CA bundle, environment CA settings
    (``REQUESTS_CA_BUNDLE``) must not override it, so the environment is ignored for
    certificates — proxies from the environment are kept explicitly."""
    session = requests.Session()
    if ca_bundle is not None:
        session.trust_env = False
        session.verify = str(ca_bundle)
        session.proxies.update(getproxies())
    return session


@dataclass
class SalesforceAuth:
    """Everything needed to (re)open a session. Secrets stay here, never in messages."""

    instance_url: str | None = None
    access_token: str | None = None
    login_url: str = "https://login.salesforce.com"
    username: str | None = None
    password: str | None = None
    security_token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None

    @property
    def can_login(self) -> bool:
        return bool(self.client_id and self.client_secret) or bool(
            self.username and self.password and self.security_token is not None
        )

    def open(self, session: requests.Session, *, fresh: bool = False) -> Salesforce:
        """A client on a session: the configured token first, a login when asked (``fresh``)
        or when there is no token."""
        if self.access_token and self.instance_url and not fresh:
            return Salesforce(
                session_id=self.access_token, instance_url=self.instance_url, session=session, version=API_VERSION
            )
        if not self.can_login:
            raise AuthExpired(SYSTEM, 401, "session", "SALESFORCE_ACCESS_TOKEN and SALESFORCE_INSTANCE_URL are not set")
        try:
            token, instance = self._login(session)
        except Exception as exc:
            raise translate(exc, "login") from exc
        self.access_token, self.instance_url = token, f"https://{instance}"
        return Salesforce(session_id=token, instance_url=self.instance_url, session=session, version=API_VERSION)

    def _login(self, session: requests.Session) -> tuple[str, str]:
        token_url = f"{self.login_url.rstrip('/')}/services/oauth2/token"
        if self.client_id and self.client_secret and self.username and self.password:
            data = {
                "grant_type": "password",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "username": self.username,
                "password": self.password + (self.security_token or ""),
            }
            token, instance = token_login(token_url, data, "login", self.client_id, None, None, session)
            return str(token), str(instance)
        if self.client_id and self.client_secret:
            basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
            token, instance = token_login(
                token_url,
                {"grant_type": "client_credentials"},
                "login",
                self.client_id,
                {"Authorization": f"Basic {basic}"},
                None,
                session,
            )
            return str(token), str(instance)
        # SOAP login with username, password and security token; scratch_url points it at login_url
        return SalesforceLogin(
            username=self.username,
            password=self.password,
            security_token=self.security_token,
            session=session,
            sf_version=API_VERSION,
            scratch_url=self.login_url.rstrip("/"),
        )
