"""Bounded retries for CRM calls: backoff with jitter, the server's wait when it names one,
one re-authentication when credentials allow.

Neither SDK retries the way we need (simple-salesforce never retries 5xx; hubspot-api-client
only through urllib3, which cannot read HubSpot's ``policyName``), so every connector call goes
through :func:`call_with_retry` with the SDK error already translated into a
:class:`~connectors.errors.ConnectorError`. Sleeping and randomness are injected so tests run
in milliseconds and deterministically.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from connectors.errors import AuthExpired, ConnectorError, RateLimited

__all__ = ["RetryPolicy", "call_with_retry"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` tries in all; waits grow from ``base`` to ``cap`` seconds with full jitter.
    A server asking for more than ``max_wait`` seconds is not waited for inside one call: the
    error goes up (the outbox retries the row later; a sync stops and resumes next run)."""

    attempts: int = 5
    base: float = 0.5
    cap: float = 20.0
    max_wait: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def backoff(self, attempt: int) -> float:
        ceiling = min(self.cap, self.base * 2 ** (attempt - 1))
        return float(ceiling * (0.5 + self.rng.random() / 2))


def call_with_retry(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    reauthenticate: Callable[[], bool] | None = None,
) -> T:
    """Run ``fn`` until it succeeds, a non-retryable error occurs, or attempts run out.

    ``reauthenticate`` is called once on :class:`AuthExpired`; it returns whether new
    credentials were obtained (then ``fn`` runs again) or not (the error goes up).
    """
    renewed = False
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except AuthExpired:
            if renewed or reauthenticate is None or not reauthenticate():
                raise
            renewed = True
            log.info("re-authenticated after an expired session; retrying")
            attempt -= 1  # a renewed session is not a failed attempt
        except RateLimited as exc:
            if exc.daily or attempt >= policy.attempts:
                raise
            wait = exc.retry_after if exc.retry_after is not None else policy.backoff(attempt)
            if wait > policy.max_wait:
                raise
            log.warning("%s; waiting %.1fs (attempt %d of %d)", exc, wait, attempt, policy.attempts)
            policy.sleep(wait)
        except ConnectorError as exc:
            if not exc.retryable or attempt >= policy.attempts:
                raise
            wait = policy.backoff(attempt)
            log.warning("%s; retrying in %.1fs (attempt %d of %d)", exc, wait, attempt, policy.attempts)
            policy.sleep(wait)
