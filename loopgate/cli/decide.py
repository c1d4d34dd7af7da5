"""``loopgate decide``: JSONL leads in, one decision per line out, in order."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from sqlalchemy import select

from core.engine import DecisionEngine, LeadContext
from core.leads import LeadInputError, normalize_account, normalize_lead
from core.model import Account, Lead
from core.routing import InMemoryRotation
from core.store.db import Database
from core.store.decide import decide_pending
from core.store.models import Decision
from core.store.policies import ensure_version
from core.store.records import LeadRow, upsert_accounts, upsert_leads
from loopgate.cli.console import err
from loopgate.settings import load_settings
from loopgate.wiring import build_engine, deciding_policy, open_database, read_policy

__all__ = ["register"]

_BATCH = 500
# compact, no circularity check: decisions are plain trees, and this runs once per lead
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode


def _now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"'{value}' is not an ISO 8601 time", param_hint="--now") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _lines(stream: TextIO, name: str) -> Iterator[tuple[int, Lead | None]]:
    """(line number, lead) per non-blank line; unusable lines are reported and yield None."""
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            yield number, normalize_lead(json.loads(line))
        except (ValueError, LeadInputError) as exc:
            reason = f"invalid JSON: {exc.msg}" if isinstance(exc, json.JSONDecodeError) else str(exc)
            err.print(f"{name}:{number}: {reason}; line skipped")
            yield number, None


def _accounts(path: Path | None) -> dict[str, list[Account]]:
    by_domain: dict[str, list[Account]] = {}
    if path is None:
        return by_domain
    with path.open(encoding="utf-8") as stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                account = normalize_account(json.loads(line))
            except (ValueError, LeadInputError) as exc:
                raise typer.BadParameter(f"{path}:{number}: {exc}", param_hint="--accounts") from None
            if account.domain:
                by_domain.setdefault(account.domain, []).append(account)
    return by_domain


def decide(
    leads: Annotated[str, typer.Option("--leads", help="JSONL file of leads, or - for stdin.")],
    policy: Annotated[Path | None, typer.Option(help="Policy file (default: $LOOPGATE_POLICY).")] = None,
    out: Annotated[str, typer.Option("--out", help="Where decisions go: a file, or - for stdout.")] = "-",
    now: Annotated[str | None, typer.Option("--now", help="Decide as of this ISO time (default: now).")] = None,
    accounts: Annotated[
        Path | None, typer.Option(help="JSONL of accounts (id, name, domain, owner_id, strategic, tier…).")
    ] = None,
    store: Annotated[
        bool, typer.Option("--store", help="Persist leads, decisions, rotation state and audit events.")
    ] = False,
) -> None:
    """Decide leads from JSONL. Unusable lines are reported on stderr and skipped (exit 1)."""
    settings = load_settings()
    at = _now(now)
    db = open_database(settings) if store else None
    if db is not None:  # the store knows the published champion and the fitted calibration
        engine = build_engine(db, deciding_policy(db, settings, policy))
    else:
        engine = DecisionEngine(read_policy(policy or settings.require_policy_path()))
    with ExitStack() as stack:
        source: TextIO = sys.stdin if leads == "-" else stack.enter_context(open(leads, encoding="utf-8"))
        sink: TextIO = sys.stdout if out == "-" else stack.enter_context(open(out, "w", encoding="utf-8"))
        name = "stdin" if leads == "-" else leads
        if db is not None:
            failed = _decide_stored(db, engine, _lines(source, name), sink, at, _accounts(accounts))
        else:
            failed = _decide_pure(engine, _lines(source, name), sink, at, _accounts(accounts))
    if failed:
        err.print(f"{failed} line{'s' if failed != 1 else ''} skipped")
        raise typer.Exit(1)


def _account_for(engine: DecisionEngine, lead: Lead, directory: dict[str, list[Account]]) -> Account | None:
    domain = engine.account_domain(lead)
    if domain is None or domain not in directory:
        return None
    return sorted(directory[domain], key=lambda a: a.source != lead.source)[0]


def _decide_pure(
    engine: DecisionEngine,
    lines: Iterator[tuple[int, Lead | None]],
    sink: TextIO,
    at: datetime,
    directory: dict[str, list[Account]],
) -> int:
    rotation = InMemoryRotation()
    failed = 0
    write, no_context = sink.write, LeadContext()
    for _, lead in lines:
        if lead is None:
            failed += 1
            continue
        ctx = LeadContext(account=_account_for(engine, lead, directory)) if directory else no_context
        write(_encode(engine.decide(lead, ctx, rotation=rotation, now=at).to_dict()) + "\n")
    return failed


def _decide_stored(
    db: Database,
    engine: DecisionEngine,
    lines: Iterator[tuple[int, Lead | None]],
    sink: TextIO,
    at: datetime,
    directory: dict[str, list[Account]],
) -> int:
    """Persist in batches; a re-run of the same input decides nothing again and prints the
    decisions already made."""
    with db.transaction() as session:
        ensure_version(session, engine.loaded, now=at, by="cli:decide")
        upsert_accounts(session, [a for group in directory.values() for a in group], now=at)
    failed = 0
    batch: list[Lead] = []

    def flush() -> None:
        with db.transaction() as session:
            pks = upsert_leads(session, [LeadRow(lead) for lead in batch], now=at)
            decide_pending(session, engine, now=at, lead_pks=pks.values(), limit=len(pks))
            latest: dict[int, dict[str, Any]] = {}
            for lead_pk, contract in session.execute(
                select(Decision.lead_pk, Decision.contract)
                .where(Decision.lead_pk.in_(pks.values()), Decision.shadow.is_(False))
                .order_by(Decision.seq)
            ):
                latest[lead_pk] = contract
        for lead in batch:
            sink.write(_encode(latest[pks[(lead.source, lead.id)]]) + "\n")
        batch.clear()

    for _, lead in lines:
        if lead is None:
            failed += 1
            continue
        batch.append(lead)
        if len(batch) >= _BATCH:
            flush()
    if batch:
        flush()
    return failed


def register(app: typer.Typer) -> None:
    app.command("decide")(decide)
