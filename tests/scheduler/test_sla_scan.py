"""The SLA scan with a clock moved by hand: each nudge once, breach steps in order, re-route
without the late owner, catching up after downtime, answered clocks stop."""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from bot.cards import load_card
from bot.queries import pending_for, team_stats
from core.digest import week_label
from core.policy import LoadedPolicy
from core.review import ReviewChange, ReviewRules
from core.sla import PolicySlaClock
from core.store.db import Database
from core.store.digest import weekly_digest
from core.store.models import Decision, Lead, SlaClock
from core.store.reviews import ReviewRequest, record_review
from core.store.sla_clocks import MAX_REROUTES, mark_contacted
from loopgate.wiring import build_engine
from scheduler.context import SchedulerContext
from scheduler.jobs import handler_for
from scheduler.sla_scan import FAILED_RETRY_AFTER, run_sla_scan
from tests.builders import LeadBuilder, decide, policy_dict
from tests.scheduler.conftest import (
    SLA,
    Clock,
    audits,
    clocks,
    context,
    hot_software_lead,
    minutes,
    outbox,
    sla_policy,
    steps,
)


def _hot_lead_clocked(db: Database, clock: Clock) -> tuple[LoadedPolicy, datetime, SlaClock]:
    """The SLA policy, when the hot lead arrived, and the one clock deciding it started."""
    loaded = sla_policy()
    start = clock.at
    decide(db, loaded, [hot_software_lead().raw(start)], start)
    [c] = clocks(db)
    return loaded, start, c


def test_given_a_hot_lead_assigned_automatically_when_decided_then_its_first_touch_clock_has_the_whole_plan(
    db: Database, clock: Clock
) -> None:
    loaded = sla_policy()
    decide(db, loaded, [hot_software_lead().raw(clock.at)], clock.at)

    [c] = clocks(db)
    assert (c.kind, c.owner_kind, c.band, c.state) == ("first_touch", "rep", "hot", "open")
    assert c.due_at == clock.at + minutes(15)
    assert [(s["key"], s["do"]) for s in c.plan] == [
        ("nudge:0.5", "nudge_owner"),
        ("nudge:0.9", "nudge_owner"),
        ("breach", "breach"),
        ("breach:0:notify_manager", "notify_manager"),
        ("breach:1:reroute", "reroute"),
    ]
    assert [datetime.fromisoformat(s["at"]) - clock.at for s in c.plan] == [
        minutes(7.5),
        minutes(13.5),
        minutes(15),
        minutes(15),
        minutes(45),
    ]
    assert c.next_at == clock.at + minutes(7.5)


def test_given_an_unanswered_hot_lead_when_scanning_through_the_ladder_then_each_step_happens_once_in_order(
    db: Database, clock: Clock
) -> None:
    loaded, start, c = _hot_lead_clocked(db, clock)
    owner = c.owner
    ctx = context(db, loaded, clock)

    clock.at = start + minutes(7)
    run_sla_scan(ctx)
    assert outbox(db, "sla:") == []

    for at in (7.5, 8, 13.5, 14, 15, 20, 45, 46):
        clock.at = start + minutes(at)
        run_sla_scan(ctx)
        run_sla_scan(ctx)  # a second run at the same moment changes nothing

    keys = [row.dedupe_key for row in outbox(db, "sla:")]
    assert keys == [
        f"sla:{c.pk}:nudge:0.5",
        f"sla:{c.pk}:nudge:0.9",
        f"sla:{c.pk}:breach:0:notify_manager",
        f"sla:{c.pk}:breach:1:reroute:told",
    ]
    rows = {row.dedupe_key: row.payload for row in outbox(db, "sla:")}
    owner_slack = {"ana": "U0ANA", "ben": "U0BEN"}[str(owner)]
    assert rows[f"sla:{c.pk}:nudge:0.5"]["user"] == owner_slack
    assert rows[f"sla:{c.pk}:breach:0:notify_manager"]["user"] == "U0LEE"  # team mm's manager
    assert rows[f"sla:{c.pk}:breach:1:reroute:told"]["user"] == owner_slack
    assert [(s.step, s.outcome, s.late_seconds) for s in steps(db, c.pk)] == [
        ("nudge:0.5", "sent", 0),
        ("nudge:0.9", "sent", 0),
        ("breach", "recorded", 0),
        ("breach:0:notify_manager", "sent", 0),
        ("breach:1:reroute", "rerouted", 0),
    ]

    first, second = clocks(db)
    assert (first.state, first.breached_at, first.met_at) == ("rerouted", start + minutes(15), None)
    # re-routed: decided again without the late owner; the new owner's clock starts now
    with db.sessions() as s:
        newest = s.execute(select(Decision).order_by(Decision.pk.desc()).limit(1)).scalar_one()
    assert (newest.cause, newest.dedupe_key) == ("reroute", f"reroute:{c.pk}")
    assert newest.owner not in (owner, None)
    assert (second.decision_pk, second.owner, second.started_at) == (newest.pk, newest.owner, start + minutes(45))
    assert [r.dedupe_key for r in outbox(db, "slack.assignment:")][-1] == f"slack.assignment:{newest.pk}"
    assert [e.kind for e in audits(db, "sla.")] == [
        "sla.nudge_owner",
        "sla.nudge_owner",
        "sla.breach",
        "sla.notify_manager",
        "sla.reroute",
    ]


