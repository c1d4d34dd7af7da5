"""The governance commands as an admin meets them: publish, shadow, compare, simulate,
promote, roll back, history, diff; trust pin and status; tune. Exit codes and what they print."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from core.policy import LoadedPolicy
from core.store.db import Database
from core.store.models import AuditEvent, OutboxRow, TuningReport
from loopgate.cli.governance_options import as_of
from tests.loopgate.cli_runner import ROOT, Result, run_cli
from tests.loopgate.inprocess import InProcessCli
from tests.store.test_tuning_store import _month_of_reviews

EXAMPLE = ROOT / "examples" / "policy.yaml"
LEADS = (ROOT / "examples" / "leads.jsonl").read_text().splitlines()
NOW = "2026-11-20T15:00:00Z"


def _ok(cli: InProcessCli, *args: str) -> Result:
    result = cli(*args)
    assert result.code == 0, f"{args}: {result.err}"
    return result


def _challenger(tmp_path: Path) -> Path:
    path = tmp_path / "challenger.yaml"
    path.write_text(EXAMPLE.read_text().replace("bands: {hot: 75, warm: 45}", "bands: {hot: 60, warm: 30}"))
    return path


def test_given_a_champion_and_a_shadow_challenger_when_governed_from_the_cli_then_each_step_is_visible(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"LOOPGATE_DATABASE_URL": db_url, "LOOPGATE_POLICY": str(EXAMPLE)}
    cli = InProcessCli(monkeypatch, capsys, env)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("\n".join(LEADS[:12]) + "\n")
    second.write_text("\n".join(LEADS[12:]) + "\n")
    challenger = _challenger(tmp_path)

    _ok(cli, "decide", "--store", "--leads", str(first), "--now", NOW, "--out", str(tmp_path / "d1.jsonl"))
    published = _ok(cli, "policy", "publish", str(EXAMPLE), "--by", "cli:rev", "--now", NOW)
    assert "is now champion" in published.out
    shadowed = _ok(cli, "policy", "publish", str(challenger), "--shadow", "--now", NOW)
    assert "is now challenger" in shadowed.out
    _ok(cli, "decide", "--store", "--leads", str(second), "--now", NOW, "--out", str(tmp_path / "d2.jsonl"))

    compared = json.loads(_ok(cli, "policy", "compare", "--json", "--now", NOW).out)
    assert compared["leads"] == len(LEADS) - 12 and compared["changed"]["band"] > 0
    simulated = json.loads(
        _ok(cli, "policy", "simulate", str(challenger), "--since", "30d", "--json", "--now", NOW).out
    )
    assert simulated["leads"] == len(LEADS) and simulated["changed"]["band"] > 0
    assert set(simulated["review_load"]["before"]) >= {"per_day", "by_segment_per_day", "by_rep_per_day"}

    assert "promote:" in _ok(cli, "policy", "promote", "--now", NOW).out
    assert "rollback:" in _ok(cli, "policy", "rollback", "--note", "too many hot leads", "--now", NOW).out
    history = _ok(cli, "policy", "history").out
    assert [line.split()[2] for line in history.splitlines()[:-1]] == ["publish", "shadow", "promote", "rollback"]
    assert "too many hot leads" in history
    diff = _ok(cli, "policy", "diff", "champion", str(challenger)).out
    assert "~ scoring.bands.hot: 75 → 60" in diff and "~ scoring.bands.warm: 45 → 30" in diff

    broken = tmp_path / "broken.yaml"
    broken.write_text(EXAMPLE.read_text().replace("to: {team: ent}}", "to: {team: emea}}"))
    refused = run_cli("policy", "publish", str(broken), env=env)
    assert refused.code == 1 and "unknown team 'emea'" in refused.err
    assert _ok(cli, "policy", "history").out == history  # nothing changed


def test_given_three_champions_when_rolled_back_twice_from_the_cli_then_history_names_each_next_step(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = InProcessCli(monkeypatch, capsys, {"LOOPGATE_DATABASE_URL": db_url, "LOOPGATE_POLICY": str(EXAMPLE)})
    third = tmp_path / "third.yaml"
    third.write_text(EXAMPLE.read_text().replace("auto_confidence: 0.55", "auto_confidence: 0.6"))
    versions = []
    for path in (EXAMPLE, _challenger(tmp_path), third):
        _ok(cli, "policy", "publish", str(path), "--now", NOW)
        versions.append(json.loads(_ok(cli, "policy", "history", "--json").out.splitlines()[-1])["version"])
    a, b, _c = versions

    assert f"restores {b}" in _ok(cli, "policy", "history").out.splitlines()[-1]
    assert f"rollback: {b}" in _ok(cli, "policy", "rollback", "--now", NOW).out
    assert f"restores {a}" in _ok(cli, "policy", "history").out.splitlines()[-1]
    assert f"rollback: {a}" in _ok(cli, "policy", "rollback", "--now", NOW).out
    assert "restores" not in _ok(cli, "policy", "history").out


def test_given_a_store_when_trust_and_tuning_commands_run_then_they_report_and_refuse_clearly(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"LOOPGATE_DATABASE_URL": db_url, "LOOPGATE_POLICY": str(EXAMPLE)}
    cli = InProcessCli(monkeypatch, capsys, env)
    leads = tmp_path / "leads.jsonl"
    leads.write_text("\n".join(LEADS) + "\n")
    _ok(cli, "decide", "--store", "--leads", str(leads), "--now", NOW, "--out", str(tmp_path / "d.jsonl"))

    assert "smb: pinned at level 3 (was 2)" in _ok(cli, "trust", "pin", "smb", "3", "--now", NOW).out
    status = [json.loads(line) for line in _ok(cli, "trust", "status", "--json").out.splitlines()]
    smb = next(s for s in status if s["segment"] == "smb")
    assert smb["level"] == 3 and smb["pinned"] and "pinned" in smb["outlook"]
    assert {s["segment"] for s in status} == {"enterprise", "mid_market", "smb", "unknown_size"}
    too_high = run_cli("trust", "pin", "smb", "9", env=env)
    assert (
        too_high.code == 2
        and too_high.err.strip() == "error: level 9 is out of range: 1 … 4 (the policy's trust.max_level)"
    )

    recomputed = _ok(cli, "trust", "recompute", "--now", NOW).out
    assert "no segment earned a move" in recomputed and "calibration: not refitted" in recomputed
    assert "no verdicts since" in _ok(cli, "trust", "calibration", "--now", NOW).out

    tuned = _ok(cli, "tune", "--month", "2026-11", "--now", "2026-12-01T06:00:00Z", "--out", str(tmp_path / "c.yaml"))
    assert "no challenger proposed: not enough labels" in tuned.out
    assert not (tmp_path / "c.yaml").exists()


def test_given_a_now_with_an_offset_when_a_policy_is_published_then_the_audit_chain_still_verifies(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = InProcessCli(monkeypatch, capsys, {"LOOPGATE_DATABASE_URL": db_url, "LOOPGATE_POLICY": str(EXAMPLE)})
    _ok(cli, "policy", "publish", str(EXAMPLE), "--now", "2026-11-20T10:00:00-05:00")
    assert "audit chain intact: 2 events verified" in _ok(cli, "audit", "verify").out


def test_given_now_with_an_offset_when_read_then_the_same_instant_in_utc() -> None:
    at = as_of("2026-11-20T10:00:00-05:00")
    assert at.tzinfo is UTC and at == datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    assert as_of("2026-11-20T15:00:00").tzinfo is UTC


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("policy", "simulate", str(EXAMPLE), "--since", "800000d"), "--since"),
        (("policy", "compare", "--version", "champion", "--since", "800000d"), "--since"),
        (("trust", "calibration", "--since", "800000d"), "--since"),
        (("tune", "--month", "9999-12"), "--month"),
        (("tune", "--month", "0001-01"), "--month"),
        (("tune", "--month", "2026-11", "--lookback", "1000000"), "--lookback"),
        (("trust", "calibration", "--now", "0001-01-01T00:00:00+01:00"), "--now"),
    ],
)
def test_given_a_time_beyond_the_calendar_when_a_governance_command_runs_then_a_one_line_usage_error(
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    option: str,
) -> None:
    cli = InProcessCli(monkeypatch, capsys, {"LOOPGATE_DATABASE_URL": db_url, "LOOPGATE_POLICY": str(EXAMPLE)})
    _ok(cli, "policy", "publish", str(EXAMPLE), "--now", NOW)
    audited = _ok(cli, "audit", "verify").out
    result = cli(*args, *(() if "--now" in args else ("--now", NOW)))
    assert result.code == 2, result.err
    assert "Traceback" not in result.err and "OverflowError" not in result.err
    assert option in result.err and "out of range" in result.err
    assert _ok(cli, "audit", "verify").out == audited  # nothing audited


def test_given_an_out_file_that_cannot_be_written_when_tuned_then_nothing_is_stored_audited_or_announced(
    db: Database, db_url: str, example_policy: LoadedPolicy, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    _month_of_reviews(db, example_policy, 300)
    cli = InProcessCli(monkeypatch, capsys, {"LOOPGATE_DATABASE_URL": db_url, "LOOPGATE_POLICY": str(EXAMPLE)})
    at = ("--month", "2026-11", "--now", "2026-12-01T06:00:00Z")
    nowhere = tmp_path / "no-such-folder" / "c.yaml"
    refused = cli("tune", *at, "--out", str(nowhere))
    assert refused.code == 2 and "Traceback" not in refused.err
    assert refused.err.strip().splitlines()[-1].startswith(f"Error: Invalid value for --out: cannot write {nowhere}")
    with db.sessions() as s:
        assert s.execute(select(TuningReport)).first() is None
        assert s.execute(select(AuditEvent).where(AuditEvent.kind == "tuning.reported")).first() is None
        assert s.execute(select(OutboxRow).where(OutboxRow.dedupe_key.like("slack.message:tuning:%"))).first() is None

    written = tmp_path / "c.yaml"
    tuned = _ok(cli, "tune", *at, "--out", str(written))
    assert f"wrote {written}" in tuned.out and written.read_text().startswith("# Challenger proposed")


def test_given_shadow_decisions_after_now_when_compared_then_none_are_in_the_window_as_simulate_says(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = InProcessCli(monkeypatch, capsys, {"LOOPGATE_DATABASE_URL": db_url, "LOOPGATE_POLICY": str(EXAMPLE)})
    challenger = _challenger(tmp_path)
    leads = tmp_path / "leads.jsonl"
    leads.write_text("\n".join(LEADS) + "\n")
    _ok(cli, "policy", "publish", str(EXAMPLE), "--now", "2026-11-20T12:00:00Z")
    _ok(cli, "policy", "publish", str(challenger), "--shadow", "--now", "2026-11-20T12:00:00Z")
    version = json.loads(_ok(cli, "policy", "history", "--json").out.splitlines()[-1])["version"]
    _ok(cli, "decide", "--store", "--leads", str(leads), "--now", "2026-11-20T13:00:00Z", "--out", str(tmp_path / "d"))

    as_of_1230 = ("--since", "1h", "--now", "2026-11-20T12:30:00Z")
    compared = _ok(cli, "policy", "compare", "--version", version, *as_of_1230)
    simulated = _ok(cli, "policy", "simulate", str(challenger), *as_of_1230)
    assert "no leads in the window" in compared.out and "no leads in the window" in simulated.out
    report = json.loads(_ok(cli, "policy", "compare", "--version", version, "--json", *as_of_1230).out)
    assert report["leads"] == 0


def test_given_a_new_champion_since_the_shadow_decisions_when_compared_then_the_acting_version_is_named(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The report goes to the audit log: "champion" is the version whose decisions were paired
    with the challenger's, not whichever is champion when compare runs."""
    cli = InProcessCli(monkeypatch, capsys, {"LOOPGATE_DATABASE_URL": db_url, "LOOPGATE_POLICY": str(EXAMPLE)})
    challenger = _challenger(tmp_path)
    leads = tmp_path / "leads.jsonl"
    leads.write_text("\n".join(LEADS) + "\n")
    _ok(cli, "policy", "publish", str(EXAMPLE), "--now", NOW)
    _ok(cli, "policy", "publish", str(challenger), "--shadow", "--now", NOW)
    versions = [json.loads(line)["version"] for line in _ok(cli, "policy", "history", "--json").out.splitlines()]
    acting, shadow = versions
    _ok(cli, "decide", "--store", "--leads", str(leads), "--now", NOW, "--out", str(tmp_path / "d"))
    _ok(cli, "policy", "promote", "--now", NOW)  # the challenger is champion now; its shadow rows stay

    report = json.loads(_ok(cli, "policy", "compare", "--version", shadow, "--json", "--now", NOW).out)
    assert report["leads"] == len(LEADS)
    assert report["champion"] == acting and report["challenger"] == shadow
    text = _ok(cli, "policy", "compare", "--version", shadow, "--now", NOW).out
    assert text.startswith(f"champion {acting} vs challenger {shadow}")
