"""Lead input (DESIGN §4) → :class:`Lead`, tolerating what CRMs and people type.

A value that cannot be understood becomes ``None`` and is listed in ``Lead.problems``, so the
engine can say "employees: 'lots' is not a number" as missing data instead of crashing or
guessing. Only a record without an id (or one that is not an object at all) is refused:
without an id there is nothing to decide about. Strings are capped in length and events in
number so a hostile record cannot make one decision expensive.

Text that no store can keep is cleaned here, once, for every path a lead takes (``decide``,
CRM sync, the store's merge): NUL is dropped, and a lone surrogate (``"\\ud800"`` is valid
JSON, and a CRM or a file can carry one) becomes U+FFFD, with the field named in
``problems``. A surrogate can be neither encoded to UTF-8 nor stored in SQLite or PostgreSQL
text; refusing the lead would lose it over one character, and in a sync there is no line to
report. Only text that is not pure ASCII is looked at (``isascii`` reads a flag).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

from core.model import Account, Event, Lead, positional_builder

__all__ = [
    "CLOCK_SKEW",
    "MAX_EVENTS",
    "MAX_TEXT",
    "LeadInputError",
    "account_domain",
    "account_domains",
    "content_hash",
    "lead_as_of",
    "lead_record",
    "normalize_account",
    "normalize_domain",
    "normalize_lead",
    "parse_time",
]

MAX_TEXT = 1000
MAX_EVENTS = 500
# how far after "now" an event may be dated and still count: clocks of CRMs, web trackers and
# this machine disagree by seconds to minutes; an event later than this has not happened yet
CLOCK_SKEW = timedelta(minutes=5)
_MAX_DEPTH = 64  # of a custom field's lists and objects rebuilt to drop a NaN

_TEXT_FIELDS = (
    "first_name", "last_name", "title", "company", "industry", "state", "lead_source", "owner_id",
)  # fmt: skip
_COUNTRY_ALIASES = {
    "united states": "US", "united states of america": "US", "usa": "US", "u.s.": "US", "u.s.a.": "US",
    "america": "US", "canada": "CA", "united kingdom": "GB", "uk": "GB", "great britain": "GB",
    "england": "GB", "germany": "DE", "deutschland": "DE", "france": "FR", "netherlands": "NL",
    "the netherlands": "NL", "holland": "NL", "norway": "NO", "sweden": "SE", "denmark": "DK",
    "finland": "FI", "spain": "ES", "italy": "IT", "ireland": "IE", "switzerland": "CH", "austria": "AT",
    "belgium": "BE", "poland": "PL", "portugal": "PT", "australia": "AU", "new zealand": "NZ",
    "india": "IN", "japan": "JP", "china": "CN", "singapore": "SG", "brazil": "BR", "mexico": "MX",
    "south africa": "ZA", "israel": "IL", "united arab emirates": "AE", "uae": "AE",
}  # fmt: skip


_build_lead = positional_builder(Lead)
# a code point no UTF-8 encoder nor database text type takes: a surrogate outside a pair (and in
# a Python str every surrogate is outside one: json joins an escaped pair into one character)
_surrogate = re.compile("[\ud800-\udfff]")
_has_surrogate = _surrogate.search
_REPLACED = "unpaired surrogate replaced with U+FFFD"


def _storable(text: str) -> str:
    """``text`` with each surrogate replaced by U+FFFD."""
    return _surrogate.sub("\ufffd", text)


class LeadInputError(ValueError):
    """The record cannot be a lead at all (not an object, or no usable id)."""


def normalize_lead(raw: Any, *, default_source: str = "import") -> Lead:
    """Build a :class:`Lead` from an input object; raises :class:`LeadInputError` only when
    there is no object or no id."""
    # this runs once per input line: plain dicts and clean text take inline fast paths, and
    # anything unusual goes through the general parsers below (same results, same problems)
    if type(raw) is not dict and not isinstance(raw, Mapping):
        raise LeadInputError(f"a lead must be a JSON object, not {type(raw).__name__}")
    get = raw.get
    lead_id = get("id")
    if type(lead_id) is not str and (isinstance(lead_id, bool) or not isinstance(lead_id, str | int)):
        raise LeadInputError("the lead has no 'id' (text or number)")
    lead_id = (lead_id if type(lead_id) is str else str(lead_id)).strip()
    if not lead_id:
        raise LeadInputError("the lead has no 'id' (text or number)")
    problems: dict[str, str] = {}
    lead_id = lead_id if lead_id.isascii() else _replace_surrogates(lead_id, "id", problems)
    first_name, last_name, title, company, industry, state, lead_source, owner_id = _texts(get, problems)
    source = _text(get("source"), "source", problems)
    email = _email(get("email"), problems)
    domain = get("domain")
    if domain is not None:
        domain = normalize_domain(_text(domain, "domain", problems))
    country = get("country")
    if country is not None:
        country = _country_field(country, problems)
    employees = get("employees")
    if employees is not None and (type(employees) is not int or not 0 <= employees <= 10_000_000):
        employees = _count(employees, "employees", problems)
    annual_revenue = get("annual_revenue")
    if annual_revenue is not None:
        annual_revenue = _amount(annual_revenue, "annual_revenue", problems)
    deal_size = get("estimated_deal_size")
    if deal_size is not None:
        deal_size = _amount(deal_size, "estimated_deal_size", problems)
    created_at = get("created_at")
    if created_at is not None:
        created_at = _time(created_at, "created_at", problems)
    updated_at = get("updated_at")
    if updated_at is not None:
        updated_at = _time(updated_at, "updated_at", problems)
    fields = get("fields")
    if fields is not None:
        fields = _custom_fields(fields, problems)
    # positional, in field order, through the slot stores (core.model.positional_builder):
    # the frozen __init__ costs more than the rest of building the value (a test checks every
    # input field lands in its attribute). email_domain is what Lead.__post_init__ derives.
    return _build_lead(
        lead_id[:64],
        (source or default_source).lower()[:20],
        email,
        first_name,
        last_name,
        title,
        company,
        domain,
        industry,
        employees,
        annual_revenue,
        country,
        state,
        lead_source,
        deal_size,
        owner_id,
        created_at,
        updated_at,
        _events(get("events"), problems),
        fields or {},
        problems,
        (email.rsplit("@", 1)[1].lower() or None) if email and "@" in email else None,
    )


def normalize_account(raw: Any, *, default_source: str = "import") -> Account:
    """Build an :class:`Account` from an input object (``--accounts`` files, CRM rows)."""
    if not isinstance(raw, Mapping) or raw.get("id") in (None, ""):
        raise LeadInputError("an account must be a JSON object with an 'id'")
    problems: dict[str, str] = {}
    fields = raw.get("fields")
    return Account(
        id=_storable(str(raw["id"]))[:64],
        source=_storable(str(raw.get("source") or default_source)).lower()[:20],
        name=_text(raw.get("name"), "name", problems),
        domain=normalize_domain(_text(raw.get("domain"), "domain", problems)),
        owner_id=_text(raw.get("owner_id"), "owner_id", problems),
        strategic=_flag(raw.get("strategic")),
        tier=_text(raw.get("tier"), "tier", problems),
        industry=_text(raw.get("industry"), "industry", problems),
        employees=_count(raw.get("employees"), "employees", problems),
        is_customer=_flag(raw.get("is_customer")),
        fields=_custom_fields(fields, problems) if isinstance(fields, Mapping) else {},
    )


def account_domain(lead: Lead, free_email_domains: frozenset[str]) -> str | None:
    """The company domain to match the lead to an account: its work email's domain, else
    its website. Personal mail domains (gmail.com…) never identify a company."""
    email_domain = lead.email_domain
    if email_domain and email_domain not in free_email_domains:
        return email_domain
    if lead.domain and lead.domain not in free_email_domains:
        return lead.domain
    return None


def account_domains(lead: Lead, free_email_domains: frozenset[str]) -> tuple[str, ...]:
    """The domains to look the lead's account up by, best first: the work email's domain and
    its parents, then the website's. The first one some account has is the match.

    People write from company subdomains (``eu.globex.com``) while the account holds
    ``globex.com``, and a work address at a domain no account has may still come with the
    company's website. These are only candidates: a caller matches them against the domains
    accounts really have, never by shape. Parents stop at two labels, and skip a country's
    registry suffix (``co.uk``, ``com.au``) and anything longer than
    :data:`_MAX_PARENT_LABELS` (so a hostile address gives a handful, not hundreds). A domain
    that is, or sits under, a personal mail domain gives nothing: gmail.com is no company."""
    out: list[str] = []
    for domain in (lead.email_domain, lead.domain):
        if not domain:
            continue
        chain = _domain_and_parents(domain)
        if any(d in free_email_domains for d in chain):
            continue
        out += (d for d in chain if d not in out)
    return tuple(out)


_MAX_PARENT_LABELS = 4  # eu.globex.co.uk: deeper parents are not where accounts live
# second-level labels registries put under a country code: "co.uk" is nobody's company
_REGISTRY_LABELS = frozenset({"ac", "co", "com", "edu", "gob", "gov", "govt", "ltd", "net", "or", "org", "plc"})


def _domain_and_parents(domain: str) -> list[str]:
    """``a.eu.globex.com`` → ``[a.eu.globex.com, eu.globex.com, globex.com]``."""
    labels = domain.split(".")
    chain = [domain]
    for start in range(max(1, len(labels) - _MAX_PARENT_LABELS), len(labels) - 1):
        parent = labels[start:]
        if len(parent) == 2 and len(parent[1]) == 2 and parent[0] in _REGISTRY_LABELS:
            continue
        chain.append(".".join(parent))
    return chain


def lead_as_of(lead: Lead, now: datetime) -> tuple[Lead, tuple[Event, ...]]:
    """The lead as it can be known at ``now``, and the events it leaves out: those dated more
    than :data:`CLOCK_SKEW` after ``now``.

    A typo'd year or a tracker's wrong clock dates an event in the future. Counted, it is the
    freshest event there is: full intent points (no decay), "requested a demo just now", a
    customer signal that never expires. It has not happened yet, so nothing that decides may
    see it; the caller says what was left out. ``lead.events`` is sorted by time (normalize
    and the store's merge sort it), so the common case, nothing in the future, is one
    comparison."""
    events = lead.events
    if not events or events[-1].at - now <= CLOCK_SKEW:
        return lead, ()
    kept = tuple(e for e in events if e.at - now <= CLOCK_SKEW)
    later = tuple(e for e in events if e.at - now > CLOCK_SKEW)
    return replace(lead, events=kept), later


def content_hash(lead: Lead) -> str:
    """Identity of what the engine looks at: a change here means "decide again"."""
    return hashed_record(lead)[1]


def hashed_record(lead: Lead) -> tuple[str, str, Any, Any]:
    """What :func:`content_hash` covers, as canonical JSON text, and the hash; with the two
    fields it leaves out (``updated_at``, ``problems``). The store keeps that text as the lead's
    data (the two fields appended) rather than building and encoding the record twice."""
    record = lead_record(lead)
    updated_at = record.pop("updated_at", None)
    problems = record.pop("problems", None)
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return text, hashlib.sha256(text.encode()).hexdigest()[:32], updated_at, problems


def lead_record(lead: Lead) -> dict[str, Any]:
    """The lead as a JSON-ready dict in the input format (round-trips through normalize)."""
    out: dict[str, Any] = {
        "id": lead.id,
        "source": lead.source,
        "email": lead.email,
        "first_name": lead.first_name,
        "last_name": lead.last_name,
        "title": lead.title,
        "company": lead.company,
        "domain": lead.domain,
        "industry": lead.industry,
        "employees": lead.employees,
        "annual_revenue": lead.annual_revenue,
        "country": lead.country,
        "state": lead.state,
        "lead_source": lead.lead_source,
        "estimated_deal_size": lead.estimated_deal_size,
        "owner_id": lead.owner_id,
        "created_at": lead.created_at.isoformat() if lead.created_at else None,
        "updated_at": lead.updated_at.isoformat() if lead.updated_at else None,
        "events": [{"type": e.type, "at": e.at.isoformat()} for e in lead.events],
        "fields": lead.fields,
    }
    if lead.problems:
        out["problems"] = lead.problems
    return out


# --- value parsers ------------------------------------------------------------------------


def _text(value: Any, name: str, problems: dict[str, str]) -> str | None:
    if value is None:
        return None
    if type(value) is str:
        value = value.replace("\x00", "").strip()  # NUL: no database text type stores it
        if not value.isascii() and _has_surrogate(value):  # nor a lone surrogate (see the module)
            value = _storable(value)
            problems[name] = _REPLACED
        return value[:MAX_TEXT] if value else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    problems[name] = f"expected text, got {_kind(value)}"
    return None


def _texts(get: Callable[[str], Any], problems: dict[str, str]) -> list[str | None]:
    """The plain text fields (``_TEXT_FIELDS``, in order); :func:`_text` inlined for missing and
    clean text (``strip()[:MAX_TEXT] or None`` is its "blank is None" rule in one expression).
    A loop, not a comprehension: in 3.11 that is one more function call per lead."""
    texts: list[str | None] = []
    append = texts.append
    for name in _TEXT_FIELDS:
        value = get(name)
        if value is None:
            append(None)
        elif type(value) is str and "\x00" not in value and (value.isascii() or not _has_surrogate(value)):
            append(value.strip()[:MAX_TEXT] or None)
        else:
            append(_text(value, name, problems))
    return texts


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "true/false"}.get(type(value), type(value).__name__)


def _email(value: Any, problems: dict[str, str]) -> str | None:
    if type(value) is str and "\x00" not in value and (value.isascii() or not _has_surrogate(value)):
        # _text inlined for clean text, as in _texts
        text = value.strip()[:MAX_TEXT] or None
    else:
        text = _text(value, "email", problems)
    if text is None:
        return None
    local, _, domain = text.lower().rpartition("@")
    if not local or "." not in domain or " " in text or domain.startswith(".") or domain.endswith("."):
        problems["email"] = f"{_short(text)!r} is not an email address"
        return None
    return f"{local}@{domain}"


def normalize_domain(value: str | None) -> str | None:
    """``https://www.Acme.com/about`` → ``acme.com``; the DNS root's trailing dot
    (``acme.com.``) is the same domain, and without it an account never matched its leads."""
    if not value:
        return None
    text = value.strip().lower()
    for prefix in ("https://", "http://"):
        text = text.removeprefix(prefix)
    text = text.split("/", 1)[0].split("?", 1)[0].split(":", 1)[0].rstrip(".").removeprefix("www.")
    return text if "." in text and " " not in text else None


def _country(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) == 2 and value.isalpha():
        return value.upper()
    return _COUNTRY_ALIASES.get(value.lower(), value)


def _country_field(value: Any, problems: dict[str, str]) -> str | None:
    """``_country(_text(value))``, an ISO code such as "us" without the general path."""
    if type(value) is str and len(value) == 2 and value.isalpha():  # nothing to strip or clean
        return value.upper()
    return _country(_text(value, "country", problems))


def _number(value: Any) -> float | None:
    """Numbers as CRMs send them: 1200, "1,200", "$1.2M", "120k", "1200.0", and as Europe
    writes them: "€100.000", "100.000,00 EUR", "1,5M". None when the separators could mean
    either (``"1200,500"``): a problem a person can fix beats a number off by a thousand."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an int beyond float range (JSON allows any number of digits)
            return None
        return number if math.isfinite(number) else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    # a currency code before or after ("USD 100000", "100.000 EUR"), then a symbol
    if text[:3] in _CURRENCY_CODES:
        text = text[3:]
    elif text[-3:] in _CURRENCY_CODES:
        text = text[:-3]
    text = text.strip().strip(_CURRENCY_SYMBOLS).strip().lower().replace("_", "")
    scale = 1.0
    if text[-1:] in ("k", "m", "b"):
        scale = {"k": 1e3, "m": 1e6, "b": 1e9}[text[-1]]
        text = text[:-1].strip()
    decimal = _decimal(text, scaled=scale != 1.0)
    if decimal is None:
        return None
    try:
        number = float(decimal) * scale
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _decimal(text: str, *, scaled: bool) -> str | None:
    """The number ``text`` writes, as text ``float`` reads; None when its separators are
    ambiguous or malformed. Groups of three after a dot are thousands ("100.000" is a hundred
    thousand, not a hundred) unless a magnitude follows ("1.200M" is 1.2 million); commas are
    thousands in groups of three (or Indian lakhs: "12,34,567") and decimals otherwise ("1,5")."""
    if "," not in text:
        if not scaled and "." in text and _DOT_THOUSANDS.fullmatch(text):
            return text.replace(".", "")
        return text
    if "." in text:
        if _DOT_THOUSANDS.fullmatch(text):  # 1.234,56
            return text.replace(".", "").replace(",", ".")
        if _COMMA_THOUSANDS.fullmatch(text):  # 1,234.56
            return text.replace(",", "")
        return None
    if _COMMA_THOUSANDS.fullmatch(text):  # 1,200 or 12,34,567
        return text.replace(",", "")
    if _DECIMAL_COMMA.fullmatch(text):  # 100,00 or 1,5
        return text.replace(",", ".")
    return None


# "100.000", "1.234.567,89": a first group without a leading zero ("0.500" is a half)
_DOT_THOUSANDS = re.compile(r"[1-9]\d{0,2}(?:\.\d{3})+(?:,\d+)?")
_COMMA_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{2,3})*,\d{3}(?:\.\d+)?")
_DECIMAL_COMMA = re.compile(r"\d+,\d{1,2}")
_CURRENCY_SYMBOLS = "$€£¥₹"
# ISO 4217: only real codes are stripped, so "5 MIO" (million) is a problem, not 5
_CURRENCY_CODES = frozenset({
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN", "BHD", "BIF",
    "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF", "CLP", "CNY", "COP", "CRC",
    "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS",
    "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD",
    "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL",
    "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD",
    "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD",
    "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SLL", "SOS", "SRD", "SSP", "STN", "SVC",
    "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS",
    "VES", "VND", "VUV", "WST", "XAF", "XCD", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWL",
})  # fmt: skip


