"""``loopgate demo`` as a new user runs it: no credentials, no set-up, one command.

A small org (200 leads) keeps it quick; the demo always uses its own SQLite store, whatever
database the suite runs on. A hostile Slack environment variable proves nothing of the
caller's environment reaches the sandbox.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.policy import parse_policy
from core.store.db import Database
from core.store.digest import weekly_digest
from core.store.models import Decision
from loopgate.demo.pipeline import DIGEST_AT
from loopgate.sandbox.demo_org import HOSTILE
from tests.loopgate.cli_runner import run_cli


@contextmanager
def _store(out: Path) -> Iterator[Session]:
    """A session on the demo's own store."""
    db = Database(f"sqlite:///{out / 'demo.db'}")
    try:
        with db.sessions() as s:
            yield s
    finally:
        db.dispose()


def _digest_sla(out: Path) -> dict[str, dict[str, Any]]:
    """The SLA attainment of the digest of the demo week, read from the demo's own store."""
    loaded = parse_policy((out / "demo-policy.yaml").read_text(), "demo-policy.yaml")
    with _store(out) as s:
        digest = weekly_digest(s, loaded, week="2026-W46", now=DIGEST_AT)
    return {
        kind: {"met": a.met, "missed": a.missed, "running": a.pending, "attainment": round(a.rate, 3)}
        for kind, a in digest.sla.items()
        if kind != "all" and a.rate is not None
    }


def test_given_nothing_configured_when_running_the_demo_then_the_whole_loop_runs_and_writes_its_outputs(
    tmp_path: Path,
) -> None:
    out = tmp_path / "demo-out"
    env = {"SLACK_BOT_TOKEN": "xoxb-real-workspace-must-not-be-used", "HUBSPOT_ACCESS_TOKEN": "pat-real"}
    result = run_cli("demo", "--leads", "200", "--out", str(out), env=env, cwd=tmp_path, timeout=120)

    assert result.code == 0, result.err
    for name in ("decisions.jsonl", "audit.jsonl", "digest-chart.png", "digest.html", "report.html", "summary.json"):
        assert (out / name).stat().st_size > 0, name
    assert "leads (both CRMs)" in result.out and "SLA review" in result.out

    figures = json.loads((out / "summary.json").read_text())
    decisions = [json.loads(line) for line in (out / "decisions.jsonl").read_text().splitlines()]
    first = figures["decisions"]
    assert figures["leads"] == 200 == sum(first.values())  # every lead decided once at first
    assert len(decisions) == figures["leads"] + figures["reroutes"]  # plus the re-decisions after a breach
    assert {d["action"] for d in decisions} <= {"auto", "review", "suppress"}
    # intent from both CRMs: Salesforce campaign responses, HubSpot contacts' activity dates
    assert {d["source"] for d in decisions if d["score"]["intent"] > 0} == {"salesforce", "hubspot"}
    assert all(first[action] > 0 for action in ("auto", "review", "suppress"))
    assert figures["reviews"]["approve"] > 0 and figures["overrides_by_reason"]  # reasons were given
    assert figures["refused_clicks"] > 0 and figures["modal_errors"] == 1
    assert figures["sla_steps"].get("sent", 0) > 0 and figures["reroutes"] > 0  # nudges, breaches, re-routes
    assert 0 < figures["sla"]["review"]["attainment"] < 1
    # the SLA figures are the weekly digest's, as of the demo's final clock (the digest slot):
    # an open clock past its deadline is missed, not left out
    assert figures["sla"] == _digest_sla(out)
    assert "missed (late or never), running" in result.out
    with _store(out) as s:
        rerouted_waiting = s.scalar(
            select(func.count()).select_from(Decision)
            .where(Decision.cause == "reroute", Decision.state == "pending_review")
        )  # fmt: skip
    assert rerouted_waiting == 0  # a re-route's new owner answers it
    assert figures["api_calls"]["salesforce"] > 0 and figures["api_calls"]["hubspot"] > 0
    assert all(json.loads(line)["hash"] for line in (out / "audit.jsonl").read_text().splitlines())
    assert (out / "digest-chart.png").read_bytes().startswith(b"\x89PNG")

    report = (out / "report.html").read_text()
    assert "data:image/png;base64," in report  # self-contained
    shown = [h for h in HOSTILE if h.startswith("<") and html.escape(h, quote=True) in report]
    assert shown, "the sample shows a hostile name, escaped"
    assert "<script>" not in report and "<!channel>" not in report
