"""The ``loopgate`` command.

Each module in this package that defines ``register(app)`` adds its commands; modules are
found by name, so adding a command never means editing a central list. Errors that a person
can fix (a bad setting, an invalid policy, an unreachable database) end the command with one
line on stderr and exit code 2; checks that find problems (invalid policy, broken audit
chain, undecidable input lines) exit 1.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from core.errors import CoreError, PolicyError
from loopgate.cli.console import err
from loopgate.logs import configure_logging
from loopgate.settings import ConfigError

__all__ = ["app", "main"]

app = typer.Typer(
    name="loopgate",
    help="Human-in-the-loop lead routing and scoring for Salesforce and HubSpot, decided in Slack.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_registered = False


def _register_commands() -> None:
    global _registered
    if _registered:
        return
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        loaded = importlib.import_module(f"{__name__}.{module.name}")
        register = getattr(loaded, "register", None)
        if register is not None:
            register(app)
    _registered = True


def main() -> None:
    """Console-script entry point."""
    configure_logging("WARNING")  # the secrets join when a command reads its settings
    _register_commands()
    try:
        app()
    except PolicyError as exc:
        for problem in exc.problems:
            err.print(str(problem))
        sys.exit(1)
    except (CoreError, ConfigError) as exc:
        err.print(f"error: {exc}")
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
