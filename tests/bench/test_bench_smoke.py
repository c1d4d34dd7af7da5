"""The benchmarks run end to end on a few rows/days and keep their output contract.
(Benchmarks are not tests: the figures themselves are in the closing note, not asserted.)"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_given_a_short_simulation_when_run_twice_then_the_weekly_lines_keep_the_contract_and_repeat(
    capsys: pytest.CaptureFixture[str],
) -> None:
    learning = _bench("learning")
    args = ["--weeks", "1", "--leads-per-day", "5", "--seed", "3"]
    assert learning.main(args) == 0
    first = capsys.readouterr()
    assert learning.main(args) == 0
    second = capsys.readouterr()
    rows = [json.loads(line) for line in first.out.splitlines()]
    assert [r["week"] for r in rows] == [1]
    for key in ("accept_rate", "review_share", "auto_error_rate", "review_minutes_per_day"):
        assert key in rows[0]
    assert rows[0]["leads"] > 0 and rows[0]["minutes_per_review"] == 3.0
    assert first.out == second.out  # seeded: the same arguments print the same lines
    assert "accept" in first.err  # the readable table


def _write_tiny_data(root: Path) -> None:
    xedu = root / "x_education_leads"
    xedu.mkdir()
    header = (
        "Prospect ID,Lead Number,Lead Origin,Lead Source,Do Not Email,Converted,TotalVisits,"
        "Total Time Spent on Website,Page Views Per Visit,Last Activity,What is your current occupation,Tags,"
        "Asymmetrique Activity Score"
    )
    lines = [header]
    for i in range(200):
        converted = i % 3 == 0
        occupation = "Working Professional" if converted and i % 2 else ("Select" if i % 5 == 0 else "Unemployed")
        time_on_site = 900 if converted else 100 + i
        lines.append(
            f"id{i},{i},{'Lead Add Form' if i % 4 == 0 else 'API'},Google,No,{int(converted)},{i % 7},"
            f"{time_on_site},{i % 4},Email Opened,{occupation},Will revert,{i % 20}"
        )
    (xedu / "Leads.csv").write_text("\n".join(lines) + "\n")


def test_given_a_tiny_dataset_when_evaluated_then_one_line_per_configuration_and_missing_ones_are_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evaluate = _bench("evaluate_scoring")
    _write_tiny_data(tmp_path)
    assert evaluate.main(["--data", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["config"] for r in rows] == [
        "policy",
        "learned_policy_signals",
        "learned_all_columns",
        "logistic_baseline",
    ]
    assert all(r["dataset"] == "x_education_leads" and 0 <= r["auc"] <= 1 for r in rows)
    assert "skipped uci_bank_marketing" in captured.err
    assert evaluate.main(["--data", str(tmp_path / "nowhere")]) == 0
    assert "skipped x_education_leads" in capsys.readouterr().err


def test_given_a_small_store_when_the_digest_bench_runs_then_it_prints_one_line_with_db_n_seconds_and_the_floor(
    capsys: pytest.CaptureFixture[str],
) -> None:
    digest = _bench("digest")
    assert digest.main(["--db", "sqlite", "--n", "3000", "--repeat", "1"]) == 0
    captured = capsys.readouterr()
    [line] = [json.loads(row) for row in captured.out.splitlines()]
    assert (line["db"], line["n"], line["week_decisions"]) == ("sqlite", 3000, 600)  # a fifth: one week of five
    assert line["seconds"] > 0 and line["seconds"] == pytest.approx(
        line["query_seconds"] + line["render_seconds"], abs=0.01
    )
    # the floor, measured in the same run: every decision of the five weeks, their leads, and the week's rows
    assert line["floor_seconds"] > 0 and line["floor_rows"] > 3000
    for ratio, part in (("floor_ratio", "seconds"), ("query_ratio", "query_seconds")):
        expected = line[part] / line["floor_seconds"]  # from rounded fields: only roughly equal
        assert line[ratio] > 0 and line[ratio] == pytest.approx(expected, rel=0.2)
    assert "seconds" in captured.err and "q ratio" in captured.err  # the readable table, with the ratios


def test_given_quick_mode_when_measuring_speed_to_lead_then_one_line_with_percentiles_the_target_and_the_floor(
    capsys: pytest.CaptureFixture[str],
) -> None:
    speed = _bench("speed_to_lead")
    assert speed.main(["--quick"]) == 0
    captured = capsys.readouterr()
    [row] = [json.loads(line) for line in captured.out.splitlines()]
    assert row["mode"] == "polling 1s" and row["latency_ms"] == 100.0
    assert row["auto"] > 0 and row["review"] > 0 and row["missed"] == 0  # both kinds measured, none lost
    assert 0 < row["p50_s"] <= row["p95_s"] and row["target_s"] == 3.0 and isinstance(row["met"], bool)
    # the floor, a bare poller beside loopgate: it saw every lead, without a failed read
    assert 0 < row["floor_p50_s"] <= row["floor_p95_s"] and row["floor_missed"] == 0 and row["floor_errors"] == 0
    assert row["p95_ratio"] > 0 and row["p95_ratio"] == pytest.approx(row["p95_s"] / row["floor_p95_s"], rel=0.01)
    assert "p95_s" in captured.err and "p95_ratio" in captured.err  # the readable table, with the ratio