def test_given_the_scheduler_was_down_when_it_scans_again_then_due_steps_run_once_and_stale_nudges_are_coalesced(
    db: Database, clock: Clock
) -> None:
    loaded, start, c = _hot_lead_clocked(db, clock)

    clock.at = start + minutes(8)
    run_sla_scan(context(db, loaded, clock))  # nudge 0.5, then the process dies
    clock.at = start + timedelta(hours=3)
    run_sla_scan(context(db, loaded, clock))  # a new process, hours later
    run_sla_scan(context(db, loaded, clock))

    assert [(s.step, s.outcome) for s in steps(db, c.pk)] == [
        ("nudge:0.5", "sent"),
        ("nudge:0.9", "coalesced"),
        ("breach", "recorded"),
        ("breach:0:notify_manager", "sent"),
        ("breach:1:reroute", "rerouted"),
    ]
    late = {s.step: s.late_seconds for s in steps(db, c.pk)}
    assert late["breach:1:reroute"] == int((timedelta(hours=3) - minutes(45)).total_seconds())
    assert len(outbox(db, f"sla:{c.pk}:")) == 3  # nudge 0.5, the manager, the late owner's note
    coalesced = audits(db, "sla.coalesced")
    assert len(coalesced) == 1 and '"late_seconds":' in coalesced[0].body


def test_given_the_owner_touched_the_lead_in_the_crm_when_scanning_then_the_clock_is_met_and_nobody_is_nudged(
    db: Database, clock: Clock
) -> None:
    loaded = sla_policy()
    start = clock.at
    decide(db, loaded, [hot_software_lead().raw(start)], start)
    with db.transaction() as s:
        s.execute(update(Lead).values(first_touch_at=start + minutes(4)))

    clock.at = start + minutes(30)
    run_sla_scan(context(db, loaded, clock))

    [c] = clocks(db)
    assert (c.state, c.met_via, c.met_at, c.breached_at) == ("met", "crm", start + minutes(4), None)
    assert outbox(db, "sla:") == [] and steps(db) == []


def test_given_a_lead_already_touched_when_decided_again_then_no_first_touch_clock_starts(
    db: Database, clock: Clock
) -> None:
    loaded = sla_policy()
    decide(db, loaded, [hot_software_lead().raw(clock.at)], clock.at)
    with db.transaction() as s:
        s.execute(update(Lead).values(first_touch_at=clock.at))
    clock.advance(hours=1)
    decide(db, loaded, [hot_software_lead(title="VP Sales").raw(clock.at)], clock.at)

    [c] = clocks(db)  # the first clock was carried over (same owner) and nothing new started
    with db.sessions() as s:
        assert c.decision_pk == s.execute(select(Decision.pk).order_by(Decision.pk.desc()).limit(1)).scalar_one()


def test_given_the_owner_said_in_slack_they_made_contact_when_the_lead_is_decided_again_then_nobody_is_nudged(
    db: Database, clock: Clock
) -> None:
    loaded, start, c = _hot_lead_clocked(db, clock)
    with db.transaction() as s:
        assert mark_contacted(s, c.pk, by="slack:U0ANA", now=start + minutes(2)) is not None
    clock.at = start + minutes(5)  # the rep edits the title after the call: the lead is decided again
    decide(db, loaded, [hot_software_lead(title="VP Sales").raw(clock.at)], clock.at)

    clock.at = start + minutes(14)  # past where a new clock would nudge
    run_sla_scan(context(db, loaded, clock))

    assert [(c.kind, c.state, c.met_via) for c in clocks(db)] == [("first_touch", "met", "slack")]
    assert outbox(db, "sla:") == []


