"""Builders for tests: policies and leads (small, explicit, overridable), and stored decisions
made by the real engine — leads in, ``decide_pending`` out.

Tests never hand-write decision rows; they describe leads (from ``examples/leads.jsonl`` or a
:class:`LeadBuilder`) and let the engine decide them, so what the bot shows is what the
engine would really produce.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import yaml
from sqlalchemy import select

from core.engine import DecisionEngine
from core.leads import normalize_account, normalize_lead
from core.model import Lead
from core.policy import LoadedPolicy, parse_policy
from core.store.db import Database
from core.store.decide import decide_pending
from core.store.models import Decision
from core.store.records import LeadRow, upsert_accounts, upsert_leads
from tests.conftest import ROOT

EXAMPLE_LEADS = ROOT / "examples" / "leads.jsonl"
EXAMPLE_ACCOUNTS = ROOT / "examples" / "accounts.jsonl"


def example_leads() -> dict[str, dict[str, Any]]:
    """The example leads by id (raw JSON objects)."""
    rows = [json.loads(line) for line in EXAMPLE_LEADS.read_text().splitlines() if line.strip()]
    return {row["id"]: row for row in rows}


@dataclass
class LeadBuilder:
    """A lead that lands in the mid-market team's review queue unless told otherwise."""

    id: str = "00Q5e00000Z0001"
    source: str = "salesforce"
    values: dict[str, Any] = field(default_factory=dict)

    def raw(self, now: datetime) -> dict[str, Any]:
        base: dict[str, Any] = {
            "id": self.id,
            "source": self.source,
            "email": f"{self.id.lower()}@firstcoastbank.com",
            "first_name": "Lena",
            "last_name": "Moreau",
            "title": "Head of Digital",
            "company": "First Coast Bank",
            "industry": "Banking",  # regulated → a hard trigger: always reviewed
            "employees": 1500,
            "country": "US",
            "lead_source": "web_demo_form",
            "created_at": (now - timedelta(hours=2)).isoformat(),
            "updated_at": (now - timedelta(hours=1)).isoformat(),
            "events": [{"type": "demo_request", "at": (now - timedelta(hours=1)).isoformat()}],
        }
        base.update(self.values)
        return base

    def with_(self, **values: Any) -> LeadBuilder:
        return LeadBuilder(self.id, self.source, {**self.values, **values})


def decide(
    db: Database,
    policy: LoadedPolicy,
    leads: Iterable[dict[str, Any]],
    now: datetime,
    *,
    accounts: bool = True,
) -> dict[str, int]:
    """Upsert raw leads and decide them with the real engine; lead id → newest decision pk."""
    engine = DecisionEngine(policy)
    raw = list(leads)
    with db.transaction() as session:
        if accounts:
            upsert_accounts(
                session,
                [normalize_account(json.loads(line)) for line in EXAMPLE_ACCOUNTS.read_text().splitlines() if line],
                now=now,
            )
        pks = upsert_leads(session, [LeadRow(normalize_lead(r)) for r in raw], now=now)
        decide_pending(session, engine, now=now, lead_pks=pks.values(), limit=len(pks))
        out: dict[str, int] = {}
        for lead_id, pk in session.execute(
            select(Decision.lead_id, Decision.pk).where(Decision.lead_pk.in_(pks.values())).order_by(Decision.seq)
        ):
            out[lead_id] = pk
    return out


def decide_examples(
    db: Database, policy: LoadedPolicy, now: datetime, ids: Iterable[str] | None = None
) -> dict[str, int]:
    """Decide some (or all) example leads; lead id → decision pk."""
    leads = example_leads()
    chosen = [leads[i] for i in ids] if ids is not None else list(leads.values())
    return decide(db, policy, chosen, now)


# --- policies and leads -------------------------------------------------------------------

_BASE: dict[str, Any] = {
    "name": "test policy",
    "reason_codes": [{"code": "territory_exception", "label": "Territory exception"}],
    "reps": [
        {"id": "ana", "name": "Ana", "slack_user": "U0ANA", "team": "mm", "weight": 2, "timezone": "UTC",
         "crm": {"salesforce": "005000000000AAA", "hubspot": "1"}},
        {"id": "ben", "name": "Ben", "slack_user": "U0BEN", "team": "mm", "weight": 1, "timezone": "UTC",
         "crm": {"salesforce": "005000000000BBB", "hubspot": "2"}},
        {"id": "lee", "name": "Lee", "slack_user": "U0LEE", "roles": ["admin"], "timezone": "UTC"},
    ],
    "teams": [{"id": "mm", "manager": "lee", "channel": "C0MM"}],
    "queues": [{"id": "unassigned", "crm": {"salesforce": "00G000000000UNA"}}],
    "segments": {"enterprise": {"employees": {"gte": 1000}}, "smb": {"employees": {"lt": 1000}}},
    "scoring": {
        "fit": [{"signal": "employees", "gte": 100, "points": 30}, {"signal": "industry", "in": ["software"], "points": 20}],
        "intent": {"half_life_days": 10, "window_days": 60, "max_points": 50, "events": {"demo_request": 40, "webinar": 10}},
        "bands": {"hot": 70, "warm": 40},
    },
    "routing": [{"name": "default", "to": {"team": "mm"}}],
    "fallback_queue": "unassigned",
    "next_best_action": [{"code": "follow_up", "label": "Follow up with {name}"}],
    "trust": {"default_level": 3},
}  # fmt: skip


def policy_dict(**overrides: Any) -> dict[str, Any]:
    """The base test policy with top-level sections replaced (deep-copied)."""
    data = copy.deepcopy(_BASE)
    for key, value in overrides.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def make_policy(**overrides: Any) -> LoadedPolicy:
    return parse_policy(yaml.safe_dump(policy_dict(**overrides), sort_keys=False), "test-policy.yaml")


def make_lead(now: datetime | None = None, events: list[tuple[str, timedelta]] | None = None, **fields: Any) -> Lead:
    """A lead; ``events`` are (type, age) pairs relative to ``now``."""
    raw: dict[str, Any] = {"id": "L1", "source": "salesforce", **fields}
    if events:
        assert now is not None, "events need a now"
        raw["events"] = [{"type": kind, "at": (now - age).isoformat()} for kind, age in events]
    return normalize_lead(raw)
