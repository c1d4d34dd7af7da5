"""The Salesforce adapter of :class:`core.ports.CrmPort`, on simple-salesforce over real HTTP.

Reads page by page (``query``/``queryAll`` then ``nextRecordsUrl``) so every page can be
stored with its cursor; an expired query locator restarts the query from the last stored
cursor. Writes go through sObject Collections: ``PATCH composite/sobjects`` (≤ 200 records,
``allOrNone=false``, one result per record in request order) and current values through the
collections retrieve (``POST composite/sobjects/{type}``, ≤ 2,000 ids). Every call is retried
by :func:`connectors.retry.call_with_retry`, re-logging in once when the session expired and
credentials allow, and waiting out short rate limits (``403 REQUEST_LIMIT_EXCEEDED``, or a
gateway's ``429`` after its ``Retry-After``). ``Sforce-Limit-Info`` is watched: past
``stop_at_usage`` of the org's daily allowance, calls stop with
:class:`~connectors.errors.RateLimited` instead of starving the org's other integrations — and
every ``usage_recheck`` one call is let through to read the figure again: the allowance is a
rolling 24 hours, and the header is the only way the figure ever changes, so a guard that never
called again stopped the process's syncs for good.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import requests
from simple_salesforce.api import Salesforce

from connectors.errors import AuthExpired, BadRequest, RateLimited
from connectors.retry import RetryPolicy, call_with_retry
from connectors.salesforce.auth import SalesforceAuth
from connectors.salesforce.errors import SYSTEM, raise_too_many_requests, translate
from connectors.salesforce.records import LEAD_OBJECTS, STREAMS
from core.ports import Cursor, Page, RecordUpdate, WriteResult

__all__ = ["SalesforceConnector"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_RETRYABLE = frozenset({"UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE", "UNKNOWN_EXCEPTION"})
_GONE = frozenset({"ENTITY_IS_DELETED"})
# a lead converted since it was synced: read-only for good, and an outcome rather than a failure
_CONVERTED = "CANNOT_UPDATE_CONVERTED_LEAD"
# an inactive user given as owner: Salesforce names no field (``"fields": []``), the code says it
_OWNER_REFUSED = frozenset({"INACTIVE_OWNER_OR_USER"})
# what a query answers (400) when the user cannot see the object (no permission, feature off)
# or one of its fields (field-level security)
_NOT_VISIBLE = frozenset({"INVALID_TYPE", "INVALID_FIELD"})
_MAX_RESUMES = 3  # expired query locators in a row without the cursor moving


class SalesforceConnector:
    """One org. ``field_map`` is the policy's ``writeback.salesforce`` (key → field name)."""

    system = SYSTEM
    owner_field = "OwnerId"
    write_batch = 200
    read_batch = 2000

    def __init__(
        self,
        auth: SalesforceAuth,
        session: requests.Session,
        *,
        field_map: Mapping[str, str],
        retry: RetryPolicy | None = None,
        timeout: float = 120.0,
        stop_at_usage: float = 0.95,
        lookback: timedelta = timedelta(seconds=10),
        usage_recheck: timedelta = timedelta(minutes=15),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.auth = auth
        self.session = session
        if raise_too_many_requests not in session.hooks["response"]:
            session.hooks["response"].append(raise_too_many_requests)  # keeps a 429's Retry-After
        self.field_map = dict(field_map)
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.stop_at_usage = stop_at_usage
        self.lookback = lookback  # each run re-reads this much before its cursor (see records.py)
        self.usage_recheck = usage_recheck
        self.monotonic = monotonic  # injectable: tests move time
        self._guard_since: float | None = None  # when the usage guard last refused a call
        self.calls = 0
        self._sf: Salesforce | None = None

    # --- plumbing ---------------------------------------------------------------------------------

    @property
    def client(self) -> Salesforce:
        if self._sf is None:
            self._sf = self.auth.open(self.session)
        return self._sf

    def _reauthenticate(self) -> bool:
        if not self.auth.can_login:
            return False
        self._sf = self.auth.open(self.session, fresh=True)
        return True

    def _check_usage(self, resource: str) -> None:
        usage = self._sf.api_usage.get("api-usage") if self._sf is not None else None
        if usage is None or not usage.total or usage.used / usage.total < self.stop_at_usage:
            self._guard_since = None
            return
        now = self.monotonic()
        if self._guard_since is not None and now - self._guard_since >= self.usage_recheck.total_seconds():
            self._guard_since = None  # one call goes through: its Sforce-Limit-Info is today's figure
            return
        if self._guard_since is None:
            self._guard_since = now
        raise RateLimited(
            SYSTEM,
            None,
            resource,
            f"the org has used {usage.used} of {usage.total} API requests today; loopgate stops at "
            f"{self.stop_at_usage:.0%} to leave room for other integrations",
            code="API_USAGE_GUARD",
            daily=True,
        )

    def _call(self, resource: str, fn: Callable[[Salesforce], T]) -> T:
        def attempt() -> T:
            self._check_usage(resource)
            self.calls += 1
            try:
                return fn(self.client)
            except Exception as exc:
                raise translate(exc, resource) from exc

        try:
            return call_with_retry(attempt, self.retry, reauthenticate=self._reauthenticate)
        except AuthExpired as exc:
            if self.auth.can_login:
                raise
            raise AuthExpired(
                SYSTEM,
                exc.status,
                resource,
                "SALESFORCE_ACCESS_TOKEN expired or was revoked, and no login credentials are configured to renew "
                "it (set SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET, or SALESFORCE_USERNAME, "
                "SALESFORCE_PASSWORD and SALESFORCE_SECURITY_TOKEN)",
                code=exc.code,
            ) from exc

    # --- the port -----------------------------------------------------------------------------------

    def streams(self, *, full: bool = False) -> Sequence[str]:
        # campaign responses before the leads and contacts they are events of: a lead new in this
        # run is decided once, with its responses; one stored before is re-decided when they change
        return ("users", "queues", "accounts", "campaign_members", "leads", "contacts", "opportunities")

    def read(self, stream: str, cursor: Cursor | None) -> Iterator[Page]:
        spec = STREAMS[stream]
        extra = list(self.field_map.values()) if stream in LEAD_OBJECTS else []
        current = start = cursor or Cursor()
        soql = spec.query(cursor, extra, self.lookback)
        try:
            result = self._call(
                f"query {spec.sobject}",
                lambda sf: sf.query(soql, include_deleted=spec.deleted, timeout=self.timeout),
            )
        except BadRequest as exc:
            if not spec.optional or exc.code not in _NOT_VISIBLE:
                raise
            # campaigns are a marketing feature the integration user may not see: leads still sync
            log.warning("salesforce %s not readable (%s); skipping the %s stream", spec.sobject, exc.code, stream)
            return
        resumed_at, stuck = None, 0
        while True:
            page = spec.to_page(stream, result.get("records") or [], current, extra)
            current = page.cursor
            if page.size:
                yield page
            if result.get("done", True):
                return
            next_url = str(result["nextRecordsUrl"])
            try:
                result = self._call(
                    f"query more {spec.sobject}",
                    lambda sf, url=next_url: sf.query_more(url, identifier_is_url=True, timeout=self.timeout),  # type: ignore[misc]
                )
            except BadRequest as exc:
                if exc.code != "INVALID_QUERY_LOCATOR":
                    raise
                # a resume re-reads its look-back; a locator that keeps expiring before the
                # cursor moves would re-read it forever: give up, the next run starts over
                stuck = stuck + 1 if current == resumed_at else 1
                resumed_at = current
                if stuck > _MAX_RESUMES:
                    raise
                # the server-side cursor timed out: resume from what is stored, nothing is lost.
                # While the pages are still inside the run's look-back the cursor has not moved,
                # and only the look-back finds an edit in the cursor's second to a record with a
                # lower Id: resume with it (a strict (time, Id) resume skipped such an edit for
                # good). Once the cursor moved past where the run began, all of it has been read.
                log.info("salesforce query locator expired; resuming %s from its cursor", stream)
                resumed = spec.query(current, extra, self.lookback if current == start else timedelta(0))
                result = self._call(
                    f"query {spec.sobject}",
                    lambda sf, q=resumed: sf.query(q, include_deleted=spec.deleted, timeout=self.timeout),  # type: ignore[misc]
                )

    def current(self, object_type: str, ids: Sequence[str], fields: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        out: dict[str, dict[str, Any] | None] = {}
        for start in range(0, len(ids), self.read_batch):
            chunk = list(ids[start : start + self.read_batch])
            rows = self._call(
                f"retrieve {object_type}",
                lambda sf, chunk=chunk: sf.restful(  # type: ignore[misc]
                    f"composite/sobjects/{object_type}",
                    method="POST",
                    json={"ids": chunk, "fields": list(fields)},
                    timeout=self.timeout,
                ),
            )
            for record_id, row in zip(chunk, rows or [None] * len(chunk), strict=True):
                out[record_id] = None if row is None else {f: row.get(f) for f in fields}
        return out

    def update(self, updates: Sequence[RecordUpdate]) -> list[WriteResult]:
        if len(updates) > self.write_batch:
            raise ValueError(f"at most {self.write_batch} records per Salesforce collection update")
        if not updates:
            return []
        records = [{"attributes": {"type": u.object_type}, "id": u.id, **u.values} for u in updates]
        results = self._call(
            "composite/sobjects update",
            lambda sf: sf.restful(
                "composite/sobjects",
                method="PATCH",
                json={"allOrNone": False, "records": records},
                timeout=self.timeout,
            ),
        )
        out = []
        for u, result in zip(updates, results or [], strict=True):
            if result.get("success"):
                out.append(WriteResult(u.id, True))
                continue
            errors = [e for e in result.get("errors") or [] if isinstance(e, dict)] or [{}]
            code, message = errors[0].get("statusCode"), str(errors[0].get("message") or "")
            fields = tuple(dict.fromkeys(str(f) for e in errors for f in e.get("fields") or ()))
            if not fields and code in _OWNER_REFUSED and self.owner_field in u.values:
                fields = (self.owner_field,)
            out.append(
                WriteResult(
                    u.id,
                    False,
                    code,
                    message,
                    retryable=code in _RETRYABLE,
                    gone=code in _GONE,
                    converted=code == _CONVERTED,
                    fields=fields,
                )
            )
        return out
