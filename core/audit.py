"""The audit chain's arithmetic: canonical event bodies and their hashes.

Each event's hash covers the previous event's hash and the event's canonical body, so altering,
removing or reordering any event breaks every hash after it. This module only computes; the
store appends and reads (``core.store.audit_log``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["GENESIS", "ChainBreak", "ChainedEvent", "canonical_body", "chain_hash", "verify_chain"]

GENESIS = "0" * 64


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    raise TypeError(f"not JSON-serialisable in an audit event: {type(value).__name__}")


def canonical_body(seq: int, at: datetime, actor: str, kind: str, subject: str | None, data: dict[str, Any]) -> str:
    """The exact text that is hashed and stored: sorted keys, no spaces, UTF-8."""
    return json.dumps(
        {"seq": seq, "at": at.isoformat(), "actor": actor, "kind": kind, "subject": subject, "data": data},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=_default,
    )


def chain_hash(prev_hash: str, body: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainedEvent:
    """An event as stored: its columns, its body and the two hashes."""

    seq: int
    at: datetime
    actor: str
    kind: str
    subject: str | None
    body: str
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class ChainBreak:
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"audit event {self.seq}: {self.reason}"


def verify_chain(events: Iterable[ChainedEvent], head: tuple[int, str] | None = None) -> tuple[int, ChainBreak | None]:
    """Walk events in stored order; return (events checked, first break or None).

    ``head`` is the stored (last seq, last hash); it catches events removed from the end.
    """
    expected_seq, prev = 1, GENESIS
    checked = 0
    for event in events:
        if event.seq != expected_seq:
            what = "removed" if event.seq > expected_seq else "out of order or duplicated"
            return checked, ChainBreak(expected_seq, f"missing at its place in the chain ({what})")
        if event.prev_hash != prev:
            return checked, ChainBreak(event.seq, "does not follow the previous event (reordered or altered)")
        if chain_hash(prev, event.body) != event.hash:
            return checked, ChainBreak(event.seq, "content does not match its hash (altered)")
        problem = _columns_disagree(event)
        if problem:
            return checked, ChainBreak(event.seq, problem)
        prev, expected_seq, checked = event.hash, expected_seq + 1, checked + 1
    if head is not None and head != (expected_seq - 1, prev):
        return checked, ChainBreak(
            head[0],
            f"the chain ends at event {expected_seq - 1}, the head says {head[0]} (events removed from the end)",
        )
    return checked, None


def _columns_disagree(event: ChainedEvent) -> str | None:
    try:
        body = json.loads(event.body)
    except ValueError:
        return "body is not valid JSON (altered)"
    columns = {
        "seq": event.seq,
        "actor": event.actor,
        "kind": event.kind,
        "subject": event.subject,
    }
    for key, value in columns.items():
        if body.get(key) != value:
            return f"column '{key}' differs from the hashed body (altered)"
    if not _same_instant(body.get("at"), event.at):
        return "column 'at' differs from the hashed body (altered)"
    return None


def _same_instant(hashed: Any, column: datetime) -> bool:
    """The column reads back in UTC; a body appended before times were hashed in UTC may
    carry the offset it was given (``--now …-05:00``): the same instant is the same time."""
    if not isinstance(hashed, str):
        return False
    if hashed == column.isoformat():
        return True
    try:
        return datetime.fromisoformat(hashed) == column
    except ValueError:
        return False
