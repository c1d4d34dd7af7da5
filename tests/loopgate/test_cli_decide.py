"""``loopgate decide`` as a user runs it: JSONL in, one decision per line out, in order."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from core.engine import DecisionEngine, LeadContext
from core.leads import normalize_account, normalize_lead
from core.model import Account, Decision, Evidence, NextBestAction, Trigger
from core.routing import InMemoryRotation
from loopgate.cli.decide import _CHUNK, DecisionWriter, _encode, decision_json
from loopgate.wiring import read_policy
from tests.loopgate.cli_runner import ROOT, run_cli

POLICY = str(ROOT / "examples" / "policy.yaml")
LEADS = ROOT / "examples" / "leads.jsonl"
ACCOUNTS = str(ROOT / "examples" / "accounts.jsonl")
NOW = "2026-11-20T15:00:00Z"


def test_given_the_example_leads_when_decided_then_one_decision_per_line_in_order() -> None:
    result = run_cli("decide", "--policy", POLICY, "--leads", str(LEADS), "--accounts", ACCOUNTS, "--now", NOW)
    assert result.code == 0, result.err
    decisions = [json.loads(line) for line in result.out.splitlines()]
    ids = [json.loads(line)["id"] for line in LEADS.read_text().splitlines()]
    assert [d["lead_id"] for d in decisions] == ids
    assert {d["action"] for d in decisions} == {"auto", "review", "suppress"}
    assert all(d["policy_version"] == decisions[0]["policy_version"] for d in decisions)


def test_given_malformed_lines_when_decided_then_each_is_reported_with_its_line_and_the_rest_decided(
    tmp_path: Path,
) -> None:
    leads = tmp_path / "leads.jsonl"
    leads.write_text('{"id": "a"}\nnot json\n\n[1, 2]\n{"name": "no id"}\n{"id": "b", "employees": "lots"}\n')
    result = run_cli("decide", "--policy", POLICY, "--leads", str(leads), "--now", NOW)
    assert result.code == 1
    assert [json.loads(line)["lead_id"] for line in result.out.splitlines()] == ["a", "b"]
    err = result.err.splitlines()
    assert err[0].startswith(f"{leads}:2: invalid JSON")
    assert err[1] == f"{leads}:4: a lead must be a JSON object, not list; line skipped"
    assert err[2] == f"{leads}:5: the lead has no 'id' (text or number); line skipped"
    assert err[-1] == "3 lines skipped"


def test_given_stdin_and_an_out_file_when_decided_then_both_work(tmp_path: Path) -> None:
    out = tmp_path / "decisions.jsonl"
    result = run_cli(
        "decide", "--policy", POLICY, "--leads", "-", "--out", str(out), "--now", NOW, stdin='{"id": "x"}\n'
    )
    assert result.code == 0, result.err
    assert json.loads(out.read_text())["lead_id"] == "x"


def test_given_store_when_run_twice_then_the_second_run_decides_nothing_new_and_prints_the_same(tmp_path: Path) -> None:
    env = {"LOOPGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'lg.db'}", "LOOPGATE_POLICY": POLICY}
    assert run_cli("db", "upgrade", env=env).code == 0
    first = run_cli("decide", "--leads", str(LEADS), "--accounts", ACCOUNTS, "--now", NOW, "--store", env=env)
    second = run_cli(
        "decide", "--leads", str(LEADS), "--accounts", ACCOUNTS, "--now", "2026-11-20T16:00:00Z", "--store", env=env
    )
    assert first.code == 0 and second.code == 0, (first.err, second.err)
    assert first.out == second.out
    decisions = {d["lead_id"]: d for d in map(json.loads, first.out.splitlines())}
    # with the store, lead 1's HubSpot twin (owned by Ben) is seen: one escalation for the pair
    twin = [t for t in decisions["00Q5e00000A0001"]["triggers"] if t["code"] == "duplicate_ownership"]
    assert twin == [
        {"code": "duplicate_ownership", "detail": "also in hubspot (108) owned by Ben Okafor", "hard": True}
    ]
    assert decisions["108"]["triggers"] == []
    verify = run_cli("audit", "verify", env=env)
    assert verify.code == 0 and "intact: 25 events" in verify.out  # the policy version + 24 decisions


def test_given_more_leads_than_a_chunk_with_bad_lines_between_when_decided_then_the_output_is_lead_by_lead(
    tmp_path: Path,
) -> None:
    # 3 chunks and a bit, a skipped line in each: the rotation must see the leads in input order
    examples = LEADS.read_text().splitlines()
    lines = [examples[i % len(examples)].replace('"id": "', f'"id": "{i}-', 1) for i in range(3 * _CHUNK + 5)]
    for at in (1, _CHUNK, 2 * _CHUNK + 7):
        lines[at] = "not json"
    leads = tmp_path / "leads.jsonl"
    leads.write_text("\n".join(lines) + "\n")
    result = run_cli("decide", "--policy", POLICY, "--leads", str(leads), "--accounts", ACCOUNTS, "--now", NOW)
    assert result.code == 1
    assert result.err.splitlines()[-1] == "3 lines skipped"
    one_by_one = _decide_one_by_one([json.loads(line) for line in lines if line != "not json"])
    assert result.out.splitlines() == [decision_json(d) for d in one_by_one]


def _decide_one_by_one(raws: list[dict[str, Any]]) -> list[Decision]:
    engine = DecisionEngine(read_policy(Path(POLICY)))
    directory: dict[str, list[Account]] = {}
    for line in Path(ACCOUNTS).read_text().splitlines():
        account = normalize_account(json.loads(line))
        directory.setdefault(account.domain or "", []).append(account)
    rotation, at = InMemoryRotation(), datetime(2026, 11, 20, 15, tzinfo=UTC)
    out = []
    for raw in raws:
        lead = normalize_lead(raw)
        domain = engine.account_domain(lead)
        account = directory[domain][0] if domain in directory else None
        out.append(engine.decide(lead, LeadContext(account=account), rotation=rotation, now=at))
    return out


def test_given_no_policy_when_deciding_then_the_missing_setting_is_named() -> None:
    result = run_cli("decide", "--leads", str(LEADS))
    assert result.code == 2
    assert result.err.strip() == "error: LOOPGATE_POLICY is not set: point it at your policy.yaml (or pass --policy)"


@cache
def _decisions_of_examples() -> tuple[Decision, ...]:
    return tuple(_decide_one_by_one([json.loads(line) for line in LEADS.read_text().splitlines()]))


def test_given_the_example_decisions_when_written_directly_then_the_text_is_the_encoded_contract() -> None:
    decisions = _decisions_of_examples()
    assert {d.action for d in decisions} == {"auto", "review", "suppress"}
    for decision in decisions:
        assert decision_json(decision) == _encode(decision.to_dict())


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@given(
    value=_json_values,
    text=st.text(),
    owner=st.none() | st.text(),
    raw=st.none() | st.floats(0, 1),
    hard=st.booleans(),
)
def test_given_any_values_when_a_decision_is_written_directly_then_the_text_is_the_encoded_contract(
    value: Any, text: str, owner: str | None, raw: float | None, hard: bool
) -> None:
    base = _decisions_of_examples()[0]
    decision = replace(
        base,
        owner=owner,
        suppressed_by=owner,
        explanation=text,
        route=base.route._replace(detail=text, team=owner),
        score=base.score._replace(raw_confidence=raw, band=text),
        triggers=(Trigger("custom", text, hard), *base.triggers),
        evidence=(Evidence(text, value, 3, text), Evidence("n", value, -2, '\x00\n"\\é')),
        next_best_action=NextBestAction(text, text),
    )
    assert decision_json(decision) == _encode(decision.to_dict())


def test_given_equal_but_differently_typed_evidence_values_when_one_writer_writes_them_then_each_keeps_its_own_text() -> (
    None
):
    base = _decisions_of_examples()[0]
    writer = DecisionWriter()
    for value in [1, True, 1.0, "1", 1, True, 1.0, 0, False, 0.0, -0.0, "x", "x", 2**70, float(2**70)]:
        decision = replace(base, evidence=(Evidence("employees", value, 20, "fit.employees"), *base.evidence))
        assert writer(decision) == _encode(decision.to_dict()), value


def test_given_equal_but_differently_typed_triggers_and_scores_when_one_writer_writes_them_then_each_keeps_its_own_text() -> (
    None
):
    base = _decisions_of_examples()[0]
    writer = DecisionWriter()
    for hard in [True, 1, True, False, 0, False]:
        decision = replace(base, triggers=(Trigger("vip", "C-level", hard), *base.triggers))
        assert writer(decision) == _encode(decision.to_dict()), hard
    for value in [0.5, 1.0, 1, 1.0, True, 0.0, -0.0, 0, 0.0, False, None, 0.5]:
        for score in (base.score._replace(confidence=value), base.score._replace(raw_confidence=value)):
            decision = replace(base, score=score)
            assert writer(decision) == _encode(decision.to_dict()), value
