"""hubspot-api-client and urllib3 exceptions → :mod:`connectors.errors`, in one place.

Each API package of the client has its own ``ApiException`` class (``status``, ``body``,
``headers``), so they are recognised by shape. A ``429`` carries ``policyName`` in its body
(``TEN_SECONDLY_ROLLING``, ``SECONDLY`` for search, ``DAILY``) and, outside search, the
``X-HubSpot-RateLimit-*`` headers; ``Retry-After`` wins when present. The client talks urllib3,
whose connection errors surface as ``urllib3.exceptions.HTTPError``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import urllib3

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

__all__ = ["SYSTEM", "is_api_exception", "refused_properties", "retry_after", "translate"]

SYSTEM = "hubspot"


def is_api_exception(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("hubspot.") and hasattr(exc, "status") and hasattr(exc, "body")


def _body(exc: Any) -> dict[str, Any]:
    raw = getattr(exc, "body", None)
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except ValueError:
            return {"message": raw[:300]}
        return parsed if isinstance(parsed, dict) else {"message": str(parsed)[:300]}
    return {}


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    if isinstance(headers, Mapping):
        for key, value in headers.items():
            if str(key).lower() == name.lower():
                return str(value)
    return None


_INVALID_VALUES = "Property values were not valid: "


def refused_properties(error: Mapping[str, Any]) -> tuple[str, ...]:
    """The properties a HubSpot error (a whole-call body, or one error of a batch's ``207``)
    says it refused, in order: each error detail's ``context.propertyName``, the error's own,
    and the ``name`` of each entry of the list HubSpot writes into "Property values were not
    valid: [...]" (JSON, the one place some answers name the property). Empty when it names none."""
    names: list[str] = []
    details = [d for d in error.get("errors") or [] if isinstance(d, Mapping)]
    for context in (error.get("context"), *(d.get("context") for d in details)):
        named = context.get("propertyName") if isinstance(context, Mapping) else None
        names.extend([named] if isinstance(named, str) else [str(n) for n in named or () if n])
    message = str(error.get("message") or "")
    at = message.find(_INVALID_VALUES)
    if at >= 0:
        try:
            entries = json.loads(message[at + len(_INVALID_VALUES) :])
        except ValueError:
            entries = []
        if isinstance(entries, list):
            names.extend(str(e["name"]) for e in entries if isinstance(e, Mapping) and e.get("name"))
    return tuple(dict.fromkeys(names))


def retry_after(headers: Any, body: Mapping[str, Any]) -> float | None:
    """Seconds to wait before retrying a 429, from what HubSpot said."""
    explicit = retry_after_seconds(_header(headers, "Retry-After"))
    if explicit is not None:
        return explicit
    policy = str(body.get("policyName") or "").upper()
    if policy == "SECONDLY":
        return 1.0
    interval = _header(headers, "X-HubSpot-RateLimit-Interval-Milliseconds")
    if policy == "TEN_SECONDLY_ROLLING" or interval is not None:
        try:
            return float(interval or 10_000) / 1000
        except ValueError:
            return 10.0
    return None


def translate(exc: BaseException, resource: str) -> ConnectorError:
    """The loopgate error for an exception raised while calling HubSpot."""
    if is_api_exception(exc):
        status = int(getattr(exc, "status", 0) or 0)
        body = _body(exc)
        headers = getattr(exc, "headers", None)
        message = str(body.get("message") or getattr(exc, "reason", "") or "")[:500]
        category = body.get("category") or body.get("errorType") or body.get("status")
        code = str(category) if category else None
        if status == 429:
            policy = str(body.get("policyName") or "")
            return RateLimited(
                SYSTEM,
                status,
                resource,
                f"{message} (policy {policy or 'unknown'})",
                code=policy or code,
                retry_after=retry_after(headers, body),
                daily=policy.upper() == "DAILY",
            )
        if status == 401:
            return AuthExpired(SYSTEM, status, resource, message or "token rejected", code=code)
        if status == 403:
            return Forbidden(SYSTEM, status, resource, message or "missing scope", code=code)
        if status == 404:
            return NotFound(SYSTEM, status, resource, message, code=code)
        if status == 400 and "PROPERTY_DOESNT_EXIST" in message:
            return CrmSetupMissing(
                SYSTEM, status, resource, f"{message} — run `loopgate crm setup hubspot`", code="PROPERTY_DOESNT_EXIST"
            )
        if 400 <= status < 500:
            return BadRequest(SYSTEM, status, resource, message, code=code, fields=refused_properties(body))
        if status >= 500:
            return Unavailable(SYSTEM, status, resource, message or "server error", code=code)
        return ConnectorError(SYSTEM, status or None, resource, message or "request failed", code=code)
    if isinstance(exc, urllib3.exceptions.HTTPError):
        return Unavailable(SYSTEM, None, resource, f"{type(exc).__name__}: cannot reach HubSpot")
    raise exc
