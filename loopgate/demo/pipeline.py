"""``loopgate demo`` end to end, in one process: the sandbox services in threads, the real bot
front on a loopback port, and the real sync → decide → outbox → review → write-back → SLA →
digest code paths over real HTTP, on an accelerated clock.

The timeline (clock times after the leads arrive at :data:`DEMO_START`):

=========  ==============================================================================
+0         sync both CRMs (decide every lead), post escalations, write back auto leads
+20m       reviewers decide ~90 % of escalations in Slack; their decisions are written back
+8m…+3h11  SLA scans: first-touch and review nudges (reps answer most), breaches notify
           the manager, unanswered escalations are re-routed (their new owners answer)
next Mon   the weekly digest for the demo week (summary, chart, audit sample)
=========  ==============================================================================

Outbox effects are drained explicitly after each stage (not by a background worker), so each
stage's effects are done before the next one reads the state.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from core.sla import PolicySlaClock
from core.store import outbox
from core.store.db import Database
from core.store.outbox import EffectHandler
from loopgate import crm
from loopgate.demo.reviewers import Crowd, Tally
from loopgate.demo.sandbox import DEMO_START, DemoClock, Sandbox
from loopgate.runtime import Runtime, compose
from loopgate.sandbox.demo_org import SeededOrg, seed_demo_org
from loopgate.scheduling import ActiveWriteback, ConnectorsByPolicy
from loopgate.wiring import build_engine
from scheduler.context import SchedulerContext
from scheduler.digest import run_weekly_digest
from scheduler.sla_scan import run_sla_scan

__all__ = ["DemoRun", "Progress", "run_demo"]

# (stage, done, total): a stage starts with done=0 and ends with done=total
Progress = Callable[[str, int, int], None]

SLA_CHECKPOINTS = [timedelta(minutes=m) for m in (8, 14, 16, 47, 61, 109, 121, 151, 181)]
DIGEST_AT = DEMO_START + timedelta(days=6, hours=-1)  # Monday 08:00 in New York (the digest slot)


@dataclass
class DemoRun:
    """What happened, for the summary and the report (figures come from the store)."""

    out: Path
    db: Database
    sandbox: Sandbox
    org: SeededOrg
    tally: Tally = field(default_factory=Tally)
    sla_steps: Counter[str] = field(default_factory=Counter)
    api_calls: dict[str, int] = field(default_factory=dict)
    digest: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


class _Demo:
    def __init__(self, sandbox: Sandbox, clock: DemoClock, db: Database, progress: Progress) -> None:
        self.sb, self.clock, self.db, self.progress = sandbox, clock, db, progress
        self.settings = sandbox.settings()
        self.loaded = sandbox.loaded
        self.connectors = ConnectorsByPolicy(self.settings, clock)
        self.runtime: Runtime = compose(
            self.settings, db, self.loaded, port=0, clock=clock, outbox=False, poll=0.05,
            review_clock_for=PolicySlaClock,
        )  # fmt: skip
        assert self.runtime.uploader is not None
        self.effects: list[EffectHandler] = [
            self.runtime.clicks,
            self.runtime.notifier,
            self.runtime.uploader,
            ActiveWriteback(self.settings, db, self.connectors, clock),
        ]
        # one engine for the whole run: the policy does not change and nothing refits calibration
        engine = build_engine(db, self.loaded)
        self.context = SchedulerContext(
            db, policy=lambda: self.loaded, engine=lambda _loaded: engine, clock=clock, actor="demo"
        )

    def drain(self) -> outbox.DrainReport:
        return outbox.drain(self.db, self.effects, "demo", self.clock)

    def sync(self) -> None:
        ports = self.connectors.get(self.loaded)
        rt = crm.Runtime(self.db, build_engine(self.db, self.loaded), ports, self.clock)
        total = self.sb.salesforce.records["Lead"].__len__() + len(self.sb.hubspot.objects["contacts"])
        seen = 0

        def on_page(stream: str, records: int) -> None:
            nonlocal seen
            if stream in ("leads", "contacts"):
                seen = min(seen + records, total)
                self.progress("sync and decide", seen, total)

        self.progress("sync and decide", 0, total)
        crm.sync(rt, progress=on_page)
        self.progress("sync and decide", total, total)

    def sla(self, crowd: Crowd, steps: Counter[str]) -> None:
        for index, offset in enumerate(SLA_CHECKPOINTS):
            self.progress("SLA timers", index, len(SLA_CHECKPOINTS))
            self.clock.set(DEMO_START + offset)
            # escalations re-routed at an earlier checkpoint: their new owner answers them now,
            # before this scan (otherwise they would stay open past their deadline, unscanned)
            crowd.review(share=1.0)
            self.drain()
            for _ in range(20):  # a scan handles up to 500 clocks: scan until nothing is due
                report = run_sla_scan(self.context)
                steps.update(report.steps)
                if sum(report.steps.values()) == 0:
                    break
            self.drain()
            crowd.answer_nudges()
            self.drain()
        self.clock.set(DEMO_START + SLA_CHECKPOINTS[-1] + timedelta(minutes=10))
        crowd.review(share=1.0)  # re-routed at the last checkpoint
        self.drain()
        self.progress("SLA timers", len(SLA_CHECKPOINTS), len(SLA_CHECKPOINTS))


def run_demo(out: Path, *, leads: int = 2000, progress: Progress | None = None) -> DemoRun:
    """Run the whole loop into ``out`` (the store, the policy); the caller writes the outputs
    from the returned run, then stops ``run.sandbox`` (:mod:`loopgate.demo.outputs`). A run that
    does not return (an error, Ctrl-C) stops the sandbox itself: no fake keeps running, no CA
    bundle is left in the temp folder, the folder is free for the next run."""
    report = progress or (lambda _stage, _done, _total: None)
    clock = DemoClock(DEMO_START)
    sandbox = Sandbox(out, clock).start()
    try:
        return _run(out, sandbox, clock, leads, report)
    except BaseException:
        sandbox.stop()
        raise


def _run(out: Path, sandbox: Sandbox, clock: DemoClock, leads: int, report: Progress) -> DemoRun:
    timings: dict[str, float] = {}
    mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        timings[name] = round(now - mark, 2)
        mark = now

    report("seed both CRMs", 0, leads)
    org = seed_demo_org(sandbox.salesforce, sandbox.hubspot, sandbox.loaded.policy, leads=leads,
                        start=DEMO_START)  # fmt: skip
    report("seed both CRMs", leads, leads)
    db = sandbox.fresh_database()
    try:
        demo = _Demo(sandbox, clock, db, report)
    except BaseException:
        db.dispose()
        raise
    run = DemoRun(out, db, sandbox, org, seconds=timings)
    try:
        demo.runtime.start()
        sandbox.slack.request_url = f"{demo.runtime.front.url}/slack/events"
        lap("seed")
        demo.sync()
        lap("sync")
        report("post escalations, write back", 0, 1)
        demo.drain()
        report("post escalations, write back", 1, 1)
        lap("effects")
        crowd = Crowd(demo.runtime, sandbox.slack, db)
        clock.set(DEMO_START + timedelta(minutes=20))
        pending = len(crowd.pending())
        report("reviewers in Slack", 0, pending)
        run.tally = crowd.review()
        demo.drain()
        report("reviewers in Slack", pending, pending)
        lap("reviews")
        demo.sla(crowd, run.sla_steps)
        lap("sla")
        report("weekly digest", 0, 1)
        clock.set(DIGEST_AT)
        run.digest = run_weekly_digest(demo.context)
        demo.drain()
        report("weekly digest", 1, 1)
        lap("digest")
    finally:
        demo.runtime.stop()  # disposes the database: outputs reopen it
        run.api_calls = {
            "salesforce": len(sandbox.salesforce.requests),
            "hubspot": len(sandbox.hubspot.requests),
            "slack": len(sandbox.slack.api_log),
        }
    return run
