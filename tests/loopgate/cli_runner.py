"""Run the real ``loopgate`` entry point in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> Result:
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("LOOPGATE_", "SLACK_", "HUBSPOT_", "SALESFORCE_"))
    }
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "loopgate", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or ROOT,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)
