"""The dependency rule of DESIGN §2, enforced: core imports no adapter, and core's pure
modules do no I/O and never read the clock."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ADAPTERS = ("connectors", "bot", "scheduler", "loopgate")
# modules of core that may touch the database (the store) — everything else in core is pure
IO_ALLOWED = ("core/store/",)
IO_MODULES = {
    "sqlalchemy", "alembic", "requests", "urllib", "urllib3", "http", "socket", "slack_sdk",
    "slack_bolt", "simple_salesforce", "hubspot", "apscheduler", "subprocess", "psycopg", "os",
}  # fmt: skip


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


CORE_FILES = sorted((ROOT / "core").rglob("*.py"))


def test_given_core_package_when_scanning_imports_then_no_adapter_is_imported() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in CORE_FILES
        for line, name in _imports(path)
        if name.split(".")[0] in ADAPTERS
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "path",
    [p for p in CORE_FILES if not any(str(p.relative_to(ROOT)).startswith(a) for a in IO_ALLOWED)],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_given_a_pure_core_module_when_scanning_then_it_does_no_io_and_reads_no_clock(path: Path) -> None:
    text = path.read_text()
    io = [f"line {line}: {name}" for line, name in _imports(path) if name.split(".")[0] in IO_MODULES]
    assert io == [], f"{path.name} imports I/O modules"
    for forbidden in ("datetime.now(", "datetime.utcnow(", "time.time(", "open(", "random.random("):
        assert forbidden not in text, f"{path.name} calls {forbidden} — inject it instead"


def test_given_the_rule_when_a_core_file_imports_an_adapter_then_the_scan_catches_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from bot.blocks import x\nimport connectors\n")
    assert [name for _, name in _imports(bad)] == ["bot.blocks", "connectors"]
