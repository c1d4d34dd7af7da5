"""loopgate's score on real lead data: AUC and lift at the top decile, three ways.

For each dataset found under ``--data`` (DESIGN §12; evaluation only, never shipped):

* ``x_education_leads/Leads.csv`` — 9,240 course leads, target ``Converted``. Leaking columns
  are dropped (``Tags``, ``Lead Quality``, ``Lead Profile``, ``Last Activity``, ``Last Notable
  Activity``, ``Asymmetrique*``) and "Select" means missing. No time column: a seeded,
  stratified 70/30 split.
* ``uci_bank_marketing/bank-additional-full.csv`` — 41,188 calls, target ``y``; ``duration``
  (known only after the call) is dropped. Rows are in time order: the first 70% train, the
  last 30% test (a forward-in-time split, so the test period's base rate differs); also
  evaluated on a seeded random split, to tell learning from surviving the shift.

Configurations, all scored on the same test rows:

* ``policy`` — the example policy with a scoring section adapted to the data *by hand*, from
  what an admin of that business would write before seeing outcomes (below, unfitted);
* ``learned_policy_signals`` — that policy after ``core.learning.scoring_fit.learn_scoring``
  on the training split, exploring only the signals the policy already scores;
* ``learned_all_columns`` — the same, also exploring every other column;
* ``logistic_baseline`` — plain logistic regression (one-hot categories, standardised numbers,
  missing indicators) on every column: scikit-learn when installed (the ``bench`` extra),
  else loopgate's own ordinal regression with two classes.

One JSON object per configuration on stdout; a table on stderr. A missing dataset is skipped
with a note, never an error.

    python bench/evaluate_scoring.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.learning.metrics import auc, lift_at, precision_at  # noqa: E402
from core.learning.ordinal import fit_ordinal  # noqa: E402
from core.learning.policy_text import replace_section  # noqa: E402
from core.learning.scoring_fit import Example, lead_facts, learn_scoring  # noqa: E402
from core.model import Lead  # noqa: E402
from core.policy import LoadedPolicy, parse_policy  # noqa: E402
from core.scoring import Scorer  # noqa: E402

NOW = datetime(2026, 11, 20, tzinfo=UTC)  # no events in these data: the clock does not matter

# Written from domain knowledge before looking at outcomes: an online-course business values
# working professionals, time on the site, form fills and referrals; email opt-outs are bad.
XEDU_SCORING = """scoring:
  fit:
    - {signal: fields.what_is_your_current_occupation, in: [Working Professional], points: 25, label: professional}
    - {signal: fields.what_is_your_current_occupation, in: [Student], points: -5, label: student}
    - {signal: fields.total_time_spent_on_website, gte: 600, points: 20, label: 10+ minutes on the site}
    - {signal: fields.total_time_spent_on_website, between: [300, 599], points: 10, label: 5–10 minutes on the site}
    - {signal: fields.totalvisits, gte: 5, points: 10, label: 5+ visits}
    - {signal: fields.page_views_per_visit, gte: 3, points: 5, label: 3+ pages a visit}
    - {signal: fields.lead_origin, in: [Lead Add Form], points: 20, label: filled in the lead form}
    - {signal: fields.lead_origin, in: [Landing Page Submission], points: 5, label: landing page submission}
    - {signal: fields.lead_source, in: [Reference, Welingak Website], points: 15, label: referral}
    - {signal: fields.lead_source, in: [Google, Direct Traffic, Organic Search], points: 5, label: search or direct}
    - {signal: fields.do_not_email, eq: "Yes", points: -15, label: opted out of email}
  intent:
    half_life_days: 14
    events: {demo_request: 35}
  bands: {hot: 50, warm: 25}
"""

# Telemarketing of term deposits: a past success, a recent contact, mobile phones, people with
# savings and time (students, retirees); many calls this campaign mean fatigue.
BANK_SCORING = """scoring:
  fit:
    - {signal: fields.poutcome, in: [success], points: 30, label: previous campaign succeeded}
    - {signal: fields.pdays, lt: 999, points: 10, label: contacted before}
    - {signal: fields.contact, in: [cellular], points: 10, label: mobile phone}
    - {signal: fields.job, in: [student, retired], points: 10, label: student or retired}
    - {signal: fields.age, gte: 60, points: 10, label: 60 or older}
    - {signal: fields.age, lt: 25, points: 5, label: under 25}
    - {signal: fields.default, in: [unknown], points: -5, label: credit default unknown}
    - {signal: fields.loan, in: ["yes"], points: -5, label: has a personal loan}
    - {signal: fields.campaign, gte: 4, points: -10, label: called 4+ times this campaign}
  intent:
    half_life_days: 14
    events: {demo_request: 35}
  bands: {hot: 40, warm: 20}
