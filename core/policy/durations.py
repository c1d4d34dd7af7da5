"""Durations as people write them in a policy: ``90s``, ``15m``, ``4h``, ``2d``, ``1w``."""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["format_duration", "parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MAX_DAYS = timedelta.max.days
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str) -> timedelta:
    """Parse ``<number><unit>`` (units s, m, h, d, w) into a positive timedelta.

    Raises ``ValueError`` with a message fit for a policy error line.
    """
    match = _PATTERN.match(str(text))
    if not match:
        raise ValueError(f"invalid duration {text!r}: use a number and a unit s, m, h, d or w (e.g. 15m)")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: must be greater than zero")
    try:
        delta = timedelta(seconds=seconds)
    except OverflowError:  # pydantic reports only ValueError as a problem: anything else is a crash
        raise ValueError(f"invalid duration {text!r}: too long (at most {_MAX_DAYS} days)") from None
    if not delta:  # timedelta keeps microseconds: "0.0000001s" is no time at all, a zero-length SLA
        raise ValueError(f"invalid duration {text!r}: must be at least 1 microsecond")
    return delta


def format_duration(delta: timedelta) -> str:
    """The shortest exact rendering (``900s`` → ``15m``), for labels and round trips."""
    seconds = int(delta.total_seconds())
    for unit, size in sorted(_UNITS.items(), key=lambda kv: -kv[1]):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
