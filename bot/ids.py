"""Every identifier Slack sends back to loopgate: action ids, view callback ids, block ids, the
slash command and the events. Builders and listeners both import these, and a test checks
that they agree with each other and with ``manifest.yaml``.
"""

from __future__ import annotations

__all__ = [
    "ACTIONS",
    "APPROVE",
    "AUDIT_CONFIRM",
    "AUDIT_FLAG",
    "AUDIT_FLAG_VIEW",
    "BLOCK_ACTION",
    "BLOCK_BAND",
    "BLOCK_NOTE",
    "BLOCK_OWNER",
    "BLOCK_REASON",
    "COMMAND",
    "EVENTS",
    "FIRST_TOUCH",
    "METADATA_EVENT",
    "NEXT_BEST_ACTION",
    "OVERRIDE",
    "OVERRIDE_VIEW",
    "REASSIGN",
    "REASSIGN_VIEW",
    "VIEWS",
]

# buttons on escalations (channel, DM, App Home); the value is the decision's primary key
APPROVE = "loopgate.approve"
REASSIGN = "loopgate.reassign"
OVERRIDE = "loopgate.override"
NEXT_BEST_ACTION = "loopgate.next_best_action"
# scheduler messages (issue 6): "I contacted them" on nudges and focus lists (value: the SLA
# clock's primary key); Confirm / Flag… on the weekly digest's audit sample (value: decision pk)
FIRST_TOUCH = "loopgate.first_touch"
AUDIT_CONFIRM = "loopgate.audit_confirm"
AUDIT_FLAG = "loopgate.audit_flag"
ACTIONS = (APPROVE, REASSIGN, OVERRIDE, NEXT_BEST_ACTION, FIRST_TOUCH, AUDIT_CONFIRM, AUDIT_FLAG)

# modals
REASSIGN_VIEW = "loopgate.reassign_modal"
OVERRIDE_VIEW = "loopgate.override_modal"
AUDIT_FLAG_VIEW = "loopgate.audit_flag_modal"
VIEWS = (REASSIGN_VIEW, OVERRIDE_VIEW, AUDIT_FLAG_VIEW)

# input blocks of the modals (errors are returned against these); the element inside each
# input block has the action id "value"
BLOCK_OWNER = "owner"
BLOCK_REASON = "reason"
BLOCK_NOTE = "note"
BLOCK_ACTION = "action"
BLOCK_BAND = "band"
INPUT_ELEMENT = "value"

COMMAND = "/loopgate"
EVENTS = ("app_home_opened",)

# message metadata on everything loopgate posts: lets a retried effect find its own message
METADATA_EVENT = "loopgate_post"
