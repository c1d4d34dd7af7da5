"""``loopgate policy``: check a policy file, print its schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from core.policy import Policy
from loopgate.cli.console import out
from loopgate.wiring import read_policy

__all__ = ["policy_app", "register"]

policy_app = typer.Typer(help="Check, inspect and manage policy versions.", no_args_is_help=True)


@policy_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="Policy YAML file.")],
) -> None:
    """Validate a policy file; print every problem with file, line and field path."""
    loaded = read_policy(file)  # PolicyError → every problem on stderr, exit 1
    p = loaded.policy
    out.print(
        f"{file}: valid — version {loaded.version}; {len(p.reps)} people, {len(p.teams)} teams, "
        f"{len(p.segments)} segments, {len(p.scoring.fit)} fit rules, {len(p.routing)} routing rules, "
        f"{len(p.reason_codes)} reason codes"
    )


@policy_app.command("schema")
def schema() -> None:
    """Print the policy file's JSON Schema."""
    typer.echo(json.dumps(Policy.model_json_schema(by_alias=True), indent=2))


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
