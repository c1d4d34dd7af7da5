"""Deciding stored leads: once per change, effects and audit in the same transaction,
rotation slots handed out once even by concurrent deciders."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select

from core.engine import DecisionEngine
from core.leads import normalize_account, normalize_lead
from core.policy import LoadedPolicy
from core.review import ReviewChange, ReviewRules
from core.store import audit_log
from core.store.db import Database
from core.store.decide import ChampionChanged, DecideRequest, decide_leads, decide_pending
from core.store.models import AuditEvent, Decision, Lead, OutboxRow, RotationAssignment, TrustState
from core.store.policies import publish, rollback
from core.store.records import LeadRow, upsert_accounts, upsert_leads
from core.store.reviews import ReviewRequest, record_review
from tests.builders import LeadBuilder, decide, make_policy
from tests.store.learning_builders import wait_for_a_lock_waiter


def _put(db: Database, now: datetime, *raws: dict[str, Any]) -> dict[tuple[str, str], int]:
    with db.transaction() as s:
        return upsert_leads(s, [LeadRow(normalize_lead({"source": "salesforce", **raw})) for raw in raws], now=now)


def _decide(db: Database, engine: DecisionEngine, now: datetime) -> list[Any]:
    with db.transaction() as s:
        return decide_pending(s, engine, now=now)


def _effects(db: Database) -> Counter[str]:
    with db.sessions() as s:
        return Counter(s.execute(select(OutboxRow.kind)).scalars())


def test_given_new_leads_when_decided_then_decisions_effects_and_audit_land_together(
    db: Database, now: datetime
) -> None:
    engine = DecisionEngine(make_policy(escalation={"high_deal_size": {"gte": 1000}}))
    _put(db, now, {"id": "A", "email": "a@x.co"}, {"id": "B", "email": "b@y.co", "estimated_deal_size": 5000})
    decided = _decide(db, engine, now)
    assert sorted((d.decision.lead_id, d.decision.action) for d in decided) == [("A", "auto"), ("B", "review")]
    assert _effects(db) == {"crm.writeback": 2, "slack.escalation": 1, "slack.assignment": 1}
    checked, problem = audit_log.verify(db)
    assert problem is None and checked == 2
    with db.sessions() as s:
        row = s.execute(select(Decision).where(Decision.lead_id == "B")).scalar_one()
    assert (row.state, row.final_owner, row.cause, row.seq) == ("pending_review", None, "new", 1)
    assert row.contract["triggers"][0]["code"] == "high_deal_size"


def test_given_a_decision_when_stored_then_its_audit_record_carries_the_digest_of_the_stored_contract(
    db: Database, now: datetime
) -> None:
    engine = DecisionEngine(make_policy(escalation={"high_deal_size": {"gte": 1000}}))
    _put(db, now, {"id": "A", "email": "a@x.co", "company": "Zürich AG", "estimated_deal_size": 5000})
    decided = _decide(db, engine, now)
    with db.sessions() as s:
        contract = s.execute(select(Decision.contract)).scalar_one()
        bodies = s.execute(select(AuditEvent.body).where(AuditEvent.kind == "decision.made")).scalars().all()
    assert contract == decided[0].decision.to_dict()
    canonical = json.dumps(contract, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert [json.loads(b)["data"]["contract_sha256"] for b in bodies] == [
        hashlib.sha256(canonical.encode()).hexdigest()
    ]


def test_given_a_lead_changed_back_to_content_decided_before_when_decided_then_decided_again_once(
    db: Database, now: datetime
) -> None:
    engine = DecisionEngine(make_policy(escalation={"high_deal_size": {"gte": 1000}}))
    big, small = {"id": "A", "estimated_deal_size": 5000}, {"id": "A", "estimated_deal_size": 10}
    _put(db, now, big)
    assert [d.decision.action for d in _decide(db, engine, now)] == ["review"]
    _put(db, now + timedelta(minutes=1), small)
    assert [d.decision.action for d in _decide(db, engine, now)] == ["auto"]
    _put(db, now + timedelta(minutes=2), big)  # back to what was decided first
    assert [d.decision.action for d in _decide(db, engine, now)] == ["review"]  # about the lead as it is
    _put(db, now + timedelta(minutes=3), big)  # the same sync again
    assert _decide(db, engine, now) == []  # decided once, not on every sync

    with db.sessions() as s:
        lead = s.execute(select(Lead).where(Lead.crm_id == "A")).scalar_one()
        keys = list(s.execute(select(Decision.dedupe_key).order_by(Decision.seq)).scalars())
    assert lead.decided_hash == lead.content_hash
    assert keys == [f"content:{lead.content_hash}", keys[1], f"content:{lead.content_hash}:after:2"]
    _put(db, now + timedelta(minutes=4), small)  # and round the loop once more
    assert [d.decision.action for d in _decide(db, engine, now)] == ["auto"]


def test_given_decided_leads_when_decided_again_then_nothing_is_decided_twice(db: Database, now: datetime) -> None:
    engine = DecisionEngine(make_policy())
    _put(db, now, {"id": "A"}, {"id": "B"})
    assert len(_decide(db, engine, now)) == 2
    assert _decide(db, engine, now) == []
    _put(db, now + timedelta(minutes=5), {"id": "A"}, {"id": "B"})  # synced again, unchanged
    assert _decide(db, engine, now) == []


def test_given_a_changed_lead_with_a_pending_review_when_decided_then_the_old_review_is_superseded(
    db: Database, now: datetime
) -> None:
    engine = DecisionEngine(make_policy(escalation={"high_deal_size": {"gte": 1000}}))
    _put(db, now, {"id": "A", "estimated_deal_size": 5000})
    first = _decide(db, engine, now)[0]
    _put(db, now, {"id": "A", "estimated_deal_size": 9000, "title": "CFO"})
    second = _decide(db, engine, now + timedelta(hours=1))[0]
    assert (second.cause, second.decision.action) == ("changed", "review")
    with db.sessions() as s:
        states = {pk: state for pk, state in s.execute(select(Decision.pk, Decision.state))}
        updates = s.execute(select(OutboxRow.payload).where(OutboxRow.kind == "slack.decision_update")).scalars().all()
    assert states == {first.decision_pk: "superseded", second.decision_pk: "pending_review"}
    assert updates == [{"decision_pk": first.decision_pk}]


def test_given_the_same_person_in_both_crms_when_decided_then_duplicate_ownership_escalates(
    db: Database, now: datetime, example_policy: LoadedPolicy
) -> None:
    engine = DecisionEngine(example_policy)
    with db.transaction() as s:
        upsert_leads(
            s,
            [
                LeadRow(
                    normalize_lead(
                        {
                            "id": "00Q1",
                            "source": "salesforce",
                            "email": "maya@brightloop.io",
                            "owner_id": "0055e000001AAAA",
                        }
                    )
                ),
                LeadRow(
                    normalize_lead({"id": "108", "source": "hubspot", "email": "maya@brightloop.io", "owner_id": "102"})
                ),
            ],
            now=now,
        )
    by_id = {d.decision.lead_id: d.decision for d in _decide(db, engine, now)}
    assert by_id["108"].owner == "ben"  # keeps its HubSpot owner…
    detail = next(t.detail for t in by_id["108"].triggers if t.code == "duplicate_ownership")
    assert detail == "also in salesforce (00Q1) owned by Ana Ruiz"  # …but a person must settle it
    assert by_id["108"].action == "review"


def _twin(lead_id: str, source: str, **values: Any) -> dict[str, Any]:
    """Sam at BrightLoop, a mid-market lead nobody owns yet in the CRM (example policy)."""
    return {"id": lead_id, "source": source, "email": "sam@brightloop.io", "company": "BrightLoop",
            "title": "Engineer", "employees": 300, "country": "US", "industry": "Software", **values}  # fmt: skip


def _owners_and_twin_notes(decided: list[Any]) -> dict[str, tuple[str | None, str | None]]:
    return {
        d.decision.lead_id: (
            d.decision.owner,
            next((t.detail for t in d.decision.triggers if t.code == "duplicate_ownership"), None),
        )
        for d in decided
    }


def test_given_both_crm_records_of_one_person_in_one_batch_when_decided_then_the_second_sees_the_first_owner(
    db: Database, now: datetime, example_policy: LoadedPolicy
) -> None:
    engine = DecisionEngine(example_policy)
    with db.transaction() as s:
        pks = upsert_leads(
            s,
            [LeadRow(normalize_lead(_twin("00Q1", "salesforce"))), LeadRow(normalize_lead(_twin("77", "hubspot")))],
            now=now,
        )
    decided = _decide(db, engine, now)
    assert [d.lead_pk for d in decided] == [pks[("salesforce", "00Q1")], pks[("hubspot", "77")]]
    # the rotation gives them to two reps; the second is decided knowing the first's new owner
    assert _owners_and_twin_notes(decided) == {
        "00Q1": ("ana", None),
        "77": ("ben", "also in salesforce (00Q1) owned by Ana Ruiz"),
    }
    assert decided[1].decision.action == "review"


def _the_hubspot_twin_arrives(
    db: Database, engine: DecisionEngine, now: datetime
) -> dict[str, tuple[str | None, str | None]]:
    """Store the HubSpot twin "77" a minute later and decide it: its owner and twin notes."""
    _put(db, now, _twin("77", "hubspot"))
    return _owners_and_twin_notes(_decide(db, engine, now + timedelta(minutes=1)))


def test_given_a_twin_decided_before_its_write_back_landed_when_the_other_record_arrives_then_duplicate_ownership(
    db: Database, now: datetime, example_policy: LoadedPolicy
) -> None:
    engine = DecisionEngine(example_policy)
    _put(db, now, _twin("00Q1", "salesforce"))
    assert _owners_and_twin_notes(_decide(db, engine, now)) == {"00Q1": ("ana", None)}
    # the Salesforce record's owner field is still empty
    assert _the_hubspot_twin_arrives(db, engine, now) == {"77": ("ben", "also in salesforce (00Q1) owned by Ana Ruiz")}


def test_given_a_reviewer_gave_the_twin_to_someone_else_when_the_other_record_arrives_then_that_owner_counts(
    db: Database, now: datetime, example_policy: LoadedPolicy
) -> None:
    engine = DecisionEngine(example_policy)
    _put(db, now, _twin("00Q1", "salesforce", estimated_deal_size=250000))  # a hard trigger: reviewed
    (first,) = _decide(db, engine, now)
    assert (first.decision.action, first.decision.owner) == ("review", "ana")
    rules = ReviewRules(example_policy.policy)
    with db.transaction() as s:
        change = ReviewChange("reassign", reason_code="territory_exception", owner="cy")
        record_review(s, rules, ReviewRequest(first.decision_pk, "U01ANA", "ana", change), now=now)
    assert _the_hubspot_twin_arrives(db, engine, now) == {"77": ("ben", "also in salesforce (00Q1) owned by Cy Park")}


def test_given_a_person_changed_the_twins_crm_owner_after_its_decision_when_the_other_arrives_then_the_crm_counts(
    db: Database, now: datetime, example_policy: LoadedPolicy
) -> None:
    engine = DecisionEngine(example_policy)
    _put(db, now, _twin("00Q1", "salesforce"))
    assert _owners_and_twin_notes(_decide(db, engine, now)) == {"00Q1": ("ana", None)}
    pks = _put(db, now, _twin("00Q1", "salesforce", owner_id="0055e000001BBBB"), _twin("77", "hubspot"))  # Ben's now
    with db.transaction() as s:
        decided = decide_pending(s, engine, now=now + timedelta(minutes=1), lead_pks=[pks[("hubspot", "77")]])
    # Ben took the Salesforce record after loopgate gave it to Ana: he owns both, nothing to settle
    assert _owners_and_twin_notes(decided) == {"77": ("ben", None)}


def test_given_an_account_in_the_store_when_a_lead_matches_its_domain_then_the_account_decides_routing(
    db: Database, now: datetime, example_policy: LoadedPolicy
) -> None:
    with db.transaction() as s:
        upsert_accounts(
            s,
            [
                normalize_account(
                    {
                        "id": "001G",
                        "source": "salesforce",
                        "name": "Globex",
                        "domain": "globex.com",
                        "owner_id": "0055e000001DDDD",
                        "strategic": True,
                    }
                )
            ],
            now=now,
        )
    _put(db, now, {"id": "L", "email": "p@globex.com", "company": "Globex", "country": "US"})
    d = _decide(db, DecisionEngine(example_policy), now)[0].decision
    assert (d.owner, d.route.rule) == ("dana", "named_accounts")
    assert [t.code for t in d.triggers] == ["strategic_account"]


def test_given_leads_from_a_company_subdomain_or_website_when_decided_then_they_find_the_account_in_one_query(
    db: Database, now: datetime, example_policy: LoadedPolicy
) -> None:
    accounts = [
        {"id": "001G", "name": "Globex", "domain": "globex.com", "owner_id": "0055e000001DDDD", "strategic": True},
        {"id": "001I", "name": "Initech", "domain": "initech.com", "owner_id": "0055e000001BBBB", "is_customer": True},
        # junk a CRM may hold: a registry suffix and a mail provider are nobody's company
        {"id": "001U", "name": "UK", "domain": "co.uk", "owner_id": "0055e000001DDDD", "strategic": True},
        {"id": "001M", "name": "Mail", "domain": "gmail.com", "owner_id": "0055e000001DDDD", "strategic": True},
    ]
    with db.transaction() as s:
        upsert_accounts(s, [normalize_account({"source": "salesforce", **a}) for a in accounts], now=now)
    base = {"company": "Globex", "country": "US"}
    _put(
        db,
        now,
        {"id": "SUB", "email": "p.novak@eu.globex.com", **base},
        {"id": "WEB", "email": "k@initech-labs.com", "domain": "https://www.initech.com", **base},
        {"id": "UK", "email": "a@smallshop.co.uk", **base},
        {"id": "FREE", "email": "bob@eu.gmail.com", **base},
    )
    selects: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM accounts" in statement:
            selects.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        by_id = {d.decision.lead_id: d.decision for d in _decide(db, DecisionEngine(example_policy), now)}
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert (by_id["SUB"].owner, by_id["SUB"].route.rule) == ("dana", "named_accounts")
    assert (by_id["WEB"].owner, by_id["WEB"].route.rule) == ("ben", "existing_customers")
    assert by_id["UK"].route.rule == by_id["FREE"].route.rule == "default"
    assert len(selects) == 1  # every candidate domain of the batch in one query


def test_given_stored_trust_levels_when_deciding_then_they_apply(db: Database, now: datetime) -> None:
    engine = DecisionEngine(make_policy(trust={"default_level": 3}))
    with db.transaction() as s:
        s.add(TrustState(segment="smb", level=1, pinned=True, since=now, reason="test"))
    _put(db, now, {"id": "A", "employees": 10})
    d = _decide(db, engine, now)[0].decision
    assert (d.segment, d.trust_level, d.action) == ("smb", 1, "review")


def test_given_a_reroute_key_when_requested_twice_then_decided_once_without_the_late_owner(
    db: Database, now: datetime
) -> None:
    engine = DecisionEngine(make_policy())
    _put(db, now, {"id": "A"})
    first = _decide(db, engine, now)[0]
    with db.transaction() as s:
        lead = s.get(Lead, first.lead_pk)
        assert lead is not None
        request = DecideRequest(
            lead, "reroute", f"reroute:{first.decision_pk}:breach", frozenset({first.decision.owner or ""})
        )
        again = decide_leads(s, engine, [request], now=now)
        twice = decide_leads(s, engine, [request], now=now)
    assert len(again) == 1 and twice == []
    assert again[0].decision.owner not in (None, first.decision.owner)


def test_given_a_lead_converted_since_its_decision_when_changed_or_rerouted_then_it_is_not_decided_again(
    db: Database, now: datetime
) -> None:
    engine = DecisionEngine(make_policy())
    _put(db, now, {"id": "A"})
    first = _decide(db, engine, now)[0]
    with db.transaction() as s:  # the sync stores the conversion along with a new title
        upsert_leads(s, [LeadRow(normalize_lead({"source": "salesforce", "id": "A", "title": "CTO"}),
                                 {"converted": True})], now=now)  # fmt: skip

    assert _decide(db, engine, now) == []
    with db.transaction() as s:
        lead = s.get(Lead, first.lead_pk)
        assert lead is not None
        request = DecideRequest(lead, "reroute", f"reroute:{first.decision_pk}:breach", frozenset())
        assert decide_leads(s, engine, [request], now=now) == []
    assert _effects(db) == {"crm.writeback": 1, "slack.assignment": 1}  # the first decision's, no more


def test_given_restarts_between_batches_when_routing_then_the_rotation_continues_where_it_stopped(
    db: Database, now: datetime
) -> None:
    engine = DecisionEngine(make_policy())
    owners = []
    for batch in range(3):  # three "processes", each a fresh engine and session
        _put(db, now, *[{"id": f"L{batch}-{i}"} for i in range(3)])
        owners += [
            d.decision.owner for d in sorted(_decide(db, DecisionEngine(engine.loaded), now), key=lambda d: d.lead_pk)
        ]
    assert Counter(owners) == {"ana": 6, "ben": 3}
    with db.sessions() as s:
        seqs = s.execute(select(RotationAssignment.seq).order_by(RotationAssignment.seq)).scalars().all()
    assert seqs == list(range(1, 10))


def test_given_two_concurrent_deciders_when_routing_one_team_then_no_slot_is_handed_out_twice(
    db: Database, now: datetime
) -> None:
    engine = DecisionEngine(make_policy())
    _put(db, now, *[{"id": f"L{i}"} for i in range(60)])
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            while True:
                with db.transaction() as s:
                    if not decide_pending(s, engine, now=now, limit=5):
                        return
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.sessions() as s:
        slots = s.execute(select(RotationAssignment.seq)).scalars().all()
        per_lead = s.execute(select(Decision.lead_pk, func.count()).group_by(Decision.lead_pk)).all()
        reps = Counter(s.execute(select(Decision.owner)).scalars())
    assert sorted(slots) == list(range(1, 61))
    assert all(n == 1 for _, n in per_lead) and len(per_lead) == 60
    assert reps == {"ana": 40, "ben": 20}


def test_given_crm_text_longer_than_its_column_when_stored_then_clipped_and_decided_not_refused(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    """PostgreSQL refuses a value longer than its VARCHAR: one junk record failed its whole sync
    page on every run (SQLite does not check lengths, so only the PostgreSQL run showed it)."""
    raw = LeadBuilder("00Q5e00000LONG1").raw(now) | {"country": "<!channel>" * 700, "email": "a" * 400 + "@x.com"}
    pk = decide(db, example_policy, [raw], now)["00Q5e00000LONG1"]
    with db.sessions() as s:
        lead = s.execute(select(Lead).where(Lead.crm_id == "00Q5e00000LONG1")).scalar_one()
        assert s.get(Decision, pk) is not None
    assert len(lead.country or "") <= 64 and len(lead.email or "") <= 320


def test_given_nul_characters_in_crm_text_when_stored_then_dropped_and_decided_not_refused(
    db: Database, example_policy: LoadedPolicy, now: datetime
) -> None:
    """PostgreSQL stores no NUL in text or JSON: a CRM field holding one failed the sync page."""
    raw = LeadBuilder("00Q5e00000NUL01").raw(now) | {"first_name": "\x00", "title": "VP\x00 Sales",
                                                      "fields": {"lead_status": "new\x00"}}  # fmt: skip
    pk = decide(db, example_policy, [raw], now)["00Q5e00000NUL01"]
    with db.sessions() as s:
        lead = s.execute(select(Lead).where(Lead.crm_id == "00Q5e00000NUL01")).scalar_one()
        assert s.get(Decision, pk) is not None
    assert lead.first_name is None and lead.title == "VP Sales"


def _decisions(db: Database) -> int:
    with db.sessions() as s:
        return s.execute(select(func.count()).select_from(Decision)).scalar_one()


def _rolled_back(db: Database, now: datetime) -> tuple[DecisionEngine, LoadedPolicy]:
    """A sync's engine built for the champion ``bad``, then a rollback to ``good``, committed."""
    good = make_policy()
    bad = make_policy(trust={"default_level": 4})
    with db.transaction() as s:
        publish(s, good, now=now, by="t")
        publish(s, bad, now=now, by="t")
    engine = DecisionEngine(bad)
    with db.transaction() as s:
        rollback(s, now=now, by="admin")
    return engine, good


