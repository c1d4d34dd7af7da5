"""The README's Quickstart is the contract with a new user; CI must run the same test command."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _quickstart() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the Quickstart needs a bash block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_given_the_readme_when_reading_the_quickstart_then_it_has_exactly_two_commands() -> None:
    assert len(_quickstart()) == 2


def test_given_ci_when_running_tests_then_it_uses_the_readme_test_command() -> None:
    readme_test = shlex.split(_quickstart()[1])
    ci = (ROOT / ".ci" / "run").read_text()
    match = re.search(r"^TEST_CMD=\((.*?)\)", ci, re.M)
    assert match, ".ci/run must define TEST_CMD"
    assert shlex.split(match.group(1)) == readme_test


def test_given_the_env_example_when_compared_with_the_settings_then_every_variable_is_documented() -> None:
    from loopgate.settings import Settings

    documented = {
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in (ROOT / ".env.example").read_text().splitlines()
        if "=" in line
    }
    expected = {name.upper() for name in Settings.model_fields}
    assert expected <= documented, expected - documented
