"""Run the ``loopgate`` entry point inside the test process: the same ``main()`` (exit codes,
error lines) without a second of interpreter start-up per command. Subprocess runs
(:mod:`tests.loopgate.cli_runner`) stay for what only a real process shows."""

from __future__ import annotations

import os
import sys

import pytest

from core.store.db import Database
from loopgate.cli import main
from tests.loopgate.cli_runner import Result

_OURS = ("LOOPGATE_", "SLACK_", "HUBSPOT_", "SALESFORCE_")


class InProcessCli:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str]):
        self.monkeypatch = monkeypatch
        self.capsys = capsys
        for key in list(os.environ):
            if key.startswith(_OURS):
                monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        # a process would close its connections on exit; in here every command's are closed after it
        self.opened: list[Database] = []
        original = Database.__init__

        def tracked(db: Database, *args: object, **kwargs: object) -> None:
            original(db, *args, **kwargs)  # type: ignore[arg-type]
            self.opened.append(db)

        monkeypatch.setattr(Database, "__init__", tracked)

    def __call__(self, *args: str) -> Result:
        self.capsys.readouterr()
        self.monkeypatch.setattr(sys, "argv", ["loopgate", *args])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            while self.opened:
                self.opened.pop().dispose()
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)