def test_given_a_rollback_since_the_engine_was_built_when_a_batch_follows_the_champion_then_nothing_is_decided(
    db: Database, now: datetime
) -> None:
    stale, good = _rolled_back(db, now)
    _put(db, now, {"id": "A", "email": "a@x.co"})

    with pytest.raises(ChampionChanged) as refused, db.transaction() as s:
        decide_pending(s, stale, now=now, follow_champion=True)

    assert (refused.value.engine_version, refused.value.champion) == (stale.version, good.version)
    assert _decisions(db) == 0
    with db.transaction() as s:  # the lead waited: the rebuilt engine decides it
        [decided] = decide_pending(s, DecisionEngine(good), now=now, follow_champion=True)
    assert decided.decision.policy_version == good.version
    with db.transaction() as s:  # an engine used as given (an explicit --policy file) is not checked
        assert decide_pending(s, stale, now=now) == []


def test_given_a_rollback_in_flight_on_postgresql_when_a_batch_starts_then_it_waits_and_sees_the_new_champion(
    db: Database, now: datetime
) -> None:
    if not db.is_postgres:
        pytest.skip("SQLite runs one write transaction at a time: a batch cannot start beside a rollback")
    good, bad = make_policy(), make_policy(trust={"default_level": 4})
    with db.transaction() as s:
        publish(s, good, now=now, by="t")
        publish(s, bad, now=now, by="t")
    _put(db, now, {"id": "A", "email": "a@x.co"})
    batch: list[object] = []

    def decide_a_batch() -> None:
        try:
            with db.transaction() as s:
                batch.append(decide_pending(s, DecisionEngine(bad), now=now, follow_champion=True))
        except ChampionChanged as exc:
            batch.append(exc)

    with db.transaction() as s:
        rollback(s, now=now, by="admin")
        other = threading.Thread(target=decide_a_batch)
        other.start()
        wait_for_a_lock_waiter(db)  # the batch waits for the rollback to commit
    other.join()

    assert len(batch) == 1 and isinstance(batch[0], ChampionChanged), batch
    assert _decisions(db) == 0
