"""Errors of the Slack adapter, and the one place slack_sdk's exceptions are translated.

::

    BotError                     root; every error names the Web API method or payload
    ├── PayloadInvalid           a payload loopgate built fails Block Kit validation
    └── SlackCallFailed          the Web API refused or could not be reached
        ├── SlackRateLimited     429: try again after ``retry_after`` seconds
        ├── SlackUnavailable     network error, 5xx or Slack saying it is unavailable: waits
        └── SlackRefused         ``ok: false`` with an ``error`` code; ``permanent`` when a retry
                                 cannot help (invalid blocks, user gone…); ``not_a_member`` when
                                 the bot is not in the channel (fixed by a person inviting it);
                                 ``auth`` when Slack refuses the bot token (fixed by an admin)

Tokens never appear in these messages: only the method, status and Slack's error code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse

from core.store.outbox import Dead, Deferred, OutboxItem, Outcome, Retry, RetryPolicy

__all__ = [
    "BotError",
    "PayloadInvalid",
    "SlackCallFailed",
    "SlackRateLimited",
    "SlackRefused",
    "SlackUnavailable",
    "effect_outcomes",
    "slack_call",
]

# error codes for which retrying the same call cannot succeed
PERMANENT = frozenset(
    {
        "is_archived",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "user_not_found",
        "cannot_dm_bot",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "invalid_metadata_format",
        "invalid_metadata_schema",
        "restricted_action",
        "missing_scope",
        "user_disabled",
        "invalid_arguments",
    }
)

# the bot is not in the channel (never invited, removed, or a private channel it cannot see:
# Slack says channel_not_found then). A person fixes that with /invite, so these are retried
# slowly, not given up on: a review channel nobody invited the bot to is a setup slip, and the
# escalations waiting for it must still arrive once it is fixed
NOT_A_MEMBER = frozenset({"channel_not_found", "not_in_channel"})
# the first wait after such a refusal, doubled each attempt up to the cap: with the outbox's
# ten attempts that is about a day and a half for someone to invite the bot
MEMBER_WAIT = timedelta(minutes=15)
MEMBER_WAIT_CAP = timedelta(hours=6)

# Slack refuses the bot token: revoked, rotated without updating SLACK_BOT_TOKEN, the app
# uninstalled, the workspace inactive. Every call fails the same way until an admin fixes the
# credentials, so the effects wait for that (as for an outage) instead of using up attempts
AUTH_FAILED = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"})
# ``ok: false`` codes by which Slack says it is having trouble itself (not about the payload)
UNAVAILABLE = frozenset({"service_unavailable", "internal_error"})
AUTH_WAIT = timedelta(minutes=15)

log = logging.getLogger(__name__)


class BotError(Exception):
    """Root of the Slack adapter's errors."""


class PayloadInvalid(BotError):
    def __init__(self, where: str, path: str, message: str) -> None:
        self.where, self.path, self.message = where, path, message
        super().__init__(f"{where} {path}: {message}")


class SlackCallFailed(BotError):
    def __init__(self, method: str, error: str, status: int | None = None) -> None:
        self.method, self.error, self.status = method, error, status
        super().__init__(f"{method}: {error}" + (f" (HTTP {status})" if status else ""))