"""


@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path
    scoring: str
    target: str
    positive: str
    drop: tuple[str, ...]
    drop_prefixes: tuple[str, ...]
    missing: tuple[str, ...]
    delimiter: str
    split: str  # random | time


DATASETS = (
    Dataset(
        "x_education_leads",
        Path("x_education_leads/Leads.csv"),
        XEDU_SCORING,
        "Converted",
        "1",
        (
            "Prospect ID",
            "Lead Number",
            "Tags",
            "Lead Quality",
            "Lead Profile",
            "Last Activity",
            "Last Notable Activity",
        ),
        ("Asymmetrique",),
        ("Select", ""),
        ",",
        "random",
    ),
    Dataset(
        "uci_bank_marketing",
        Path("uci_bank_marketing/bank-additional-full.csv"),
        BANK_SCORING,
        "y",
        "yes",
        ("duration",),
        (),
        ("",),
        ";",
        "time",
    ),
    # the same calls split at random: separates "can it learn" from "does it survive the shift"
    Dataset(
        "uci_bank_marketing",
        Path("uci_bank_marketing/bank-additional-full.csv"),
        BANK_SCORING,
        "y",
        "yes",
        ("duration",),
        (),
        ("",),
        ";",
        "random",
    ),
)


def slug(column: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", column.lower()).strip("_")


def _value(text: str, missing: tuple[str, ...]) -> Any:
    text = text.strip()
    if text in missing:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def load(data: Path, ds: Dataset) -> tuple[list[dict[str, Any]], list[bool]]:
    rows, labels = [], []
    with (data / ds.path).open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter=ds.delimiter):
            label = row.pop(ds.target).strip() == ds.positive
            kept = {
                slug(k): _value(v, ds.missing)
                for k, v in row.items()
                if k not in ds.drop and not k.startswith(ds.drop_prefixes)
            }
            rows.append(kept)
            labels.append(label)
    return rows, labels


def split(ds: Dataset, labels: Sequence[bool], seed: int) -> tuple[list[int], list[int]]:
    n = len(labels)
    if ds.split == "time":
        cut = int(n * 0.7)
        return list(range(cut)), list(range(cut, n))
    rng = random.Random(seed)
    train: list[int] = []
    test: list[int] = []
    for cls in (True, False):  # stratified
        idx = [i for i in range(n) if labels[i] == cls]
        rng.shuffle(idx)
        cut = int(len(idx) * 0.7)
        train += idx[:cut]
        test += idx[cut:]
    return sorted(train), sorted(test)


def policy_for(ds: Dataset) -> LoadedPolicy:
    base = (ROOT / "examples" / "policy.yaml").read_text()
    return parse_policy(replace_section(base, "scoring", ds.scoring), f"{ds.name}.yaml")


def scores(loaded: LoadedPolicy, leads: Sequence[Lead]) -> list[float]:
    scorer = Scorer(loaded.policy.scoring)
    free = frozenset(loaded.policy.enrichment.free_email_domains)
    return [float(scorer.score(lead_facts(lead, None, NOW, free)).total) for lead in leads]


def metrics(values: Sequence[float], labels: Sequence[bool]) -> dict[str, Any]:
    area, lift = auc(values, labels), lift_at(values, labels, 0.1)
    top = max(1, len(values) // 10)
    precision = precision_at(values, labels, top)
    return {
        "auc": None if area is None else round(area, 4),
        "lift_top_decile": None if lift is None else round(lift, 3),
        "precision_top_decile": None if precision is None else round(precision, 4),
    }


def baseline(
    rows: Sequence[dict[str, Any]], labels: Sequence[bool], train: list[int], test: list[int]
) -> tuple[list[float], str]:
    """Plain logistic regression on every column (fitted on train only)."""
    columns = sorted({k for r in rows for k in r})
    numeric = [c for c in columns if all(isinstance(r.get(c), float) or r.get(c) is None for r in rows)]
    categorical = [c for c in columns if c not in numeric]
    levels = {c: sorted({str(rows[i][c]) for i in train if rows[i].get(c) is not None}) for c in categorical}

    def encode(idx: list[int]) -> np.ndarray:  # type: ignore[type-arg]
        out = []
        for i in idx:
            r = rows[i]
            vec: list[float] = []
            for c in numeric:
                v = r.get(c)
                vec += [0.0 if v is None else float(v), 1.0 if v is None else 0.0]
            for c in categorical:
                v = r.get(c)
                vec += [1.0 if v is not None and str(v) == level else 0.0 for level in levels[c]]
            out.append(vec)
        return np.asarray(out, dtype=np.float64)

    x_train, x_test = encode(train), encode(test)
    y_train = np.asarray([int(labels[i]) for i in train], dtype=np.int64)
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        model = fit_ordinal(x_train, y_train, classes=2, l2=1e-3)
        return [float(v) for v in model.linear(x_test)], "loopgate.ordinal"
    scaler = StandardScaler().fit(x_train)
    clf = LogisticRegression(max_iter=2000).fit(scaler.transform(x_train), y_train)
    return [float(v) for v in clf.decision_function(scaler.transform(x_test))], "sklearn.LogisticRegression"


def evaluate(data: Path, ds: Dataset, seed: int) -> list[dict[str, Any]]:
    rows, labels = load(data, ds)
    train, test = split(ds, labels, seed)
    leads = [Lead(id=f"{ds.name}-{i}", source=ds.name, fields=r) for i, r in enumerate(rows)]
    y_test = [labels[i] for i in test]
    common = {
        "dataset": ds.name,
        "rows": len(rows),
        "train": len(train),
        "test": len(test),
        "positive_rate_test": round(sum(y_test) / len(y_test), 4),
        "split": ds.split,
        "seed": seed,
    }
    out: list[dict[str, Any]] = []
    policy = policy_for(ds)
    t0 = time.perf_counter()
    test_leads = [leads[i] for i in test]
    out.append({**common, "config": "policy", **metrics(scores(policy, test_leads), y_test), "version": policy.version})

    train_leads = [leads[i] for i in train]
    current = scores(policy, train_leads)
    examples = [Example(leads[i], None, NOW, int(labels[i])) for i in train]
    all_columns = [f"fields.{c}" for c in sorted({k for r in rows for k in r})]
    for config, extra in (("learned_policy_signals", ()), ("learned_all_columns", tuple(all_columns))):
        t1 = time.perf_counter()
        proposal = learn_scoring(
            policy.policy, examples, classes=["no", "yes"], anchor="shares", current_totals=current, extra_signals=extra
        )
        learned = parse_policy(replace_section(policy.text, "scoring", _render(proposal)), f"{ds.name}-learned.yaml")
        out.append(
            {
                **common,
                "config": config,
                **metrics(scores(learned, test_leads), y_test),
                "rules": len(learned.policy.scoring.fit),
                "converged": proposal.converged,
                "fit_seconds": round(time.perf_counter() - t1, 1),
            }
        )
    values, impl = baseline(rows, labels, train, test)
    out.append({**common, "config": "logistic_baseline", **metrics(values, y_test), "impl": impl})
    out[0]["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def _render(proposal: Any) -> str:
    from core.learning.policy_text import render_scoring

    return render_scoring(proposal.scoring)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder holding the dataset folders")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", choices=sorted({d.name for d in DATASETS}), help="one dataset")
    args = parser.parse_args(argv)
    results: list[dict[str, Any]] = []
    for ds in DATASETS:
        if args.only and ds.name != args.only:
            continue
        if not (args.data / ds.path).is_file():
            print(f"skipped {ds.name}: {args.data / ds.path} not found", file=sys.stderr)
            continue
        for row in evaluate(args.data, ds, args.seed):
            print(json.dumps(row), flush=True)
            results.append(row)
    print(f"{'dataset':<20} {'split':<7} {'config':<24} {'AUC':>7} {'lift@10%':>9} {'prec@10%':>9}", file=sys.stderr)
    for r in results:
        print(
            f"{r['dataset']:<20} {r['split']:<7} {r['config']:<24} {r['auc']:>7} {r['lift_top_decile']:>9} "
            f"{r['precision_top_decile']:>9}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
