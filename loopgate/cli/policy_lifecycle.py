"""``loopgate policy`` lifecycle: simulate, publish (--shadow), compare, promote, rollback,
withdraw, diff, history. Every change of role is validated whole, audited and announced.

The commands join the ``policy`` group defined in :mod:`loopgate.cli.policy`.
"""

from __future__ import annotations

import difflib
import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from core.engine import DecisionEngine
from core.learning.comparison import compare as compare_pairs
from core.policy import LoadedPolicy
from core.policy_diff import policy_changes
from core.store import audit_log
from core.store.audit_log import AuditRecord
from core.store.db import Database
from core.store.labels import OUTCOME_WAIT
from core.store.policies import (
    LifecycleError,
    RoleChange,
    challenger,
    champion,
    history,
    load_stored,
    promote,
    publish,
    resolve_version,
    rollback,
    rollback_target,
    withdraw,
)
from core.store.replay import replay, shadow_pairs
from loopgate.cli.console import out
from loopgate.cli.governance_options import ByOption, NowOption, actor, as_of, since
from loopgate.cli.policy import policy_app
from loopgate.settings import load_settings
from loopgate.wiring import active_policy, build_engine, open_database, read_policy

__all__ = ["print_comparison", "register"]

NoteOption = Annotated[str | None, typer.Option("--note", help="Why (kept in the history and the audit log).")]
JsonOption = Annotated[bool, typer.Option("--json", help="The report as one JSON object.")]
SinceOption = Annotated[str, typer.Option("--since", help="How far back (e.g. 30d, 2w).")]


def _done(change: RoleChange | None, nothing: str) -> None:
    if change is None:
        out.print(nothing)
        return
    was = f" (was {change.previous})" if change.previous else ""
    role = change.role or "no role"
    out.print(f"{change.action}: {change.version} is now {role}{was}; audited and announced")


@policy_app.command("simulate")
def simulate(
    file: Annotated[Path, typer.Argument(help="The new policy file.")],
    since_: SinceOption = "30d",
    top: Annotated[int, typer.Option(min=1, help="N for precision@N.")] = 50,
    as_json: JsonOption = False,
    now: NowOption = None,
    by: ByOption = None,
) -> None:
    """Replay stored leads through NEW beside the current policy; change nothing.

    Reports decisions that would change (owners, actions, bands), the projected review load
    per segment and rep, and agreement with people and outcomes where labels exist.
    """
    settings = load_settings()
    db = open_database(settings)
    new = read_policy(file)
    current = active_policy(db, settings)
    at = as_of(now)
    start, span = since(since_, at)
    engine = build_engine(db, current)
    challenger_engine = DecisionEngine(new, calibration=engine.calibration)
    with db.sessions() as session:
        # "until" is exclusive: include what was decided at this very moment
        until = at + timedelta(microseconds=1)
        replayed = replay(session, engine, challenger_engine, since=start, until=until, outcome_after=at - OUTCOME_WAIT)
    report = compare_pairs([r.pair() for r in replayed], days=span / timedelta(days=1), top_n=top)
    report["current"] = current.version
    report["new"] = new.version
    report["replay_drift"] = _drift(replayed)
    _audit(db, at, actor(by), "policy.simulated", new.version, report)
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False))
        return
    out.print(
        f"simulate {file} ({new.version}) against current {current.version}: leads decided since {start:%Y-%m-%d}"
    )
    print_comparison(report, "current", "new")
    drift = report["replay_drift"]
    if drift["changed"]:
        out.print(
            f"\nnote: replaying the current policy changes {drift['changed']} of {report['leads']} stored decisions "
            "(trust levels, calibration or rotation differ from when they were made)"
        )


def _drift(replayed: list[Any]) -> dict[str, int]:
    changed = 0
    for r in replayed:
        stored = r.stored.contract
        d = r.current
        if stored["action"] != d.action or stored.get("owner") != d.owner or stored["score"]["band"] != d.score.band:
            changed += 1
    return {"changed": changed}


def _audit(db: Database, at: Any, who: str, kind: str, version: str, report: dict[str, Any]) -> None:
    summary = {"leads": report["leads"], "changed": report["changed"]}
    if "champion_versions" in report:  # compare: which acting decisions the challenger was judged against
        summary["champion_versions"] = report["champion_versions"]
    with db.transaction() as session:
        audit_log.append(session, [AuditRecord(at, who, kind, f"policy:{version}", summary)])


