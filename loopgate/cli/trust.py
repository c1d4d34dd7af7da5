"""``loopgate trust``: trust levels per segment (status, pin, unpin), recompute, calibration."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from core.learning.calibration import ReliabilityBin
from core.store.calibration import calibration_report, refit_calibration
from core.store.trust_state import pin, recompute_trust, status_rows, trust_status, unpin
from loopgate.cli.console import out
from loopgate.cli.governance_options import ByOption, NowOption, actor, as_of, since
from loopgate.settings import load_settings
from loopgate.wiring import active_policy, open_database

__all__ = ["register", "trust_app"]

trust_app = typer.Typer(help="Trust levels per segment, and calibrated confidence.", no_args_is_help=True)

_LEVELS = {1: "verify everything", 2: "verify exceptions", 3: "periodic audit", 4: "strategic oversight"}


_DONE = {"promote": "promoted", "demote": "demoted", "cap": "capped", "pin": "pinned", "unpin": "unpinned"}


def _pct(value: float | None) -> str:
    return "  –" if value is None else f"{value:4.0%}"


@trust_app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per segment.")] = False,
) -> None:
    """Each segment's level, agreement, verdict count and what it takes to move."""
    settings = load_settings()
    db = open_database(settings)
    loaded = active_policy(db, settings)
    with db.sessions() as session:
        statuses = trust_status(session, loaded)
    rows = status_rows(statuses)
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    out.print(f"policy {loaded.version} ({loaded.policy.name}); verdicts = reviews + audit verdicts")
    out.print(f"{'segment':<16} {'level':<24} {'counting':>8} {'agree':>6} {'last-N':>6} {'all':>6} {'agree':>6}")
    for s, row in zip(statuses, rows, strict=True):
        level = int(row["level"])
        shown = f"{level} {_LEVELS.get(level, '')}" + (" (pinned)" if row["pinned"] else "")
        out.print(
            f"{row['segment']:<16} {shown:<24} {row['counting_verdicts']:>8} {_pct(row['agreement']):>6} "
            f"{_pct(row['window_agreement']):>6} {row['all_verdicts']:>6} {_pct(row['all_agreement']):>6}"
        )
        out.print(f"  {'due now: ' if s.assessment.move else ''}{row['outlook']}")
        for person, agreement in s.reviewers.items():
            out.print(f"    {person:<20} {agreement.n:>5} verdicts, {_pct(agreement.rate)} agreement")


@trust_app.command("pin")
def pin_level(
    segment: Annotated[str, typer.Argument(help="Segment name from the policy.")],
    level: Annotated[int, typer.Argument(help="Trust level 1–4 (at most the policy's max_level).")],
    by: ByOption = None,
    now: NowOption = None,
) -> None:
    """Fix a segment's level until unpinned (audited and announced in Slack)."""
    settings = load_settings()
    db = open_database(settings)
    loaded = active_policy(db, settings)
    with db.transaction() as session:
        move = pin(session, loaded, segment, level, now=as_of(now), by=actor(by))
    out.print(f"{segment}: pinned at level {move.to_level} (was {move.from_level})")


@trust_app.command("unpin")
def unpin_level(
    segment: Annotated[str, typer.Argument(help="A pinned segment.")],
    by: ByOption = None,
    now: NowOption = None,
) -> None:
    """Let a pinned segment move by agreement again (audited and announced)."""
    settings = load_settings()
    db = open_database(settings)
    loaded = active_policy(db, settings)
    with db.transaction() as session:
        move = unpin(session, loaded, segment, now=as_of(now), by=actor(by))
    out.print(f"{segment}: unpinned at level {move.to_level}; moves by agreement again")


@trust_app.command("recompute")
def recompute(
    refit: Annotated[bool, typer.Option(help="Also refit calibration curves from recent labels.")] = True,
    by: ByOption = None,
    now: NowOption = None,
) -> None:
    """Apply earned promotions and demotions now (the scheduler does this after reviews land)."""
    settings = load_settings()
    db = open_database(settings)
    loaded = active_policy(db, settings)
    at = as_of(now)
    with db.transaction() as session:
        moves = recompute_trust(session, loaded, now=at, actor=actor(by))
        fit = refit_calibration(session, now=at, policy_version=loaded.version, actor=actor(by)) if refit else None
    for move in moves:
        out.print(f"{move.segment}: {_DONE[move.kind]} {move.from_level} → {move.to_level}: {move.reason}")
    if not moves:
        out.print("trust levels: no segment earned a move")
    if fit is not None:
        if fit.fit is None:
            out.print(f"calibration: not refitted (too few labels: {fit.skipped or 'none'})")
        else:
            out.print(f"calibration: fit {fit.fit} stored for {', '.join(fit.segments)}")


@trust_app.command("calibration")
def calibration(
    since_: Annotated[str, typer.Option("--since", help="Verdicts answered in this span (e.g. 30d).")] = "30d",
    bins: Annotated[int, typer.Option(min=2, max=20, help="Reliability bins.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per segment.")] = False,
    now: NowOption = None,
) -> None:
    """Reliability table and expected calibration error (ECE) per segment.

    'shown' is the confidence people saw when each decision was made (an honest, out-of-sample
    figure); 'raw' the score's uncalibrated value; 'now' today's curves on the same labels.
    """
    settings = load_settings()
    db = open_database(settings)
    start, _ = since(since_, as_of(now))
    with db.sessions() as session:
        report = calibration_report(session, since=start, bins=bins)
    if as_json:
        for r in report:
            typer.echo(
                json.dumps(
                    {
                        "segment": r.segment,
                        "labels": r.labels,
                        "ece_shown": r.ece_shown,
                        "ece_raw": r.ece_raw,
                        "ece_now": r.ece_current,
                        "reliability": [
                            {
                                "lo": b.lo,
                                "hi": b.hi,
                                "n": b.n,
                                "confidence": b.mean_confidence,
                                "accepted": b.accept_rate,
                            }
                            for b in r.shown
                        ],
                    }
                )
            )
        return
    if not any(r.labels for r in report):
        out.print(f"no verdicts since {start:%Y-%m-%d}: nothing to calibrate against")
        return
    for r in report:
        name = "all segments" if r.segment == "*" else r.segment
        out.print(
            f"\n{name}: {r.labels} verdicts; ECE shown {_ece(r.ece_shown)}, raw {_ece(r.ece_raw)}, "
            f"now {_ece(r.ece_current)}"
        )
        out.print(f"  {'confidence':<12} {'n':>5} {'claimed':>8} {'accepted':>9} {'gap':>7}")
        for b in r.shown:
            out.print(
                f"  {b.lo:.1f}–{b.hi:.1f}     {b.n:>5} {b.mean_confidence:>8.2f} {b.accept_rate:>9.2f} {b.gap:>+7.2f}"
            )


def _bin(b: ReliabilityBin) -> dict[str, float]:
    return {"lo": b.lo, "hi": b.hi, "n": b.n, "confidence": b.mean_confidence, "accepted": b.accept_rate}


def _ece(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def register(app: typer.Typer) -> None:
    app.add_typer(trust_app, name="trust")
