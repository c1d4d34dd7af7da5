"""The monthly tuning report's findings, from labelled decisions (pure; the store gathers them).

* **Band errors**, two ways. By people: of the leads a person judged, how many had their band
  kept, moved down (the score was too high: a false positive) or moved up (too low: a false
  negative). By outcomes: per band, how many leads converted; a lead above ``cold`` that did
  not convert is a false positive, a ``cold`` lead that converted a false negative.
* **Ranking**: AUC, precision@N and lift at the top decile of the score, where outcomes exist.
* **Recurring override reasons**: disagreements grouped by reason code, with where they come
  from (segments, people), listed when a reason recurs ``min_count`` times or more.
* **Agreement** per segment and per person.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from core.learning.comparison import side_metrics
from core.learning.labels import LabelledDecision, Verdict, agreement, agreement_by

__all__ = ["agreement_summary", "band_errors", "ranking", "recurring_reasons"]


def _rate(hits: int, n: int) -> float | None:
    return round(hits / n, 4) if n else None


def band_errors(items: Sequence[LabelledDecision], bands_low_to_high: Sequence[str]) -> dict[str, Any]:
    """False positives and negatives by band, as people and as outcomes saw them."""
    rank = {b: i for i, b in enumerate(bands_low_to_high)}
    people: dict[str, Counter[str]] = {b: Counter() for b in bands_low_to_high}
    outcomes: dict[str, Counter[str]] = {b: Counter() for b in bands_low_to_high}
    lowest = bands_low_to_high[0]
    for item in items:
        band = str(item.contract["score"]["band"])
        if band not in rank:
            continue
        if item.human_band is not None and item.human_band in rank:
            c = people[band]
            c["judged"] += 1
            moved = rank[item.human_band] - rank[band]
            c["kept" if moved == 0 else ("moved_down" if moved < 0 else "moved_up")] += 1
        if item.outcome is not None:
            o = outcomes[band]
            o["known"] += 1
            o["positive"] += item.outcome.positive
            if band != lowest and not item.outcome.positive:
                o["false_positive"] += 1
            if band == lowest and item.outcome.positive:
                o["false_negative"] += 1
    return {
        "by_people": {
            b: {
                "judged": c["judged"],
                "kept": c["kept"],
                "false_positive": c["moved_down"],
                "false_negative": c["moved_up"],
                "false_positive_rate": _rate(c["moved_down"], c["judged"]),
                "false_negative_rate": _rate(c["moved_up"], c["judged"]),
            }
            for b, c in people.items()
        },
        "by_outcomes": {
            b: {
                "known": o["known"],
                "converted": o["positive"],
                "conversion_rate": _rate(o["positive"], o["known"]),
                "false_positive": o["false_positive"],
                "false_negative": o["false_negative"],
            }
            for b, o in outcomes.items()
        },
    }


def ranking(items: Sequence[LabelledDecision], *, top_n: int) -> dict[str, Any]:
    """Ranking quality of the score against outcomes (None where there are no outcomes)."""
    known = [i for i in items if i.outcome is not None]
    metrics = side_metrics([i.contract for i in known], [i.outcome for i in known], top_n=top_n)
    metrics.pop("conversion_by_band", None)
    return {"known": len(known), "positive": sum(1 for i in known if i.outcome and i.outcome.positive), **metrics}


def recurring_reasons(found: Sequence[Verdict], *, min_count: int = 3) -> list[dict[str, Any]]:
    """Disagreements grouped by reason code, most frequent first, if they recur."""
    disagreements = [v for v in found if not v.agree]
    groups: dict[str, list[Verdict]] = {}
    for v in disagreements:
        groups.setdefault(v.reason_code or "(no reason given)", []).append(v)
    out = []
    for reason, vs in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        if len(vs) < min_count:
            continue
        out.append(
            {
                "reason": reason,
                "count": len(vs),
                "share_of_disagreements": _rate(len(vs), len(disagreements)),
                "kinds": dict(Counter(v.kind for v in vs).most_common()),
                "segments": dict(Counter(v.segment for v in vs).most_common(3)),
                "people": dict(Counter(v.reviewer for v in vs).most_common(3)),
            }
        )
    return out


def agreement_summary(found: Sequence[Verdict]) -> dict[str, Any]:
    """Agreement overall, per segment and per person."""

    def row(n: int, rate: float | None) -> dict[str, Any]:
        return {"verdicts": n, "agreement": None if rate is None else round(rate, 4)}

    overall = agreement(found)
    return {
        "overall": row(overall.n, overall.rate),
        "by_segment": {k: row(a.n, a.rate) for k, a in sorted(agreement_by(found, lambda v: v.segment).items())},
        "by_person": {k: row(a.n, a.rate) for k, a in sorted(agreement_by(found, lambda v: v.reviewer).items())},
    }
