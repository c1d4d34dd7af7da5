"""simple-salesforce and requests exceptions → :mod:`connectors.errors`, in one place.

simple-salesforce raises by status (400 Malformed, 401 ExpiredSession, 403 RefusedRequest,
404 NotFound, other GeneralError) with the response body attached; the body's ``errorCode``
says what really happened (``REQUEST_LIMIT_EXCEEDED`` is a 403, ``INVALID_FIELD`` a 400).
Messages are built from status, code and Salesforce's message only: never the URL's
credentials or the session id.

Salesforce's REST API signals its limits with that 403, but an org behind an API gateway can
get ``429 Too Many Requests`` (with ``Retry-After``, and a body that may not be Salesforce's).
simple-salesforce raises it as a ``SalesforceGeneralError`` without the response's headers, so
:func:`raise_too_many_requests`, a ``requests`` hook on the connector's session, raises it
first with the response attached; either way it is :class:`~connectors.errors.RateLimited`.
"""

from __future__ import annotations

from typing import Any

import requests
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from connectors.errors import (
    AuthExpired,
    BadRequest,
    ConnectorError,
    CrmSetupMissing,
    Forbidden,
    NotFound,
    RateLimited,
    Unavailable,
    retry_after_seconds,
)

__all__ = ["SYSTEM", "error_code", "raise_too_many_requests", "translate"]

SYSTEM = "salesforce"


def error_code(content: Any) -> tuple[str | None, str]:
    """(errorCode, message) from a Salesforce error body (a list of errors, usually one)."""
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        return first.get("errorCode"), str(first.get("message") or "")
    if isinstance(content, dict):
        return content.get("errorCode") or content.get("error"), str(
            content.get("message") or content.get("error_description") or ""
        )
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    return None, str(content or "")[:300]


def raise_too_many_requests(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """A ``requests`` response hook: a 429 becomes :class:`requests.HTTPError` holding the
    response (and so ``Retry-After``), which simple-salesforce would drop."""
    if response.status_code == 429:
        _ = response.content  # read whole: the connection goes back to the pool
        response.raise_for_status()


def _rate_limited(
    status: int, resource: str, code: str | None, message: str, retry_after: float | None = None
) -> RateLimited:
    # the org's rolling 24-hour allowance is spent ("TotalRequests"); concurrency limits pass soon
    daily = "totalrequests" in message.lower()
    return RateLimited(
        SYSTEM, status, resource, message or "too many requests", code=code, retry_after=retry_after, daily=daily
    )


def translate(exc: Exception, resource: str) -> ConnectorError:
    """The loopgate error for an exception raised while calling Salesforce."""
    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None and exc.response.status_code == 429:
        try:
            content: Any = exc.response.json()
        except ValueError:
            content = exc.response.text
        code, message = error_code(content)
        return _rate_limited(429, resource, code, message, retry_after_seconds(exc.response.headers.get("Retry-After")))
    if isinstance(exc, SalesforceAuthenticationFailed):
        return AuthExpired(SYSTEM, 401, resource, f"login failed: {exc.auth_message or exc.code}", code=str(exc.code))
    if isinstance(exc, SalesforceError):
        return _api_error(exc, resource)
    if isinstance(exc, requests.exceptions.SSLError):
        return ConnectorError(
            SYSTEM,
            None,
            resource,
            "TLS verification failed; if your Salesforce is behind a private CA, set SALESFORCE_CA_BUNDLE",
        )
    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        return Unavailable(SYSTEM, None, resource, f"{type(exc).__name__}: cannot reach Salesforce")
    if isinstance(exc, ValueError):  # a body that is not JSON (a proxy's HTML error page)
        return Unavailable(SYSTEM, None, resource, "response was not JSON")
    raise exc


def _api_error(exc: SalesforceError, resource: str) -> ConnectorError:
    code, message = error_code(exc.content)
    status = exc.status
    if isinstance(exc, SalesforceExpiredSession):
        return AuthExpired(SYSTEM, status, resource, message or "session expired or invalid", code=code)
    if status == 429:  # a session without the hook: no Retry-After, backoff decides
        return _rate_limited(status, resource, code, message)
    if isinstance(exc, SalesforceRefusedRequest):
        if code == "REQUEST_LIMIT_EXCEEDED":
            return _rate_limited(status, resource, code, message)
        return Forbidden(SYSTEM, status, resource, message, code=code)
    if isinstance(exc, SalesforceResourceNotFound):
        return NotFound(SYSTEM, status, resource, message, code=code)
    if isinstance(exc, SalesforceMalformedRequest):
        if code == "INVALID_FIELD" and "__c" in message:
            return CrmSetupMissing(
                SYSTEM,
                status,
                resource,
                f"{message} — deploy the loopgate fields (`loopgate crm setup salesforce`) "
                "and give the integration user access to them",
                code=code,
            )
        return BadRequest(SYSTEM, status, resource, message, code=code)
    if status >= 500:
        return Unavailable(SYSTEM, status, resource, message or "server error", code=code)
    return ConnectorError(SYSTEM, status, resource, message, code=code)