def print_comparison(report: dict[str, Any], before: str, after: str) -> None:
    """A side-by-side report for people (``simulate``, ``compare``)."""
    n = report["leads"]
    if n == 0:
        out.print("no leads in the window: nothing to compare")
        return
    changed = report["changed"]
    out.print(
        f"\n{n} leads over {report['days']:g} days: {changed['any']} would change "
        f"(action {changed['action']}, owner {changed['owner']}, band {changed['band']})"
    )
    if changed["owner"]:
        out.print(
            f"  owners: {changed['route']} by another routing rule or team; the rest are round-robin turns "
            "that shift once an earlier lead goes elsewhere"
        )
    for title, key in (("actions", "action_changes"), ("bands", "band_changes")):
        if report[key]:
            out.print(f"  {title}: " + ", ".join(f"{k} ×{v}" for k, v in report[key].items()))
    load_a, load_b = report["review_load"]["before"], report["review_load"]["after"]
    out.print(
        f"\nreview load per day: {before} {load_a['per_day']:g} ({_pct(load_a['share'])} of leads) → "
        f"{after} {load_b['per_day']:g} ({_pct(load_b['share'])})"
    )
    for title, key in (("segment", "by_segment_per_day"), ("rep", "by_rep_per_day")):
        names = sorted(set(load_a[key]) | set(load_b[key]))
        for name in names:
            out.print(f"  {title} {name:<18} {load_a[key].get(name, 0):>7g} → {load_b[key].get(name, 0):g}")
    labels = report["labels"]
    if labels["judged"]:
        band, owner = labels["band_agreement"], labels["owner_agreement"]
        out.print(
            f"\nagreement with people ({labels['judged']} judged leads): band {_pct(band['before'])} → "
            f"{_pct(band['after'])}; owner {_pct(owner['before'])} → {_pct(owner['after'])}"
        )
    outcomes = report["outcomes"]
    if outcomes["known"]:
        a, b = outcomes["before"], outcomes["after"]
        out.print(f"\noutcomes ({outcomes['known']} known, {outcomes['positive']} converted):")
        out.print(f"  AUC {a['auc']} → {b['auc']}; lift at top decile {a['lift_top_decile']} → {b['lift_top_decile']}")
        out.print(f"  precision@{a['n']} {a['precision_at_n']} → {b['precision_at_n']}")
        for band_name in sorted(set(a["conversion_by_band"]) | set(b["conversion_by_band"])):
            x = a["conversion_by_band"].get(band_name, {"leads": 0, "rate": None})
            y = b["conversion_by_band"].get(band_name, {"leads": 0, "rate": None})
            out.print(
                f"  {band_name:<6} {x['leads']:>5} leads {_pct(x['rate'])} → {y['leads']:>5} leads {_pct(y['rate'])}"
            )
    if report["examples"]:
        out.print("\nexamples:")
        for ex in report["examples"]:
            x, y = ex["before"], ex["after"]
            out.print(
                f"  {ex['lead']}: {x['action']}/{x['owner']}/{x['band']} {x['score']} → "
                f"{y['action']}/{y['owner']}/{y['band']} {y['score']}"
            )


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


@policy_app.command("publish")
def publish_file(
    file: Annotated[Path, typer.Argument(help="Policy file to publish (validated whole first).")],
    shadow: Annotated[
        bool, typer.Option("--shadow", help="As challenger: decides every lead alongside, never acts.")
    ] = False,
    note: NoteOption = None,
    by: ByOption = None,
    now: NowOption = None,
) -> None:
    """Make a policy file the champion (or, with --shadow, the challenger)."""
    loaded = read_policy(file)  # invalid → every problem on stderr, exit 1, nothing changed
    settings = load_settings()
    db = open_database(settings)
    with db.transaction() as session:
        change = publish(session, loaded, now=as_of(now), by=actor(by), shadow=shadow, note=note)
    role = "challenger" if shadow else "champion"
    _done(change, f"{loaded.version} is already the {role}; nothing changed")


@policy_app.command("compare")
def compare_shadow(
    version: Annotated[str | None, typer.Option(help="Challenger version (default: the published one).")] = None,
    since_: SinceOption = "30d",
    top: Annotated[int, typer.Option(min=1, help="N for precision@N.")] = 50,
    as_json: JsonOption = False,
    now: NowOption = None,
    by: ByOption = None,
) -> None:
    """Champion vs challenger on the challenger's shadow decisions and their outcomes."""
    settings = load_settings()
    db = open_database(settings)
    at = as_of(now)
    start, span = since(since_, at)
    with db.sessions() as session:
        ref = version or challenger(session)
        if ref is None:
            raise LifecycleError("no challenger is published: `loopgate policy publish FILE --shadow`")
        resolved = resolve_version(session, ref)
        # the window simulate reads: until is exclusive, so include what was decided at this moment
        until = at + timedelta(microseconds=1)
        pairs = shadow_pairs(session, resolved, since=start, until=until, outcome_after=at - OUTCOME_WAIT)
        current = champion(session)
    report = compare_pairs(pairs, days=span / timedelta(days=1), top_n=top)
    # the versions whose acting decisions were paired (the report is audited): the champion
    # when they were made, not whichever is champion now (a promote or rollback since)
    acting = sorted({str(p.before["policy_version"]) for p in pairs})
    report["champion"] = ", ".join(acting) if acting else current
    report["champion_versions"] = acting
    report["challenger"] = resolved
    _audit(db, at, actor(by), "policy.compared", resolved, report)
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False))
        return
    out.print(f"champion {report['champion']} vs challenger {resolved}: shadow decisions since {start:%Y-%m-%d}")
    print_comparison(report, "champion", "challenger")


