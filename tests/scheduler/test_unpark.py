"""Leads parked in the fallback queue while their team was off duty or full are decided again
once the team has room: hottest first, no more than it can take, and never twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from core.policy import LoadedPolicy
from core.store.db import Database
from core.store.models import Decision, Lead, Owner
from scheduler.jobs import handler_for
from scheduler.sla_scan import run_sla_scan
from tests.builders import decide, policy_dict
from tests.scheduler.conftest import Clock, clocks, context, hot_software_lead, outbox, sla_policy

TUESDAY_NIGHT = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
MORNING = datetime(2026, 11, 24, 9, 1, tzinfo=UTC)


def _day_shift_policy(capacity: int | None = None, away: tuple[str, ...] = (), **overrides: Any) -> LoadedPolicy:
    reps = policy_dict()["reps"]
    for rep in reps[:2]:  # ana and ben, team mm; UTC
        rep["working_hours"] = {"start": "09:00", "end": "17:00"}
        if capacity is not None:
            rep["daily_capacity"] = capacity
        if rep["id"] in away:  # the whole week
            rep["out_of_office"] = [{"start": "2026-11-23", "end": "2026-11-27"}]
    return sla_policy(reps=reps, **overrides)


def _unpark(db: Database, loaded: LoadedPolicy, at: datetime) -> dict[str, Any]:
    job = handler_for("unpark")
    assert job is not None
    result: dict[str, Any] = job(context(db, loaded, Clock(at)))
    return result


def _latest(db: Database) -> dict[str, Decision]:
    with db.sessions() as s:
        rows = s.execute(select(Decision).where(Decision.shadow.is_(False)).order_by(Decision.seq)).scalars()
        return {d.lead_id: d for d in rows}


def test_given_a_hot_lead_parked_at_night_when_the_team_starts_its_day_then_it_goes_to_a_rep_once(
    db: Database,
) -> None:
    loaded = _day_shift_policy()
    decide(db, loaded, [hot_software_lead().raw(TUESDAY_NIGHT)], TUESDAY_NIGHT)
    [parked] = _latest(db).values()
    assert (parked.action, parked.owner, parked.contract["route"]["method"]) == ("auto", "unassigned", "fallback_queue")
    assert clocks(db) == []  # nobody owes a queue's lead a first touch

    assert _unpark(db, loaded, TUESDAY_NIGHT + timedelta(hours=3)) == {"decided": 0, "to_a_rep": 0}
    assert len(_latest(db)) == 1 and _latest(db)[parked.lead_id].pk == parked.pk

    assert _unpark(db, loaded, MORNING) == {"decided": 1, "to_a_rep": 1}
    new = _latest(db)[parked.lead_id]
    assert (new.cause, new.action, new.owner_kind) == ("unpark", "auto", "rep")
    assert new.owner in {"ana", "ben"}
    [clock] = clocks(db)
    assert (clock.kind, clock.owner, clock.started_at) == ("first_touch", new.owner, MORNING)
    assert outbox(db, f"crm.writeback:{new.pk}") and outbox(db, f"slack.assignment:{new.pk}")

    assert _unpark(db, loaded, MORNING + timedelta(minutes=1)) == {"decided": 0, "to_a_rep": 0}


def test_given_more_parked_leads_than_room_when_unparking_then_the_hottest_go_first_and_the_rest_wait(
    db: Database,
) -> None:
    loaded = _day_shift_policy(capacity=1)  # room for two leads a day
    leads = [
        hot_software_lead("00Q5e00000C0001", events=[]).raw(TUESDAY_NIGHT),  # no intent: cold
        hot_software_lead("00Q5e00000H0001").raw(TUESDAY_NIGHT),
        hot_software_lead("00Q5e00000H0002").raw(TUESDAY_NIGHT),
    ]
    decide(db, loaded, leads, TUESDAY_NIGHT)
    bands = {d.lead_id: d.band for d in _latest(db).values()}
    assert bands["00Q5e00000C0001"] != "hot" and bands["00Q5e00000H0001"] == "hot"

    assert _unpark(db, loaded, MORNING) == {"decided": 2, "to_a_rep": 2}
    after = _latest(db)
    assert {after[i].owner for i in ("00Q5e00000H0001", "00Q5e00000H0002")} == {"ana", "ben"}
    assert after["00Q5e00000C0001"].owner == "unassigned"  # waits: the team is full today

    assert _unpark(db, loaded, MORNING + timedelta(hours=1)) == {"decided": 0, "to_a_rep": 0}
    tomorrow = MORNING + timedelta(days=1)
    assert _unpark(db, loaded, tomorrow) == {"decided": 1, "to_a_rep": 1}


def test_given_a_parked_lead_someone_already_touched_when_unparking_then_it_stays_with_the_queue(
    db: Database,
) -> None:
    loaded = _day_shift_policy()
    decide(db, loaded, [hot_software_lead().raw(TUESDAY_NIGHT)], TUESDAY_NIGHT)
    with db.transaction() as s:
        s.execute(update(Lead).values(first_touch_at=TUESDAY_NIGHT + timedelta(hours=1)))

    assert _unpark(db, loaded, MORNING) == {"decided": 0, "to_a_rep": 0}


def test_given_a_rule_that_sends_leads_to_the_queue_when_unparking_then_they_stay_where_the_policy_put_them(
    db: Database,
) -> None:
    loaded = _day_shift_policy(routing=[{"name": "all_to_queue", "to": {"queue": "unassigned"}}])
    decide(db, loaded, [hot_software_lead().raw(MORNING)], MORNING)
    [d] = _latest(db).values()
    assert (d.owner, d.contract["route"]["method"]) == ("unassigned", "queue")

    assert _unpark(db, loaded, MORNING + timedelta(minutes=5)) == {"decided": 0, "to_a_rep": 0}


def test_given_a_lead_parked_more_than_a_week_ago_when_unparking_then_it_is_the_queues_to_work(
    db: Database,
) -> None:
    loaded = _day_shift_policy()
    decide(db, loaded, [hot_software_lead().raw(TUESDAY_NIGHT)], TUESDAY_NIGHT)

    assert _unpark(db, loaded, MORNING + timedelta(days=8)) == {"decided": 0, "to_a_rep": 0}


def test_given_a_lead_rerouted_away_from_its_late_owner_into_the_queue_when_unparking_then_it_does_not_go_back_to_them(
    db: Database,
) -> None:
    reps = policy_dict()["reps"]
    reps[1]["out_of_office"] = [{"start": "2026-11-23", "end": "2026-11-27"}]  # Ben is away all week
    loaded = sla_policy(reps=reps)
    decide(db, loaded, [hot_software_lead().raw(MORNING)], MORNING)
    [first] = _latest(db).values()
    assert first.owner == "ana"
    scan = context(db, loaded, Clock(MORNING + timedelta(minutes=46)))
    run_sla_scan(scan)  # Ana never touched it: re-routed without her, to nobody
    rerouted = _latest(db)[first.lead_id]
    assert (rerouted.cause, rerouted.owner, rerouted.contract["route"]["method"]) == (
        "reroute",
        "unassigned",
        "fallback_queue",
    )

    assert _unpark(db, loaded, MORNING + timedelta(minutes=47)) == {"decided": 0, "to_a_rep": 0}
    assert _latest(db)[first.lead_id].pk == rerouted.pk


def test_given_the_only_rep_with_room_is_deactivated_in_the_crm_when_unparking_then_nothing_is_decided_again(
    db: Database,
) -> None:
    loaded = _day_shift_policy()
    reps = policy_dict()["reps"]
    decide(db, loaded, [hot_software_lead().raw(TUESDAY_NIGHT)], TUESDAY_NIGHT)
    with db.transaction() as s:  # Ana left (her Salesforce user is deactivated); Ben is off all week
        s.add(Owner(source="salesforce", crm_id=reps[0]["crm"]["salesforce"], kind="user", active=False))
    away = _day_shift_policy(away=("ben",))

    assert _unpark(db, away, MORNING) == {"decided": 0, "to_a_rep": 0}
    assert _unpark(db, loaded, MORNING) == {"decided": 1, "to_a_rep": 1}
    assert _latest(db)["00Q5e00000H0001"].owner == "ben"
