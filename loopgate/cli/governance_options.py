"""Options shared by the learning and governance commands: who acts, as of when, since when."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from core.policy.durations import parse_duration

__all__ = ["ByOption", "NowOption", "actor", "as_of", "since"]

ByOption = Annotated[
    str | None, typer.Option("--by", help="Who is acting, for the audit log (default: cli:<your login>).")
]
NowOption = Annotated[
    str | None, typer.Option("--now", help="Act as of this ISO time (default: now); for replays and tests.")
]


def actor(by: str | None) -> str:
    """The audit actor: as given, else ``cli:<login name>``."""
    if by:
        return by
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in a bare container
        return "cli:unknown"


def as_of(value: str | None) -> datetime:
    """``--now`` as an aware time in UTC (the store's time zone; a time without an offset is UTC)."""
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"'{value}' is not an ISO 8601 time", param_hint="--now") from None
    try:
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first representable UTC time
        raise typer.BadParameter(f"'{value}' is out of range in UTC", param_hint="--now") from None


def since(value: str, now: datetime) -> tuple[datetime, timedelta]:
    """``30d`` → (now − 30 days, 30 days)."""
    try:
        span = parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    try:
        return now - span, span
    except OverflowError:  # a valid duration that reaches back before year 1
        raise typer.BadParameter(f"'{value}' before {now:%Y-%m-%d} is out of range", param_hint="--since") from None
