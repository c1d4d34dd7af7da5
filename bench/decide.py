"""Decision throughput: synthetic leads through ``loopgate decide`` at 10k, 100k and 1M.

For each size, in the same run and on one core:
- the floor: parse every JSONL line and serialize it again (``json.loads`` + ``json.dumps``),
- loopgate: the ``loopgate decide`` code path (normalise, decide, serialize the decision),
each in a fresh subprocess so its peak RSS belongs to that size alone. Floor and loopgate runs
are interleaved and repeated (``--repeat``, fewer for 1M) and the best time of each is kept,
so a burst of load from other work on the machine hits both alike.

stdout: one JSON object per size: n, leads_per_s, peak_rss_mb, floor_ratio (and the raw times).
stderr: a table. Targets (issue 3): ≥ 20,000 leads/s, floor_ratio ≤ 3, memory flat in n.

    python bench/decide.py [--sizes 10000,100000,1000000] [--keep DIR]
    python bench/decide.py --profile [--sizes 10000]   # where decide's time goes (not a measurement)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "examples" / "policy.yaml"
NOW = datetime(2026, 11, 20, 15, tzinfo=UTC)

_TITLES = [
    "VP Engineering", "Head of Data", "Software Engineer", "CTO", "Director of IT", "Analyst", "Student",
    "Office Manager", "Founder & CEO", "Marketing Manager", "Chief Information Officer", "Consultant",
]  # fmt: skip
_INDUSTRIES = [
    "Software", "Fintech", "SaaS", "Banking", "Healthcare", "Retail", "Manufacturing", "Internet", "Education",
]  # fmt: skip
_COUNTRIES = ["US", "United States", "GB", "DE", "FR", "CA", "NO", "IN", "BR", "AU", "NL", "PL"]
_EVENTS = ["demo_request", "pricing_page", "trial_signup", "webinar", "content_download", "email_click", "not_now"]
_SOURCES = ["web_demo_form", "webinar", "content", "organic", "partner_referral", "list_import", "chat"]


def synthetic_lead(i: int, rng: random.Random) -> dict[str, Any]:
    """A plausible inbound lead; some fields missing or malformed, as in real CRMs."""
    company = f"Company {rng.randrange(20000)}"
    domain = "gmail.com" if rng.random() < 0.08 else f"co{rng.randrange(20000)}.com"
    lead: dict[str, Any] = {
        "id": f"00Q{i:012d}",
        "source": "salesforce" if rng.random() < 0.6 else "hubspot",
        "email": f"person{i}@{domain}",
        "first_name": f"First{i % 997}",
        "last_name": f"Last{i % 991}",
        "title": rng.choice(_TITLES),
        "company": company if rng.random() > 0.05 else None,
        "industry": rng.choice(_INDUSTRIES),
        "employees": rng.choice([5, 40, 150, 320, 800, 1500, 4000, 12000, None, "1,200", "lots"]),
        "country": rng.choice(_COUNTRIES) if rng.random() > 0.07 else None,
        "lead_source": rng.choice(_SOURCES),
        "estimated_deal_size": rng.choice([None, None, 12000, 40000, 150000]),
        "created_at": (NOW - timedelta(days=rng.randrange(30))).isoformat(),
        "updated_at": (NOW - timedelta(hours=rng.randrange(72))).isoformat(),
        "events": [
            {"type": rng.choice(_EVENTS), "at": (NOW - timedelta(minutes=rng.randrange(60 * 24 * 40))).isoformat()}
            for _ in range(rng.randrange(5))
        ],
    }
    return lead


def write_leads(path: Path, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            out.write(json.dumps(synthetic_lead(i, rng)) + "\n")


# --- workers (run in a subprocess) --------------------------------------------------------


def _worker_floor(leads: Path) -> float:
    loads, dumps = json.loads, json.dumps
    with leads.open(encoding="utf-8") as src, open(os.devnull, "w", encoding="utf-8") as sink:
        write = sink.write
        start = time.perf_counter()
        for line in src:
            write(dumps(loads(line)) + "\n")
        return time.perf_counter() - start


def _worker_decide(leads: Path) -> float:
    sys.path.insert(0, str(ROOT))
    from core.engine import DecisionEngine
    from loopgate.cli.decide import _decide_pure, _lines
    from loopgate.wiring import read_policy

    engine = DecisionEngine(read_policy(POLICY))
    with leads.open(encoding="utf-8") as src, open(os.devnull, "w", encoding="utf-8") as sink:
        start = time.perf_counter()
        failed = _decide_pure(engine, _lines(src, str(leads)), sink, NOW, {})
        elapsed = time.perf_counter() - start
    assert failed == 0
    return elapsed


def _profile_decide(leads: Path, top: int = 40) -> None:
    """What :func:`_worker_decide` times, under cProfile: its functions by own time, on stderr.
    The profiler slows calls more than other work, and lists C methods called per lead as rows
    of their own, so this says where to look, not how fast it is (time with the bench)."""
    import cProfile
    import pstats

    sys.path.insert(0, str(ROOT))
    from core.engine import DecisionEngine
    from loopgate.cli.decide import _decide_pure, _lines
    from loopgate.wiring import read_policy

    engine = DecisionEngine(read_policy(POLICY))
    profiler = cProfile.Profile()
    with leads.open(encoding="utf-8") as src, open(os.devnull, "w", encoding="utf-8") as sink:
        profiler.runcall(_decide_pure, engine, _lines(src, str(leads)), sink, NOW, {})
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(top)


def _run_worker(kind: str, leads: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one worker process."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker", kind, str(leads)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} worker failed with exit code {proc.returncode}")
    return float(out.strip()), usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--keep", type=Path, help="keep the generated JSONL files in this folder")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs per size (1M runs once)")
    parser.add_argument("--profile", action="store_true", help="profile decide on the first size; no timing")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, path = args.worker
        print(_worker_floor(Path(path)) if kind == "floor" else _worker_decide(Path(path)))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    folder = args.keep or Path(tempfile.mkdtemp(prefix="loopgate-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in sizes:
        leads = folder / f"leads-{n}.jsonl"
        if not leads.exists():
            write_leads(leads, n)
        if args.profile:
            _profile_decide(leads)
            if not args.keep:
                leads.unlink()
            return
        floors, decides = [], []
        for _ in range(args.repeat if n < 1_000_000 else 1):
            floors.append(_run_worker("floor", leads))
            decides.append(_run_worker("decide", leads))
        floor_s, floor_rss = min(floors)
        decide_s, decide_rss = min(decides)
        row = {
            "n": n,
            "leads_per_s": round(n / decide_s),
            "peak_rss_mb": round(decide_rss, 1),
            "floor_ratio": round(decide_s / floor_s, 2),
            "decide_s": round(decide_s, 3),
            "floor_s": round(floor_s, 3),
            "floor_peak_rss_mb": round(floor_rss, 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        if not args.keep:
            leads.unlink()
    header = f"{'n':>9} {'leads/s':>9} {'floor/s':>9} {'ratio':>6} {'peak MB':>8}"
    print(f"\n{header}  (targets: ≥20,000 leads/s, ratio ≤3, flat memory)", file=sys.stderr)
    for r in rows:
        floor_rate = round(r["n"] / r["floor_s"])
        line = f"{r['n']:>9,} {r['leads_per_s']:>9,} {floor_rate:>9,} {r['floor_ratio']:>6} {r['peak_rss_mb']:>8}"
        print(line, file=sys.stderr)


if __name__ == "__main__":
    main()
