"""A fake HubSpot CRM v3 API on 127.0.0.1, for tests, the demo, ``loopgate serve --sandbox``
and the benchmarks. Point the real client at it: ``HubSpot(access_token=…, host=fake.url)``.

What it does like HubSpot (and enforces):

- ``POST /crm/v3/objects/{contacts|companies|deals}/search``: filter groups (OR of ANDs, at
  most 5 groups and 6 filters each), one sort, ``limit`` ≤ 200, ``after`` paging over the *live*
  result set, and the 10,000-results cap: asking past it is ``400``. Ties in the sort come back
  in no particular order (here: a fixed scramble), as in HubSpot.
- ``POST …/batch/update`` (≤ 100 inputs; ``207`` with per-record errors) and ``…/batch/read``
  (≤ 100 inputs). An owner id no active owner has is ``VALIDATION_ERROR`` "Property values were
  not valid: [{…"error":"INVALID_OWNER_ID","name":"hubspot_owner_id"}]", for that input (or, with
  ``invalid_values_fail_batch``, as a ``400`` for the whole batch, nothing applied); ``GET
  /crm/v3/objects/{type}?archived=true`` for deleted records.
- ``GET /crm/v3/owners/``; properties and property groups (``GET``/``POST``/``PATCH``, ``409``
  for duplicates); ``POST /crm/v4/associations/deals/contacts/batch/read``; ``POST
  /oauth/v1/token`` (refresh token grant).
- Bearer-token auth (``401 INVALID_AUTHENTICATION`` / ``EXPIRED_AUTHENTICATION``), the
  ``X-HubSpot-RateLimit-*`` headers on non-search calls, optional enforcement of the
  ten-second and search (per second) limits with HubSpot's ``429`` body (``policyName``).

What it does not: the search index here is never behind (HubSpot's lags by seconds).
Seeding and inspection (:meth:`create`, :meth:`update`, :meth:`archive`, :meth:`merge`,
:meth:`get`, :meth:`add_owner`, :meth:`associate`) stamp the modification date from the clock.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
import uuid
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from loopgate.sandbox.http import FakeRequest, FakeResponse, FakeService

__all__ = ["FakeHubSpot", "hubspot_time"]

OBJECTS = ("contacts", "companies", "deals")
MODIFIED = {"contacts": "lastmodifieddate", "companies": "hs_lastmodifieddate", "deals": "hs_lastmodifieddate"}
_BUILTIN: dict[str, tuple[str, ...]] = {
    "contacts": (
        "email", "firstname", "lastname", "jobtitle", "company", "website", "industry", "numemployees",
        "annualrevenue", "country", "state", "hs_lead_status", "lifecyclestage", "hs_analytics_source",
        "hubspot_owner_id", "createdate", "lastmodifieddate", "hs_object_id", "associatedcompanyid",
        "hs_merged_object_ids", "hs_lifecyclestage_opportunity_date", "hs_lifecyclestage_customer_date",
        "hs_sa_first_engagement_date", "hs_email_last_click_date", "hs_email_last_open_date",
        "recent_conversion_date", "recent_conversion_event_name", "hs_analytics_last_visit_timestamp", "phone",
    ),
    "companies": (
        "name", "domain", "industry", "numberofemployees", "hubspot_owner_id", "lifecyclestage", "createdate",
        "hs_lastmodifieddate", "hs_object_id", "hs_merged_object_ids", "country", "annualrevenue",
    ),
    "deals": (
        "dealname", "dealstage", "pipeline", "amount", "closedate", "hs_is_closed", "hs_is_closed_won",
        "hubspot_owner_id", "createdate", "hs_lastmodifieddate", "hs_object_id", "hs_merged_object_ids",
    ),
}  # fmt: skip
_DATETIME_PROPS = frozenset(
    {"createdate", "lastmodifieddate", "hs_lastmodifieddate", "closedate", "hs_lifecyclestage_opportunity_date",
     "hs_lifecyclestage_customer_date", "hs_sa_first_engagement_date", "hs_email_last_click_date",
     "hs_email_last_open_date", "recent_conversion_date", "hs_analytics_last_visit_timestamp"}
)  # fmt: skip
_NUMBER_PROPS = frozenset({"hs_object_id", "amount", "annualrevenue", "numberofemployees", "associatedcompanyid"})
_OPERATORS = frozenset({"EQ", "NEQ", "LT", "LTE", "GT", "GTE", "IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY"})


def hubspot_time(value: datetime) -> str:
    """HubSpot's wire format for a datetime property: ISO 8601 with milliseconds, ``Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _millis(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _error(status: int, message: str, category: str, **extra: Any) -> FakeResponse:
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category, **extra}
    return FakeResponse(status, body)


