"""The HubSpot adapter of :class:`core.ports.CrmPort`, on hubspot-api-client over real HTTP.

Contacts, companies and deals are read through the search API in keyset windows (see
:mod:`connectors.hubspot.records`), paced to ``search_per_second`` (HubSpot allows 5; the
default leaves a margin). Owners are listed whole each run (there is no modified filter, and
there are few). Deleted records are found by listing archived contacts, companies and deals
(a deleted deal must stop counting as its contacts' outcome), at most every ``archived_every``
(the list cannot be filtered by date); merged ones by the winner's ``hs_merged_object_ids``.
Writes use batch update (≤ 100 inputs, ``207`` for per-record errors), current values batch
read (≤ 100). Expired OAuth tokens are refreshed once when a refresh token is configured;
private-app tokens do not expire.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import urllib3
from hubspot import HubSpot

from connectors.errors import AuthExpired, Unavailable
from connectors.hubspot.errors import SYSTEM, refused_properties, translate
from connectors.hubspot.records import (
    COMPANY_PROPERTIES,
    CONTACT_PROPERTIES,
    DEAL_PROPERTIES,
    account_record,
    deal_record,
    lead_record,
    merged_tombstones,
    modified_at,
    next_cursor,
    rewind,
    window,
)
from connectors.retry import RetryPolicy, call_with_retry
from core.ports import Cursor, OwnerRecord, Page, RecordUpdate, Tombstone, WriteResult

__all__ = ["HubSpotAuth", "HubSpotConnector"]

log = logging.getLogger(__name__)
T = TypeVar("T")

API_OBJECT = {"contact": "contacts", "contacts": "contacts", "company": "companies", "companies": "companies"}
_MODIFIED = {"contacts": "lastmodifieddate", "companies": "hs_lastmodifieddate", "deals": "hs_lastmodifieddate"}
_GONE = frozenset({"OBJECT_NOT_FOUND"})
_RETRYABLE = frozenset({"RATE_LIMIT", "RATE_LIMITS", "INTERNAL_ERROR", "TIMEOUT"})


@dataclass(frozen=True, slots=True)
class _Row:
    id: str
    properties: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Found:
    """A search answer read from its JSON, not through the client's models: building those
    cost ~0.25 ms of CPU a record (2.5 s per 10,000 contacts, bench/sync.py), in the read-ahead
    thread that shares the interpreter with storing and deciding. ``results`` is None when the
    body is not a search answer (cut off, not JSON, a record without an id)."""

    results: list[_Row] | None
    total: int


def _found(response: Any) -> _Found:
    try:
        body = json.loads(response.data)
    except ValueError:
        return _Found(None, 0)
    finally:
        response.release_conn()
    rows = body.get("results") if isinstance(body, dict) else None
    if not isinstance(rows, list) or not all(
        isinstance(r, dict) and r.get("id") is not None and isinstance(r.get("properties") or {}, dict) for r in rows
    ):
        return _Found(None, 0)
    total = body.get("total")
    return _Found(
        [_Row(str(r["id"]), _as_text(r.get("properties") or {})) for r in rows],
        total if isinstance(total, int) else 0,
    )


def _as_text(properties: dict[str, Any]) -> dict[str, Any]:
    """Property values as the client's models give them (``dict(str, str)``): text or None."""
    if all(v is None or type(v) is str for v in properties.values()):
        return properties
    return {k: v if v is None or type(v) is str else str(v) for k, v in properties.items()}


@dataclass
class HubSpotAuth:
    """A token, and optionally what renews it (OAuth apps; private-app tokens do not expire)."""

    access_token: str
    base_url: str = "https://api.hubapi.com"
    client_id: str | None = None
    client_secret: str | None = None
    refresh_token: str | None = None

    @property
    def can_refresh(self) -> bool:
        return bool(self.client_id and self.client_secret and self.refresh_token)


