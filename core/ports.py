"""The CRM port: what loopgate needs from a CRM, whatever the CRM (DESIGN §2, §7).

Both connectors (``connectors.salesforce``, ``connectors.hubspot``) implement
:class:`CrmPort`; the sync loop, the write-back handler and the tests only see this. Records
cross the port already translated into loopgate's vocabulary — a lead is the lead input of
DESIGN §4 plus the CRM facts beside it (deleted, merged, converted…) — so nothing downstream
knows a SOQL field name or a HubSpot property. What crosses the other way, a write, is keyed by
CRM field names, because the policy's ``writeback`` map names them.

Incremental reads are resumable: every :class:`Page` carries the :class:`Cursor` to store with
its data (in the same transaction), and ``read(stream, cursor)`` continues after it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

__all__ = [
    "AccountRecord",
    "CrmPort",
    "Cursor",
    "DealRecord",
    "EventRecord",
    "LeadRecord",
    "OwnerRecord",
    "Page",
    "RecordUpdate",
    "Tombstone",
    "WriteResult",
]

RecordKind = Literal["lead", "account", "deal", "event"]


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a stream stopped: everything up to ``(ts, id)`` is stored. ``state`` holds what a
    connector needs beyond that (e.g. HubSpot ids already seen at ``ts``)."""

    ts: datetime | None = None
    id: str | None = None
    state: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LeadRecord:
    """A lead or contact as read from the CRM.

    ``raw`` is the lead input of DESIGN §4 (what ``core.leads.normalize_lead`` takes);
    ``loopgate`` holds the record's current values of the loopgate write-back fields (CRM field
    name → value), so write-back can skip values that are already there.
    """

    raw: Mapping[str, Any]
    object_type: str
    status: str | None = None
    converted: bool = False
    converted_at: datetime | None = None
    first_touch_at: datetime | None = None
    account_id: str | None = None
    deal_ids: tuple[str, ...] = ()
    loopgate: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """An account or company; ``raw`` is what ``core.leads.normalize_account`` takes."""

    raw: Mapping[str, Any]
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OwnerRecord:
    """A CRM user / HubSpot owner (``kind='user'``) or a Salesforce queue (``kind='queue'``)."""

    id: str
    kind: Literal["user", "queue"]
    name: str | None = None
    email: str | None = None
    active: bool = True


@dataclass(frozen=True, slots=True)
class DealRecord:
    """An opportunity or deal, with the leads/contacts it belongs to (for outcomes)."""

    id: str
    closed: bool
    won: bool
    amount: float | None = None
    closed_at: datetime | None = None
    stage: str | None = None
    updated_at: datetime | None = None
    lead_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An intent event that is a CRM record of its own, not a field of the lead: a Salesforce
    campaign response (CampaignMember). It belongs to every lead or contact in ``lead_ids``
    (a converted lead's member names both). ``type``/``at`` are ``None`` when the record is
    not, or no longer, an event (a member who has not responded): whatever was stored under
    ``id`` goes. The store keeps these apart from the lead and merges them into the lead the
    engine sees, so adding one re-decides its leads without the lead record changing."""

    id: str
    lead_ids: tuple[str, ...]
    type: str | None = None
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A record that no longer exists in the CRM: deleted, or merged into ``merged_into``."""

    kind: RecordKind
    id: str
    merged_into: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a stream, and the cursor that is true once it is stored."""

    stream: str
    cursor: Cursor
    leads: Sequence[LeadRecord] = ()
    accounts: Sequence[AccountRecord] = ()
    owners: Sequence[OwnerRecord] = ()
    deals: Sequence[DealRecord] = ()
    tombstones: Sequence[Tombstone] = ()
    events: Sequence[EventRecord] = ()

    @property
    def size(self) -> int:
        return (
            len(self.leads)
            + len(self.accounts)
            + len(self.owners)
            + len(self.deals)
            + len(self.tombstones)
            + len(self.events)
        )


@dataclass(frozen=True, slots=True)
class RecordUpdate:
    """Set these CRM fields (API names, owner field included) on one record."""

    object_type: str
    id: str
    values: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class WriteResult:
    """How one record's update went. ``gone`` means the record was deleted or merged away;
    ``converted``, that it is a lead converted since it was read (read-only now); ``retryable``
    failures may succeed later (row lock, rate limit), others never will. ``fields`` names the
    fields a refusal is about, as the CRM said (empty when it named none): a refusal of the
    owner field alone lets write-back write the record's other fields without it."""

    id: str
    ok: bool
    code: str | None = None
    message: str | None = None
    retryable: bool = False
    gone: bool = False
    converted: bool = False
    fields: tuple[str, ...] = ()


class CrmPort(Protocol):
    """What loopgate needs from a CRM. Implementations translate their SDK's errors into
    ``connectors.errors.ConnectorError`` and retry transient failures themselves."""

    system: str  # "salesforce" | "hubspot": the ``source`` of everything it returns
    owner_field: str  # the API name of the owner field on lead objects
    write_batch: int  # most records one update call takes
    read_batch: int  # most records one current-values call takes

    def streams(self, *, full: bool = False) -> Sequence[str]:
        """The streams to read, in dependency order (owners and accounts before leads)."""
        ...

    def read(self, stream: str, cursor: Cursor | None) -> Iterator[Page]:
        """Pages of records changed since ``cursor`` (all of them when ``None``), oldest first."""
        ...

    def current(self, object_type: str, ids: Sequence[str], fields: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """Current values of ``fields`` per record id; ``None`` for records that are gone."""
        ...

    def update(self, updates: Sequence[RecordUpdate]) -> list[WriteResult]:
        """Apply up to ``write_batch`` updates, each independently; one result per update."""
        ...
