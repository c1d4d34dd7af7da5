"""``loopgate tune``: the monthly tuning report and a proposed challenger policy file."""

from __future__ import annotations

import json
from datetime import timedelta, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from loopgate.cli.console import out
from loopgate.cli.governance_options import ByOption, NowOption, actor, as_of
from loopgate.settings import load_settings
from loopgate.wiring import active_policy, build_engine, open_database

__all__ = ["register"]


class LearnFrom(StrEnum):
    auto = "auto"
    reviews = "reviews"
    outcomes = "outcomes"


def tune(
    month: Annotated[
        str | None,
        typer.Option(help="Month to report on, e.g. 2026-11, in the digest's time zone (default: last month)."),
    ] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Where to write the challenger (default: challenger-<month>.yaml).")
    ] = None,
    learn_from: Annotated[
        LearnFrom, typer.Option(help="Labels to learn from: the bands people chose, CRM outcomes, or auto.")
    ] = LearnFrom.auto,
    lookback: Annotated[int, typer.Option(min=7, help="Days of labels to learn from (ending with the month).")] = 90,
    min_labels: Annotated[int, typer.Option(min=10, help="Fewest labels to propose a challenger from.")] = 100,
    store: Annotated[bool, typer.Option(help="Store the report, audit it and announce it in Slack.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="The report as one JSON object.")] = False,
    by: ByOption = None,
    now: NowOption = None,
) -> None:
    """Monthly tuning: false positives/negatives by band, precision@N and lift, recurring
    override reasons, and a challenger policy with re-learned weights and thresholds."""
    # the learner needs numpy: imported here so other commands start without it
    from core.store.tuning import monthly_tuning, previous_month, report_zone

    settings = load_settings()
    db = open_database(settings)
    at = as_of(now)
    loaded = active_policy(db, settings)
    which = month or previous_month(at, report_zone(loaded))
    _check_period(which, report_zone(loaded), lookback)
    engine = build_engine(db, loaded)
    path = None
    with db.transaction() as session:
        result = monthly_tuning(
            session,
            loaded,
            engine,
            month=which,
            now=at,
            actor=actor(by),
            lookback_days=lookback,
            min_labels=min_labels,
            target=learn_from.value,
            persist=store,
        )
        if result.challenger is not None:
            # written before the report commits: a path that cannot be written ends the command
            # with nothing stored, audited or announced, rather than announcing a file not there
            path = out_file or Path(f"challenger-{which}.yaml")
            _write(path, result.challenger.text)
            result.report["challenger_file"] = str(path)
    if as_json:
        typer.echo(json.dumps(result.report, ensure_ascii=False))
        return
    _print(result.report, path)


def _check_period(month: str, zone: tzinfo, lookback: int) -> None:
    """The month and the labels' lookback as the report computes them, checked first: a month
    at the calendar's ends (9999-12, 0001-01) or a lookback reaching before year 1 is a usage
    error, not an OverflowError in the middle of the report."""
    from core.store.tuning import TuningError, month_bounds

    try:
        _, until = month_bounds(month, zone)
        until - timedelta(days=lookback)  # where the labels to learn from begin
    except TuningError as exc:
        raise typer.BadParameter(str(exc), param_hint="--month") from None
    except OverflowError:
        raise typer.BadParameter(
            f"'{month}' with --lookback {lookback} is out of range (before year 1 or after 9999)", param_hint="--month"
        ) from None


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise typer.BadParameter(f"cannot write {path}: {exc.strerror or exc}", param_hint="--out") from None


def _print(report: dict[str, Any], path: Path | None) -> None:
    from core.store.tuning import summary_lines

    out.print(f"tuning report {report['month']} (policy {report['policy_version']})")
    for line in summary_lines(report):
        out.print(f"  {line}")
    errors = report["band_errors"]
    out.print("\nfalse positives / negatives by band")
    out.print(
        f"  {'band':<6} {'judged':>6} {'FP':>4} {'FN':>4} │ {'known':>6} {'conv':>5} {'rate':>6} {'FP':>5} {'FN':>4}"
    )
    for band, people in errors["by_people"].items():
        o = errors["by_outcomes"][band]
        rate = "–" if o["conversion_rate"] is None else f"{o['conversion_rate']:.0%}"
        out.print(
            f"  {band:<6} {people['judged']:>6} {people['false_positive']:>4} {people['false_negative']:>4} │ "
            f"{o['known']:>6} {o['converted']:>5} {rate:>6} {o['false_positive']:>5} {o['false_negative']:>4}"
        )
    for reason in report["override_reasons"]:
        where = ", ".join(f"{k} ×{v}" for k, v in reason["segments"].items())
        out.print(f"  recurring: {reason['reason']} ×{reason['count']} ({where})")
    proposal = report.get("proposal")
    if not proposal:
        out.print(f"\nno challenger proposed: {report.get('no_proposal_reason')}")
        return
    out.print(
        f"\nchallenger {proposal['challenger_version']} learned from {proposal['labels']} labels "
        f"({proposal['learned_from']}): {len(proposal['changes'])} changes"
    )
    for change in proposal["changes"]:
        out.print(f"  {change['what']}: {change['before']} → {change['after']}")
    effect = proposal["expected_effect"]
    held = effect["held_out"]
    if held:
        out.print(
            f"expected on {held['leads']} held-out leads: band agreement {held['band_agreement']['before']} → "
            f"{held['band_agreement']['after']}; AUC {held['auc']['before']} → {held['auc']['after']}"
        )
    replay = effect["replay"]
    out.print(
        f"replayed over the month: {replay['changed']['any']} of {replay['leads']} decisions change; reviews/day "
        f"{replay['review_per_day']['before']} → {replay['review_per_day']['after']}"
    )
    if path is not None:
        out.print(f"\nwrote {path}: `loopgate policy simulate {path}`, then `loopgate policy publish {path} --shadow`")


def register(app: typer.Typer) -> None:
    app.command("tune")(tune)
