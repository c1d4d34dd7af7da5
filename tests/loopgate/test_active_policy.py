"""Which policy decides: the published champion, else the LOOPGATE_POLICY file."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

import pytest

from core.policy import LoadedPolicy
from core.store.db import Database
from core.store.policies import publish
from loopgate.settings import ConfigError, Settings
from loopgate.wiring import active_policy
from tests.store.learning_builders import variant


def _settings(url: str, policy: Path | None) -> Settings:
    return Settings(loopgate_database_url=url, loopgate_policy=policy, _env_file=None)  # type: ignore[call-arg]


def test_given_nothing_published_when_resolving_then_the_file_decides(
    db: Database, db_url: str, example_policy: LoadedPolicy
) -> None:
    path = Path(example_policy.source)
    assert active_policy(db, _settings(db_url, path)).version == example_policy.version


def test_given_a_champion_and_a_different_file_when_resolving_then_the_champion_decides_with_a_warning(
    db: Database,
    db_url: str,
    example_policy: LoadedPolicy,
    now: datetime,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    other = variant(example_policy, "bands: {hot: 75, warm: 45}", "bands: {hot: 70, warm: 45}")
    with db.transaction() as s:
        publish(s, other, now=now, by="t")
    with caplog.at_level(logging.WARNING):
        chosen = active_policy(db, _settings(db_url, Path(example_policy.source)))
    assert chosen.version == other.version
    assert f"differs from the published champion {other.version}" in caplog.text
    caplog.clear()
    broken = tmp_path / "broken.yaml"
    broken.write_text("reps: nope\n")
    with caplog.at_level(logging.WARNING):
        assert active_policy(db, _settings(db_url, broken)).version == other.version
    assert "is invalid" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert active_policy(db, _settings(db_url, None)).version == other.version
    assert caplog.text == ""


def test_given_neither_when_resolving_then_one_clear_error(db: Database, db_url: str) -> None:
    with pytest.raises(ConfigError, match="no policy: none is published"):
        active_policy(db, _settings(db_url, None))


def test_given_a_published_champion_when_commands_decide_then_they_use_it_unless_told_otherwise(
    db: Database, db_url: str, example_policy: LoadedPolicy, now: datetime, tmp_path: Path
) -> None:
    """The CRM jobs and `decide --store` decide with the champion, not the file on disk."""
    from loopgate.crm import runtime
    from tests.loopgate.cli_runner import run_cli

    champion = variant(example_policy, "bands: {hot: 75, warm: 45}", "bands: {hot: 70, warm: 45}")
    with db.transaction() as s:
        publish(s, champion, now=now, by="t")
    settings = Settings(
        loopgate_database_url=db_url,
        loopgate_policy=Path(example_policy.source),
        hubspot_access_token="pat-test",  # type: ignore[arg-type]
        _env_file=None,  # type: ignore[call-arg]
    )
    for policy_path, expected in ((None, champion.version), (example_policy.source, example_policy.version)):
        rt = runtime(settings, "hubspot", policy_path=policy_path)
        try:
            assert rt.engine.version == expected
            # the sync follows the champion while it runs; a file given explicitly decides as given
            assert rt.rebuild is None if policy_path else rt.rebuild is not None and rt.rebuild().version == expected
        finally:
            rt.db.dispose()

    leads = tmp_path / "leads.jsonl"
    leads.write_text('{"id": "x1", "email": "a@b.co"}\n')
    env = {"LOOPGATE_DATABASE_URL": db_url, "LOOPGATE_POLICY": example_policy.source}
    result = run_cli("decide", "--leads", str(leads), "--store", env=env)
    assert result.code == 0, result.err
    assert json.loads(result.out)["policy_version"] == champion.version
