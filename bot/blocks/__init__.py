"""Block Kit builders. Pure functions of values: importing them posts nothing and opens nothing.

For other parts of loopgate that enqueue ``slack.message`` effects (scheduler nudges, digests,
trust announcements), :mod:`bot.blocks.common` has the safe primitives — ``section``,
``context``, ``header``, ``button``, ``divider``, ``plain``, ``mrkdwn``, ``slack_date`` — and
``validate_message`` to check a payload before it is queued; :mod:`bot.text` escapes CRM text.
"""

from bot.blocks.common import (
    Message,
    actions,
    button,
    context,
    divider,
    header,
    mrkdwn,
    plain,
    section,
    slack_date,
    validate_message,
    validate_view,
)

__all__ = [
    "Message",
    "actions",
    "button",
    "context",
    "divider",
    "header",
    "mrkdwn",
    "plain",
    "section",
    "slack_date",
    "validate_message",
    "validate_view",
]
