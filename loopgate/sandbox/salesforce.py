"""A fake Salesforce REST API on 127.0.0.1 (HTTPS with a throwaway CA), for tests, the demo,
``loopgate serve --sandbox`` and the benchmarks.

It behaves like Salesforce for everything loopgate sends, and refuses the rest loudly:

- ``GET /services/data/v59.0/query`` and ``/queryAll`` with the SOQL *shapes loopgate sends*
  (a field list, one object, a ``WHERE`` of comparisons on ``SystemModstamp``, ``Id``, ``Type``
  joined by ``AND``/``OR``/parentheses, ``ORDER BY SystemModstamp ASC, Id ASC``). Anything
  else is ``400 MALFORMED_QUERY`` — this is not a SOQL engine. Results are snapshotted when
  the query runs and paged by ``nextRecordsUrl`` (2,000 a page unless told otherwise), as
  Salesforce's query cursors are; ``queryAll`` includes deleted and merged records.
- ``PATCH /composite/sobjects`` (update, at most 200 records, per-record results in request
  order, ``allOrNone``; an ``OwnerId`` no user or queue has is ``INVALID_CROSS_REFERENCE_KEY`` on
  ``["OwnerId"]``, an inactive user ``INACTIVE_OWNER_OR_USER`` naming no field), ``POST
  /composite/sobjects/{type}`` (retrieve, at most 2,000 ids, ``null`` for records that are gone).
- ``POST /services/oauth2/token`` (client credentials, password and refresh-token grants) and
  the SOAP ``login`` that simple-salesforce uses for username + password + security token.
- Every response carries ``Sforce-Limit-Info``; past ``api_limit`` requests the API answers
  ``403 REQUEST_LIMIT_EXCEEDED``; tokens can be expired (``401 INVALID_SESSION_ID``).

Seeding and inspection (:meth:`create`, :meth:`update`, :meth:`delete`, :meth:`merge`,
:meth:`get`, :meth:`touch`, :meth:`add_user`, :meth:`add_queue`, :meth:`add_campaign`,
:meth:`add_member`) act like a person editing records in Salesforce: each change stamps
``SystemModstamp`` with the fake's clock — of the record changed only: as in Salesforce, adding
a campaign member or changing its status leaves its Lead's stamp as it was, and editing a
Campaign leaves its members' stamps as they were.
"""

from __future__ import annotations

import itertools
import re
import threading
import uuid
from base64 import b64decode
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from html import escape, unescape
from typing import Any
from urllib.parse import parse_qs

from core.salesforce_ids import salesforce_id18
from loopgate.sandbox.http import FakeRequest, FakeResponse, FakeService

__all__ = ["API_VERSION", "FakeSalesforce", "SoqlQuery", "parse_soql", "salesforce_id"]

API_VERSION = "v59.0"
_DATA = f"/services/data/{API_VERSION}"

PREFIXES = {"Lead": "00Q", "Contact": "003", "Account": "001", "Opportunity": "006", "User": "005", "Group": "00G",
            "Campaign": "701", "CampaignMember": "00v"}  # fmt: skip
