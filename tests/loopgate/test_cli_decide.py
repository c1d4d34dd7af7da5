"""``loopgate decide`` as a user runs it: JSONL in, one decision per line out, in order."""

from __future__ import annotations

import gc
import io
import json
import os
import select
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select as sql_select

from core.engine import DecisionEngine, LeadContext
from core.leads import normalize_account, normalize_lead
from core.model import Account, Decision, Evidence, Lead, NextBestAction, Trigger
from core.routing import InMemoryRotation
from core.store.db import Database
from core.store.models import Decision as DecisionModel
from core.store.models import Lead as LeadModel
from loopgate.cli.decide import _CHUNK, DecisionWriter, _decide_pure, _encode, _lines, _parse, decision_json
from loopgate.wiring import read_policy
from tests.loopgate.cli_runner import ROOT, run_cli
from tests.loopgate.inprocess import InProcessCli

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


def test_given_a_lead_from_a_company_subdomain_when_decided_with_accounts_then_it_finds_the_account(
    tmp_path: Path,
) -> None:
    leads = tmp_path / "sub.jsonl"
    rows = [
        {"id": "S1", "email": "p.novak@eu.globex.com", "company": "Globex", "country": "US"},
        {"id": "S2", "email": "k@mail.initech.com", "company": "Initech", "country": "US"},
    ]
    leads.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = run_cli("decide", "--policy", POLICY, "--leads", str(leads), "--accounts", ACCOUNTS, "--now", NOW)
    assert result.code == 0, result.err
    routes = [(d["owner"], d["route"]["rule"]) for d in map(json.loads, result.out.splitlines())]
    assert routes == [("dana", "named_accounts"), ("ben", "existing_customers")]


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


@pytest.mark.parametrize("store", [False, True], ids=["pure", "store"])
def test_given_leads_arriving_one_at_a_time_on_stdin_when_decided_then_each_decision_comes_before_the_next_lead(
    tmp_path: Path, store: bool
) -> None:
    """A producer that waits for each decision (a script, ``tail -f``) gets it: batches end with
    what has arrived, and are flushed to a block-buffered pipe."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPGATE_") and k != "PYTHONUNBUFFERED"}
    env.update(LOOPGATE_POLICY=POLICY, LOOPGATE_DATABASE_URL=f"sqlite:///{tmp_path / 'lg.db'}")
    if store:
        assert run_cli("db", "upgrade", env=env).code == 0
    args = [sys.executable, "-m", "loopgate", "decide", "--leads", "-", "--now", NOW, *(["--store"] if store else [])]
    with subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=ROOT) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            for lead_id in ("a", "b", "c"):
                proc.stdin.write(json.dumps({"id": lead_id, "email": f"{lead_id}@acme.example"}).encode() + b"\n")
                proc.stdin.flush()
                ready, _, _ = select.select([proc.stdout], [], [], 60)
                assert ready, f"no decision for lead {lead_id} while its producer waits for one"
                assert json.loads(proc.stdout.readline())["lead_id"] == lead_id
            proc.stdin.close()
            assert proc.wait(60) == 0
        finally:
            proc.kill()


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
    # with the store, lead 1 and its HubSpot twin 108 (Maya) see each other: lead 1 went to Ana
    # by rotation while 108 stays Ben's, so each record waits for a person to settle who owns her
    twin = [t for t in decisions["00Q5e00000A0001"]["triggers"] if t["code"] == "duplicate_ownership"]
    assert twin == [
        {"code": "duplicate_ownership", "detail": "also in hubspot (108) owned by Ben Okafor", "hard": True}
    ]
    assert decisions["108"]["triggers"] == [
        {
            "code": "duplicate_ownership",
            "detail": "also in salesforce (00Q5e00000A0001) owned by Ana Ruiz",
            "hard": True,
        }
    ]
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


# run in a process of its own: gc.collect() counts every thread's garbage, and a thread another
# test left in this worker (a fake server, a scheduler) can make cycles while this one decides
_NO_CYCLES = """
import gc, io, json, sys
from datetime import UTC, datetime
from pathlib import Path
from core.engine import DecisionEngine
from core.leads import normalize_account
from loopgate.cli.decide import _CHUNK, _decide_pure, _lines
from loopgate.wiring import read_policy
root = Path(sys.argv[1])
examples = (root / "examples" / "leads.jsonl").read_text().splitlines()
lines = [examples[i % len(examples)].replace('"id": "', f'"id": "{i}-', 1) for i in range(2 * _CHUNK + 5)]
lines[3], lines[_CHUNK + 1] = "not json", "[1, 2]"
directory = {}
for line in (root / "examples" / "accounts.jsonl").read_text().splitlines():
    account = normalize_account(json.loads(line))
    directory.setdefault(account.domain or "", []).append(account)