@policy_app.command("promote")
def promote_challenger(note: NoteOption = None, by: ByOption = None, now: NowOption = None) -> None:
    """The challenger becomes the champion (validated whole again first)."""
    db = open_database(load_settings())
    with db.transaction() as session:
        change = promote(session, now=as_of(now), by=actor(by), note=note)
    _done(change, "")


@policy_app.command("rollback")
def rollback_champion(
    version: Annotated[
        str | None,
        typer.Argument(help="Version to restore (default: the champion before this one; again, the one before that)."),
    ] = None,
    note: NoteOption = None,
    by: ByOption = None,
    now: NowOption = None,
) -> None:
    """Restore an earlier champion (validated whole again first)."""
    db = open_database(load_settings())
    with db.transaction() as session:
        change = rollback(session, version, now=as_of(now), by=actor(by), note=note)
    _done(change, "")


@policy_app.command("withdraw")
def withdraw_challenger(note: NoteOption = None, by: ByOption = None, now: NowOption = None) -> None:
    """Stop shadowing: the challenger loses its role (its shadow decisions are kept)."""
    db = open_database(load_settings())
    with db.transaction() as session:
        change = withdraw(session, now=as_of(now), by=actor(by), note=note)
    _done(change, "")


def _load(db: Database | None, ref: str) -> LoadedPolicy:
    """A policy file, or a stored version (hash prefix, champion, challenger)."""
    path = Path(ref)
    if path.exists() or ref.endswith((".yaml", ".yml")):
        return read_policy(path)
    if db is None:
        raise LifecycleError(f"'{ref}' is not a file; naming a stored version needs the database")
    with db.sessions() as session:
        return load_stored(session, resolve_version(session, ref))


@policy_app.command("diff")
def diff(
    a: Annotated[str, typer.Argument(help="A policy file or stored version (hash prefix, champion, challenger).")],
    b: Annotated[str, typer.Argument(help="Another one.")],
    text: Annotated[bool, typer.Option("--text", help="Also show the line diff of the files.")] = False,
) -> None:
    """What differs between two policies, by meaning (and by text with --text)."""
    needs_db = not all(Path(x).exists() or x.endswith((".yaml", ".yml")) for x in (a, b))
    db = open_database(load_settings()) if needs_db else None
    first, second = _load(db, a), _load(db, b)
    out.print(f"{first.source} ({first.version}) → {second.source} ({second.version})")
    changes = policy_changes(first.policy, second.policy)
    if not changes:
        out.print("no difference in meaning" + (" (the text differs)" if first.text != second.text else ""))
    for change in changes:
        out.print(str(change))
    if text:
        lines = difflib.unified_diff(
            first.text.splitlines(keepends=True),
            second.text.splitlines(keepends=True),
            fromfile=first.source,
            tofile=second.source,
        )
        typer.echo("".join(lines), nl=False)


@policy_app.command("history")
def show_history(as_json: Annotated[bool, typer.Option("--json", help="One JSON object per event.")] = False) -> None:
    """Every publish, shadow, promotion, rollback and withdrawal, oldest first; current roles."""
    db = open_database(load_settings())
    with db.sessions() as session:
        events = history(session)
        roles = {"champion": champion(session), "challenger": challenger(session)}
        target = rollback_target(session, roles["champion"]) if roles["champion"] else None
    if as_json:
        for e in events:
            typer.echo(
                json.dumps(
                    {
                        "at": e.at.isoformat(),
                        "action": e.action,
                        "version": e.version,
                        "role": e.role,
                        "previous": e.previous,
                        "by": e.by,
                        "note": e.note,
                    }
                )
            )
        return
    if not events:
        out.print("no policy has been published yet (`loopgate policy publish FILE`)")
    for e in events:
        was = f" (replaced {e.previous})" if e.previous and e.role else ""
        note = f" — {e.note}" if e.note else ""
        out.print(f"{e.at:%Y-%m-%d %H:%M} {e.action:<9} {e.version} → {e.role or 'no role'}{was} by {e.by}{note}")
    undo = f"; `policy rollback` restores {target}" if target else ""
    out.print(f"champion: {roles['champion'] or 'none'}; challenger: {roles['challenger'] or 'none'}{undo}")


def register(app: typer.Typer) -> None:
    """The commands above joined ``policy_app`` when this module was imported; the ``policy``
    group itself is added to the top level by :mod:`loopgate.cli.policy`."""
    del app
