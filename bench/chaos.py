"""Chaos: crash recovery, replicas on PostgreSQL and load, judged for lost / doubled / clobbered.

The scenarios are those of ``tests/reliability`` (``tests/reliability/harness.py``) at full size:

* ``crash_recovery`` (per store and CRM: HubSpot and Salesforce): ``loopgate sync --crm <crm>``
  and ``loopgate serve`` killed with SIGKILL at seeded random moments while leads are created
  and edited in the fake CRM (HubSpot contacts; Salesforce Leads, many sharing one
  ``SystemModstamp``), reps take leads by hand (``hubspot_owner_id`` / ``OwnerId``), Slack
  loses responses to posts, and people approve escalations; then recovery, and the checks
  (see the harness's module doc);
* ``replicas`` (PostgreSQL only, HubSpot): two ``serve`` processes on one database; one
  scheduler leader, the leader killed and the standby leading; simultaneous approvals through both;
* ``load`` (per store, no CRM): signed Approve clicks at a steady rate over two replicas.

stdout: one JSON object per scenario, store and CRM: ``scenario``, ``store``, ``crm`` (``null``
when the scenario has no CRM), ``faults_injected``, ``operations``, ``lost``, ``duplicated``,
``clobbered``, ``seconds`` and ``details``. stderr: a table.
Exit 1 if any ``lost``, ``duplicated`` or ``clobbered`` is not 0, or a scenario injected no fault
it was meant to.

    python bench/chaos.py                # full: 40 crash rounds per CRM, 200 clicks/s for 30 s;
                                         # SQLite, and PostgreSQL when LOOPGATE_TEST_DATABASE_URL is set
    python bench/chaos.py --quick        # small sizes, for a quick look
    python bench/chaos.py --crms salesforce --scenarios crash_recovery   # one CRM, one scenario
    python bench/chaos.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
        (a private database is created on that server per scenario and dropped afterwards)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from core.store.db import Database  # noqa: E402
from core.store.migrate import upgrade  # noqa: E402
from core.store.scratch import private_database  # noqa: E402
from tests.reliability.harness import CRMS, Report, crash_recovery, load, replicas  # noqa: E402

FULL = {"rounds": 40, "leads": 60, "races": 10, "rate": 200.0, "seconds": 30.0}
QUICK = {"rounds": 10, "leads": 24, "races": 3, "rate": 100.0, "seconds": 5.0}


@contextmanager
def _database(server_url: str | None) -> Iterator[str]:
    """A fresh migrated database: a temporary SQLite file, or a private PostgreSQL database."""
    if server_url is None:
        with tempfile.TemporaryDirectory(prefix="loopgate-chaos-") as tmp:
            url = f"sqlite:///{tmp}/chaos.db"
            db = Database(url)
            upgrade(db)
            db.dispose()
            yield url
        return
    with private_database(server_url, "loopgate_chaos") as url:
        db = Database(url)
        upgrade(db)
        db.dispose()
        yield url


def _table(rows: list[tuple[str, Report, float]]) -> str:
    head = f"{'scenario':<16}{'store':<12}{'crm':<12}{'faults':>8}{'ops':>8}{'lost':>6}{'dup':>6}{'clob':>6}{'secs':>8}"
    lines = [head, "-" * len(head)]
    for store, r, secs in rows:
        lines.append(
            f"{r.scenario:<16}{store:<12}{r.crm or '-':<12}{r.faults_injected:>8}{r.operations:>8}{r.lost:>6}"
            f"{r.duplicated:>6}{r.clobbered:>6}{secs:>8.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (10 crash rounds, 100 clicks/s for 5 s)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("LOOPGATE_TEST_DATABASE_URL"),
        help="PostgreSQL server for the PostgreSQL runs (default: $LOOPGATE_TEST_DATABASE_URL)",
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--scenarios", default="crash_recovery,replicas,load")
    parser.add_argument("--crms", default=",".join(CRMS), help="CRMs for crash_recovery (default: %(default)s)")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    wanted = set(args.scenarios.split(","))
    crms = [c for c in args.crms.split(",") if c]
    unknown = sorted(set(crms) - set(CRMS))
    if unknown:
        parser.error(f"--crms: unknown {', '.join(unknown)} (expected some of {', '.join(CRMS)})")
    stores: list[tuple[str, str | None]] = [("sqlite", None)]
    if args.database_url:
        stores.append(("postgresql", args.database_url))

    runs: list[tuple[str, str, Callable[[str], Report]]] = []
    for store, server in stores:
        if "crash_recovery" in wanted:
            for crm in crms:
                runs.append((store, server or "", lambda url, crm=crm: crash_recovery(
                    url, seed=args.seed, rounds=size["rounds"], leads=size["leads"], crm=crm)))  # fmt: skip
        if "replicas" in wanted and server:
            runs.append((store, server, lambda url: replicas(
                url, seed=args.seed, leads=size["leads"] * 2, races=size["races"])))  # fmt: skip
        if "load" in wanted:
            runs.append((store, server or "", lambda url: load(url, rate=size["rate"], seconds=size["seconds"])))
    if "replicas" in wanted and not args.database_url:
        print("replicas: skipped (needs PostgreSQL: --database-url or LOOPGATE_TEST_DATABASE_URL)", file=sys.stderr)

    done: list[tuple[str, Report, float]] = []
    failed = False
    for store, server, scenario in runs:
        with _database(server or None) as url:
            started = time.perf_counter()
            report = scenario(url)
            secs = time.perf_counter() - started
        line = {"scenario": report.scenario, "store": store, "crm": report.crm,
                "faults_injected": report.faults_injected,
                "operations": report.operations, "lost": report.lost, "duplicated": report.duplicated,
                "clobbered": report.clobbered, "seconds": round(secs, 1), "details": report.details}  # fmt: skip
        print(json.dumps(line), flush=True)
        done.append((store, report, secs))
        bad = report.lost or report.duplicated or report.clobbered
        failed = failed or bool(bad) or (report.scenario != "load" and report.faults_injected == 0)
    print(_table(done), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