class SlackRateLimited(SlackCallFailed):
    def __init__(self, method: str, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(method, f"ratelimited, retry after {retry_after:g}s", 429)


class SlackUnavailable(SlackCallFailed):
    """The call may or may not have reached Slack (connection reset, timeout, 5xx)."""


class SlackRefused(SlackCallFailed):
    def __init__(
        self, method: str, error: str, status: int | None, details: str = "", *, channel: str | None = None
    ) -> None:
        self.permanent = error in PERMANENT
        self.not_a_member = error in NOT_A_MEMBER
        self.auth = error in AUTH_FAILED
        self.details, self.channel = details, channel
        super().__init__(method, error + (f" — {details}" if details else ""), status)


def _retry_after(response: SlackResponse) -> float:
    headers = {k.lower(): v for k, v in (response.headers or {}).items()}
    raw = headers.get("retry-after")
    value = raw[0] if isinstance(raw, list) else raw
    try:
        return max(float(value), 1.0) if value is not None else 30.0
    except ValueError:
        return 30.0


def slack_call(method: str, call: Callable[..., SlackResponse], **kwargs: Any) -> SlackResponse:
    """Call a WebClient method, translating failures into :class:`SlackCallFailed`."""
    try:
        return call(**kwargs)
    except SlackApiError as exc:
        response = exc.response
        status = response.status_code
        if status == 429:
            raise SlackRateLimited(method, _retry_after(response)) from exc
        if status >= 500:
            raise SlackUnavailable(method, f"server error {status}", status) from exc
        data = response.data if isinstance(response.data, dict) else {}
        error = str(data.get("error") or f"http_{status}")
        if error in UNAVAILABLE:
            raise SlackUnavailable(method, error, status) from exc
        details = "; ".join(
            str(m) for m in (data.get("errors") or data.get("response_metadata", {}).get("messages") or [])
        )
        channel = kwargs.get("channel")
        raise SlackRefused(method, error, status, details[:500], channel=str(channel) if channel else None) from exc
    except (SlackClientError, OSError) as exc:
        raise SlackUnavailable(method, f"{type(exc).__name__}: {exc}") from exc


def _member_wait(attempts: int) -> timedelta:
    """How long to wait before posting again to a channel the bot is not in."""
    return min(MEMBER_WAIT * (1 << min(max(attempts - 1, 0), 8)), MEMBER_WAIT_CAP)


def _warn_not_a_member(exc: SlackRefused, item: OutboxItem) -> None:
    """Say what a person must do: the outbox's own log only says the effect is retried."""
    log.warning(
        "the loopgate bot is not in Slack channel %s (%s from %s): invite it there with /invite; "
        "%s %s will be retried in %s",
        exc.channel or "?",
        exc.error,
        exc.method,
        item.kind,
        item.dedupe_key,
        _member_wait(item.attempts),
    )


def _log_away(exc: SlackCallFailed, waiting: int, wait: timedelta) -> None:
    """Say what is wrong where an admin looks: the rows only wait, and a deferred row records
    nothing new."""
    if isinstance(exc, SlackRefused):
        log.error(
            "Slack refuses loopgate's bot token (%s from %s): set a valid SLACK_BOT_TOKEN or reinstall "
            "the Slack app; %d Slack effect(s) of this batch wait, next try in %s",
            exc.error,
            exc.method,
            waiting,
            wait,
        )
    else:
        log.warning("Slack is unavailable (%s); %d Slack effect(s) of this batch wait", exc, waiting)


def effect_outcomes(items: Sequence[OutboxItem], perform: Callable[[OutboxItem], Outcome]) -> dict[int, Outcome]:
    """Each outbox row's outcome from ``perform``, with Slack's errors mapped the same way for
    every Slack handler: a rate limit defers the rest of the batch as told (rows not tried keep
    their attempts), a permanent refusal or an invalid payload is dead, the bot missing from the
    channel is retried slowly (with a warning saying to invite it), anything else is retried.

    Slack unavailable (network, 5xx) or refusing the bot token waits for Slack or an admin
    instead of dying: the effect was fine, and an escalation that is never posted is a lead
    nobody decides. An outage is a ``transient`` retry: counted, so every later attempt looks
    for a post that may have got through (a 5xx or a lost response can hide one,
    :mod:`bot.notifier`), with the outbox's backoff, and given up only when the row is also
    ``RetryPolicy.max_age`` old. A refused token is ``Deferred``, as a CRM's is: nothing was
    posted, and it waits, uncounted, for an admin. The untried rest of the batch waits alike
    (it would fail the same way)."""
    outcomes: dict[int, Outcome] = {}
    for index, item in enumerate(items):
        try:
            outcomes[item.pk] = perform(item)
        except SlackRateLimited as exc:
            # the rest of the batch would hit the same limit: wait as told, all of them. Only
            # this row was tried; the rest keep their attempts, or the tail of a burst to one
            # channel (about one post a second) would run out of attempts before being sent
            wait = timedelta(seconds=exc.retry_after)
            outcomes[item.pk] = Retry(str(exc), after=wait)
            for rest in items[index + 1 :]:
                outcomes[rest.pk] = Deferred(wait)
            break
        except (SlackUnavailable, SlackRefused) as exc:
            if isinstance(exc, SlackUnavailable) or exc.auth:
                # the untried rest waits about as long as the failed row's own backoff
                wait = AUTH_WAIT if isinstance(exc, SlackRefused) else RetryPolicy().ceiling(item.attempts)
                outcomes[item.pk] = (
                    Deferred(wait, str(exc)) if isinstance(exc, SlackRefused) else Retry(str(exc), transient=True)
                )
                for rest in items[index + 1 :]:
                    outcomes[rest.pk] = Deferred(wait)
                _log_away(exc, len(items) - index, wait)
                break
            if exc.not_a_member:
                outcomes[item.pk] = Retry(str(exc), after=_member_wait(item.attempts))
                _warn_not_a_member(exc, item)
            else:
                outcomes[item.pk] = Dead(str(exc)) if exc.permanent else Retry(str(exc))
        except SlackCallFailed as exc:
            outcomes[item.pk] = Retry(str(exc))
        except PayloadInvalid as exc:
            outcomes[item.pk] = Dead(str(exc))
    return outcomes