engine = DecisionEngine(read_policy(root / "examples" / "policy.yaml"))
sink = io.StringIO()
gc.collect()
gc.disable()
failed = _decide_pure(engine, _lines(io.StringIO("\\n".join(lines) + "\\n"), "leads"), sink, datetime(2026, 11, 20, 15, tzinfo=UTC), directory)
still_disabled = not gc.isenabled()
unreachable = gc.collect()
print(json.dumps([failed, len(lines), len(sink.getvalue().splitlines()), still_disabled, unreachable]))
"""


def test_given_leads_accounts_and_bad_lines_when_decided_then_no_reference_cycle_is_left_behind() -> None:
    # the pure run pauses the cyclic collector (reference counting frees every lead): that is
    # only safe while deciding makes no cycles, so memory stays flat however long the run
    run = subprocess.run(
        [sys.executable, "-c", _NO_CYCLES, str(ROOT)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    failed, lines, written, still_disabled, unreachable = json.loads(run.stdout)
    assert failed == 2 and written == lines - 2
    assert still_disabled  # left as it was found
    assert unreachable == 0


def test_given_the_collector_enabled_when_decided_then_it_is_enabled_again_after_the_run() -> None:
    engine = DecisionEngine(read_policy(Path(POLICY)))
    at = datetime(2026, 11, 20, 15, tzinfo=UTC)
    assert gc.isenabled()
    _decide_pure(engine, _lines(io.StringIO(LEADS.read_text()), "leads"), io.StringIO(), at, {})
    assert gc.isenabled()


def _text_sink(encoding: str, errors: str, *, line_buffering: bool = False) -> tuple[io.TextIOWrapper, io.BytesIO]:
    raw = io.BytesIO()
    return io.TextIOWrapper(
        io.BufferedWriter(raw), encoding=encoding, errors=errors, line_buffering=line_buffering
    ), raw


@pytest.mark.parametrize(
    ("encoding", "errors", "line_buffering"),
    [
        ("utf-8", "strict", False),  # a file decide opens: lines go to its bytes
        ("UTF8", "surrogateescape", True),  # standard output in the C locale, on a terminal
        ("utf-16", "strict", False),  # another encoding: written as text
        ("latin-1", "replace", False),  # ≥ and × are not Latin-1 only in part: text, as the sink replaces
    ],
)
def test_given_a_text_sink_when_decided_then_its_bytes_are_the_decisions_text_as_the_sink_encodes_it(
    encoding: str, errors: str, line_buffering: bool
) -> None:
    examples = LEADS.read_text().splitlines()
    raws = [json.loads(line) for line in examples] * 3
    leads = [normalize_lead({**raw, "id": f"{i}-{raw['id']}"}) for i, raw in enumerate(raws)]
    if errors == "surrogateescape":
        # a byte that was not UTF-8 where the lead came from: normalize_lead replaces a lone
        # surrogate, so only a lead built past it carries one; the writer still writes it as
        # the sink would
        leads[1] = replace(leads[1], title="Head of Caf\udce9")
    expected = "".join(decision_json(d) + "\n" for d in _decide_one_by_one(leads, accounts=False))
    assert ("\udce9" in expected) == (errors == "surrogateescape")
    sink, raw = _text_sink(encoding, errors, line_buffering=line_buffering)
    engine = DecisionEngine(read_policy(Path(POLICY)))
    numbered = iter(list(enumerate(leads, 1)))
    assert _decide_pure(engine, numbered, sink, datetime(2026, 11, 20, 15, tzinfo=UTC), {}) == 0
    if not line_buffering:
        sink.flush()
    assert raw.getvalue() == expected.encode(encoding, errors)


def test_given_text_written_before_when_decided_then_the_decisions_follow_it() -> None:
    sink, raw = _text_sink("utf-8", "strict")
    sink.write("before\n")
    engine = DecisionEngine(read_policy(Path(POLICY)))
    source = io.StringIO(LEADS.read_text())
    _decide_pure(engine, _lines(source, "leads"), sink, datetime(2026, 11, 20, 15, tzinfo=UTC), {})
    sink.write("after\n")
    sink.flush()
    lines = raw.getvalue().decode().splitlines()
    assert lines[0] == "before" and lines[-1] == "after"
    assert [json.loads(line)["lead_id"] for line in lines[1:-1]] == [
        json.loads(x)["id"] for x in LEADS.read_text().splitlines()
    ]


def test_given_a_lone_surrogate_when_written_to_a_strict_utf8_sink_then_it_fails_as_writing_the_text_would() -> None:
    engine = DecisionEngine(read_policy(Path(POLICY)))
    # past normalize_lead, which would have replaced it (the next test)
    lead = replace(normalize_lead({"id": "x"}), title="Chief \ud800")
    with pytest.raises(UnicodeEncodeError):
        "\ud800".encode()  # what the text sink does with it
    sink, _ = _text_sink("utf-8", "strict")
    with pytest.raises(UnicodeEncodeError):
        _decide_pure(engine, iter([(1, lead)]), sink, datetime(2026, 11, 20, 15, tzinfo=UTC), {})
    # the collector is left as found even when a run fails
    assert gc.isenabled()


def test_given_a_lone_surrogate_in_a_lead_when_decided_to_an_out_file_then_it_is_replaced_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    leads, out = tmp_path / "leads.jsonl", tmp_path / "decisions.jsonl"
    leads.write_text('{"id": "x", "title": "Chief \\ud800 Officer"}\n{"id": "y"}\n')
    cli = InProcessCli(monkeypatch, capsys, {"LOOPGATE_POLICY": POLICY})
    result = cli("decide", "--leads", str(leads), "--out", str(out), "--now", NOW)
    assert result.code == 0, result.err
    assert [json.loads(line)["lead_id"] for line in out.read_text(encoding="utf-8").splitlines()] == ["x", "y"]


def _decide_one_by_one(raws: list[dict[str, Any]] | list[Lead], *, accounts: bool = True) -> list[Decision]:
    engine = DecisionEngine(read_policy(Path(POLICY)))
    directory: dict[str, list[Account]] = {}
    for line in Path(ACCOUNTS).read_text().splitlines() if accounts else []:
        account = normalize_account(json.loads(line))
        directory.setdefault(account.domain or "", []).append(account)
    rotation, at = InMemoryRotation(), datetime(2026, 11, 20, 15, tzinfo=UTC)
    out = []
    for raw in raws:
        lead = raw if isinstance(raw, Lead) else normalize_lead(raw)
        domain = engine.account_domain(lead)
        account = directory[domain][0] if domain in directory else None
        out.append(engine.decide(lead, LeadContext(account=account), rotation=rotation, now=at))
    return out


def test_given_no_policy_when_deciding_then_the_missing_setting_is_named() -> None:
    result = run_cli("decide", "--leads", str(LEADS))
    assert result.code == 2
    assert result.err.strip() == "error: LOOPGATE_POLICY is not set: point it at your policy.yaml (or pass --policy)"


def test_given_a_missing_input_or_output_folder_when_deciding_then_a_usage_error_and_the_out_file_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = InProcessCli(monkeypatch, capsys, {"LOOPGATE_POLICY": POLICY})
    out = tmp_path / "decisions.jsonl"
    out.write_text("yesterday's decisions\n")
    missing = str(tmp_path / "missing.jsonl")
    for option, args in (
        ("--leads", ["--leads", missing, "--out", str(out)]),
        ("--accounts", ["--leads", str(LEADS), "--accounts", missing, "--out", str(out)]),
        ("--out", ["--leads", str(LEADS), "--out", str(tmp_path / "no" / "such" / "dir.jsonl")]),
    ):
        result = cli("decide", *args, "--now", NOW)
        assert result.code == 2, result.err
        assert f"Invalid value for {option}: cannot " in result.err and "No such file or directory" in result.err
    assert out.read_text() == "yesterday's decisions\n"  # a run refused is not a run that emptied it


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


def _loads_or_error(parse: Any, line: str) -> Any:
    try:
        return ("value", parse(line))
    except ValueError as exc:
        return ("error", type(exc), str(exc))


@pytest.mark.parametrize(
    "line",
    ['{"id": "a"}\n', ' {"id": "a"}', '{"id": "a"} \t\r\n', '{"id": "a"} x', "[1, 2]", '"text"', "", " ", "nul",
     '{"id":', "NaN", "-", '{"a": "\\ud800"}', '{"id": "a"}\u00a0', "1 2"],
)  # fmt: skip
def test_given_a_line_when_parsed_then_the_result_or_error_is_json_loads(line: str) -> None:
    assert _loads_or_error(_parse, line) == _loads_or_error(json.loads, line)


@given(st.text(max_size=20) | _json_values.map(json.dumps).flatmap(lambda t: st.sampled_from([t, t + " ", t + "x"])))
def test_given_any_text_when_parsed_then_the_result_or_error_is_json_loads(line: str) -> None:
    assert repr(_loads_or_error(_parse, line)) == repr(_loads_or_error(json.loads, line))


@pytest.mark.parametrize("store", [False, True], ids=["pure", "store"])
def test_given_now_with_an_offset_when_decided_then_decided_at_is_the_same_instant_in_utc(
    tmp_path: Path, store: bool
) -> None:
    """As every governance command reads --now: the store and the audit log keep UTC."""
    env = {"LOOPGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'lg.db'}", "LOOPGATE_POLICY": POLICY}
    if store:
        assert run_cli("db", "upgrade", env=env).code == 0
    result = run_cli(
        "decide", "--leads", "-", "--now", "2026-11-20T10:00-05:00", *(["--store"] if store else []),
        env=env, stdin='{"id": "a"}\n',
    )  # fmt: skip
    assert result.code == 0, result.err
    assert json.loads(result.out)["decided_at"] == "2026-11-20T15:00:00+00:00"


_LATIN1_LINE = b'{"id": "b", "last_name": "M\xfcller"}\n'  # ü in Latin-1: not UTF-8


def _decide_bytes(tmp_path: Path, data: bytes, *, via: str, store: bool = False) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPGATE_")}
    env.update(LOOPGATE_POLICY=POLICY, LOOPGATE_DATABASE_URL=f"sqlite:///{tmp_path / 'lg.db'}")
    if store:
        assert run_cli("db", "upgrade", env=env).code == 0
    leads = tmp_path / "leads.jsonl"
    leads.write_bytes(data)
    args = [sys.executable, "-m", "loopgate", "decide", "--leads", "-" if via == "stdin" else str(leads)]
    args += ["--now", NOW, *(["--store"] if store else [])]
    return subprocess.run(
        args, input=data if via == "stdin" else None, capture_output=True, env=env, cwd=ROOT, timeout=120, check=False
    )


@pytest.mark.parametrize("store", [False, True], ids=["pure", "store"])
@pytest.mark.parametrize("via", ["file", "stdin"])
def test_given_a_line_that_is_not_utf8_when_decided_then_it_is_reported_with_its_number_and_the_rest_decided(
    tmp_path: Path, via: str, store: bool
) -> None:
    data = b'{"id": "a", "last_name": "M\xc3\xbcller"}\n' + _LATIN1_LINE + b'{"id": "c"}\n'
    result = _decide_bytes(tmp_path, data, via=via, store=store)
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert "Traceback" not in err
    name = "stdin" if via == "stdin" else str(tmp_path / "leads.jsonl")
    assert err.splitlines() == [f"{name}:2: not valid UTF-8; line skipped", "1 line skipped"]
    decisions = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [d["lead_id"] for d in decisions] == ["a", "c"]


def test_given_an_accounts_line_that_is_not_utf8_when_deciding_then_a_usage_error_names_the_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    accounts = tmp_path / "accounts.jsonl"
    accounts.write_bytes(b'{"id": "A1", "domain": "acme.example"}\n{"id": "A2", "name": "M\xfcller GmbH"}\n')
    cli = InProcessCli(monkeypatch, capsys, {"LOOPGATE_POLICY": POLICY})
    result = cli("decide", "--leads", str(LEADS), "--accounts", str(accounts), "--now", NOW)
    assert result.code == 2 and "Traceback" not in result.err
    assert f"Invalid value for --accounts: {accounts}:2: not valid UTF-8" in result.err


def test_given_lone_surrogates_in_leads_when_decided_with_store_then_every_lead_is_stored_and_decided(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``"Acme\\ud800"`` is valid JSON, and neither UTF-8 nor SQLite or PostgreSQL text: the
    character becomes U+FFFD when the lead is normalised, instead of the whole batch failing."""
    cli = InProcessCli(monkeypatch, capsys, {"LOOPGATE_DATABASE_URL": db_url, "LOOPGATE_POLICY": POLICY})
    lines = [
        '{"id": "a", "company": "Acme"}',
        '{"id": "b\\udfff", "company": "Acme\\ud800", "title": "VP \\udc80", "fields": {"note\\ud800": ["x\\ud800"]}}',
        '{"id": "c", "company": "Initech"}',
    ]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    result = cli("decide", "--leads", "-", "--store", "--now", NOW)
    assert result.code == 0, result.err
    assert [json.loads(line)["lead_id"] for line in result.out.splitlines()] == ["a", "b\ufffd", "c"]
    db = Database(db_url)
    try:
        with db.sessions() as session:
            stored = {row.crm_id: row for row in session.execute(sql_select(LeadModel)).scalars()}
            decided = session.execute(sql_select(DecisionModel.contract)).scalars().all()
    finally:
        db.dispose()
    assert set(stored) == {"a", "b\ufffd", "c"} and stored["b\ufffd"].company == "Acme\ufffd"
    assert len(decided) == 3
