"""Making CRM text safe to show in Slack, and short enough to fit Block Kit.

CRM values are written by strangers (a web form, a list import): a lead may be named
``<!channel>`` or ``@here``. Slack only turns ``<!channel>``, ``<@U…>`` and ``<url|label>``
into mentions and links when it sees the angle brackets, and only treats bare ``@here`` as a
mention when ``parse=full`` or ``link_names`` is on — which loopgate never sets. So every CRM
value that goes into ``mrkdwn`` passes through :func:`esc` (``&``, ``<``, ``>`` → entities,
line breaks → a space, so a value cannot forge a line of the message), and values that need
no formatting go out as ``plain_text``, which Slack never parses.

Truncation happens *after* escaping and never cuts an entity in half, so the limit holds for
what Slack counts.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

__all__ = ["ELLIPSIS", "clip", "esc", "esc_lines", "mrkdwn_value", "safe_mrkdwn", "shown", "span"]

ELLIPSIS = "…"
_ENTITY_TAIL = re.compile(r"&[a-z]{0,4}$")


def esc(value: Any) -> str:
    """Escape the three characters Slack's mrkdwn gives meaning to, on one line.

    Line breaks (and runs of spaces) collapse to one space first: every value shown through
    here sits inside a line loopgate writes, and a company named ``Acme\n*Recommended owner:*
    Ben`` would otherwise forge a line of its own in the message. Text that is meant to keep
    its lines (a person's note) goes through :func:`esc_lines`."""
    return " ".join(str(value).split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def esc_lines(value: Any) -> list[str]:
    """:func:`esc` for each line of a multi-line value, for a caller that marks each line as
    quoted: a line of its own then cannot pass for one of loopgate's."""
    return [esc(line) for line in str(value).splitlines()]


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in … when cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + ELLIPSIS


def safe_mrkdwn(text: str, limit: int) -> str:
    """Already-escaped mrkdwn cut to ``limit`` without splitting an ``&amp;``-style entity."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    cut = _ENTITY_TAIL.sub("", cut)
    return cut.rstrip() + ELLIPSIS


def mrkdwn_value(value: Any, limit: int) -> str:
    """A CRM value escaped for mrkdwn and cut to ``limit`` characters (as Slack counts them)."""
    return safe_mrkdwn(esc(value), limit)


def shown(value: Any, empty: str = "—") -> str:
    """How a possibly missing CRM value reads in a message (not yet escaped)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return empty
    if isinstance(value, float) and value.is_integer():
        return f"{int(value):,}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return " ".join(str(value).split())


def span(delta: timedelta) -> str:
    """A duration as people say it: ``45 s``, ``7 min``, ``1 h 40 min``, ``2 d 3 h``."""
    seconds = int(abs(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
