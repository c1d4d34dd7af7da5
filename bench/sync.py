"""Benchmark: sync + decide + store + write-back of N leads per CRM against the local fakes.

Per CRM, in a fresh process (so ``peak_rss_mb`` is that CRM's alone) with the fake serving from
a process of its own (so the fake's work does not share loopgate's interpreter):

1. the **floor**: a bare loop that pages through the same records with the same client, from
   the cursors the run starts from (so the unchanged run's floor reads what that run re-reads)
   (simple-salesforce ``query``/``query_more``; hubspot-api-client search paging, re-windowed
   at the 10,000 cap) and does nothing else;
2. **first run**: ``sync_crm`` (sync, decide, store) timed as ``wall_s``, then the write-back
   drain (timed separately, ``writeback_s``);
3. **unchanged run**: the same again with nothing changed in the CRM (it reads back the
   records loopgate's own writes touched): ``writes`` must be 0.

stdout: one JSON object per CRM and run. ``api_calls`` counts requests the fake served during
the run; ``api_calls_min`` is the least the API allows for the same work: read pages at the
API's page size (at least one per stream), the owner checks before owner changes at the bulk
read size (Salesforce 2,000, HubSpot 100) and the write batches at the write cap (200 / 100);
``calls_ratio`` = ``api_calls / api_calls_min``. ``wall_ratio`` = ``wall_s / floor_s``.
stderr: a table.

    python bench/sync.py                       # 50,000 leads per CRM, SQLite in a temp dir
    python bench/sync.py --n 10000 --crm hubspot --latency-ms 50
    python bench/sync.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
        (a private database is created on that server for the run and dropped afterwards)
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sqlalchemy import make_url

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "examples" / "policy.yaml"
INDUSTRIES = ["software", "fintech", "saas", "retail", "manufacturing", "banking", "healthcare", "internet", None]
TITLES = ["VP Sales", "Software Engineer", "Director of IT", "Head of Growth", "Student", "CEO", "Analyst", None]
SIZES = [12, 80, 150, 450, 900, 1800, 4000, 12000, None]
COUNTRIES = ["US", "US", "GB", "DE", "FR", "CA", "IN", None]


# --- the fake, in its own process ---------------------------------------------------------------


def _serve(crm: str, n: int, latency_ms: float, conn: Connection) -> None:
    """Build and seed the fake, hand back where it listens, then answer stats requests."""
    from core.policy import parse_policy
    from loopgate.sandbox.crm_seed import seed_hubspot, seed_salesforce

    policy = parse_policy(POLICY.read_text(), str(POLICY)).policy
    fake: Any
    if crm == "salesforce":
        from loopgate.sandbox.salesforce import FakeSalesforce

        fake = FakeSalesforce(page_size=2000).start()
        seed_salesforce(fake, policy, leads=n, accounts=1000)
        info = {"url": fake.url, "ca_bundle": str(fake.ca_bundle), "token": fake.access_token}
    else:
        from loopgate.sandbox.hubspot import FakeHubSpot

        fake = FakeHubSpot().start()
        seed_hubspot(fake, policy, contacts=n, companies=1000)
        info = {"url": fake.url, "token": "pat-sandbox-token"}
    fake.latency = latency_ms / 1000
    conn.send(info)
    while True:
        command = conn.recv()
        if command == "stop":
            fake.stop()
            return
        if command == "reset":
            fake.reset_log()
            conn.send(None)
        elif command == "stats":
            conn.send(_stats(crm, fake))


def _stats(crm: str, fake: Any) -> dict[str, int]:
    calls = fake.calls()
    out = {"requests": len(calls), "written": 0, "write_calls": 0, "checked": 0, "check_calls": 0}
    for c in calls:
        if crm == "salesforce" and c.method == "PATCH" and c.path.endswith("/composite/sobjects"):
            out["write_calls"] += 1
            out["written"] += len(c.json()["records"])
        elif crm == "salesforce" and c.method == "POST" and "/composite/sobjects/" in c.path:
            out["check_calls"] += 1
            out["checked"] += len(c.json()["ids"])
        elif crm == "hubspot" and c.path.endswith("/batch/update"):
            out["write_calls"] += 1
            out["written"] += len(c.json()["inputs"])
        elif crm == "hubspot" and c.path.endswith("/batch/read"):
            out["check_calls"] += 1
            out["checked"] += len(c.json()["inputs"])
    return out


# --- one CRM, in a child process --------------------------------------------------------------


def _floor(crm: str, info: dict[str, Any], port: Any, cursors: dict[str, Any]) -> tuple[float, int]:
    """Page through what sync reads, with the same client, doing nothing with the records:
    from the cursors the run starts from (``cursors``, by stream), so a run that reads only
    what changed is held against a floor that reads the same."""
    started = time.perf_counter()
    records = 0
    if crm == "salesforce":
        from connectors.salesforce.records import LEAD_OBJECTS, STREAMS

        client = port.client
        for name, stream in STREAMS.items():
            extra = list(port.field_map.values()) if name in LEAD_OBJECTS else []
            soql = stream.query(cursors.get(name), extra, port.lookback)
            result = client.query(soql, include_deleted=stream.deleted)
            records += len(result["records"])
            while not result["done"]:
                result = client.query_more(result["nextRecordsUrl"], identifier_is_url=True)
                records += len(result["records"])
    else:
        from connectors.hubspot.records import COMPANY_PROPERTIES, CONTACT_PROPERTIES, DEAL_PROPERTIES

        owners = port.api("owners")
        for archived in (False, True):
            records += len(owners.get_page(limit=500, archived=archived).results)
        for object_type, props, modified in (
            ("companies", list(COMPANY_PROPERTIES), "hs_lastmodifieddate"),
            ("contacts", [*CONTACT_PROPERTIES, *port.field_map.values()], "lastmodifieddate"),
            ("deals", list(DEAL_PROPERTIES), "hs_lastmodifieddate"),
        ):
            search = port.api(f"{object_type}.search")
            start = cursors.get(object_type)
            since = str(int(start.ts.timestamp() * 1000)) if start is not None and start.ts is not None else None
            after: str | None = None
            in_window = 0
            while True:
                body: dict[str, Any] = {"limit": 200, "properties": props,
                                        "sorts": [{"propertyName": modified, "direction": "ASCENDING"}]}  # fmt: skip
                if since is not None:
                    body["filterGroups"] = [
                        {"filters": [{"propertyName": modified, "operator": "GTE", "value": since}]}
                    ]
                if after is not None:
                    body["after"] = after
                page = search.do_search(public_object_search_request=body)
                records += len(page.results)
                in_window += len(page.results)
                after = page.paging.next.after if page.paging and page.paging.next else None
                if after is not None:
                    continue
                if page.total <= in_window or not page.results:
                    break
                # the 10,000 cap ended this window: start the next at the last date seen
                last = page.results[-1].properties[modified]
                since = str(int(datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp() * 1000))
                in_window = 0
        if cursors.get("archived") is None:  # sync lists deleted records at most daily: not in a rerun
            for object_type in ("contacts", "companies", "deals"):
                records += len(port.api(f"{object_type}.basic").get_page(limit=100, archived=True).results)
    return time.perf_counter() - started, records


def _minimum(crm: str, report: Any, stats: dict[str, int]) -> dict[str, int]:
    """The fewest calls the API allows for the work this run did."""
    streams = report.streams
    if crm == "salesforce":
        reads = sum(max(1, math.ceil(s.records / 2000)) for s in streams.values())
        checks = math.ceil(stats["checked"] / 2000)
        writes = math.ceil(stats["written"] / 200)
    else:
        reads = 2  # owners: the active and the archived list
        reads += sum(max(1, math.ceil(streams[name].records / 200)) for name in ("companies", "contacts", "deals"))
        reads += 3 if streams["archived"].pages else 0  # archived contacts, companies and deals, when due
        checks = math.ceil(stats["checked"] / 100)
        writes = math.ceil(stats["written"] / 100)
    return {"read_pages_min": reads, "check_reads_min": checks, "write_batches_min": writes}


def run_one(crm: str, n: int, latency_ms: float, database_url: str | None) -> list[dict[str, Any]]:
    from connectors.sync import sync_crm
    from connectors.writeback import CrmWriteback
    from core.engine import DecisionEngine
    from core.policy import parse_policy
    from core.store import outbox
    from core.store.db import Database
    from core.store.ingest import load_cursor
    from core.store.migrate import upgrade
    from core.store.scratch import private_database

    parent, child = mp.get_context("fork").Pipe()
    server = mp.get_context("fork").Process(target=_serve, args=(crm, n, latency_ms, child), daemon=True)
    server.start()
    info = parent.recv()

    def ask(command: str) -> Any:
        parent.send(command)
        return parent.recv()

    loaded = parse_policy(POLICY.read_text(), str(POLICY))
    engine = DecisionEngine(loaded)
    with tempfile.TemporaryDirectory(prefix="loopgate-bench-") as tmp, ExitStack() as scratch:
        url = (
            scratch.enter_context(private_database(database_url, "loopgate_bench"))
            if database_url
            else f"sqlite:///{tmp}/bench.db"
        )
        db = Database(url)
        upgrade(db)
        port = _connector(crm, info, loaded)
        lines = []
        for run in ("first", "unchanged"):
            with db.sessions() as session:
                cursors = {stream: load_cursor(session, crm, stream) for stream in port.streams(full=False)}
            floor_s, floor_records = _floor(crm, info, port, cursors)
            ask("reset")
            started = time.perf_counter()
            report = sync_crm(db, port, engine, clock=lambda: datetime.now(UTC))
            wall_s = time.perf_counter() - started
            sync_stats = ask("stats")
            started = time.perf_counter()
            drained = outbox.drain(db, [CrmWriteback(db, engine, {crm: port}, lambda: datetime.now(UTC))], "bench",
                                   lambda: datetime.now(UTC))  # fmt: skip
            writeback_s = time.perf_counter() - started
            stats = ask("stats")
            streams = {name: s.records for name, s in report.streams.items()}
            minimum = _minimum(crm, report, stats)
            calls_min = sum(minimum.values())
            lines.append({
                "bench": "sync", "crm": crm, "run": run, "n": n, "latency_ms": latency_ms,
                "database": make_url(url).get_backend_name(),
                "api_calls": stats["requests"], "api_calls_min": calls_min,
                "calls_ratio": round(stats["requests"] / calls_min, 4) if calls_min else None,
                "wall_s": round(wall_s, 3), "floor_s": round(floor_s, 3),
                "wall_ratio": round(wall_s / floor_s, 3) if floor_s else None,
                "writeback_s": round(writeback_s, 3),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "writes": stats["written"], "write_calls": stats["write_calls"],
                "sync_calls": sync_stats["requests"], "records_read": sum(streams.values()),
                "floor_records": floor_records, "decided": report.decided,
                "store_s": round(report.store_seconds, 3), "decide_s": round(report.decide_seconds, 3),
                "writeback": {"done": drained.done, "retried": drained.retried, "dead": drained.dead},
                **minimum,
            })  # fmt: skip
        db.dispose()
    parent.send("stop")
    server.join(timeout=10)
    return lines


def _connector(crm: str, info: dict[str, Any], loaded: Any) -> Any:
    from connectors.retry import RetryPolicy

    if crm == "salesforce":
        from connectors.salesforce import SalesforceAuth, SalesforceConnector, http_session

        return SalesforceConnector(
            SalesforceAuth(instance_url=info["url"], access_token=info["token"]),
            http_session(Path(info["ca_bundle"])),
            field_map=loaded.policy.writeback.salesforce,
            retry=RetryPolicy(),
        )
    from connectors.hubspot import HubSpotAuth, HubSpotConnector

    # the fake does not rate-limit search here; pacing at HubSpot's 5/s would measure the limit, not loopgate
    return HubSpotConnector(
        HubSpotAuth(access_token=info["token"], base_url=info["url"]),
        field_map=loaded.policy.writeback.hubspot,
        search_per_second=0,
    )


# --- the parent: one child per CRM, then the table ------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50_000, help="leads per CRM (default 50,000)")
    parser.add_argument("--crm", choices=["salesforce", "hubspot", "all"], default="all")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every fake response")
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temp dir")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        for line in run_one(args.child, args.n, args.latency_ms, args.database_url):
            print(json.dumps(line), flush=True)
        return
    crms = ["salesforce", "hubspot"] if args.crm == "all" else [args.crm]
    lines = []
    for crm in crms:
        command = [sys.executable, __file__, "--child", crm, "--n", str(args.n), "--latency-ms", str(args.latency_ms)]
        if args.database_url:
            command += ["--database-url", args.database_url]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(f"{crm} benchmark failed")
        for raw in done.stdout.splitlines():
            print(raw, flush=True)
            lines.append(json.loads(raw))
    _table(lines)


def _table(lines: list[dict[str, Any]]) -> None:
    head = ("crm", "run", "n", "api_calls", "api_calls_min", "calls_ratio", "wall_s", "floor_s", "wall_ratio",
            "writeback_s", "writes", "peak_rss_mb")  # fmt: skip
    rows = [[str(line[h]) for h in head] for line in lines]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    sys.stderr.write("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)) + "\n")
    for row in rows:
        sys.stderr.write("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + "\n")


if __name__ == "__main__":
    main()
