"""The demo's folder and its environment: ``loopgate demo --out`` and ``serve --sandbox
--sandbox-dir`` replace only what they wrote themselves, refuse a folder in use, stop with one
line on a bad path or a busy port, ignore the caller's loopgate settings, and clean up when
interrupted."""

from __future__ import annotations

import hashlib
import shutil
import socket
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from loopgate.demo.pipeline import run_demo
from loopgate.demo.sandbox import Sandbox
from loopgate.settings import ConfigError
from tests.loopgate.cli_runner import ROOT, run_cli


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fixed_clock() -> datetime:
    return datetime(2026, 11, 10, 14, 0, tzinfo=UTC)


def test_given_a_folder_with_a_real_store_when_running_the_demo_there_then_its_store_and_policy_are_untouched(
    tmp_path: Path,
) -> None:
    upgraded = run_cli("db", "upgrade", cwd=tmp_path)  # the default store, sqlite:///loopgate.db
    assert upgraded.code == 0, upgraded.err
    shutil.copy(ROOT / "examples" / "policy.yaml", tmp_path / "policy.yaml")
    before = {name: _digest(tmp_path / name) for name in ("loopgate.db", "policy.yaml")}

    result = run_cli("demo", "--out", ".", "--leads", "20", cwd=tmp_path, timeout=120)

    assert result.code == 0, result.err
    assert {name: _digest(tmp_path / name) for name in before} == before
    assert (tmp_path / "report.html").stat().st_size > 0


def test_given_a_folder_holding_a_file_the_demo_would_replace_when_running_the_demo_then_one_line_and_exit_2(
    tmp_path: Path,
) -> None:
    (tmp_path / "report.html").write_text("my own report")

    result = run_cli("demo", "--out", str(tmp_path), "--leads", "20", timeout=60)

    assert result.code == 2 and "Traceback" not in result.err, result.err
    assert result.err.strip().splitlines() == [
        f"error: --out {tmp_path}: holds report.html the demo did not create (no .loopgate-demo marker); "
        "choose another --out"
    ]
    assert (tmp_path / "report.html").read_text() == "my own report"


def test_given_a_running_sandbox_when_a_second_one_takes_its_folder_then_refused_and_the_first_store_survives(
    tmp_path: Path,
) -> None:
    first = Sandbox(tmp_path, _fixed_clock, option="--sandbox-dir").start()
    try:
        db = first.fresh_database()
        db.dispose()
        store = first.db_path.read_bytes()
        with pytest.raises(ConfigError, match=r"^--sandbox-dir .*: in use by another loopgate demo or sandbox"):
            Sandbox(tmp_path, _fixed_clock, option="--sandbox-dir")
        assert first.db_path.read_bytes() == store
    finally:
        first.stop()
    # stopped, the folder is free again: the next run replaces its own store
    again = Sandbox(tmp_path, _fixed_clock).start()
    try:
        again.fresh_database().dispose()
    finally:
        again.stop()


def test_given_broken_loopgate_settings_in_the_environment_when_the_sandbox_builds_its_settings_then_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPGATE_OUTBOX_RETRY_SECONDS", "abc")
    monkeypatch.setenv("LOOPGATE_LOG_LEVEL", "NOISY")
    monkeypatch.setenv("SALESFORCE_DOMAIN", "my-real-org")
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("HUBSPOT_SEARCH_PER_SECOND=oops\n")
    sandbox = Sandbox(tmp_path / "out", _fixed_clock).start()
    try:
        settings = sandbox.settings()
    finally:
        sandbox.stop()

    assert settings.loopgate_outbox_retry_seconds == 5.0
    assert settings.loopgate_log_level == "INFO" and settings.salesforce_domain == "login"


def test_given_a_file_as_the_folder_when_running_the_demo_then_one_line_names_out_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "afile").touch()

    result = run_cli("demo", "--out", "afile", "--leads", "20", cwd=tmp_path, timeout=60)

    assert result.code == 2 and "Traceback" not in result.err, result.err
    assert result.err.strip().splitlines() == ["error: --out afile: is a file, not a folder; choose another --out"]


def test_given_a_busy_port_when_serving_the_sandbox_then_one_line_names_port_before_seeding(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        result = run_cli(
            "serve", "--sandbox", "--port", str(busy), "--sandbox-dir", str(tmp_path / "sb"), "--no-scheduler",
            timeout=60,
        )  # fmt: skip

    assert result.code == 2 and "Traceback" not in result.err, result.err
    last = result.err.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot listen on 127.0.0.1:{busy} (") and "--port" in last
    assert not list((tmp_path / "sb").glob("*.db")), "nothing seeded or synced before the port was known free"


def test_given_an_interrupted_demo_then_its_fake_services_stop_and_its_folder_is_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the fake Salesforce keeps its CA

    def interrupt(stage: str, _done: int, _total: int) -> None:
        if stage == "reviewers in Slack":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_demo(tmp_path / "out", leads=20, progress=interrupt)

    assert list(scratch.iterdir()) == []  # the CA bundle of the fake Salesforce is gone
    Sandbox(tmp_path / "out", _fixed_clock).stop()  # not refused: the interrupted run let go
