"""What every scheduled job is given: the store, how to read the active policy and build an
engine for it, the clock, and the CRM jobs when connectors are configured.

The policy and the engine are *functions*, called at the start of each job run, so a policy
publish, promote or rollback (or a calibration refit) takes effect on the next run without a
restart (``loopgate.wiring.active_policy`` / ``build_engine`` in production).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.engine import DecisionEngine
from core.policy import LoadedPolicy
from core.store.db import Database

__all__ = ["Clock", "SchedulerContext", "utcnow"]

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class SchedulerContext:
    """``crm_sync`` maps a CRM name (``salesforce``, ``hubspot``) to a function that syncs it
    and decides what changed; one sync job per entry runs at the policy's interval."""

    db: Database
    policy: Callable[[], LoadedPolicy]
    engine: Callable[[LoadedPolicy], DecisionEngine]
    clock: Clock = utcnow
    actor: str = "scheduler"
    crm_sync: Mapping[str, Callable[[], Any]] = field(default_factory=dict)
