"""Benchmark: speed to lead — from a lead's creation in the CRM to loopgate acting on it.

``loopgate serve`` as it runs in production (the elected scheduler syncing both CRMs at the
policy's interval, the CRM write-back worker, the Slack outbox worker, all at their default
1 s idle poll) against the sandbox's fake Salesforce and HubSpot with **100 ms of latency on
every API call**. Leads are created at a steady rate, alternating CRMs; a watcher notes when

* (a) an **auto** lead's owner and loopgate fields are written back to its CRM, and
* (b) a **review** lead's escalation is visible in the Slack fake's review channel.

loopgate polls the CRMs (there are no webhooks / change events yet), so ``mode`` is the polling
interval. The target: p95 ≤ polling interval + 2 s.

The **floor**, beside loopgate in the same run and process: a bare poller of the same fakes
(same 100 ms latency) at the same interval, one thread per CRM as the scheduler has one sync
job per CRM, ticking when loopgate's sync jobs do (read from APScheduler's job store: leads
arrive at a steady rate, so a grid of its own would meet them at another phase). Each tick is
one incremental read of the lead object through the client library loopgate uses
(simple-salesforce ``query`` with the connector's own SOQL builder; hubspot-api-client contacts
search, ``lastmodifieddate`` ≥ its cursor) and nothing else but noting when each lead was
first seen: no other streams, no decision, no write-back, no Slack post. It is the latency a
zero-work poller would have, what polling alone costs (the wait for the tick, plus a round
trip). It sees the same leads created at the same moments, so a stall of the machine delays
both alike. ``floor_p50_s``/``floor_p95_s`` are over all leads (an auto and a review lead are
the same read to it); ``p95_ratio`` = ``p95_s / floor_p95_s``; ``floor_missed`` counts leads it
never saw and ``floor_errors`` its failed reads (both 0 in a sound run).

stdout: one JSON object per mode: ``mode``, ``interval_s``, ``latency_ms``, ``leads``, ``auto``,
``review``, ``p50_s``/``p95_s`` over both kinds, the same per kind, ``target_s`` and ``met``;
the floor's ``floor_p50_s``, ``floor_p95_s``, ``floor_missed``, ``floor_errors`` and ``p95_ratio``.
stderr: a table.

    python bench/speed_to_lead.py                   # polling 2 s and 5 s, 30 s of leads each
    python bench/speed_to_lead.py --intervals 2 --seconds 60 --rate 4
    python bench/speed_to_lead.py --quick           # a few seconds (the smoke test)
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from connectors.salesforce.records import build_query  # noqa: E402
from core.leads import parse_time  # noqa: E402
from core.ports import Cursor  # noqa: E402
from core.store.models import Decision, apscheduler_jobs  # noqa: E402
from loopgate.crm import open_ports  # noqa: E402
from loopgate.demo.live import LiveSandbox  # noqa: E402

REVIEW_CHANNELS = ("C0MMREVIEW", "C0ENTREVIEW", "C0SMBREVIEW")


class Watcher:
    """Notes, every 20 ms, when each created lead was written back and when it appeared in Slack."""

    def __init__(self, live: LiveSandbox) -> None:
        self.sb = live.sandbox
        self.created: dict[str, tuple[str, float, str]] = {}  # crm id → (crm, created at, unique name)
        self.written: dict[str, float] = {}
        self.visible: dict[str, float] = {}
        self._seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def done(self) -> bool:
        return all(i in self.written for i in self.created)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            now = time.monotonic()
            for crm_id, (crm, _, _) in list(self.created.items()):
                if crm_id in self.written:
                    continue
                if crm == "salesforce":
                    written = self.sb.salesforce.records["Lead"][crm_id].get("Loopgate_Status__c")
                else:
                    written = self.sb.hubspot.objects["contacts"][crm_id]["properties"].get("loopgate_status")
                if written is not None:
                    self.written[crm_id] = now
            by_name = {name: crm_id for crm_id, (_, _, name) in self.created.items()}
            for channel in REVIEW_CHANNELS:
                for message in list(self.sb.slack.channels[channel].messages):
                    if message.ts in self._seen:
                        continue
                    self._seen.add(message.ts)
                    header = str(message.blocks[0].get("text", {}).get("text", "")) if message.blocks else ""
                    name = header.split(": ", 1)[-1].split(" · ", 1)[0]
                    if name in by_name:
                        self.visible.setdefault(by_name[name], now)


class FloorPoller:
    """The floor: a bare poller of both CRMs on loopgate's own sync schedule, with clients of its
    own built from the sandbox's settings as loopgate builds its own; notes when it first saw
    each record."""

    def __init__(self, live: LiveSandbox, interval_s: float) -> None:
        assert live.db is not None
        self.db, self.interval_s = live.db, interval_s
        self.ports = open_ports(live.sandbox.settings(), live.sandbox.loaded)
        self.seen: dict[str, float] = {}  # crm id → when the response that carried it arrived
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._every_tick, args=(f"sync:{name}", poll), name=f"floor-{name}", daemon=True)
            for name, poll in (("salesforce", self._salesforce()), ("hubspot", self._hubspot()))
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _grid(self, job: str) -> float:
        """When (monotonic) loopgate's sync job ``job`` next runs. Leads arrive at a steady rate,
        so with a tick grid of its own the floor would meet them at another phase than loopgate
        does and, over a short run, wait up to 1/rate longer or shorter for the same interval:
        polling on loopgate's schedule (the ticks APScheduler keeps in its job store) it waits
        exactly as long for its tick, and what it takes beyond that is loopgate's work."""
        deadline = time.monotonic() + 15
        while not self._stop.is_set() and time.monotonic() < deadline:
            with self.db.engine.connect() as conn:
                due = conn.execute(
                    select(apscheduler_jobs.c.next_run_time).where(apscheduler_jobs.c.id == job)
                ).scalar_one_or_none()
            if due is not None:
                return time.monotonic() + (float(due) - time.time()) % self.interval_s
            self._stop.wait(0.02)
        self.errors.append(f"{job} was not scheduled: the floor polled on a grid of its own")
        return time.monotonic()

    def _every_tick(self, job: str, poll: Any) -> None:
        # like the interval trigger: on a fixed grid, ticks missed while a read was slow coalesced
        next_at = self._grid(job)
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            try:
                poll()
            except Exception as exc:  # a failed read is retried next tick; counted, not hidden
                self.errors.append(repr(exc))
            next_at += self.interval_s
            while next_at < time.monotonic():
                next_at += self.interval_s

    def _note(self, ids: list[str]) -> None:
        now = time.monotonic()
        for crm_id in ids:
            self.seen.setdefault(crm_id, now)

    def _salesforce(self) -> Any:
        client = self.ports["salesforce"].client
        since = [datetime.now(UTC) - timedelta(seconds=1)]

        def poll() -> None:
            # >= the newest stamp seen: whole-second stamps, so that second is read again
            result = client.query(build_query("Lead", ["Id", "SystemModstamp"], Cursor(since[0], None)))
            while True:
                records = result["records"]
                self._note([r["Id"] for r in records])
                stamp = parse_time(records[-1]["SystemModstamp"]) if records else None
                if stamp is not None:
                    since[0] = max(since[0], stamp)
                if result["done"]:
                    return
                result = client.query_more(result["nextRecordsUrl"], identifier_is_url=True)

        return poll

    def _hubspot(self) -> Any:
        search = self.ports["hubspot"].api("contacts.search")
        since = [int((time.time() - 1) * 1000)]

        def poll() -> None:
            after: str | None = None
            while True:
                body: dict[str, Any] = {
                    "limit": 200, "properties": ["lastmodifieddate"],
                    "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
                    "filterGroups": [
                        {"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(since[0])}]}
                    ],
                }  # fmt: skip
                if after is not None:
                    body["after"] = after
                page = search.do_search(public_object_search_request=body)
                self._note([c.id for c in page.results])
                last = parse_time(page.results[-1].properties["lastmodifieddate"]) if page.results else None
                if last is not None:
                    since[0] = max(since[0], int(last.timestamp() * 1000))
                after = page.paging.next.after if page.paging and page.paging.next else None
                if after is None:
                    return

        return poll


def _create(live: LiveSandbox, i: int) -> tuple[str, str, str]:
    """A lead alternating CRMs: most are good fits (auto), every third is a bank (review)."""
    sb = live.sandbox
    name = f"Speed Lead{i:05d}"
    industry = "banking" if i % 3 == 0 else "software"
    domain = f"speed{i}.test"
    if i % 2 == 0:
        crm_id = sb.salesforce.create(
            "Lead", FirstName="Speed", LastName=f"Lead{i:05d}", Email=f"buyer{i}@{domain}", Title="VP Sales",
            Company=f"Speed Co {i}", Website=domain, Industry=industry, NumberOfEmployees=450, Country="US",
            LeadSource="web", Status="Open",
        )  # fmt: skip
        return "salesforce", crm_id, name
    crm_id = sb.hubspot.create("contacts", {
        "firstname": "Speed", "lastname": f"Lead{i:05d}", "email": f"buyer{i}@{domain}", "jobtitle": "VP Sales",
        "company": f"Speed Co {i}", "website": domain, "industry": industry, "numemployees": "450",
        "country": "US", "lifecyclestage": "lead",
    })  # fmt: skip
    return "hubspot", crm_id, name


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 3)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 3)


