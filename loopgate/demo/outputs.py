"""What ``loopgate demo`` leaves behind in its output folder, and the figures of its summary.

* ``decisions.jsonl`` — every decision's contract (DESIGN §4), in order;
* ``audit.jsonl`` — the hash-chained audit log, as ``loopgate audit export`` writes it;
* ``digest-chart.png`` and ``digest.html`` — the weekly digest of the demo week;
* ``report.html`` — one self-contained page: the figures, overrides by reason, SLA
  attainment, and a sample of decisions with their evidence. Every CRM value is escaped (the
  demo org has hostile names on purpose);
* ``summary.json`` — the figures of the summary table.
"""

from __future__ import annotations

import base64
import html
import json
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.digest import Digest
from core.store import audit_log
from core.store.digest import weekly_digest
from core.store.models import Decision, Lead, Review
from loopgate.demo.folder import OUTPUT_NAMES
from loopgate.demo.pipeline import DIGEST_AT, DemoRun
from scheduler.digest import digest_html, render_digest

__all__ = ["summary", "write_outputs"]

WEEK = "2026-W46"  # the ISO week of DEMO_START


def summary(run: DemoRun) -> dict[str, Any]:
    """The figures of the summary table, read back from the store."""
    labels = {c.code: c.label for c in run.sandbox.loaded.policy.reason_codes}
    with run.db.sessions() as s:
        leads = s.scalar(select(func.count()).select_from(Lead)) or 0
        first = dict(
            s.execute(
                select(Decision.action, func.count())
                .where(Decision.cause == "new", Decision.shadow.is_(False))
                .group_by(Decision.action)
            ).all()
        )
        reroutes = s.scalar(select(func.count()).select_from(Decision).where(Decision.cause == "reroute")) or 0
        reviews = dict(s.execute(select(Review.kind, func.count()).group_by(Review.kind)).all())
        reasons = s.execute(
            select(Review.reason_code, func.count())
            .where(Review.kind.in_(["reassign", "override"]))
            .group_by(Review.reason_code)
        ).all()
        digest = _digest(run, s)
    # the digest's attainment, as of the demo's final clock (the digest slot): an open clock
    # past its deadline is missed, as the leaders read it — one definition, so the summary
    # and the digest of the same run cannot disagree
    sla = {
        kind: {
            "met": a.met,
            "missed": a.missed,
            "running": a.pending,
            "attainment": None if a.rate is None else round(a.rate, 3),
        }
        for kind, a in sorted(digest.sla.items())
        if kind != "all"
    }
    return {
        "leads": leads,
        "decisions": {k: int(first.get(k, 0)) for k in ("auto", "review", "suppress")},
        "reroutes": reroutes,
        "reviews": {k: int(v) for k, v in sorted(reviews.items())},
        "overrides_by_reason": {
            labels.get(code or "", code or "?"): int(n)
            for code, n in sorted(reasons, key=lambda r: (-r[1], r[0] or ""))
        },
        "overrides_by_reason_code": {
            code or "?": int(n) for code, n in sorted(reasons, key=lambda r: (-r[1], r[0] or ""))
        },
        "refused_clicks": run.tally.refused,
        "modal_errors": run.tally.modal_errors,
        "sla": sla,
        "sla_steps": dict(run.sla_steps),
        "api_calls": dict(run.api_calls),
        "seconds": dict(run.seconds),
    }


def _digest(run: DemoRun, session: Session) -> Digest:
    """The weekly digest of the demo week, as the leaders' channel got it (at :data:`DIGEST_AT`,
    the demo's final clock)."""
    loaded = run.sandbox.loaded
    zone = loaded.policy.digest.timezone if loaded.policy.digest else "UTC"
    return weekly_digest(session, loaded, week=WEEK, now=DIGEST_AT, timezone=zone)


def write_outputs(run: DemoRun, figures: dict[str, Any]) -> dict[str, Path]:
    out = run.out
    paths = {name: out / name for name in OUTPUT_NAMES}  # the names the demo folder may replace
    loaded = run.sandbox.loaded
    with run.db.sessions() as s, paths["decisions.jsonl"].open("w", encoding="utf-8") as f:
        for (contract,) in s.execute(select(Decision.contract).order_by(Decision.pk)):
            f.write(json.dumps(contract, ensure_ascii=False, default=str) + "\n")
    with paths["audit.jsonl"].open("w", encoding="utf-8") as f:
        audit_log.export(run.db, f, since=None, fmt="jsonl")
    with run.db.sessions() as s:
        digest = _digest(run, s)
    chart = render_digest(digest, loaded).chart
    paths["digest-chart.png"].write_bytes(chart)
    paths["digest.html"].write_text(digest_html(digest, chart), encoding="utf-8")
    paths["report.html"].write_text(report_html(run, figures, chart), encoding="utf-8")
    paths["summary.json"].write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return paths