def _escalate(db: Database, clock: Clock) -> int:
    loaded = sla_policy()
    pk = decide(db, loaded, [LeadBuilder("00Q5e00000R0001").raw(clock.at)], clock.at)["00Q5e00000R0001"]
    return pk


def test_given_an_escalation_its_owner_approves_in_slack_when_scanning_then_the_review_is_met_and_they_owe_a_first_touch(
    db: Database, clock: Clock
) -> None:
    loaded = sla_policy()
    start = clock.at
    pk = _escalate(db, clock)
    [c] = clocks(db)
    assert (c.kind, c.due_at) == ("review", start + timedelta(hours=2))
    owner = str(c.owner)
    request = ReviewRequest(pk, {"ana": "U0ANA", "ben": "U0BEN"}[owner], owner, ReviewChange("approve"))

    with db.transaction() as s:
        record_review(s, ReviewRules(loaded.policy), request, now=start + minutes(50))
    clock.at = start + minutes(51)
    run_sla_scan(context(db, loaded, clock))

    review, touch = clocks(db)
    assert (review.state, review.met_via, review.met_at, review.breached_at) == (
        "met",
        "review",
        start + minutes(50),
        None,
    )
    # approving is the review's answer, not the customer's: the owner still owes the call,
    # as they would had their manager approved it (the lead is hot: 15 minutes)
    assert (touch.kind, touch.owner, touch.state) == ("first_touch", owner, "open")
    assert (touch.started_at, touch.due_at) == (start + minutes(50), start + minutes(65))
    assert steps(db) == []


def test_given_an_escalation_decided_again_for_the_same_reviewer_when_its_card_is_loaded_then_it_shows_the_clocks_deadline(
    db: Database, clock: Clock
) -> None:
    loaded = sla_policy()
    start = clock.at
    lead = LeadBuilder("00Q5e00000H0001").with_(industry="Banking", company="Initech")
    decide(db, loaded, [lead.raw(start)], start)
    later = start + minutes(90)  # the title changes in the CRM: decided again, same reviewer
    pk = decide(db, loaded, [lead.with_(title="VP Sales").raw(later)], later)["00Q5e00000H0001"]
    [c] = clocks(db)
    assert (c.kind, c.decision_pk, c.state, c.due_at) == ("review", pk, "open", start + timedelta(hours=2))

    with db.sessions() as s:
        card = load_card(s, ReviewRules(loaded.policy), PolicySlaClock(loaded.policy), pk)

    assert card is not None and card.due_at == c.due_at  # not 90 minutes later than the scan enforces


def _banking_leads_one_decided_again(db: Database, clock: Clock) -> tuple[LoadedPolicy, datetime, dict[str, int]]:
    """Two escalations for Ana: H0001 at the start, decided again 90 minutes later (its clock,
    due at start + 2 h, carries over); H0002 decided at start + 30 min."""
    loaded = sla_policy(routing=[{"name": "default", "to": {"rep": "ana"}}])
    start = clock.at
    first = LeadBuilder("00Q5e00000H0001").with_(industry="Banking", company="Initech")
    second = LeadBuilder("00Q5e00000H0002").with_(industry="Banking", company="Globex")
    decide(db, loaded, [first.raw(start)], start)
    pks = decide(db, loaded, [second.raw(start + minutes(30))], start + minutes(30))
    pks |= decide(db, loaded, [first.with_(title="VP Sales").raw(start + minutes(90))], start + minutes(90))
    due = {c.decision_pk: c.due_at for c in clocks(db) if c.state == "open"}
    assert due == {
        pks["00Q5e00000H0001"]: start + timedelta(hours=2),
        pks["00Q5e00000H0002"]: start + minutes(150),
    }
    return loaded, start, pks