def run_mode(interval_s: float, *, seconds: float, rate: float, latency_ms: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="loopgate-speed-") as tmp:
        live = LiveSandbox(Path(tmp), port=0, leads=0, poll=1.0, latency=latency_ms / 1000,
                           sync_interval=f"{interval_s:g}s")  # fmt: skip
        live.start()
        watcher = Watcher(live)
        watcher.start()
        poller = FloorPoller(live, interval_s)
        poller.start()
        try:
            started = time.monotonic()
            count = int(seconds * rate)
            for i in range(count):
                time.sleep(max(0.0, started + i / rate - time.monotonic()))
                crm, crm_id, name = _create(live, i)
                watcher.created[crm_id] = (crm, time.monotonic(), name)
            deadline = time.monotonic() + interval_s + 15
            while not watcher.done() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(min(2.0, interval_s))  # escalations are posted after the write-back rows are queued
        finally:
            poller.stop()
            watcher.stop()
            assert live.db is not None
            with live.db.sessions() as s:
                actions = dict(
                    s.execute(select(Decision.lead_id, Decision.action).where(Decision.cause == "new")).all()
                )
            live.stop()
    auto = [watcher.written[i] - c for i, (_, c, _) in watcher.created.items()
            if actions.get(i) == "auto" and i in watcher.written]  # fmt: skip
    review = [watcher.visible[i] - c for i, (_, c, _) in watcher.created.items()
              if actions.get(i) == "review" and i in watcher.visible]  # fmt: skip
    both = auto + review
    target = interval_s + 2
    p95 = _percentile(both, 95)
    floor = [poller.seen[i] - c for i, (_, c, _) in watcher.created.items() if i in poller.seen]
    floor_p95 = _percentile(floor, 95)
    return {
        "bench": "speed_to_lead", "mode": f"polling {interval_s:g}s", "interval_s": interval_s,
        "latency_ms": latency_ms, "leads": len(watcher.created), "auto": len(auto), "review": len(review),
        "missed": len(watcher.created) - len(both),
        "p50_s": _percentile(both, 50), "p95_s": p95,
        "auto_p50_s": _percentile(auto, 50), "auto_p95_s": _percentile(auto, 95),
        "review_p50_s": _percentile(review, 50), "review_p95_s": _percentile(review, 95),
        "max_s": round(max(both), 3) if both else None,
        "target_s": target, "met": p95 is not None and p95 <= target,
        "floor_p50_s": _percentile(floor, 50), "floor_p95_s": floor_p95,
        "floor_missed": len(watcher.created) - len(floor), "floor_errors": len(poller.errors),
        "p95_ratio": round(p95 / floor_p95, 2) if p95 is not None and floor_p95 else None,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--intervals", default="2,5", help="polling intervals in seconds, comma-separated")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long leads keep arriving, per mode")
    parser.add_argument("--rate", type=float, default=2.0, help="leads created per second")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="added to every CRM API call")
    parser.add_argument("--quick", action="store_true", help="one short mode (1 s polling, 6 s of leads)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    intervals = [1.0] if args.quick else [float(x) for x in args.intervals.split(",")]
    seconds = 6.0 if args.quick else args.seconds
    lines = []
    for interval in intervals:
        line = run_mode(interval, seconds=seconds, rate=args.rate, latency_ms=args.latency_ms)
        print(json.dumps(line), flush=True)
        lines.append(line)
    _table(lines)
    return 0


def _table(lines: list[dict[str, Any]]) -> None:
    head = ("mode", "leads", "auto", "review", "missed", "p50_s", "p95_s", "auto_p95_s", "review_p95_s", "target_s",
            "met", "floor_p50_s", "floor_p95_s", "p95_ratio")  # fmt: skip
    rows = [[str(line[h]) for h in head] for line in lines]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    sys.stderr.write("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)) + "\n")
    for row in rows:
        sys.stderr.write("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
