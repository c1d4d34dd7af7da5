"""Salesforce record ids: 15 case-sensitive characters, or 18 with a suffix that encodes the case.

Its own module because the policy schema checks owner ids with it and the write-back, which
imports the schema, compares them with it.
"""

from __future__ import annotations

__all__ = ["salesforce_id18"]

_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def salesforce_id18(id15: str) -> str:
    """The 18-character, case-insensitive form of a Salesforce id (15-character ids gain the
    checksum suffix Salesforce itself computes; 18-character ids are returned as they are)."""
    if len(id15) == 18:
        return id15
    if len(id15) != 15:
        raise ValueError(f"not a Salesforce id: {id15!r}")
    suffix = ""
    for chunk in range(3):
        bits = sum(1 << i for i, ch in enumerate(id15[chunk * 5 : chunk * 5 + 5]) if "A" <= ch <= "Z")
        suffix += _CHECKSUM[bits]
    return id15 + suffix