def test_given_an_escalation_decided_again_for_the_same_reviewer_when_the_queue_is_read_then_its_clocks_deadline_orders_it(
    db: Database, clock: Clock
) -> None:
    loaded, start, pks = _banking_leads_one_decided_again(db, clock)
    rules = ReviewRules(loaded.policy)

    with db.sessions() as s:
        cards, total = pending_for(
            s, rules, PolicySlaClock(loaded.policy), rules.roster.reps["lee"], now=start + minutes(90), limit=10
        )

    # due at start + 2 h (enforced) before the other's start + 2 h 30, not at start + 3 h 30
    assert (total, [c.decision_pk for c in cards]) == (2, [pks["00Q5e00000H0001"], pks["00Q5e00000H0002"]])


def test_given_an_escalation_decided_again_for_the_same_reviewer_when_past_its_clocks_deadline_then_stats_count_it_overdue(
    db: Database, clock: Clock
) -> None:
    loaded, start, _ = _banking_leads_one_decided_again(db, clock)

    with db.sessions() as s:
        stats = team_stats(s, PolicySlaClock(loaded.policy), now=start + minutes(121))

    assert (stats.pending, stats.overdue) == (2, 1)  # breached by the scan's deadline, not 90 minutes later


def test_given_a_manager_hands_an_escalation_to_a_rep_when_scanning_then_that_rep_owes_a_first_touch_from_then(
    db: Database, clock: Clock
) -> None:
    loaded = sla_policy()
    start = clock.at
    pk = _escalate(db, clock)
    with db.sessions() as s:
        proposed = s.get(Decision, pk).owner  # type: ignore[union-attr]
    other = "ben" if proposed == "ana" else "ana"
    change = ReviewChange("reassign", reason_code="territory_exception", owner=other)
    with db.transaction() as s:
        record_review(s, ReviewRules(loaded.policy), ReviewRequest(pk, "U0LEE", "lee", change), now=start + minutes(30))

    clock.at = start + minutes(31)
    run_sla_scan(context(db, loaded, clock))

    review, touch = clocks(db)
    assert (review.kind, review.state) == ("review", "met")
    assert (touch.kind, touch.owner, touch.started_at, touch.state) == (
        "first_touch",
        other,
        start + minutes(30),
        "open",
    )
    assert touch.due_at == start + minutes(30) + minutes(15)  # the lead is hot


def test_given_an_escalation_nobody_reviews_when_it_breaches_then_it_is_rerouted_and_the_old_message_superseded(
    db: Database, clock: Clock
) -> None:
    loaded = sla_policy()
    start = clock.at
    pk = _escalate(db, clock)
    clock.at = start + timedelta(hours=2, minutes=30)
    run_sla_scan(context(db, loaded, clock))

    with db.sessions() as s:
        old = s.get(Decision, pk)
        assert old is not None and old.state == "superseded"
        new = s.execute(select(Decision).where(Decision.cause == "reroute")).scalar_one()
    assert new.owner != old.owner and new.action == "review"  # still regulated: a person decides
    assert [c.state for c in clocks(db)] == ["rerouted", "open"]
    assert outbox(db, f"slack.decision_update:{pk}:superseded") and outbox(db, f"slack.escalation:{new.pk}")


def test_given_two_schedulers_scan_at_the_same_moment_when_steps_are_due_then_each_step_happens_once(
    db: Database, clock: Clock
) -> None:
    loaded = sla_policy()
    start = clock.at
    leads = [hot_software_lead(f"00Q5e00000C{i:04d}").raw(start) for i in range(6)]
    decide(db, loaded, leads, start)
    clock.at = start + minutes(46)  # every step of every clock is due

    with ThreadPoolExecutor(2) as pool:  # two replicas, no lease between them: only the database decides
        list(pool.map(lambda _: run_sla_scan(context(db, loaded, clock)), range(2)))

    done = [(s.clock_pk, s.step) for s in steps(db)]
    assert len(done) == len(set(done)) == 6 * 5
    keys = [row.dedupe_key for row in outbox(db, "sla:")]
    assert len(keys) == len(set(keys)) == 6 * 2  # the manager and the late owner's note (nudges coalesced away)
    with db.sessions() as s:
        rerouted = s.execute(select(Decision).where(Decision.cause == "reroute")).scalars().all()
    assert len(rerouted) == 6


