"""Composition of the scheduler from settings: the job context (database, active policy, engine,
clock, CRM sync jobs) and the service that elects one scheduler among replicas.

Used by ``loopgate serve`` (the scheduler runs beside the bot) and ``loopgate scheduler run``
(the scheduler alone). The policy and the engine are read per job run (``active_policy``,
``build_engine``), so publishes and calibration refits take effect without a restart.
"""

from __future__ import annotations

from datetime import timedelta

from core.store.db import Database
from loopgate.settings import Settings
from loopgate.wiring import active_policy, build_engine
from scheduler.context import SchedulerContext
from scheduler.service import DEFAULT_TTL, SchedulerService

__all__ = ["scheduler_context", "scheduler_service"]


def scheduler_context(settings: Settings, db: Database) -> SchedulerContext:
    """What every job is given. CRM sync jobs: none until the connectors are wired in."""
    return SchedulerContext(
        db,
        policy=lambda: active_policy(db, settings),
        engine=lambda loaded: build_engine(db, loaded),
    )


def scheduler_service(settings: Settings, db: Database, *, lease_ttl: timedelta = DEFAULT_TTL) -> SchedulerService:
    return SchedulerService(scheduler_context(settings, db), lease_ttl=lease_ttl)
