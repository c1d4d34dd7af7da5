"""The rotation's locks under concurrent deciders: slots once each, and no deadlock."""

from __future__ import annotations

import contextlib
import threading
from datetime import datetime
from typing import Any

import pytest

from core.engine import DecisionEngine
from core.leads import normalize_lead
from core.policy import LoadedPolicy
from core.store import rotation as rotation_module
from core.store.db import Database
from core.store.decide import decide_pending
from core.store.records import LeadRow, upsert_leads
from tests.builders import make_policy, policy_dict


def _two_team_policy() -> LoadedPolicy:
    data = policy_dict()
    data["reps"].append({"id": "dana", "name": "Dana", "slack_user": "U0DANA", "team": "ent", "timezone": "UTC"})
    data["teams"].append({"id": "ent", "manager": "lee", "channel": "C0ENT"})
    routing = [
        {"name": "emea", "when": {"country": "DE"}, "to": {"team": "ent"}},
        {"name": "default", "to": {"team": "mm"}},
    ]
    return make_policy(reps=data["reps"], teams=data["teams"], routing=routing)


def _leads(db: Database, now: datetime, *specs: tuple[str, str]) -> list[int]:
    with db.transaction() as s:
        pks = upsert_leads(
            s, [LeadRow(normalize_lead({"id": i, "source": "salesforce", "country": c})) for i, c in specs], now=now
        )
    return [pks[("salesforce", i)] for i, _ in specs]


@pytest.mark.parametrize("teams_known", [False, True], ids=["first-day", "rows-exist"])
def test_given_two_deciders_reaching_two_teams_in_opposite_order_when_deciding_then_neither_deadlocks(
    db: Database, now: datetime, monkeypatch: pytest.MonkeyPatch, teams_known: bool
) -> None:
    # sync:salesforce, sync:hubspot, unpark and the SLA scan decide side by side; each locked a
    # team's rotation row when its batch first routed there, so mm-then-ent against
    # ent-then-mm deadlocked on PostgreSQL and one batch was rolled back
    if not db.is_postgres:
        pytest.skip("SQLite has one writer: no second decider to deadlock with")
    engine = DecisionEngine(_two_team_policy())
    a = _leads(db, now, ("A1", "US"), ("A2", "DE"))  # mm first, then ent
    b = _leads(db, now, ("B1", "DE"), ("B2", "US"))  # ent first, then mm
    if teams_known:
        with db.transaction() as s:
            decide_pending(s, engine, now=now, lead_pks=_leads(db, now, ("P1", "US"), ("P2", "DE")), shadow=False)

    barrier = threading.Barrier(2, timeout=3)
    original = rotation_module.StoreRotation.assign

    def assign(self: Any, team: str, *args: Any, **kw: Any) -> Any:
        first = not self._teams
        chosen = original(self, team, *args, **kw)
        if first:  # both hold their first team before either asks for its second
            # broken: the other waits for our lock, which is the order we want
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
        return chosen

    monkeypatch.setattr(rotation_module.StoreRotation, "assign", assign)
    errors: list[BaseException] = []

    def worker(lead_pks: list[int]) -> None:
        try:
            with db.transaction() as s:
                decide_pending(s, engine, now=now, lead_pks=lead_pks, shadow=False)
        except BaseException as exc:  # any failure is the finding
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(pks,)) for pks in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [], [f"{type(e).__name__}: {str(e).splitlines()[0]}" for e in errors]