def test_given_business_hours_when_an_escalation_arrives_late_on_friday_then_its_review_is_due_monday_morning(
    db: Database, clock: Clock
) -> None:
    reps = [
        {"id": "ana", "name": "Ana", "slack_user": "U0ANA", "team": "mm", "timezone": "America/New_York",
         "working_hours": {"start": "08:00", "end": "18:00"}},
        {"id": "lee", "name": "Lee", "slack_user": "U0LEE", "roles": ["admin"], "timezone": "America/New_York"},
    ]  # fmt: skip
    loaded = sla_policy(reps=reps, sla={**SLA, "business_hours": True})
    friday_1630_ny = datetime(2026, 11, 20, 21, 30, tzinfo=UTC)
    decide(db, loaded, [LeadBuilder("00Q5e00000B0001").raw(friday_1630_ny)], friday_1630_ny)

    [c] = clocks(db)
    assert (c.kind, c.owner, c.business_hours) == ("review", "ana", True)
    assert c.due_at == datetime(2026, 11, 23, 13, 30, tzinfo=UTC)  # 1.5 h on Friday + 0.5 h: Monday 08:30 New York
    first_nudge = datetime.fromisoformat(c.plan[0]["at"])
    assert first_nudge == datetime(2026, 11, 20, 22, 30, tzinfo=UTC)  # Friday 17:30: one working hour in
    clock.at = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # Sunday: nothing is due
    run_sla_scan(context(db, loaded, clock))
    assert [s.step for s in steps(db)] == ["nudge:0.5"]


def test_given_a_clock_nobody_answers_when_a_month_passes_its_deadline_then_it_is_closed_as_expired(
    db: Database, clock: Clock
) -> None:
    loaded = sla_policy(sla={**SLA, "on_breach": [{"do": "notify_manager"}]})  # no re-route: it just waits
    start = clock.at
    decide(db, loaded, [hot_software_lead().raw(start)], start)
    clock.at = start + timedelta(days=29)
    report = run_sla_scan(context(db, loaded, clock))
    assert report.expired == 0 and clocks(db)[0].state == "open"

    clock.at = start + timedelta(days=31)
    assert run_sla_scan(context(db, loaded, clock)).expired == 1
    [c] = clocks(db)
    assert (c.state, c.breached_at, c.met_at) == ("expired", start + minutes(15), None)


def test_given_the_engine_reads_the_store_when_a_scan_reroutes_then_it_does_not_wait_on_its_own_transaction(
    db: Database, clock: Clock
) -> None:
    # serve builds the engine with the store's calibration (a read): on SQLite, a read begun
    # inside the scan's write transaction would wait for that very transaction (and time out)
    loaded, start, c = _hot_lead_clocked(db, clock)
    ctx = SchedulerContext(db, policy=lambda: loaded, engine=lambda p: build_engine(db, p), clock=clock)
    clock.at = start + minutes(46)
    began = time.monotonic()
    report = run_sla_scan(ctx)
    assert report.steps.get("rerouted") == 1
    assert time.monotonic() - began < 10
    assert [x.state for x in clocks(db) if x.pk == c.pk] == ["rerouted"]