class _Invalid(ValueError):
    pass


class FakeHubSpot(FakeService):
    """A fake portal. ``search_total_cap`` and ``max_page`` default to HubSpot's 10,000 and 200."""

    name = "hubspot"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        access_token: str = "pat-sandbox-token",  # noqa: S107 - the fake's own sandbox token
        search_total_cap: int = 10_000,
        max_page: int = 200,
        batch_cap: int = 100,
        search_per_second: int | None = None,
        ten_second_limit: int | None = None,
        loopgate_properties: bool = True,
        invalid_values_fail_batch: bool = False,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(host=host, port=port)
        self.invalid_values_fail_batch = invalid_values_fail_batch
        self.tokens: set[str] = {access_token}
        self.expired_tokens: set[str] = set()
        self.oauth_clients: dict[str, str] = {}
        self.refresh_tokens: set[str] = set()
        self.search_total_cap = search_total_cap
        self.max_page = max_page
        self.batch_cap = batch_cap
        self.search_per_second = search_per_second
        self.ten_second_limit = ten_second_limit
        self.daily_limit = 500_000
        self.daily_used = 0
        self.clock = clock or (lambda: datetime.now(UTC))
        self.objects: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in OBJECTS}
        self.archived: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in OBJECTS}
        self.owners: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in OBJECTS}
        self.properties: dict[str, dict[str, dict[str, Any]]] = {
            name: {p: self._builtin_property(name, p) for p in _BUILTIN[name]} for name in OBJECTS
        }
        self.associations: dict[str, set[str]] = {}  # deal id → contact ids
        self.record_failures: dict[str, tuple[str, str, int]] = {}  # id → (category, message, times)
        self.before_search: Callable[[int], None] | None = None  # hook: called before serving search n (1, 2…)
        self.searches = 0
        self._ids = itertools.count(1001)
        self._data = threading.RLock()
        self._index: dict[str, tuple[list[int], list[str]]] = {}  # object type → (modified ms, ids), sorted
        self._recent: deque[float] = deque()
        self._recent_search: deque[float] = deque()
        if loopgate_properties:
            self._seed_loopgate_properties()
        objects = "|".join(OBJECTS)
        self.route("POST", rf"^/crm/v3/objects/(?P<type>{objects})/search/?$", self._search)
        self.route("POST", rf"^/crm/v3/objects/(?P<type>{objects})/batch/update/?$", self._batch_update)
        self.route("POST", rf"^/crm/v3/objects/(?P<type>{objects})/batch/read/?$", self._batch_read)
        self.route("GET", rf"^/crm/v3/objects/(?P<type>{objects})/?$", self._list)
        self.route("GET", r"^/crm/v3/owners/?$", self._owners)
        self.route("GET", rf"^/crm/v3/properties/(?P<type>{objects})/groups/(?P<name>\w+)$", self._get_group)
        self.route("POST", rf"^/crm/v3/properties/(?P<type>{objects})/groups/?$", self._create_group)
        self.route("GET", rf"^/crm/v3/properties/(?P<type>{objects})/?$", self._list_properties)
        self.route("GET", rf"^/crm/v3/properties/(?P<type>{objects})/(?P<name>\w+)$", self._get_property)
        self.route("POST", rf"^/crm/v3/properties/(?P<type>{objects})/?$", self._create_property)
        self.route("PATCH", rf"^/crm/v3/properties/(?P<type>{objects})/(?P<name>\w+)$", self._update_property)
        self.route("POST", r"^/crm/v4/associations/deals/contacts/batch/read/?$", self._associations)
        self.route("POST", r"^/oauth/v1/token$", self._oauth_token)

    # --- seeding and inspection ---------------------------------------------------------------

    def now(self) -> datetime:
        value = self.clock().astimezone(UTC)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)

    def create(self, object_type: str, properties: Mapping[str, Any] | None = None, *, modified: datetime | None = None,
               **more: Any) -> str:  # fmt: skip
        """Create a record; returns its id. ``modified`` sets the modification date."""
        values = {**(properties or {}), **more}
        with self._data:
            self._check_properties(object_type, values)
            record_id = str(values.pop("hs_object_id", None) or next(self._ids))
            stamp = modified or self.now()
            props: dict[str, str | None] = {k: _to_text(v) for k, v in values.items()}
            props.setdefault("createdate", hubspot_time(stamp))
            props.update({"hs_object_id": record_id, MODIFIED[object_type]: hubspot_time(stamp)})
            self.objects[object_type][record_id] = {"id": record_id, "properties": props, "created": stamp}
            self._index.pop(object_type, None)
            return record_id

    def update(self, object_type: str, record_id: str, properties: Mapping[str, Any] | None = None, *,
               modified: datetime | None = None, **more: Any) -> None:  # fmt: skip
        """Change a record as a person would; stamps its modification date (unless given)."""
        values = {**(properties or {}), **more}
        with self._data:
            self._check_properties(object_type, values)
            record = self.objects[object_type][record_id]
            record["properties"].update({k: _to_text(v) for k, v in values.items()})
            record["properties"][MODIFIED[object_type]] = hubspot_time(modified or self.now())
            self._index.pop(object_type, None)

    def touch(self, object_type: str, record_id: str, at: datetime | None = None) -> None:
        self.update(object_type, record_id, modified=at)

    def archive(self, object_type: str, record_id: str) -> None:
        """Delete a record: search no longer finds it; the archived list does."""
        with self._data:
            record = self.objects[object_type].pop(record_id)
            record["archived_at"] = self.now()
            self.archived[object_type][record_id] = record
            self._index.pop(object_type, None)

    def merge(self, object_type: str, winner: str, loser: str) -> None:
        """Merge ``loser`` into ``winner``: the loser disappears, the winner lists it in
        ``hs_merged_object_ids`` and is modified, and takes over the loser's deal↔contact
        associations (as HubSpot carries them over)."""
        with self._data:
            self.objects[object_type].pop(loser)
            if object_type == "deals":
                self.associations.setdefault(winner, set()).update(self.associations.pop(loser, set()))
            elif object_type == "contacts":
                for contacts in self.associations.values():
                    if loser in contacts:
                        contacts.discard(loser)
                        contacts.add(winner)
            props = self.objects[object_type][winner]["properties"]
            merged = [x for x in (props.get("hs_merged_object_ids") or "").split(";") if x]
            props["hs_merged_object_ids"] = ";".join([*merged, loser])
            props[MODIFIED[object_type]] = hubspot_time(self.now())
            self._index.pop(object_type, None)

    def get(self, object_type: str, record_id: str) -> dict[str, str | None]:
        """A record's current properties."""
        with self._data:
            return dict(self.objects[object_type][record_id]["properties"])

    def add_owner(self, owner_id: str, email: str, first_name: str = "", last_name: str = "", *,
                  archived: bool = False) -> str:  # fmt: skip
        stamp = hubspot_time(self.now())
        with self._data:
            self.owners[owner_id] = {
                "id": owner_id, "email": email, "firstName": first_name, "lastName": last_name, "type": "PERSON",
                "userId": int(owner_id) + 9000 if owner_id.isdigit() else None, "createdAt": stamp,
                "updatedAt": stamp, "archived": archived, "teams": [],
            }  # fmt: skip
        return owner_id

    def associate(self, deal_id: str, contact_id: str) -> None:
        with self._data:
            self.associations.setdefault(deal_id, set()).add(contact_id)

    def fail_record(self, record_id: str, category: str, message: str = "", *, times: int = 1) -> None:
        """Make the next ``times`` batch updates touching this record report an error for it."""
        self.record_failures[record_id] = (category, message or category, times)

    def expire_token(self, token: str) -> None:
        """The token now gets ``401 EXPIRED_AUTHENTICATION`` (an OAuth token past its life)."""
        self.tokens.discard(token)
        self.expired_tokens.add(token)

    # --- internals ------------------------------------------------------------------------------

    @staticmethod
    def _builtin_property(object_type: str, name: str) -> dict[str, Any]:
        kind = "datetime" if name in _DATETIME_PROPS else "number" if name in _NUMBER_PROPS else "string"
        return {
            "name": name, "label": name, "type": kind, "fieldType": "text",
            "groupName": f"{object_type[:-1]}information",
            "description": "", "options": [], "hidden": False, "formField": False, "hasUniqueValue": False,
            "displayOrder": -1, "calculated": False, "externalOptions": False, "modificationMetadata": {
                "archivable": False, "readOnlyDefinition": True, "readOnlyValue": False},
        }  # fmt: skip

    def _seed_loopgate_properties(self) -> None:
        from connectors.setup_spec import hubspot_properties

        for object_type, group, props in hubspot_properties():
            self.groups[object_type][group["name"]] = {**group, "archived": False}
            for prop in props:
                self.properties[object_type][prop["name"]] = self._stored_property(object_type, prop)

    def _stored_property(self, object_type: str, body: Mapping[str, Any]) -> dict[str, Any]:
        stored = self._builtin_property(object_type, str(body["name"]))
        stored.update({k: v for k, v in body.items() if k in stored or k in ("options",)})
        stored["options"] = [
            {"label": o["label"], "value": o["value"], "displayOrder": o.get("displayOrder", i),
             "hidden": bool(o.get("hidden", False))}
            for i, o in enumerate(body.get("options") or [])
        ]  # fmt: skip
        stored["modificationMetadata"] = {"archivable": True, "readOnlyDefinition": False, "readOnlyValue": False}
        return stored

    def _check_properties(self, object_type: str, values: Mapping[str, Any]) -> None:
        unknown = set(values) - set(self.properties[object_type])
        if unknown:
            raise _Invalid(f"Property values were not valid: PROPERTY_DOESNT_EXIST {sorted(unknown)}")

    def _guard(self, req: FakeRequest, *, search: bool = False) -> FakeResponse | None:
        token = req.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if token in self.expired_tokens:
            return _error(401, "The OAuth token used to make this call expired.", "EXPIRED_AUTHENTICATION")
        if token not in self.tokens:
            return _error(
                401,
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
                "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                "INVALID_AUTHENTICATION",
            )
        now = time.monotonic()
        with self._data:
            self.daily_used += 1
            window = self._recent_search if search else self._recent
            span, limit, policy = (
                (1.0, self.search_per_second, "SECONDLY")
                if search
                else (10.0, self.ten_second_limit, "TEN_SECONDLY_ROLLING")
            )
            while window and now - window[0] > span:
                window.popleft()
            if limit is not None and len(window) >= limit:
                body = {
                    "status": "error", "message": f"You have reached your {policy.lower()} limit.",
                    "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()), "policyName": policy,
                    "groupName": "publicapi:private-app:fake",
                }  # fmt: skip
                return FakeResponse(429, body, {} if search else self._rate_headers())
            window.append(now)
        return None

    def _rate_headers(self) -> dict[str, str]:
        limit = self.ten_second_limit or 190
        return {
            "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(self.daily_limit - self.daily_used, 0)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Max": str(limit),
            "X-HubSpot-RateLimit-Remaining": str(max(limit - len(self._recent), 0)),
        }

    def _ok(self, status: int, body: Any) -> FakeResponse:
        return FakeResponse(status, body, self._rate_headers())

    def _public(self, object_type: str, record: Mapping[str, Any], properties: Iterable[str] | None) -> dict[str, Any]:
        props = record["properties"]
        wanted = list(properties) if properties else ["createdate", MODIFIED[object_type], "hs_object_id"]
        out = {name: props.get(name) for name in wanted if name in self.properties[object_type]}
        updated = props.get(MODIFIED[object_type])
        body: dict[str, Any] = {
            "id": record["id"], "properties": out, "createdAt": hubspot_time(record["created"]),
            "updatedAt": updated, "archived": "archived_at" in record,
        }  # fmt: skip
        if "archived_at" in record:
            body["archivedAt"] = hubspot_time(record["archived_at"])
        return body

    # --- search ---------------------------------------------------------------------------------

    def _search(self, req: FakeRequest) -> FakeResponse:
        guard = self._guard(req, search=True)
        if guard is not None:
            return guard
        object_type = req.match["type"]
        self.searches += 1
        if self.before_search is not None:
            self.before_search(self.searches)
        body = req.json() or {}
        limit = int(body.get("limit") or 10)
        if limit > self.max_page:
            return _error(400, f"limit must be at most {self.max_page}", "VALIDATION_ERROR")
        groups = body.get("filterGroups") or []
        if len(groups) > 5 or any(len(g.get("filters") or []) > 6 for g in groups):
            return _error(400, "too many filter groups or filters (5 groups, 6 filters each)", "VALIDATION_ERROR")
        sorts = body.get("sorts") or []
        if len(sorts) > 1:
            return _error(400, "a search takes one sort", "VALIDATION_ERROR")
        offset = int(body.get("after") or 0)
        if offset >= self.search_total_cap:
            return _error(
                400,
                f"There was a problem with the request: paging past {self.search_total_cap} results is not allowed",
                "VALIDATION_ERROR",
            )
        end = min(offset + limit, self.search_total_cap)
        try:
            indexed = self._by_modified(object_type, groups, sorts[0] if sorts else None, offset, end)
            if indexed is not None:
                total, page = indexed
            else:
                matches = self._sorted(object_type, self._matching(object_type, groups), sorts[0] if sorts else None)
                total, page = len(matches), matches[offset:end]
        except _Invalid as exc:
            return _error(400, str(exc), "VALIDATION_ERROR")
        out: dict[str, Any] = {
            "total": total,
            "results": [self._public(object_type, r, body.get("properties")) for r in page],
        }
        if end < total and end < self.search_total_cap:
            out["paging"] = {"next": {"after": str(end), "link": f"?after={end}"}}
        return FakeResponse(200, out)

    def _modified_index(self, object_type: str) -> tuple[list[int], list[str]]:
        """Records by modification date (ties scrambled), rebuilt after any change."""
        with self._data:
            index = self._index.get(object_type)
            if index is None:
                modified = MODIFIED[object_type]
                rows = sorted(
                    (_millis(_parse(r["properties"][modified])), _scramble(r["id"]), r["id"])
                    for r in self.objects[object_type].values()
                )
                index = self._index[object_type] = ([r[0] for r in rows], [r[2] for r in rows])
            return index

    def _by_modified(
        self, object_type: str, groups: list[dict[str, Any]], sort: Any, offset: int, end: int
    ) -> tuple[int, list[dict[str, Any]]] | None:
        """The search windows sync sends (modification date bounds, id exclusions, sorted by
        modification date) answered from a sorted index in O(log n + page) rather than by a
        scan per request, so a 50,000-record portal pages as fast as HubSpot does. ``None``
        for any other query (the general path answers it)."""
        modified = MODIFIED[object_type]
        name = sort if isinstance(sort, str) else (sort or {}).get("propertyName")
        if name != modified or (isinstance(sort, dict) and sort.get("direction") == "DESCENDING"):
            return None
        bounds, open_ended = [], False
        for group in groups:
            filters = group.get("filters") or []
            mine = [f for f in filters if f.get("propertyName") == modified]
            others = [f for f in filters if f.get("propertyName") != modified]
            if len(mine) != 1 or mine[0].get("operator") not in ("GT", "GTE", "EQ"):
                return None
            if any(o.get("propertyName") != "hs_object_id" for o in others):
                return None
            if mine[0]["operator"] != "EQ":
                if others:
                    return None
                open_ended = True
            value = str(mine[0].get("value"))
            bounds.append(int(value) if value.isdigit() else _millis(_parse(value)))
        keys, ids = self._modified_index(object_type)
        with self._data:
            records = self.objects[object_type]
            if not groups:
                return len(ids), [records[i] for i in ids[offset:end]]
            checks = [[self._filter(object_type, f) for f in g.get("filters") or []] for g in groups]
            start, stop = bisect_left(keys, min(bounds)), bisect_right(keys, max(bounds))
            near = [
                records[i]
                for i in ids[start:stop]
                if any(all(c(records[i]["properties"]) for c in group) for group in checks)
            ]
            beyond = ids[stop:] if open_ended else []
            total = len(near) + len(beyond)
            page = near[offset:end]
            if len(page) < end - offset and beyond:
                skip = max(offset - len(near), 0)
                page += [records[i] for i in beyond[skip : skip + (end - offset - len(page))]]
            return total, page

    def _matching(self, object_type: str, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self._data:
            records = list(self.objects[object_type].values())
        if not groups:
            return records
        checks = [[self._filter(object_type, f) for f in g.get("filters") or []] for g in groups]
        return [r for r in records if any(all(c(r["properties"]) for c in group) for group in checks)]

    def _filter(self, object_type: str, spec: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool]:
        name, op = spec.get("propertyName"), spec.get("operator")
        if name not in self.properties[object_type]:
            raise _Invalid(f"unknown property {name!r}")
        if op not in _OPERATORS:
            raise _Invalid(f"unsupported operator {op!r}")
        kind = self.properties[object_type][str(name)]["type"]

        def value_of(raw: Any) -> Any:
            if raw is None or raw == "":
                return None
            if kind == "datetime":
                text = str(raw)
                return int(text) if text.isdigit() else _millis(datetime.fromisoformat(text.replace("Z", "+00:00")))
            if kind == "number":
                return float(raw)
            return str(raw).lower()

        if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
            want = op == "HAS_PROPERTY"
            return lambda p: (p.get(name) not in (None, "")) == want
        if op in ("IN", "NOT_IN"):
            values = {value_of(v) for v in spec.get("values") or []}
            inside = op == "IN"
            return lambda p: (value_of(p.get(name)) in values) == inside
        target = value_of(spec.get("value"))
        compare: Callable[[Any, Any], bool] = {
            "EQ": lambda a, b: a == b, "NEQ": lambda a, b: a != b, "LT": lambda a, b: a < b,
            "LTE": lambda a, b: a <= b, "GT": lambda a, b: a > b, "GTE": lambda a, b: a >= b,
        }[str(op)]  # fmt: skip

        def check(p: Mapping[str, Any]) -> bool:
            current = value_of(p.get(name))
            return current is not None and target is not None and compare(current, target)

        return check

    def _sorted(self, object_type: str, records: list[dict[str, Any]], sort: Any) -> list[dict[str, Any]]:
        def scramble(r: Mapping[str, Any]) -> str:
            return _scramble(str(r["id"]))

        if sort is None:
            return sorted(records, key=lambda r: int(r["id"]))
        name = sort if isinstance(sort, str) else sort.get("propertyName")
        descending = not isinstance(sort, str) and sort.get("direction") == "DESCENDING"
        if name not in self.properties[object_type]:
            raise _Invalid(f"unknown sort property {name!r}")
        kind = self.properties[object_type][str(name)]["type"]

        def key(r: Mapping[str, Any]) -> tuple[Any, str]:
            raw = r["properties"].get(name)
            if kind == "datetime" and raw:
                value: Any = _millis(datetime.fromisoformat(str(raw).replace("Z", "+00:00")))
            elif kind == "number" and raw not in (None, ""):
                value = float(raw)
            else:
                value = str(raw or "")
            return value, scramble(r)

        return sorted(records, key=key, reverse=descending)

    # --- batch ----------------------------------------------------------------------------------

    def _batch_update(self, req: FakeRequest) -> FakeResponse:
        guard = self._guard(req)
        if guard is not None:
            return guard
        object_type = req.match["type"]
        inputs = (req.json() or {}).get("inputs") or []
        if not inputs:
            return _error(400, "inputs: at least one is required", "VALIDATION_ERROR")
        if len(inputs) > self.batch_cap:
            return _error(400, f"Batch input limit exceeded: at most {self.batch_cap} inputs", "VALIDATION_ERROR")
        started = hubspot_time(self.now())
        results, errors = [], []
        with self._data:
            refused = self._refused_batch(object_type, inputs)
            if refused is not None:
                return refused
            stamp = self.now()
            for item in inputs:
                record_id = str(item.get("id"))
                props = item.get("properties") or {}
                failure = self.record_failures.get(record_id)
                if failure is not None:
                    category, message, times = failure
                    if times <= 1:
                        del self.record_failures[record_id]
                    else:
                        self.record_failures[record_id] = (category, message, times - 1)
                    errors.append(self._item_error(category, message, record_id))
                    continue
                record = self.objects[object_type].get(record_id)
                if record is None:
                    errors.append(
                        self._item_error("OBJECT_NOT_FOUND", f"Object not found. objectId: {record_id}", record_id)
                    )
                    continue
                invalid = self._invalid_values(props)
                if invalid:
                    errors.append(self._item_error("VALIDATION_ERROR", _invalid_values_message(invalid), record_id))
                    continue
                record["properties"].update({k: _to_text(v) for k, v in props.items()})
                record["properties"][MODIFIED[object_type]] = hubspot_time(stamp)
                self._index.pop(object_type, None)
                results.append(self._public(object_type, record, props))
        body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started,
                                "completedAt": hubspot_time(self.now())}  # fmt: skip
        if errors:
            body.update(numErrors=len(errors), errors=errors)
            return self._ok(207, body)
        return self._ok(200, body)

    def _refused_batch(self, object_type: str, inputs: list[dict[str, Any]]) -> FakeResponse | None:
        """The ``400`` for a batch refused whole: a property that does not exist, or (with
        ``invalid_values_fail_batch``) a value HubSpot refuses."""
        for item in inputs:
            unknown = sorted(set(item.get("properties") or {}) - set(self.properties[object_type]))
            if unknown:
                return _error(
                    400,
                    "Property values were not valid: "
                    + ", ".join(f'{{"name":"{u}","error":"PROPERTY_DOESNT_EXIST"}}' for u in unknown),
                    "VALIDATION_ERROR",
                )
        if self.invalid_values_fail_batch:
            invalid = [v for item in inputs for v in self._invalid_values(item.get("properties") or {})]
            if invalid:
                return _error(400, _invalid_values_message(invalid), "VALIDATION_ERROR")
        return None

    def _invalid_values(self, props: Mapping[str, Any]) -> list[dict[str, Any]]:
        """HubSpot's entries for the property values it refuses: an owner id no active owner has."""
        owner = props.get("hubspot_owner_id")
        if owner in (None, "") or (str(owner) in self.owners and not self.owners[str(owner)]["archived"]):
            return []
        return [{"isValid": False, "message": f"{owner} is not a valid owner id", "error": "INVALID_OWNER_ID",
                 "name": "hubspot_owner_id"}]  # fmt: skip

    @staticmethod
    def _item_error(category: str, message: str, record_id: str) -> dict[str, Any]:
        return {"status": "error", "category": category, "message": message, "context": {"ids": [record_id]},
                "links": {}, "errors": []}  # fmt: skip

    def _batch_read(self, req: FakeRequest) -> FakeResponse:
        guard = self._guard(req)
        if guard is not None:
            return guard
        object_type = req.match["type"]
        body = req.json() or {}
        inputs = body.get("inputs") or []
        if len(inputs) > self.batch_cap:
            return _error(400, f"Batch input limit exceeded: at most {self.batch_cap} inputs", "VALIDATION_ERROR")
        results, errors = [], []
        with self._data:
            for item in inputs:
                record = self.objects[object_type].get(str(item.get("id")))
                if record is None:
                    errors.append(self._item_error("OBJECT_NOT_FOUND", "Object not found", str(item.get("id"))))
                else:
                    results.append(self._public(object_type, record, body.get("properties") or []))
        stamp = hubspot_time(self.now())
        out: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": stamp, "completedAt": stamp}
        if errors:
            out.update(numErrors=len(errors), errors=errors)
            return self._ok(207, out)
        return self._ok(200, out)

    def _list(self, req: FakeRequest) -> FakeResponse:
        guard = self._guard(req)
        if guard is not None:
            return guard
        object_type = req.match["type"]
        limit = int(req.arg("limit") or 10)
        if limit > 100:
            return _error(400, "limit must be at most 100", "VALIDATION_ERROR")
        archived = (req.arg("archived") or "false").lower() == "true"
        properties = [p for v in req.query.get("properties", []) for p in v.split(",") if p]
        with self._data:
            source = self.archived if archived else self.objects
            records = sorted(source[object_type].values(), key=lambda r: int(r["id"]))
        offset = int(req.arg("after") or 0)
        page = records[offset : offset + limit]
        out: dict[str, Any] = {"results": [self._public(object_type, r, properties) for r in page]}
        if offset + limit < len(records):
            out["paging"] = {"next": {"after": str(offset + limit), "link": f"?after={offset + limit}"}}
        return self._ok(200, out)

    def _owners(self, req: FakeRequest) -> FakeResponse:
        guard = self._guard(req)
        if guard is not None:
            return guard
        limit = int(req.arg("limit") or 100)
        if limit > 500:
            return _error(400, "limit must be at most 500", "VALIDATION_ERROR")
        archived = (req.arg("archived") or "false").lower() == "true"
        with self._data:
            owners = sorted((o for o in self.owners.values() if o["archived"] == archived), key=lambda o: o["id"])
        offset = int(req.arg("after") or 0)
        out: dict[str, Any] = {"results": owners[offset : offset + limit]}
        if offset + limit < len(owners):
            out["paging"] = {"next": {"after": str(offset + limit), "link": f"?after={offset + limit}"}}
        return self._ok(200, out)

    def _associations(self, req: FakeRequest) -> FakeResponse:
        guard = self._guard(req)
        if guard is not None:
            return guard
        inputs = (req.json() or {}).get("inputs") or []
        if len(inputs) > 1000:
            return _error(400, "at most 1000 inputs", "VALIDATION_ERROR")
        stamp = hubspot_time(self.now())
        results = []
        with self._data:
            for item in inputs:
                deal_id = str(item.get("id"))
                to = [
                    {"toObjectId": int(c), "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 3,
                                                                  "label": None}]}
                    for c in sorted(self.associations.get(deal_id, ()), key=int)
                ]  # fmt: skip
                if to:
                    results.append({"from": {"id": deal_id}, "to": to})
        return self._ok(200, {"status": "COMPLETE", "results": results, "startedAt": stamp, "completedAt": stamp})

    # --- properties -----------------------------------------------------------------------------

    def _get_group(self, req: FakeRequest) -> FakeResponse:
        guard = self._guard(req)
        if guard is not None:
            return guard
        group = self.groups[req.match["type"]].get(req.match["name"])
        if group is None:
            return _error(404, f"Unable to find property group {req.match['name']}", "OBJECT_NOT_FOUND")
        return self._ok(200, group)

    def _create_group(self, req: FakeRequest) -> FakeResponse:
        guard = self._guard(req)
        if guard is not None:
            return guard
        body = req.json() or {}
        object_type, name = req.match["type"], str(body.get("name"))
        with self._data:
            if name in self.groups[object_type]:
                return _error(409, f"A property group named {name} already exists.", "OBJECT_ALREADY_EXISTS")
            group = {"name": name, "label": body.get("label", name), "displayOrder": body.get("displayOrder", -1),
                     "archived": False}  # fmt: skip
            self.groups[object_type][name] = group
        return self._ok(201, group)

    def _list_properties(self, req: FakeRequest) -> FakeResponse:
        guard = self._guard(req)
        if guard is not None:
            return guard
        return self._ok(200, {"results": list(self.properties[req.match["type"]].values())})

    def _get_property(self, req: FakeRequest) -> FakeResponse:
        guard = self._guard(req)
        if guard is not None:
            return guard
        prop = self.properties[req.match["type"]].get(req.match["name"])
        if prop is None:
            return _error(404, f"Unable to find property {req.match['name']}", "OBJECT_NOT_FOUND")
        return self._ok(200, prop)

    def _create_property(self, req: FakeRequest) -> FakeResponse:
        guard = self._guard(req)
        if guard is not None:
            return guard
        body = req.json() or {}
        object_type, name = req.match["type"], str(body.get("name"))
        with self._data:
            if name in self.properties[object_type]:
                return _error(409, f"Property named '{name}' already exists.", "OBJECT_ALREADY_EXISTS")
            if body.get("groupName") not in self.groups[object_type] and not str(body.get("groupName")).endswith(
                "information"
            ):
                return _error(400, f"property group {body.get('groupName')} does not exist", "VALIDATION_ERROR")
            prop = self._stored_property(object_type, body)
            self.properties[object_type][name] = prop
        return self._ok(201, prop)

    def _update_property(self, req: FakeRequest) -> FakeResponse:
        guard = self._guard(req)
        if guard is not None:
            return guard
        object_type, name = req.match["type"], req.match["name"]
        body = req.json() or {}
        with self._data:
            if name not in self.properties[object_type]:
                return _error(404, f"Unable to find property {name}", "OBJECT_NOT_FOUND")
            prop = self._stored_property(object_type, {**self.properties[object_type][name], **body, "name": name})
            self.properties[object_type][name] = prop
        return self._ok(200, prop)

    def _oauth_token(self, req: FakeRequest) -> FakeResponse:
        form = {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
        ok = (
            form.get("grant_type") == "refresh_token"
            and self.oauth_clients.get(form.get("client_id", "")) == form.get("client_secret")
            and form.get("refresh_token") in self.refresh_tokens
        )
        if not ok:
            return FakeResponse(400, {"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token",
                                      "correlationId": str(uuid.uuid4())})  # fmt: skip
        token = f"oauth-{uuid.uuid4().hex}"
        self.tokens.add(token)
        return FakeResponse(200, {"access_token": token, "refresh_token": form["refresh_token"], "expires_in": 1800,
                                  "token_type": "bearer"})  # fmt: skip


def _invalid_values_message(invalid: list[dict[str, Any]]) -> str:
    """HubSpot's message for refused property values: the entries as JSON, after a fixed text."""
    return "Property values were not valid: " + json.dumps(invalid, separators=(",", ":"))


def _scramble(record_id: str) -> str:
    """Ties come back in an order of HubSpot's choosing: here a stable scramble, never id order."""
    return hashlib.blake2s(record_id.encode(), digest_size=4).hexdigest()


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _to_text(value: Any) -> str | None:
    """HubSpot stores every property value as text; datetimes as ISO with milliseconds."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return hubspot_time(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
