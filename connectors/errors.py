"""The connectors' errors: one root, subclasses by meaning, structured fields.

::

    ConnectorError(system, status, resource)
    ├── RateLimited       429 / REQUEST_LIMIT_EXCEEDED; ``retry_after`` when the CRM said, ``daily``
    ├── AuthExpired       401: token expired or revoked and cannot be renewed here
    ├── Forbidden         403 other than rate limits: missing permission or scope
    ├── NotFound          404
    ├── BadRequest        400: the request is wrong (field missing in the CRM, bad query…)
    ├── Unavailable       5xx, timeouts, refused connections: worth retrying
    └── CrmSetupMissing   a loopgate field or property does not exist in the CRM yet

SDK exceptions are translated at the edge (``connectors.salesforce.errors``,
``connectors.hubspot.errors``) and chained with ``from``. Messages never contain tokens: the
translators build them from status, error code and the CRM's message only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = [
    "AuthExpired",
    "BadRequest",
    "ConnectorError",
    "CrmSetupMissing",
    "Forbidden",
    "NotFound",
    "RateLimited",
    "Unavailable",
    "retry_after_seconds",
]


class ConnectorError(Exception):
    """A CRM call failed. ``resource`` names what was called (``query Lead``, ``batch/update``);
    ``fields`` the fields the CRM said it refused, when it said (HubSpot's invalid property values)."""

    retryable = False

    def __init__(
        self,
        system: str,
        status: int | None,
        resource: str,
        message: str,
        *,
        code: str | None = None,
        fields: tuple[str, ...] = (),
    ):
        self.system = system
        self.status = status
        self.resource = resource
        self.code = code
        self.message = message
        self.fields = fields
        where = f"{system} {resource}"
        what = f"{status} {code}" if status is not None and code else (str(status) if status is not None else code)
        super().__init__(f"{where}: {what + ': ' if what else ''}{message}")


class RateLimited(ConnectorError):
    """The CRM refused because of a rate limit. ``daily`` limits do not reset for hours."""

    retryable = True

    def __init__(
        self,
        system: str,
        status: int | None,
        resource: str,
        message: str,
        *,
        code: str | None = None,
        retry_after: float | None = None,
        daily: bool = False,
    ):
        super().__init__(system, status, resource, message, code=code)
        self.retry_after = retry_after
        self.daily = daily


class AuthExpired(ConnectorError):
    """Credentials were rejected. Raised only when loopgate could not renew them itself."""


class Forbidden(ConnectorError):
    """The integration user lacks a permission or scope."""


class NotFound(ConnectorError):
    """The object or endpoint does not exist."""


class BadRequest(ConnectorError):
    """The CRM says the request is malformed; retrying the same request will not help."""


class Unavailable(ConnectorError):
    """A server error, timeout or connection failure; retrying later may succeed."""

    retryable = True


class CrmSetupMissing(ConnectorError):
    """A loopgate custom field or property is missing: run ``loopgate crm setup <crm>``."""


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, which RFC 9110 lets be delay-seconds or
    an HTTP-date: API gateways in front of a CRM send dates, and reading only seconds made the
    next call come after a backoff's half second instead of the minutes asked. A date already
    past waits 0; anything else unreadable is ``None`` (the caller's backoff decides). How long
    is too long to wait inside one call is the caller's bound (``RetryPolicy.max_wait``)."""
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        until = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if until.tzinfo is None:  # "-0000": UTC without saying so
        until = until.replace(tzinfo=UTC)
    return max((until - (now or datetime.now(UTC))).total_seconds(), 0.0)
