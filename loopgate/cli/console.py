"""Terminal output. Markup is off: policy paths like ``routing[3]`` are text, not Rich tags."""

from __future__ import annotations

from rich.console import Console

__all__ = ["err", "out"]

out = Console(markup=False, highlight=False, soft_wrap=True)
err = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)