def test_given_one_clock_whose_steps_fail_when_scanning_then_the_clocks_behind_it_still_act_and_it_waits(
    db: Database, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    loaded = sla_policy()
    start = clock.at
    decide(db, loaded, [hot_software_lead(f"00Q5e00000P{i:04d}").raw(start) for i in range(2)], start)
    bad, good = (c.pk for c in clocks(db))  # same next_at: the bad one (lower pk) is taken first
    with db.transaction() as s:  # a plan this version cannot read (say, written by a newer one)
        s.execute(update(SlaClock).where(SlaClock.pk == bad).values(plan=[{"key": "x", "at": "", "do": "page_ceo"}]))

    clock.at = start + minutes(8)
    with caplog.at_level(logging.ERROR, logger="scheduler.sla_scan"):
        run_sla_scan(context(db, loaded, clock))

    assert [row.dedupe_key for row in outbox(db, "sla:")] == [f"sla:{good}:nudge:0.5"]
    assert [r.getMessage() for r in caplog.records] == [f"SLA clock {bad} failed; trying it again in 0:05:00"]
    assert {c.pk: c.next_at for c in clocks(db)}[bad] == clock.at + FAILED_RETRY_AFTER  # no longer first in line


def _scan_every_five_minutes(db: Database, loaded: LoadedPolicy, clock: Clock, hours: float) -> None:
    ctx = context(db, loaded, clock)
    until = clock.at + timedelta(hours=hours)
    while clock.at < until:
        clock.advance(minutes=5)
        run_sla_scan(ctx)


def _decisions(db: Database) -> list[Decision]:
    with db.sessions() as s:
        return list(s.execute(select(Decision).where(Decision.shadow.is_(False)).order_by(Decision.seq)).scalars())


def test_given_a_lead_nobody_touches_when_scanned_all_evening_then_it_is_not_bounced_back_to_a_rep_who_let_it_breach(
    db: Database, clock: Clock
) -> None:
    loaded = sla_policy()  # team mm: Ana and Ben
    start = clock.at
    decide(db, loaded, [hot_software_lead().raw(start)], start)

    _scan_every_five_minutes(db, loaded, clock, hours=6)

    first, second = clocks(db)  # Ana's, then Ben's; no third
    assert [(c.owner, c.state) for c in (first, second)] == [("ana", "rerouted"), ("ben", "rerouted")]
    last = _decisions(db)[-1]
    assert (last.cause, last.owner, last.contract["route"]["method"]) == ("reroute", "unassigned", "fallback_queue")
    parked = outbox(db, f"sla:{second.pk}:breach:1:reroute:parked")
    assert [row.payload["user"] for row in parked] == ["U0LEE"]  # the manager hears once
    assert len(outbox(db, "sla:")) == 9  # two clocks' nudges, breaches and notes, and that one
    unpark = handler_for("unpark")
    assert unpark is not None and unpark(context(db, loaded, clock)) == {"decided": 0, "to_a_rep": 0}


def test_given_a_big_team_that_lets_a_lead_breach_when_scanned_all_day_then_it_is_parked_after_the_reroute_limit(
    db: Database, clock: Clock
) -> None:
    more = [
        {"id": rep, "name": rep.title(), "slack_user": f"U0{rep.upper()}", "team": "mm", "timezone": "UTC"}
        for rep in ("cam", "dee", "eli", "fay")
    ]
    loaded = sla_policy(reps=[*policy_dict()["reps"], *more])
    start = clock.at
    decide(db, loaded, [hot_software_lead().raw(start)], start)

    _scan_every_five_minutes(db, loaded, clock, hours=8)

    owners = [c.owner for c in clocks(db)]
    assert len(owners) == MAX_REROUTES + 1 == len(set(owners))  # four reps, each once
    assert {c.state for c in clocks(db)} == {"rerouted"}
    last = _decisions(db)[-1]
    assert (last.owner, last.contract["route"]["method"]) == ("unassigned", "fallback_queue")
    detail = last.contract["route"]["detail"]
    assert "Fay excluded (re-routed 3 times already)" in detail and "(re-route)" not in detail, detail
    [notice] = outbox(db, f"sla:{clocks(db)[-1].pk}:breach:0:notify_manager")
    assert "park it in the fallback queue" in notice.payload["text"] + str(notice.payload["blocks"])
    assert len([r for r in outbox(db, "sla:") if r.dedupe_key.endswith(":parked")]) == 1
    unpark = handler_for("unpark")  # two reps never had it, yet it stays for a person to assign
    assert unpark is not None and unpark(context(db, loaded, clock)) == {"decided": 0, "to_a_rep": 0}


def test_given_an_escalation_both_reps_let_breach_when_scanned_all_day_then_the_queues_clock_is_not_rerouted(
    db: Database, clock: Clock
) -> None:
    loaded = sla_policy()
    start = clock.at
    decide(db, loaded, [LeadBuilder("00Q5e00000R0001").raw(start)], start)  # regulated: reviewed

    _scan_every_five_minutes(db, loaded, clock, hours=12)

    assert [(c.kind, c.owner, c.state) for c in clocks(db)] == [
        ("review", "ana", "rerouted"),
        ("review", "ben", "rerouted"),
        ("review", "unassigned", "open"),  # breached, its manager told, then left in the queue
    ]
    assert [(s.step, s.outcome) for s in steps(db, clocks(db)[-1].pk)][-1] == ("breach:1:reroute", "parked")
    assert len(_decisions(db)) == 3
    assert len([r for r in outbox(db, "sla:") if r.dedupe_key.endswith(":parked")]) == 1


def test_given_a_cold_lead_that_turns_hot_when_decided_again_then_its_owner_owes_the_hot_first_touch_from_now(
    db: Database, clock: Clock
) -> None:
    loaded = sla_policy()
    start = clock.at
    cold = hot_software_lead().with_(industry="Retail", employees=10, events=[])
    decide(db, loaded, [cold.raw(start)], start)
    [was] = clocks(db)
    assert (was.band, was.due_at) == ("cold", start + timedelta(days=2))

    clock.at = start + minutes(10)  # a demo request, and the company grew in the CRM
    hot = cold.with_(industry="Software", employees=500, events=[{"type": "demo_request", "at": clock.at.isoformat()}])
    pk = decide(db, loaded, [hot.raw(clock.at)], clock.at)["00Q5e00000H0001"]

    old, new = clocks(db)
    assert (old.state, old.closed_reason, old.breached_at) == ("cancelled", f"replanned (hot) by decision {pk}", None)
    assert (new.decision_pk, new.owner, new.band, new.state) == (pk, was.owner, "hot", "open")
    assert (new.started_at, new.due_at) == (clock.at, clock.at + minutes(15))


def test_given_a_hot_lead_that_cools_when_decided_again_then_its_clock_keeps_the_earlier_deadline(
    db: Database, clock: Clock
) -> None:
    loaded, start, was = _hot_lead_clocked(db, clock)
    clock.at = start + minutes(5)
    decide(db, loaded, [hot_software_lead(employees=10, events=[]).raw(clock.at)], clock.at)

    [c] = clocks(db)  # carried over: a colder band does not buy the owner two days
    assert (c.pk, c.band, c.state, c.due_at) == (was.pk, "hot", "open", start + minutes(15))


def test_given_a_breached_lead_a_manager_reassigns_in_the_crm_when_the_week_is_counted_then_the_breach_is_missed(
    db: Database, clock: Clock
) -> None:
    loaded, start, late = _hot_lead_clocked(db, clock)
    clock.at = start + minutes(20)
    run_sla_scan(context(db, loaded, clock))  # breached at +15, the manager told
    other = {"ana": "005000000000BBB", "ben": "005000000000AAA"}[str(late.owner)]
    clock.at = start + minutes(25)  # the manager gives it to the other rep in Salesforce
    decide(db, loaded, [hot_software_lead(owner_id=other).raw(clock.at)], clock.at)
    assert [(c.state, c.breached_at) for c in clocks(db)] == [("cancelled", start + minutes(15)), ("open", None)]

    with db.sessions() as s:
        sla = weekly_digest(s, loaded, week=week_label(start), now=start + minutes(30)).sla

    assert (sla["first_touch"].met, sla["first_touch"].missed, sla["first_touch"].pending) == (0, 1, 1)


def test_given_an_escalation_parked_because_its_team_is_off_duty_when_scanned_overnight_then_it_is_rerouted_once_they_start(
    db: Database, clock: Clock
) -> None:
    """At 02:00 nobody in the team works: the escalation waits in the fallback queue. Its clock
    breaches at night, yet deciding it again would only land it in the queue again (a new
    escalation and breach notice every 2.5 h); once the team starts at 09:00 it goes to a rep."""
    hours = {"start": "09:00", "end": "17:00"}
    reps = [{**rep, "working_hours": hours} if rep.get("team") == "mm" else rep for rep in policy_dict()["reps"]]
    loaded = sla_policy(reps=reps)
    night = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    clock.at = night
    decide(db, loaded, [LeadBuilder("00Q5e00000B0001").raw(night)], night)
    [first] = _decisions(db)
    assert (first.action, first.owner, first.contract["route"]["method"]) == ("review", "unassigned", "fallback_queue")

    _scan_every_five_minutes(db, loaded, clock, hours=6.5)  # until 08:30: all of it off duty
    assert len(_decisions(db)) == 1
    done = [s.step for s in steps(db)]
    assert "breach:0:notify_manager" in done and not [s for s in done if s.endswith("reroute")], done
    [notice] = [r for r in outbox(db, "sla:") if r.dedupe_key.endswith("notify_manager")]
    assert "once its team has room" in json.dumps(notice.payload)

    _scan_every_five_minutes(db, loaded, clock, hours=1)  # 09:00: the team starts
    decisions = _decisions(db)
    assert [(d.cause, d.owner_kind) for d in decisions] == [("new", "queue"), ("reroute", "rep")]
    assert decisions[-1].decided_at == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