_COMMON = ("Id", "CreatedDate", "LastModifiedDate", "SystemModstamp")
STANDARD_FIELDS: dict[str, frozenset[str]] = {
    "Lead": frozenset(
        (*_COMMON, "IsDeleted", "MasterRecordId", "FirstName", "LastName", "Name", "Email", "Title", "Company",
         "Website", "Industry", "NumberOfEmployees", "AnnualRevenue", "Country", "State", "LeadSource", "Status",
         "Rating", "OwnerId", "IsConverted", "ConvertedDate", "ConvertedContactId", "ConvertedAccountId",
         "ConvertedOpportunityId")
    ),
    "Contact": frozenset(
        (*_COMMON, "IsDeleted", "MasterRecordId", "FirstName", "LastName", "Name", "Email", "Title", "AccountId",
         "MailingCountry", "MailingState", "LeadSource", "OwnerId", "Department")
    ),
    "Account": frozenset(
        (*_COMMON, "IsDeleted", "MasterRecordId", "Name", "Website", "Industry", "NumberOfEmployees", "Type",
         "OwnerId", "AnnualRevenue", "BillingCountry")
    ),
    "Opportunity": frozenset(
        (*_COMMON, "IsDeleted", "Name", "StageName", "IsClosed", "IsWon", "Amount", "CloseDate", "AccountId",
         "ContactId", "OwnerId")
    ),
    "User": frozenset((*_COMMON, "Name", "FirstName", "LastName", "Email", "IsActive", "Username")),
    "Group": frozenset((*_COMMON, "Name", "DeveloperName", "Email", "Type")),
    "Campaign": frozenset((*_COMMON, "IsDeleted", "Name", "Type", "Status", "IsActive", "StartDate")),
    "CampaignMember": frozenset(
        (*_COMMON, "IsDeleted", "CampaignId", "LeadId", "ContactId", "Status", "HasResponded", "FirstRespondedDate")
    ),
}  # fmt: skip
# relationship fields a query may select (Contact.Account.Name): object → relationship → (id field, target)
RELATIONSHIPS = {
    "Contact": {"Account": ("AccountId", "Account")},
    "Opportunity": {"Account": ("AccountId", "Account")},
    "CampaignMember": {"Campaign": ("CampaignId", "Campaign")},
}
DELETABLE = frozenset({"Lead", "Contact", "Account", "Opportunity", "Campaign", "CampaignMember"})
# the objects a queue may own (besides custom objects, which the fake has none of)
QUEUE_OWNED = frozenset({"Lead", "Case"})
_WHERE_FIELDS = frozenset({"SystemModstamp", "Id", "Type"})


def salesforce_id(id15: str) -> str:
    """The 18-character, case-insensitive form of a 15-character Salesforce id."""
    return salesforce_id18(id15)


def sf_datetime(value: datetime) -> str:
    """Salesforce's wire format for a dateTime: ``2026-11-20T20:00:00.000+0000``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _errors(code: str, message: str, status: int = 400) -> FakeResponse:
    return FakeResponse(status, [{"message": message, "errorCode": code}])


class SoqlError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# --- the SOQL subset -------------------------------------------------------------------------

Condition = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True, slots=True)
class SoqlQuery:
    fields: tuple[str, ...]
    sobject: str
    where: Condition | None
    limit: int | None


_TOKEN = re.compile(
    r"\s*(?:(?P<dt>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,3})?(?:Z|[+-]\d\d:\d\d))|(?P<str>'(?:[^'\\]|\\.)*')"
    r"|(?P<num>-?\d+(?:\.\d+)?)|(?P<op>>=|<=|!=|=|>|<)|(?P<paren>[()])|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token at: {text[pos : pos + 20]!r}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _literal(kind: str, text: str) -> Any:
    if kind == "dt":
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    if kind == "str":
        return text[1:-1].replace("\\'", "'")
    if kind == "num":
        return float(text)
    if kind == "word" and text.lower() in ("true", "false", "null"):
        return {"true": True, "false": False, "null": None}[text.lower()]
    raise SoqlError("MALFORMED_QUERY", f"expected a value, got {text!r}")


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a is not None and a > b,
    ">=": lambda a, b: a is not None and a >= b,
    "<": lambda a, b: a is not None and a < b,
    "<=": lambda a, b: a is not None and a <= b,
}


class _Where:
    """Recursive descent over ``cond (AND|OR cond)*`` with parentheses; comparisons only."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def parse(self) -> Condition:
        cond = self._or()
        if self.pos != len(self.tokens):
            raise SoqlError("MALFORMED_QUERY", f"unexpected {self.tokens[self.pos][1]!r} in WHERE")
        return cond

    def _peek_word(self, word: str) -> bool:
        return self.pos < len(self.tokens) and self.tokens[self.pos] == ("word", word)

    def _or(self) -> Condition:
        parts = [self._and()]
        while self._peek_word("OR"):
            self.pos += 1
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def _and(self) -> Condition:
        parts = [self._atom()]
        while self._peek_word("AND"):
            self.pos += 1
            parts.append(self._atom())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def _atom(self) -> Condition:
        if self.pos < len(self.tokens) and self.tokens[self.pos] == ("paren", "("):
            self.pos += 1
            inner = self._or()
            if self.pos >= len(self.tokens) or self.tokens[self.pos] != ("paren", ")"):
                raise SoqlError("MALFORMED_QUERY", "missing )")
            self.pos += 1
            return inner
        if self.pos + 3 > len(self.tokens):
            raise SoqlError("MALFORMED_QUERY", "incomplete condition")
        (k1, field), (k2, op), (k3, raw) = self.tokens[self.pos : self.pos + 3]
        if k1 != "word" or field not in _WHERE_FIELDS:
            raise SoqlError("MALFORMED_QUERY", f"the fake filters on {sorted(_WHERE_FIELDS)} only, not {field!r}")
        if k2 != "op":
            raise SoqlError("MALFORMED_QUERY", f"expected an operator after {field}")
        value = _literal(k3, raw)
        if field == "SystemModstamp" and not isinstance(value, datetime):
            raise SoqlError("INVALID_FIELD", "SystemModstamp compares with a dateTime literal (no quotes)")
        self.pos += 3
        compare = _OPS[op]
        return lambda r: compare(r.get(field), value)