def _sample(run: DemoRun, size: int = 16) -> list[tuple[Lead, Decision]]:
    """First decisions of a few leads of each kind, with every hostile-named lead among them."""
    hostile = set(run.org.hostile)
    with run.db.sessions() as s:
        rows = s.execute(
            select(Lead, Decision).join(Decision, Decision.lead_pk == Lead.pk).where(Decision.cause == "new")
            .order_by(Decision.pk)
        ).all()  # fmt: skip
    picked = [(lead, d) for lead, d in rows if lead.crm_id in hostile][: size // 2]
    by_action: Counter[str] = Counter()
    for lead, d in rows:
        if len(picked) >= size:
            break
        if by_action[d.action] < size // 6 and (lead, d) not in picked:
            by_action[d.action] += 1
            picked.append((lead, d))
    return picked


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _table(head: list[str], rows: list[list[Any]]) -> str:
    cells = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def report_html(run: DemoRun, figures: dict[str, Any], chart: bytes) -> str:
    """One page, no external resources; every CRM value escaped."""
    d = figures["decisions"]
    total = sum(d.values()) or 1
    overview = _table(
        ["figure", "value"],
        [["leads", figures["leads"]],
         *[[f"{k} (first decision)", f"{v} ({v / total:.0%})"] for k, v in d.items()],
         ["re-routed after an SLA breach", figures["reroutes"]],
         *[[f"reviews: {k}", v] for k, v in figures["reviews"].items()],
         ["clicks refused (not allowed to act)", figures["refused_clicks"]],
         *[[f"API calls: {k}", v] for k, v in figures["api_calls"].items()]],
    )  # fmt: skip
    reasons = _table(["reason", "reassigns and overrides"], [[k, v] for k, v in figures["overrides_by_reason"].items()])
    sla = _table(
        ["clock", "met in time", "missed (late or never)", "still running", "attainment"],
        [[k, v["met"], v["missed"], v["running"],
          "–" if v["attainment"] is None else f"{v['attainment']:.1%}"] for k, v in figures["sla"].items()],
    )  # fmt: skip
    sample_rows = []
    for lead, decision in _sample(run):
        c = decision.contract
        evidence = "; ".join(f"{e.get('rule') or e.get('signal')}: {e.get('points')}" for e in c.get("evidence", []))
        triggers = ", ".join(f"{t.get('code')} ({t.get('detail')})" for t in c.get("triggers", []))
        sample_rows.append([f"{lead.first_name or ''} {lead.last_name or ''}".strip(), lead.company, lead.source,
                            decision.action, decision.owner, c.get("score", {}).get("total"), decision.band,
                            triggers or "–", (c.get("next_best_action") or {}).get("label"), evidence])  # fmt: skip
    sample = _table(
        ["lead", "company", "CRM", "action", "owner", "score", "band", "why a person", "next best action",
         "evidence"], sample_rows)  # fmt: skip
    image = base64.b64encode(chart).decode()
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>loopgate demo report</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #1d1c1d; }}
table {{ border-collapse: collapse; margin: .5rem 0 1.5rem; }}
th, td {{ border: 1px solid #ddd; padding: .3rem .55rem; text-align: left; vertical-align: top; }}
th {{ background: #f4f4f4; }} img {{ max-width: 100%; border: 1px solid #ddd; }}
</style></head><body>
<h1>loopgate demo</h1>
<p>{_e(run.sandbox.loaded.policy.name)} — policy {_e(run.sandbox.loaded.version)}; the whole loop against
local fake Salesforce, HubSpot and Slack services, on an accelerated clock.</p>
<h2>Summary</h2>{overview}
<h2>Overrides and reassignments by reason</h2>{reasons}
<h2>SLA attainment</h2>{sla}
<h2>Weekly digest {_e(WEEK)}</h2><img alt="weekly digest chart" src="data:image/png;base64,{image}">
<h2>A sample of decisions</h2>{sample}
</body></html>
"""
