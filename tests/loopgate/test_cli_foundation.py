"""The foundation commands as a user meets them: exit codes and the lines they print."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import text

from core.store.db import Database
from tests.loopgate.cli_runner import ROOT, run_cli

EXAMPLE = ROOT / "examples" / "policy.yaml"


def test_given_the_example_policy_when_checked_then_exit_0_with_its_version() -> None:
    result = run_cli("policy", "check", str(EXAMPLE))
    assert result.code == 0, result.err
    assert "valid — version " in result.out


def test_given_a_broken_policy_when_checked_then_exit_1_and_every_problem_on_stderr(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    text = EXAMPLE.read_text().replace("to: {team: ent}}", "to: {team: emea}}").replace("review: 2h", "review: 2 hours")
    bad.write_text(text)
    routing_line = next(i for i, line in enumerate(text.splitlines(), 1) if "to: {team: emea}}" in line)
    sla_line = next(i for i, line in enumerate(text.splitlines(), 1) if "review: 2 hours" in line)
    result = run_cli("policy", "check", str(bad))
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{bad}:{routing_line} routing[3].to.team: unknown team 'emea'")
    assert lines[1].startswith(f"{bad}:{sla_line} sla.review: invalid duration '2 hours'")
    assert "Traceback" not in result.err


def test_given_a_policy_with_a_python_tag_when_checked_then_exit_1_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text(EXAMPLE.read_text().replace("start: 2026-12-22", "start: !!python/name:os.system x"))
    result = run_cli("policy", "check", str(bad))
    assert result.code == 1
    line = next(i for i, text in enumerate(bad.read_text().splitlines(), 1) if "!!python/name" in text)
    assert result.err.startswith(f"{bad}:{line}: YAML value error: could not determine a constructor")
    assert "Traceback" not in result.err


def test_given_a_missing_policy_file_when_checked_then_exit_1_with_the_reason(tmp_path: Path) -> None:
    result = run_cli("policy", "check", str(tmp_path / "nope.yaml"))
    assert result.code == 1
    assert "nope.yaml: cannot read: No such file or directory" in result.err


def test_given_the_schema_command_when_run_then_valid_json_schema_on_stdout() -> None:
    result = run_cli("policy", "schema")
    assert result.code == 0
    assert json.loads(result.out)["title"] == "Policy"


def test_given_a_bad_database_url_when_any_store_command_runs_then_one_clear_line(tmp_path: Path) -> None:
    for url, expected in [
        ("not a url", "LOOPGATE_DATABASE_URL is not a database URL"),
        (
            "postgresql+psycopg://loopgate:s3cret@127.0.0.1:9/x",
            "cannot connect to postgresql+psycopg://loopgate:***@127.0.0.1:9/x",
        ),
        ("mysql://h/db", "uses 'mysql'"),
    ]:
        result = run_cli("audit", "verify", env={"LOOPGATE_DATABASE_URL": url})
        assert result.code == 2, result
        assert result.err.count("\n") == 1 and expected in result.err, result.err
        assert "s3cret" not in result.err


def test_given_a_fresh_database_when_upgraded_then_commands_work_and_old_schemas_are_refused(tmp_path: Path) -> None:
    env = {"LOOPGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'lg.db'}"}
    refused = run_cli("audit", "verify", env=env)
    assert refused.code == 2 and "run `loopgate db upgrade`" in refused.err
    assert not list(tmp_path.iterdir()), "a refused command must not leave an empty database behind"
    Database(env["LOOPGATE_DATABASE_URL"]).check_connection()  # an empty file: a schema-less database
    refused = run_cli("audit", "verify", env=env)
    assert refused.code == 2 and "schema is at empty" in refused.err and "run `loopgate db upgrade`" in refused.err
    first = run_cli("db", "upgrade", env=env)
    assert first.code == 0 and "upgraded from empty" in first.out
    assert "already current" in run_cli("db", "upgrade", env=env).out
    assert run_cli("audit", "verify", env=env).out.startswith("audit chain intact: 0 events")


def test_given_a_tampered_log_when_verified_by_cli_then_exit_1_naming_the_event(db_url: str, db: Database) -> None:
    from datetime import UTC, datetime

    from core.store import audit_log
    from core.store.audit_log import AuditRecord

    with db.transaction() as s:
        audit_log.append(s, [AuditRecord(datetime(2026, 11, 2, tzinfo=UTC), "t", "k", str(i)) for i in range(3)])
    env = {"LOOPGATE_DATABASE_URL": db_url}
    assert run_cli("audit", "verify", env=env).code == 0
    exported = run_cli("audit", "export", "--since", "2026-11-01", "--format", "csv", env=env)
    assert exported.code == 0 and len(exported.out.strip().splitlines()) == 4
    assert run_cli("audit", "export", "--kind", "nothing.like.it", env=env).out.strip() == ""
    with db.engine.begin() as conn:
        if db.is_postgres:
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        else:
            conn.exec_driver_sql("DROP TRIGGER audit_events_no_delete")
        conn.execute(text("DELETE FROM audit_events WHERE seq = 2"))
        if db.is_postgres:
            conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
    result = run_cli("audit", "verify", env=env)
    assert result.code == 1
    assert "audit event 2: missing at its place in the chain (removed)" in result.err