_SELECT = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<object>\w+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?"
    r"(?:\s+ORDER\s+BY\s+(?P<order>.+?))?"
    r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL,
)


def parse_soql(text: str) -> SoqlQuery:
    """Parse the query shapes loopgate sends; raise :class:`SoqlError` for anything else."""
    match = _SELECT.match(text)
    if match is None:
        raise SoqlError("MALFORMED_QUERY", "the fake understands SELECT … FROM … [WHERE …] [ORDER BY …] [LIMIT n]")
    sobject = match["object"]
    if sobject not in STANDARD_FIELDS:
        raise SoqlError("INVALID_TYPE", f"sObject type '{sobject}' is not supported by the fake")
    fields = tuple(f.strip() for f in match["fields"].split(","))
    if not all(re.fullmatch(r"\w+(\.\w+)?", f) for f in fields):
        raise SoqlError("MALFORMED_QUERY", f"unsupported field list: {match['fields']!r}")
    order = re.sub(r"\s+", " ", (match["order"] or "").strip())
    if order and order.upper() not in ("SYSTEMMODSTAMP ASC, ID ASC", "SYSTEMMODSTAMP, ID"):
        raise SoqlError("MALFORMED_QUERY", f"the fake orders by 'SystemModstamp ASC, Id ASC' only, not {order!r}")
    where = _Where(_tokens(match["where"])).parse() if match["where"] else None
    return SoqlQuery(fields, sobject, where, int(match["limit"]) if match["limit"] else None)


# --- the fake service ------------------------------------------------------------------------


@dataclass
class _RecordFailure:
    code: str
    message: str
    times: int
    fields: tuple[str, ...] = ()


