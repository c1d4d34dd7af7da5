"""One-line errors for the CRM commands: a connector failure is something a person can act on
(a token to renew, fields to deploy, a rate limit to wait out), not a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from connectors.errors import ConnectorError
from loopgate.cli.console import err

__all__ = ["crm_errors"]


@contextmanager
def crm_errors() -> Iterator[None]:
    """Turn a :class:`ConnectorError` into ``error: …`` on stderr and exit code 2."""
    try:
        yield
    except ConnectorError as exc:
        err.print(f"error: {exc}")
        raise typer.Exit(2) from None