def _count(value: Any, name: str, problems: dict[str, str]) -> int | None:
    if type(value) is int and 0 <= value <= 10_000_000:
        return value
    if value is None or value == "":
        return None
    text = value
    if isinstance(value, str) and value.rstrip().endswith("+"):
        # "1000+", "10,000+": the top of a size picklist (HubSpot's ends at "1000+") is at least that
        text = value.rstrip()[:-1]
    if isinstance(text, str) and "-" in text.strip()[1:]:
        # ranges like "201-500" (HubSpot's company size picklist): take the middle
        low, _, high = text.partition("-")
        a, b = _number(low), _number(high)
        if a is not None and b is not None and 0 <= a <= b:
            return int((a + b) // 2)
    number = _number(text)
    if number is None or number < 0 or number > 10_000_000:
        problems[name] = f"{_short(value)!r} is not a number of employees"
        return None
    return int(number)


def _amount(value: Any, name: str, problems: dict[str, str]) -> float | None:
    # plain amounts first: _number's result for them, without its checks (2**53: exact as float)
    kind = type(value)
    if (kind is float and 0.0 <= value < _INFINITY) or (kind is int and 0 <= value <= 2**53):
        return float(value)
    if value is None or value == "":
        return None
    number = _number(value)
    if number is None or number < 0:
        problems[name] = f"{_short(value)!r} is not an amount"
        return None
    return number


def _custom_fields(fields: Any, problems: dict[str, str]) -> dict[Any, Any]:
    """A copy, with NaN and ±infinity (nested too) made None: Python's json reads them, and a
    rule on the field would put them in the decision's evidence, which is then no JSON."""
    if not isinstance(fields, Mapping):
        problems["fields"] = "not an object"
        return {}
    out = dict(fields)
    unusable = []
    unstorable = False
    for key, value in out.items():
        kind = type(value)
        if type(key) is str and not key.isascii() and _has_surrogate(key):
            unstorable = True
        if kind is str:
            if value.isascii() or not _has_surrogate(value):
                continue  # most custom fields: nothing to look into
            unstorable = True
        elif kind is int or kind is bool or value is None or (kind is float and math.isfinite(value)):
            continue
        else:
            if _non_finite_in(value):
                out[key] = value = _finite(value, 0)
                unusable.append(key)
            if _surrogates_in(value):
                unstorable = True
    if unusable:
        problems["fields"] = f"NaN or infinity (now null) in {_short(', '.join(map(str, unusable)))}"
    if unstorable:  # rare: rebuilt whole, every text (keys too, nested too) made storable
        out = _storable_tree(out, 0)
        problems.setdefault("fields", _REPLACED)
    return out


def _unstorable(item: Any) -> bool:
    return isinstance(item, str) and not item.isascii() and _has_surrogate(item) is not None


def _non_finite(item: Any) -> bool:
    return isinstance(item, float) and not math.isfinite(item)


def _surrogates_in(value: Any) -> bool:
    """Whether a list or object holds a lone surrogate in any text, keys too."""
    return any(map(_unstorable, _leaves(value, keys=True)))


def _non_finite_in(value: Any) -> bool:
    return any(map(_non_finite, _leaves(value, keys=False)))


def _leaves(value: Any, *, keys: bool) -> Iterator[Any]:
    """Every text, number and other non-container in a list or object (and its keys, with
    ``keys``), without recursion: json.loads nests as deep as the recursion limit allows."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            if keys:
                stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        else:
            yield item


def _storable_tree(value: Any, depth: int) -> Any:
    """A copy with every text (keys too) made storable (:func:`_storable`)."""
    return _rebuilt(value, str, _storable, depth, keys=True)


def _finite(value: Any, depth: int) -> Any:
    """A copy with NaN and ±infinity made None."""
    return _rebuilt(value, float, lambda v: v if math.isfinite(v) else None, depth, keys=False)


def _rebuilt(value: Any, kind: type, fix: Callable[[Any], Any], depth: int, *, keys: bool) -> Any:
    """``value`` rebuilt with ``fix`` applied to each ``kind`` in it (to keys too, with ``keys``).
    Only called on values holding something to fix, so whatever else lies deeper than
    :data:`_MAX_DEPTH` is unusable and becomes None."""
    if isinstance(value, kind):
        return fix(value)
    if depth >= _MAX_DEPTH:
        return None
    deeper = depth + 1
    if isinstance(value, Mapping):
        return {
            (_rebuilt(k, kind, fix, deeper, keys=keys) if keys else k): _rebuilt(v, kind, fix, deeper, keys=keys)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_rebuilt(v, kind, fix, deeper, keys=keys) for v in value]
    return value


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1")
    return value is True or value == 1


def _epoch_text(value: str) -> bool:
    """Digits only, and not a compact ``YYYYMMDD`` date: epoch milliseconds as HubSpot sends
    them. ``datetime.fromisoformat`` reads 11 and 13 digits as compact dates and times — the
    epoch-ms "1788050942014" (2026-08-30) as 1788-05-09 20:14 — about one 2025–2026 value in 200."""
    return len(value) != 8 and value.isascii() and value.isdigit()


def parse_time(value: Any) -> datetime | None:
    """ISO 8601 (``Z``, ``+0000`` or ``+00:00``; naive means UTC) or epoch milliseconds (HubSpot)."""
    if type(value) is str and not _epoch_text(value):
        try:
            parsed = datetime.fromisoformat(value)  # 3.11 reads Z, +0000 and dates: the common case
        except ValueError:
            text = value.strip()
            if not text.isdigit():
                return None
            value = text
        else:
            return _in_utc(parsed)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        millis = float(value)
        return datetime.fromtimestamp(millis / 1000, tz=UTC) if 1e11 < millis < 1e14 else None
    except (OverflowError, OSError, ValueError):
        return None


def _in_utc(parsed: datetime) -> datetime | None:
    """None when the instant has no UTC date: "0001-01-01T00:00:00+01:00" is in year 0 there,
    and astimezone raises OverflowError rather than return it."""
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return None


def _time(value: Any, name: str, problems: dict[str, str]) -> datetime | None:
    # parse_time's common case inline: an ISO text (``not _epoch_text(value)``, inline: ISO text
    # fails isdigit at its first "-", so that one call decides; the order changes no result)
    if type(value) is str and (not value.isdigit() or len(value) == 8 or not value.isascii()):
        try:
            iso = _fromisoformat(value)
        except ValueError:
            pass
        else:
            if iso.tzinfo is UTC:  # UTC already: astimezone(UTC) would return it as is
                return iso
            if (utc := _in_utc(iso)) is not None:
                return utc
    if value is None or value == "":
        return None
    parsed = parse_time(value)
    if parsed is None:
        problems[name] = f"{_short(value)!r} is not a time"
    return parsed


def _events(value: Any, problems: dict[str, str]) -> tuple[Event, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems["events"] = "not a list"
        return ()
    events: list[Event] = []
    bad = 0
    for item in value:
        kind = item.get("type") if type(item) is dict or isinstance(item, Mapping) else None
        if (type(kind) is str or isinstance(kind, str)) and (kind := kind.strip()):
            at = item.get("at")
            # parse_time inlined for the common case, an ISO text (events are most of a lead's
            # timestamps); anything else goes through parse_time itself. ``not _epoch_text(at)``
            # inline, as in _time: a call per event was a tenth of this loop
            if type(at) is str and (not at.isdigit() or len(at) == 8 or not at.isascii()):
                try:
                    at = _fromisoformat(at)
                except ValueError:
                    at = parse_time(at)
                else:
                    # in UTC already (a "Z" or "+00:00" text): astimezone(UTC) would return it as is
                    if at.tzinfo is not UTC:
                        at = _in_utc(at)
            else:
                at = parse_time(at)
            if at is not None:
                name = kind.lower().replace(" ", "_")[:64]
                # Event(type, at) without the NamedTuple's Python-level __new__
                name = name if name.isascii() else _replace_surrogates(name, "events", problems)
                events.append(_new_tuple(Event, (name, at)))
                continue
        bad += 1
    if bad:
        problems["events"] = f"{bad} of {len(value)} events unusable (need type and at)"
    if len(events) > 1:
        events.sort(key=_event_time)
    return tuple(events) if len(events) <= MAX_EVENTS else tuple(events[-MAX_EVENTS:])  # no copy to cap


def _replace_surrogates(text: str, name: str, problems: dict[str, str]) -> str:
    """``text`` (not ASCII) with its lone surrogates replaced, noted under ``name`` if any."""
    if _has_surrogate(text):
        problems[name] = _REPLACED
        return _storable(text)
    return text


_fromisoformat = datetime.fromisoformat
_INFINITY = math.inf


_new_tuple = tuple.__new__
_event_time = itemgetter(1)  # Event.at: events sort by time only, ties keep their input order


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "…"