class FakeSalesforce(FakeService):
    """A fake org. ``custom_fields`` are the ``__c`` fields that exist per object."""

    name = "salesforce"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        page_size: int = 2000,
        api_limit: int | None = None,
        custom_fields: Mapping[str, Iterable[str]] | None = None,
        loopgate_fields: bool = True,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(host=host, port=port, tls=True)
        self.page_size = page_size
        self.api_limit = api_limit
        self.api_used = 0
        self.clock = clock or (lambda: datetime.now(UTC))
        self.records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in STANDARD_FIELDS}
        self.custom_fields: dict[str, set[str]] = {name: set() for name in STANDARD_FIELDS}
        for sobject, names in (custom_fields or {}).items():
            self.define_fields(sobject, names)
        if loopgate_fields:  # as if `loopgate crm setup salesforce` had been deployed
            from connectors.setup_spec import salesforce_fields

            for sobject, name, _key, _spec in salesforce_fields():
                self.define_fields(sobject, [name])
        self.tokens: set[str] = set()
        self.access_token = self.issue_token()
        self.clients: dict[str, str] = {}  # client id → secret
        self.logins: dict[str, str] = {}  # username → password + security token
        self.refresh_tokens: set[str] = set()
        self.record_failures: dict[str, _RecordFailure] = {}
        self.before_query_page: Callable[[int], None] | None = None  # hook: called before serving page n ≥ 2
        self.hidden_objects: set[str] = set()  # objects the integration user cannot see (INVALID_TYPE)
        self._cursors: dict[str, list[dict[str, Any]]] = {}
        self._counter = itertools.count(1)
        self._data = threading.RLock()
        self.route("GET", rf"^{_DATA}/(?P<kind>query|queryAll)/?$", self._query)
        self.route("GET", rf"^{_DATA}/(?P<kind>query|queryAll)/(?P<locator>[\w]+)-(?P<offset>\d+)$", self._query_more)
        self.route("PATCH", rf"^{_DATA}/composite/sobjects/?$", self._update)
        self.route("POST", rf"^{_DATA}/composite/sobjects/(?P<sobject>\w+)/?$", self._retrieve)
        self.route("POST", r"^/services/oauth2/token$", self._token)
        self.route("POST", rf"^/services/Soap/u/{API_VERSION[1:]}$", self._soap_login)

    # --- seeding and inspection ---------------------------------------------------------------

    def define_fields(self, sobject: str, names: Iterable[str]) -> None:
        """Make custom fields exist (as if their metadata had been deployed)."""
        for name in names:
            if not name.endswith("__c"):
                raise ValueError(f"custom field names end in __c: {name}")
            self.custom_fields[sobject].add(name)

    def now(self) -> datetime:
        # SystemModstamp has second precision on the wire (SOQL literals have no fraction)
        return self.clock().astimezone(UTC).replace(microsecond=0)

    def new_id(self, sobject: str) -> str:
        return salesforce_id(f"{PREFIXES[sobject]}5e{next(self._counter):010d}")

    def create(self, sobject: str, fields: Mapping[str, Any] | None = None, **more: Any) -> str:
        """Create a record (``Id`` may be given); returns its 18-character id."""
        values = {**(fields or {}), **more}
        self._check_fields(sobject, values)
        with self._data:
            record_id = str(values.pop("Id", None) or self.new_id(sobject))
            stamp = values.pop("SystemModstamp", None) or self.now()
            record: dict[str, Any] = dict.fromkeys(self._fields(sobject))
            record.update(Id=record_id, CreatedDate=stamp, LastModifiedDate=stamp, SystemModstamp=stamp)
            if sobject in DELETABLE:
                record["IsDeleted"] = False
            if sobject == "Lead":
                record["IsConverted"] = False
            if sobject == "Opportunity":
                record.update(IsClosed=False, IsWon=False)
            record.update(values)
            self.records[sobject][record_id] = record
            return record_id

    def create_many(self, sobject: str, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        return [self.create(sobject, row) for row in rows]

    def update(self, sobject: str, record_id: str, fields: Mapping[str, Any] | None = None, **more: Any) -> None:
        """Change a record as a person would; stamps ``SystemModstamp`` (unless given)."""
        values = {**(fields or {}), **more}
        self._check_fields(sobject, values)
        with self._data:
            record = self._live(sobject, record_id)
            stamp = values.pop("SystemModstamp", None) or self.now()
            record.update(values)
            record.update(LastModifiedDate=stamp, SystemModstamp=stamp)

    def touch(self, sobject: str, record_id: str, at: datetime | None = None) -> None:
        """Bump ``SystemModstamp`` without changing anything else (a system update)."""
        with self._data:
            self.records[sobject][record_id]["SystemModstamp"] = (at or self.now()).replace(microsecond=0)

    def delete(self, sobject: str, record_id: str) -> None:
        """Move a record to the recycle bin: ``query`` no longer sees it, ``queryAll`` does."""
        with self._data:
            record = self._live(sobject, record_id)
            record.update(IsDeleted=True, SystemModstamp=self.now())

    def merge(self, sobject: str, winner: str, loser: str) -> None:
        """Merge ``loser`` into ``winner``: the loser is deleted with ``MasterRecordId`` set."""
        with self._data:
            self._live(sobject, winner)
            record = self._live(sobject, loser)
            stamp = self.now()
            record.update(IsDeleted=True, MasterRecordId=winner, SystemModstamp=stamp)
            self.records[sobject][winner]["SystemModstamp"] = stamp

    def get(self, sobject: str, record_id: str) -> dict[str, Any]:
        """The record's current values (deleted ones included)."""
        with self._data:
            return dict(self.records[sobject][record_id])

    def add_user(self, name: str, *, id15: str | None = None, email: str | None = None, active: bool = True) -> str:
        return self.create("User", Id=salesforce_id(id15) if id15 else None, Name=name, Email=email, IsActive=active)

    def add_queue(self, name: str, *, id15: str | None = None, email: str | None = None) -> str:
        return self.create("Group", Id=salesforce_id(id15) if id15 else None, Name=name, Email=email, Type="Queue")

    def add_campaign(self, name: str, kind: str | None = None, **fields: Any) -> str:
        """A campaign; ``kind`` is its ``Type`` ("Webinar", "Trade Show"…)."""
        return self.create("Campaign", {"Name": name, "Type": kind, "IsActive": True, **fields})

    def add_member(
        self,
        campaign_id: str,
        *,
        lead_id: str | None = None,
        contact_id: str | None = None,
        responded: bool = True,
        responded_on: date | None = None,
        **fields: Any,
    ) -> str:
        """A campaign member; responded ones get ``FirstRespondedDate`` (today by the fake's
        clock unless given), as Salesforce sets it when a member first takes a responded status."""
        on = (responded_on or self.now().date()) if responded else None
        values = {
            "CampaignId": campaign_id,
            "LeadId": lead_id,
            "ContactId": contact_id,
            "Status": "Responded" if responded else "Sent",
            "HasResponded": responded,
            "FirstRespondedDate": on,
        }
        return self.create("CampaignMember", {**values, **fields})

    def fail_record(
        self, record_id: str, code: str, message: str = "", *, times: int = 1, fields: tuple[str, ...] = ()
    ) -> None:
        """Make the next ``times`` updates of this record fail with this error code."""
        self.record_failures[record_id] = _RecordFailure(code, message or code.lower().replace("_", " "), times, fields)

    def issue_token(self) -> str:
        token = f"00D5e0000000001!{uuid.uuid4().hex}"
        self.tokens.add(token)
        return token

    def expire_tokens(self) -> None:
        """Every session issued so far becomes invalid (``401 INVALID_SESSION_ID``)."""
        self.tokens.clear()

    def expire_query_cursors(self) -> None:
        """Every open ``nextRecordsUrl`` becomes invalid (Salesforce times them out)."""
        with self._data:
            self._cursors.clear()

    # --- internals ------------------------------------------------------------------------------

    def _fields(self, sobject: str) -> set[str]:
        return set(STANDARD_FIELDS[sobject]) | self.custom_fields[sobject]

    def _check_fields(self, sobject: str, values: Mapping[str, Any]) -> None:
        unknown = set(values) - self._fields(sobject) - {"Id"}
        if unknown:
            raise ValueError(f"no such field(s) on {sobject}: {sorted(unknown)}")

    def _live(self, sobject: str, record_id: str) -> dict[str, Any]:
        record = self.records[sobject].get(record_id)
        if record is None or record.get("IsDeleted"):
            raise KeyError(f"no live {sobject} {record_id}")
        return record

    def _dispatch_guard(self, req: FakeRequest) -> FakeResponse | None:
        """Auth and API limits, checked before every data request."""
        auth = req.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ").strip()
        if token not in self.tokens:
            return _errors("INVALID_SESSION_ID", "Session expired or invalid", 401)
        with self._data:
            self.api_used += 1
            if self.api_limit is not None and self.api_used > self.api_limit:
                return _errors("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", 403)
        return None

    def _limit_headers(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.api_used}/{self.api_limit or 100000}"}

    def _with_limits(self, response: FakeResponse) -> FakeResponse:
        response.headers.update(self._limit_headers())
        return response

    @staticmethod
    def _wire(value: Any) -> Any:
        if isinstance(value, datetime):
            return sf_datetime(value)
        if isinstance(value, date):
            return value.isoformat()
        return value

    def _project(self, sobject: str, record: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"attributes": {"type": sobject, "url": f"{_DATA}/sobjects/{sobject}/{record['Id']}"}}
        for name in fields:
            if "." in name:
                rel, sub = name.split(".", 1)
                id_field, target = RELATIONSHIPS[sobject][rel]
                parent = self.records[target].get(record.get(id_field) or "")
                if parent is None:
                    out[rel] = None
                    continue
                nested = out.get(rel) or {
                    "attributes": {"type": target, "url": f"{_DATA}/sobjects/{target}/{parent['Id']}"}
                }
                nested[sub] = self._wire(parent.get(sub))
                out[rel] = nested
            else:
                out[name] = self._wire(record.get(name))
        return out

    def _validate_select(self, query: SoqlQuery) -> None:
        known = self._fields(query.sobject)
        for name in query.fields:
            if "." in name:
                rel, sub = name.split(".", 1)
                target = RELATIONSHIPS.get(query.sobject, {}).get(rel)
                if target is None or sub not in self._fields(target[1]):
                    raise SoqlError("INVALID_FIELD", f"No such column '{name}' on entity '{query.sobject}'")
            elif name not in known:
                raise SoqlError(
                    "INVALID_FIELD",
                    f"No such column '{name}' on entity '{query.sobject}'. If you are attempting to use a custom "
                    "field, be sure to append the '__c' after the custom field name.",
                )

    # --- routes ---------------------------------------------------------------------------------

    def _query(self, req: FakeRequest) -> FakeResponse:
        guard = self._dispatch_guard(req)
        if guard is not None:
            return self._with_limits(guard)
        try:
            query = parse_soql(req.arg("q") or "")
            if query.sobject in self.hidden_objects:
                raise SoqlError(
                    "INVALID_TYPE",
                    f"sObject type '{query.sobject}' is not supported. If you are attempting to use a custom "
                    "object, be sure to append the '__c' after the entity name.",
                )
            self._validate_select(query)
        except SoqlError as exc:
            return self._with_limits(_errors(exc.code, str(exc)))
        include_deleted = req.match["kind"] == "queryAll"
        with self._data:
            rows = [
                r
                for r in self.records[query.sobject].values()
                if (include_deleted or not r.get("IsDeleted")) and (query.where is None or query.where(r))
            ]
            rows.sort(key=lambda r: (r["SystemModstamp"], r["Id"]))
            if query.limit is not None:
                rows = rows[: query.limit]
            snapshot = [self._project(query.sobject, r, query.fields) for r in rows]
            locator = f"01g5e{uuid.uuid4().hex[:13]}"
            if len(snapshot) > self.page_size:
                self._cursors[locator] = snapshot
        return self._with_limits(FakeResponse(200, self._page(req.match["kind"], locator, snapshot, 0)))

    def _query_more(self, req: FakeRequest) -> FakeResponse:
        guard = self._dispatch_guard(req)
        if guard is not None:
            return self._with_limits(guard)
        offset = int(req.match["offset"])
        if self.before_query_page is not None:
            self.before_query_page(offset // self.page_size + 1)
        with self._data:
            snapshot = self._cursors.get(req.match["locator"])
        if snapshot is None or offset >= len(snapshot):
            return self._with_limits(_errors("INVALID_QUERY_LOCATOR", "invalid query locator"))
        return self._with_limits(
            FakeResponse(200, self._page(req.match["kind"], req.match["locator"], snapshot, offset))
        )

    def _page(self, kind: str, locator: str, snapshot: list[dict[str, Any]], offset: int) -> dict[str, Any]:
        end = offset + self.page_size
        body: dict[str, Any] = {
            "totalSize": len(snapshot),
            "done": end >= len(snapshot),
            "records": snapshot[offset:end],
        }
        if not body["done"]:
            body["nextRecordsUrl"] = f"{_DATA}/{kind}/{locator}-{end}"
        else:
            with self._data:
                self._cursors.pop(locator, None)
        return body

    def _update(self, req: FakeRequest) -> FakeResponse:
        guard = self._dispatch_guard(req)
        if guard is not None:
            return self._with_limits(guard)
        body = req.json()
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not records:
            return self._with_limits(_errors("JSON_PARSER_ERROR", "records: a non-empty list is required"))
        if len(records) > 200:
            return self._with_limits(
                _errors(
                    "EXCEEDED_ID_LIMIT",
                    "record limit reached. cannot submit more than 200 records into this call",
                )
            )
        for rec in records:
            sobject = (rec.get("attributes") or {}).get("type")
            if sobject not in STANDARD_FIELDS:
                return self._with_limits(_errors("INVALID_TYPE", f"unknown sObject type {sobject!r}"))
            unknown = set(rec) - {"attributes", "id", "Id"} - self._fields(sobject)
            if unknown:
                name = sorted(unknown)[0]
                return self._with_limits(
                    _errors("INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject}")
                )
        with self._data:
            results = [self._update_one(rec) for rec in records]
            if body.get("allOrNone") and not all(r["success"] for r in results):
                # roll back: nothing was applied; report the failure and the rolled-back rest
                results = [
                    r
                    if not r["success"]
                    else {"success": False, "errors": [{"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                                                         "message": "Record rolled back because not all records "
                                                         "were valid and the request was using AllOrNone header",
                                                         "fields": []}]}
                    for r in results
                ]  # fmt: skip
            else:
                stamp = self.now()
                for rec, result in zip(records, results, strict=True):
                    if result["success"]:
                        target = self._find(rec["attributes"]["type"], result["id"])
                        assert target is not None
                        target.update({k: v for k, v in rec.items() if k not in ("attributes", "id", "Id")})
                        target.update(LastModifiedDate=stamp, SystemModstamp=stamp)
        return self._with_limits(FakeResponse(200, results))

    def _update_one(self, rec: Mapping[str, Any]) -> dict[str, Any]:
        """Validate one record of a collection update (applied by the caller if all is well)."""
        sobject = rec["attributes"]["type"]
        record_id = str(rec.get("id") or rec.get("Id") or "")
        failure = self.record_failures.get(record_id)
        if failure is not None:
            failure.times -= 1
            if failure.times <= 0:
                del self.record_failures[record_id]
            return _fail(failure.code, failure.message, failure.fields)
        record = self._find(sobject, record_id)
        if record is None:
            return _fail("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        if record.get("IsDeleted"):
            return _fail("ENTITY_IS_DELETED", "entity is deleted")
        if sobject == "Lead" and record.get("IsConverted"):
            return _fail("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
        owner = rec.get("OwnerId")
        user = self._find("User", str(owner)) if owner is not None else None
        if user is not None and not user.get("IsActive", True):
            # Salesforce names no field for an inactive owner: the code says it
            message = f"operation performed with inactive user [{owner}] as owner of {sobject.lower()}"
            return _fail("INACTIVE_OWNER_OR_USER", message)
        if owner is not None and not self._owner_exists(str(owner)):
            return _fail("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ("OwnerId",))
        if owner is not None and sobject not in QUEUE_OWNED and self._find("Group", str(owner)) is not None:
            # queues may own Leads and Cases (and custom objects), never a Contact or an Account
            return _fail("FIELD_INTEGRITY_EXCEPTION", f"Owner ID: id value of incorrect type: {owner}", ("OwnerId",))
        return {"id": record["Id"], "success": True, "errors": []}

    def _find(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        """A record by its 18- or 15-character id (Salesforce accepts both)."""
        record = self.records[sobject].get(record_id)
        if record is None and len(record_id) == 15:
            record = self.records[sobject].get(salesforce_id(record_id))
        return record

    def _owner_exists(self, owner_id: str) -> bool:
        user = self._find("User", owner_id)
        if user is not None:
            return bool(user.get("IsActive", True))
        group = self._find("Group", owner_id)
        return group is not None and group.get("Type") == "Queue"

    def _retrieve(self, req: FakeRequest) -> FakeResponse:
        guard = self._dispatch_guard(req)
        if guard is not None:
            return self._with_limits(guard)
        sobject = req.match["sobject"]
        if sobject not in STANDARD_FIELDS:
            return self._with_limits(_errors("NOT_FOUND", f"The requested resource does not exist: {sobject}", 404))
        body = req.json() or {}
        ids, fields = body.get("ids"), body.get("fields")
        if not isinstance(ids, list) or not isinstance(fields, list) or not ids or not fields:
            return self._with_limits(_errors("JSON_PARSER_ERROR", "ids and fields are required lists"))
        if len(ids) > 2000:
            return self._with_limits(_errors("EXCEEDED_ID_LIMIT", "maximum number of ids is 2000"))
        unknown = [f for f in fields if f not in self._fields(sobject)]
        if unknown:
            return self._with_limits(_errors("INVALID_FIELD", f"No such column '{unknown[0]}' on entity '{sobject}'"))
        with self._data:
            out: list[dict[str, Any] | None] = []
            for record_id in ids:
                record = self.records[sobject].get(str(record_id))
                out.append(
                    None
                    if record is None or record.get("IsDeleted")
                    else self._project(sobject, record, ["Id", *fields])
                )
        return self._with_limits(FakeResponse(200, out))

    def _token(self, req: FakeRequest) -> FakeResponse:
        form = {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
        grant = form.get("grant_type")
        ok = False
        if grant == "client_credentials":
            basic = req.headers.get("authorization", "").removeprefix("Basic ").strip()
            try:
                client_id, _, secret = b64decode(basic).decode().partition(":")
            except ValueError:
                client_id, secret = "", ""
            ok = bool(client_id) and self.clients.get(client_id) == secret
        elif grant == "password":
            ok = self.clients.get(form.get("client_id", "")) == form.get("client_secret") and (
                self.logins.get(form.get("username", "")) == form.get("password")
            )
        elif grant == "refresh_token":
            ok = form.get("refresh_token") in self.refresh_tokens
        if not ok:
            error = "invalid_client" if grant == "client_credentials" else "invalid_grant"
            return FakeResponse(400, {"error": error, "error_description": "authentication failure"})
        return FakeResponse(
            200,
            {
                "access_token": self.issue_token(),
                "instance_url": self.url,
                "id": f"{self.url}/id/00D5e0000000001/0055e000000000A",
                "token_type": "Bearer",
                "issued_at": str(int(self.clock().timestamp() * 1000)),
                "signature": "fake",
            },
        )

    def _soap_login(self, req: FakeRequest) -> FakeResponse:
        text = req.body.decode()
        user = re.search(r"<n1:username>(.*?)</n1:username>", text)
        secret = re.search(r"<n1:password>(.*?)</n1:password>", text)
        if user is None or secret is None or self.logins.get(unescape(user[1])) != unescape(secret[1]):
            fault = (
                '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
                'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
                'xmlns:sf="urn:fault.partner.soap.sforce.com"><soapenv:Body><soapenv:Fault>'
                "<faultcode>INVALID_LOGIN</faultcode><faultstring>INVALID_LOGIN: Invalid username, password, "
                "security token; or user locked out.</faultstring><detail><sf:LoginFault>"
                "<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode><sf:exceptionMessage>Invalid username, "
                "password, security token; or user locked out.</sf:exceptionMessage></sf:LoginFault></detail>"
                "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
            )
            return FakeResponse(500, fault, {"Content-Type": "text/xml; charset=utf-8"})
        token = escape(self.issue_token())
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
            'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com">'
            f"<soapenv:Body><loginResponse><result><serverUrl>{self.url}/services/Soap/u/{API_VERSION[1:]}"
            f"/00D5e0000000001</serverUrl><sessionId>{token}</sessionId></result></loginResponse>"
            "</soapenv:Body></soapenv:Envelope>"
        )
        return FakeResponse(200, body, {"Content-Type": "text/xml; charset=utf-8"})


def _fail(code: str, message: str, fields: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"success": False, "errors": [{"statusCode": code, "message": message, "fields": list(fields)}]}