class HubSpotConnector:
    """One portal. ``field_map`` is the policy's ``writeback.hubspot`` (key → property name)."""

    system = SYSTEM
    owner_field = "hubspot_owner_id"
    write_batch = 100
    read_batch = 100

    def __init__(
        self,
        auth: HubSpotAuth,
        *,
        field_map: Mapping[str, str],
        retry: RetryPolicy | None = None,
        page_size: int = 200,
        search_per_second: float = 4.0,
        archived_every: timedelta = timedelta(hours=1),
        search_lag: timedelta = timedelta(seconds=30),
        clock: Callable[[], datetime] | None = None,
        timeout: float = 120.0,
    ) -> None:
        if not 1 <= page_size <= 200:
            raise ValueError("HubSpot search pages hold 1 to 200 records")
        self.auth = auth
        self.field_map = dict(field_map)
        self.retry = retry or RetryPolicy()
        self.page_size = page_size
        self.search_interval = 1.0 / search_per_second if search_per_second > 0 else 0.0
        self.archived_every = archived_every
        self.search_lag = search_lag
        self.clock = clock or (lambda: datetime.now(UTC))
        self.timeout = (10.0, timeout)
        self.calls = 0
        self._last_search = 0.0
        self._client: HubSpot | None = None
        self._apis: dict[str, Any] = {}

    # --- plumbing ---------------------------------------------------------------------------------

    def api(self, name: str) -> Any:
        """API objects are built once per token: each one owns a connection pool."""
        if self._client is None:
            self._client = HubSpot(
                access_token=self.auth.access_token,
                host=self.auth.base_url.rstrip("/"),
                retry=urllib3.Retry(total=0, redirect=0, raise_on_status=False),
            )
            self._apis = {}
        if name not in self._apis:
            crm = self._client.crm
            factories: dict[str, Callable[[], Any]] = {
                "contacts.search": lambda: crm.contacts.search_api,
                "contacts.batch": lambda: crm.contacts.batch_api,
                "contacts.basic": lambda: crm.contacts.basic_api,
                "companies.search": lambda: crm.companies.search_api,
                "companies.batch": lambda: crm.companies.batch_api,
                "companies.basic": lambda: crm.companies.basic_api,
                "deals.search": lambda: crm.deals.search_api,
                "deals.basic": lambda: crm.deals.basic_api,
                "owners": lambda: crm.owners.owners_api,
                "associations": lambda: crm.associations.v4.batch_api,
                "properties": lambda: crm.properties.core_api,
                "groups": lambda: crm.properties.groups_api,
            }
            self._apis[name] = factories[name]()
        return self._apis[name]

    def _refresh(self) -> bool:
        if not self.auth.can_refresh:
            return False
        client = HubSpot(host=self.auth.base_url.rstrip("/"))
        try:
            token = client.oauth.tokens_api.create(
                grant_type="refresh_token",
                client_id=self.auth.client_id,
                client_secret=self.auth.client_secret,
                refresh_token=self.auth.refresh_token,
            )
        except Exception as exc:
            error = translate(exc, "oauth token refresh")
            if error.status in (400, 401):
                # HubSpot answers a revoked or unknown refresh token (the app uninstalled, the
                # grant withdrawn) with 400 BAD_REFRESH_TOKEN: the credentials, not the batch,
                # are what is wrong — as BadRequest it killed every write-back row it carried
                raise AuthExpired(
                    SYSTEM,
                    error.status,
                    "oauth token refresh",
                    f"HUBSPOT_REFRESH_TOKEN was rejected ({error.message or error.code}); reinstall the app and set "
                    "a new HUBSPOT_REFRESH_TOKEN (and HUBSPOT_CLIENT_ID / HUBSPOT_CLIENT_SECRET if they changed)",
                    code=error.code,
                ) from exc
            raise error from exc
        self.auth.access_token = str(token.access_token)
        self._client = None
        return True

    def call(self, resource: str, fn: Callable[[], T], *, search: bool = False) -> T:
        """Run one API call with pacing, retries, translation and token refresh."""

        def attempt() -> T:
            if search and self.search_interval:
                wait = self._last_search + self.search_interval - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                self._last_search = time.monotonic()
            self.calls += 1
            try:
                result = fn()
            except Exception as exc:
                raise translate(exc, resource) from exc
            if getattr(result, "results", ()) is None:
                # every HubSpot collection answer carries ``results`` (``[]`` when empty); the
                # client turns a body it cannot parse (truncated, not JSON) into a model without
                # it, which read as "no more records" (sync ended early) or "record gone" (its
                # write-back skipped)
                raise Unavailable(SYSTEM, None, resource, "malformed response: the body is not the JSON HubSpot sends")
            return result

        try:
            return call_with_retry(attempt, self.retry, reauthenticate=self._refresh)
        except AuthExpired as exc:
            if self.auth.can_refresh:
                raise
            raise AuthExpired(
                SYSTEM,
                exc.status,
                resource,
                "HUBSPOT_ACCESS_TOKEN was rejected (expired or revoked); create a new private-app token, or set "
                "HUBSPOT_CLIENT_ID, HUBSPOT_CLIENT_SECRET and HUBSPOT_REFRESH_TOKEN so loopgate can renew it",
                code=exc.code,
            ) from exc

    # --- the port: reading --------------------------------------------------------------------------

    def streams(self, *, full: bool = False) -> Sequence[str]:
        return ("owners", "companies", "contacts", "deals", "archived")

    def read(self, stream: str, cursor: Cursor | None) -> Iterator[Page]:
        if stream == "owners":
            yield from self._owners()
        elif stream == "archived":
            yield from self._archived(cursor)
        elif stream in ("contacts", "companies", "deals"):
            yield from self._search(stream, cursor)
        else:
            raise ValueError(f"unknown HubSpot stream {stream!r}")

    def _search(self, object_type: str, cursor: Cursor | None) -> Iterator[Page]:
        modified = _MODIFIED[object_type]
        lead_fields = list(self.field_map.values()) if object_type == "contacts" else []
        properties = {
            "contacts": [*CONTACT_PROPERTIES, *lead_fields],
            "companies": list(COMPANY_PROPERTIES),
            "deals": list(DEAL_PROPERTIES),
        }[object_type]
        search_api = f"{object_type}.search"
        cursor = rewind(cursor, self.search_lag)
        while True:
            groups, sort_by = window(modified, cursor)
            body = {
                "filterGroups": groups,
                "sorts": [{"propertyName": sort_by, "direction": "ASCENDING"}],
                "properties": properties,
                "limit": self.page_size,
            }
            result = self.call(
                f"search {object_type}",
                lambda body=body: _found(
                    self.api(search_api).do_search(  # type: ignore[misc]
                        public_object_search_request=body, _request_timeout=self.timeout, _preload_content=False
                    )
                ),
                search=True,
            )
            rows = list(result.results or [])
            cursor, done = next_cursor(
                cursor,
                [(str(r.id), modified_at(r.properties or {}, modified)) for r in rows],
                # a window holding exactly one page says so in ``total``: no empty query after it
                full_page=len(rows) >= self.page_size and int(result.total or 0) > len(rows),
            )
            if rows:
                yield self._page(object_type, rows, cursor, lead_fields)
            if done:
                return

    def _page(self, object_type: str, rows: Sequence[Any], cursor: Cursor, lead_fields: Sequence[str]) -> Page:
        if object_type == "contacts":
            leads = [lead_record(str(r.id), r.properties or {}, lead_fields) for r in rows]
            merged = [t for r in rows for t in merged_tombstones("lead", str(r.id), r.properties or {})]
            return Page("contacts", cursor, leads=leads, tombstones=merged)
        if object_type == "companies":
            accounts = [account_record(str(r.id), r.properties or {}) for r in rows]
            merged = [t for r in rows for t in merged_tombstones("account", str(r.id), r.properties or {})]
            return Page("companies", cursor, accounts=accounts, tombstones=merged)
        contacts = self._deal_contacts([str(r.id) for r in rows])
        deals = [deal_record(str(r.id), r.properties or {}, contacts.get(str(r.id), ())) for r in rows]
        # a deal merged away is not archived: only its winner says so, and it must stop counting
        merged = [t for r in rows for t in merged_tombstones("deal", str(r.id), r.properties or {})]
        return Page("deals", cursor, deals=deals, tombstones=merged)

    def _deal_contacts(self, deal_ids: Sequence[str]) -> dict[str, list[str]]:
        body = {"inputs": [{"id": d} for d in deal_ids]}
        result = self.call(
            "associations deals→contacts",
            lambda: self.api("associations").get_page(
                "deals",
                "contacts",
                batch_input_public_fetch_associations_batch_request=body,
                _request_timeout=self.timeout,
            ),
        )
        out: dict[str, list[str]] = {}
        for item in result.results or []:
            out[str(item._from.id)] = [str(to.to_object_id) for to in item.to or []]
        return out

    def _owners(self) -> Iterator[Page]:
        now = self.clock()
        for archived in (False, True):
            after: str | None = None
            while True:
                result = self.call(
                    "owners",
                    lambda after=after, archived=archived: self.api("owners").get_page(  # type: ignore[misc]
                        limit=500, after=after, archived=archived, _request_timeout=self.timeout
                    ),
                )
                owners = [
                    OwnerRecord(
                        str(o.id),
                        "user",
                        " ".join(p for p in (o.first_name, o.last_name) if p) or None,
                        o.email,
                        active=not archived,
                    )
                    for o in result.results or []
                ]
                if owners:
                    yield Page("owners", Cursor(now), owners=owners)
                after = result.paging.next.after if result.paging and result.paging.next else None
                if after is None:
                    break

    def _archived(self, cursor: Cursor | None) -> Iterator[Page]:
        now = self.clock()
        if cursor is not None and cursor.ts is not None and now - cursor.ts < self.archived_every:
            return
        lists = (("contacts", "lead"), ("companies", "account"), ("deals", "deal"))
        for object_type, kind in lists:
            basic = f"{object_type}.basic"
            after: str | None = None
            while True:
                result = self.call(
                    f"archived {object_type}",
                    lambda basic=basic, after=after: self.api(basic).get_page(  # type: ignore[misc]
                        limit=100, after=after, archived=True, properties=["hs_object_id"],
                        _request_timeout=self.timeout,
                    ),
                )  # fmt: skip
                tombstones = [Tombstone(kind, str(r.id)) for r in result.results or []]  # type: ignore[arg-type]
                after = result.paging.next.after if result.paging and result.paging.next else None
                # the scan's time is only stored once every list is through
                done = after is None and object_type == lists[-1][0]
                yield Page("archived", Cursor(now) if done else (cursor or Cursor()), tombstones=tombstones)
                if after is None:
                    break

    # --- the port: writing --------------------------------------------------------------------------

    def current(self, object_type: str, ids: Sequence[str], fields: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        api_object = API_OBJECT[object_type]
        batch = f"{api_object}.batch"
        out: dict[str, dict[str, Any] | None] = dict.fromkeys(ids)
        for start in range(0, len(ids), self.read_batch):
            chunk = list(ids[start : start + self.read_batch])
            body = {"inputs": [{"id": i} for i in chunk], "properties": list(fields), "propertiesWithHistory": []}
            result = self.call(
                f"batch read {api_object}",
                lambda body=body: self.api(batch).read(  # type: ignore[misc]
                    batch_read_input_simple_public_object_id=body, archived=False, _request_timeout=self.timeout
                ),
            )
            for r in result.results or []:
                props = r.properties or {}
                out[str(r.id)] = {f: props.get(f) for f in fields}
        return out

    def update(self, updates: Sequence[RecordUpdate]) -> list[WriteResult]:
        if len(updates) > self.write_batch:
            raise ValueError(f"at most {self.write_batch} inputs per HubSpot batch update")
        if not updates:
            return []
        by_object: dict[str, list[RecordUpdate]] = {}
        for u in updates:
            by_object.setdefault(API_OBJECT[u.object_type], []).append(u)
        results: dict[str, WriteResult] = {}
        for api_object, group in by_object.items():
            batch = f"{api_object}.batch"
            body = {"inputs": [{"id": u.id, "properties": {k: _text(v) for k, v in u.values.items()}} for u in group]}
            result = self.call(
                f"batch update {api_object}",
                lambda batch=batch, body=body: self.api(batch).update(  # type: ignore[misc]
                    batch_input_simple_public_object_batch_input=body, _request_timeout=self.timeout
                ),
            )
            for r in result.results or []:
                results[str(r.id)] = WriteResult(str(r.id), True)
            for err in getattr(result, "errors", None) or []:
                category = str(err.category or "")
                fields = refused_properties(err.to_dict())
                for record_id in (err.context or {}).get("ids", []):
                    results[str(record_id)] = WriteResult(
                        str(record_id),
                        False,
                        category,
                        str(err.message or "")[:500],
                        retryable=category in _RETRYABLE,
                        gone=category in _GONE,
                        fields=fields,
                    )
        return [
            results.get(u.id)
            or WriteResult(u.id, False, "NO_RESULT", "HubSpot did not report this input", retryable=True)
            for u in updates
        ]


def _text(value: Any) -> str | None:
    """HubSpot takes every property value as text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
