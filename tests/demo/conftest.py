"""The live sandbox the demo's web and reviewer tests drive (the browser test takes a smaller one)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loopgate.demo.live import LiveSandbox


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveSandbox]:
    sandbox = LiveSandbox(tmp_path, port=0, leads=120, scheduler=False).start()
    try:
        yield sandbox
    finally:
        sandbox.stop()
