"""Regressions found in review of the scheduler: each test reproduces a bug, fixed since."""

from __future__ import annotations

import os
import threading
from datetime import datetime, timedelta

import pytest

from core.engine import DecisionEngine
from core.policy import LoadedPolicy
from core.store.db import Database
from core.store.decide import trust_levels
from core.store.trust_state import recompute_trust
from core.store.verdicts import record_verdict
from scheduler.learning_jobs import run_trust_recompute
from tests.bot.conftest import Clock
from tests.scheduler.conftest import context
from tests.store.learning_builders import add_audit_verdict, decide_leads_at, lead_input, variant

ON_PG = bool(os.environ.get("LOOPGATE_TEST_DATABASE_URL"))


def _quick_trust(example: LoadedPolicy) -> LoadedPolicy:
    return variant(
        example,
        "promote: {min_reviews: 50, min_agreement: 0.8}\n  demote: {window: 20, min_agreement: 0.7}",
        "promote: {min_reviews: 10, min_agreement: 0.8}\n  demote: {window: 5, min_agreement: 0.6}",
    )


@pytest.mark.skipif(not ON_PG, reason="concurrent writers commit out of pk order only on PostgreSQL")
def test_given_a_verdict_committed_after_a_higher_pk_when_trust_runs_then_the_demotion_it_earned_is_not_skipped(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    loaded = _quick_trust(example_policy)
    decided = decide_leads_at(
        db, DecisionEngine(loaded), [lead_input(i, at=now, employees=50) for i in range(40)], now=now
    )
    auto = [d.decision_pk for d in decided if d.decision.action == "auto"][:5]
    assert len(auto) == 5
    with db.transaction() as s:  # 3 verdicts: below the demotion window of 5
        for i, (pk, c) in enumerate(zip(auto[:3], "ynn", strict=True)):
            add_audit_verdict(s, pk, confirm=c == "y", at=now + timedelta(minutes=i))
    clock = Clock(now + timedelta(hours=1))
    ctx = context(db, loaded, clock)
    assert run_trust_recompute(ctx)["moves"] == []

    # two leaders flag at the same time (two bot replicas): A takes the lower pk but commits last
    with db.transaction() as a:
        add_audit_verdict(a, auto[3], confirm=False, at=now + timedelta(minutes=10))  # pk 4, uncommitted
        with db.transaction() as b:
            add_audit_verdict(b, auto[4], confirm=False, at=now + timedelta(minutes=11))  # pk 5, committed
        clock.advance(minutes=5)
        first = run_trust_recompute(ctx)  # sees 4 verdicts (pk 4 not yet visible), marks max pk = 5
        assert first["recomputed"] is True and first["moves"] == []
    # A commits now: 5 verdicts, 1 of 5 agree (20% < 60%): the segment has earned its demotion

    clock.advance(minutes=5)
    second = run_trust_recompute(ctx)

    with db.sessions() as s:
        levels = trust_levels(s)
    with db.transaction() as s:  # the evidence is there: a recompute that ignores the watermark demotes
        earned = [(m.segment, m.kind) for m in recompute_trust(s, loaded, now=clock())]
    assert levels.get("smb") == 1, f"not demoted by the job: {second}; a direct recompute gives {earned}"


def test_given_three_leaders_confirm_the_same_four_decisions_when_trust_runs_then_twelve_verdicts_do_not_promote(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    """``promote.min_reviews`` is 10 here: four automatic decisions judged are not ten reviews,
    however many leaders clicked Confirm on each of them in the digest."""
    loaded = _quick_trust(example_policy)
    policy = loaded.policy
    decided = decide_leads_at(
        db, DecisionEngine(loaded), [lead_input(i, at=now, employees=50) for i in range(40)], now=now
    )
    auto = [d.decision_pk for d in decided if d.decision.action == "auto"][:4]
    leaders = [r for r in policy.reps if r.id in ("lee", "mo", "rev")]
    assert len(auto) == 4 and len(leaders) == 3
    with db.transaction() as s:
        for i, pk in enumerate(auto):
            for leader in leaders:
                record_verdict(
                    s, policy, pk, verdict="confirm", reviewer=str(leader.slack_user), rep=leader,
                    now=now + timedelta(minutes=i),
                )  # fmt: skip
    clock = Clock(now + timedelta(hours=1))

    result = run_trust_recompute(context(db, loaded, clock))

    with db.sessions() as s:
        levels = trust_levels(s)
    assert result["moves"] == [] and levels.get("smb", 2) == 2, f"promoted on 4 decisions: {result['moves']}"


def test_given_the_leader_missed_its_renewals_while_a_sync_runs_when_it_leads_again_then_the_sync_does_not_run_twice_at_once(
    db: Database, now: datetime
) -> None:
    """A database outage longer than the lease (a PostgreSQL failover) makes the leader step down
    and, on the next round, lead again in the same process: the new APScheduler runs interval
    jobs at once, while the old one's run of the same job is still in flight (shutdown(wait=False))."""
    import time as _time
    from datetime import UTC

    from scheduler.service import SchedulerService
    from tests.scheduler.conftest import sla_policy

    sync = _SlowSync()
    running, overlapped, release, slow_sync = sync.running, sync.overlapped, sync.release, sync

    loaded = sla_policy(digest={"channel": "C0LEAD", "timezone": "America/New_York"})
    ctx = context(db, loaded, Clock(now))
    ctx.crm_sync = {"salesforce": slow_sync}
    lease_clock = Clock(datetime.now(UTC))
    service = SchedulerService(ctx, holder="a", lease_ttl=timedelta(seconds=30), lease_clock=lease_clock)
    try:
        service.tick()
        deadline = _time.monotonic() + 10
        while running[0] == 0 and _time.monotonic() < deadline:
            _time.sleep(0.05)
        assert running[0] == 1, "the first sync did not start"

        lease_clock.advance(seconds=31)  # three rounds could not reach the database to renew
        service.tick()  # the lease ran out: step down — and, the database back, lead again
        deadline = _time.monotonic() + 3
        while overlapped[0] < 2 and _time.monotonic() < deadline:
            _time.sleep(0.05)
    finally:
        release.set()
        service.stop()
    assert overlapped[0] == 1, f"{overlapped[0]} runs of sync:salesforce at once in one process"


def test_given_an_escalation_routed_to_a_queue_when_nobody_reviews_it_all_day_then_it_is_not_rerouted_to_the_same_queue_again_and_again(
    db: Database, now: datetime
) -> None:
    """A routing rule sends regulated leads to a queue (the review SLA: 2 h, manager at breach,
    re-route 30 min later). A re-route can only pick the same queue — and it does, every 2.5 h:
    a new decision, a new escalation and a new breach notice to the manager each time, without end
    (the MAX_REROUTES limit counts only reps who let it pass)."""
    from sqlalchemy import select

    from core.store.models import Decision
    from scheduler.sla_scan import run_sla_scan
    from tests.builders import LeadBuilder, decide, policy_dict
    from tests.scheduler.conftest import clocks, outbox, sla_policy

    routing = [{"name": "banks", "when": {"industry": {"in": ["banking"]}}, "to": {"queue": "unassigned"}},
               *policy_dict()["routing"]]  # fmt: skip
    loaded = sla_policy(routing=routing)
    decide(db, loaded, [LeadBuilder("00Q5e00000Q0001").raw(now)], now)  # banking: reviewed, owner the queue
    assert [(c.kind, c.owner_kind, c.owner) for c in clocks(db)] == [("review", "queue", "unassigned")]
    clock = Clock(now)
    ctx = context(db, loaded, clock)
    until = now + timedelta(hours=24)
    while clock.at < until:
        clock.advance(minutes=5)
        run_sla_scan(ctx)

    with db.sessions() as s:
        reroutes = s.execute(select(Decision.owner).where(Decision.cause == "reroute")).scalars().all()
    notices = [r for r in outbox(db, "sla:") if r.dedupe_key.endswith("notify_manager")]
    kinds = sorted({r.dedupe_key.split(":")[0] for r in outbox(db)})
    assert len(reroutes) <= 1, (
        f"re-routed {len(reroutes)} times in a day, each time to {set(reroutes)}; "
        f"{len(notices)} breach notices to the manager; {len(clocks(db))} clocks; outbox {len(outbox(db))} rows {kinds}"
    )


def test_given_a_leader_shutting_down_waits_for_its_sync_when_its_lease_lapses_then_the_standby_does_not_start_a_second_sync(
    db: Database, now: datetime
) -> None:
    """A rolling deploy: SIGTERM stops the leader's lease thread first, then waits for the running
    jobs (shutdown(wait=True)) — no renewal meanwhile. After the TTL the standby takes the lease
    and runs every interval job at once: the CRM sync runs twice at the same time.

    Time passes round by round (``poll`` is 50 ms here): a stopping leader gets the chances to
    renew it would have had over those 40 s. One jump past the TTL with no chance to renew is a
    paused or dead leader, which the standby rightly replaces (test_service.py)."""
    import time as _time
    from datetime import UTC

    from sqlalchemy import select

    from core.store.models import SchedulerLease
    from scheduler.service import SchedulerService
    from tests.scheduler.conftest import sla_policy

    sync = _SlowSync()
    running, overlapped, release, slow_sync = sync.running, sync.overlapped, sync.release, sync

    loaded = sla_policy(digest={"channel": "C0LEAD", "timezone": "America/New_York"})
    lease_clock = Clock(datetime.now(UTC))

    def service(holder: str) -> SchedulerService:
        ctx = context(db, loaded, Clock(now))
        ctx.crm_sync = {"salesforce": slow_sync}
        return SchedulerService(ctx, holder=holder, lease_ttl=timedelta(seconds=30), poll=0.05, lease_clock=lease_clock)

    def lease_left() -> timedelta:
        with db.sessions() as s:
            expires_at = s.execute(select(SchedulerLease.expires_at)).scalar_one()
        return expires_at - lease_clock()

    a, b = service("a"), service("b")
    stopping = threading.Thread(target=a.stop)
    try:
        a.tick()
        deadline = _time.monotonic() + 10
        while running[0] == 0 and _time.monotonic() < deadline:
            _time.sleep(0.05)
        assert running[0] == 1, "the first sync did not start"
        stopping.start()  # SIGTERM: waits for the sync to finish
        _time.sleep(0.3)
        assert stopping.is_alive()
        for _ in range(4):  # the sync outlives the lease's 30 s: the stopping leader renews each round
            lease_clock.advance(seconds=10)
            deadline = _time.monotonic() + 3
            while lease_left() <= timedelta(seconds=20) and _time.monotonic() < deadline:
                _time.sleep(0.02)
            b.tick()
        deadline = _time.monotonic() + 3
        while overlapped[0] < 2 and _time.monotonic() < deadline:
            _time.sleep(0.05)
        assert not b.leader, "the standby took the lease from a leader still waiting for its sync"
    finally:
        release.set()
        if stopping.ident is not None:
            stopping.join(15)
    try:
        assert not stopping.is_alive()
        b.tick()  # the sync done, the lease was released: the standby takes over at once
        assert b.leader
    finally:
        b.stop()
    assert overlapped[0] == 1, f"{overlapped[0]} runs of sync:salesforce at once (leader a stopping, b leading)"


class _SlowSync:
    """Stands in for a CRM sync of a large page backlog: runs until ``release`` is set, and
    counts how many runs were going at once (``overlapped[0]``, the most seen)."""

    def __init__(self) -> None:
        self.running, self.overlapped, self.release = [0], [0], threading.Event()
        self._guard = threading.Lock()

    def __call__(self) -> dict[str, int]:
        with self._guard:
            self.running[0] += 1
            self.overlapped[0] = max(self.overlapped[0], self.running[0])
        self.release.wait(10)
        with self._guard:
            self.running[0] -= 1
        return {"pages": 1}
