"""Two policies' decisions on the same leads, side by side: what changes, who reviews more,
and which one agrees better with people and outcomes.

Used by ``policy simulate`` (current vs NEW, replayed), ``policy compare`` (champion vs
challenger, from shadow decisions) and the tuning report's expected effect. Decisions are
decision-contract dicts (DESIGN §4), so every source of decisions compares the same way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.learning.labels import Outcome
from core.learning.metrics import auc, lift_at, precision_at

__all__ = ["Pair", "compare", "side_metrics"]


@dataclass(frozen=True, slots=True)
class Pair:
    """One lead decided by both policies, with what people and the CRM said (if anything)."""

    lead: str  # source:id
    before: Mapping[str, Any]
    after: Mapping[str, Any]
    human_band: str | None = None
    human_owner: str | None = None
    outcome: Outcome | None = None


def _band(d: Mapping[str, Any]) -> str:
    return str(d["score"]["band"])


def _score(d: Mapping[str, Any]) -> float:
    return float(d["score"]["total"])


def _rate(hits: int, n: int) -> float | None:
    return round(hits / n, 4) if n else None


def _review_load(side: Sequence[Mapping[str, Any]], days: float) -> dict[str, Any]:
    reviews = [d for d in side if d["action"] == "review"]
    per_day = max(days, 1e-9)
    by_segment = Counter(str(d.get("segment")) for d in reviews)
    by_rep = Counter(str(d.get("owner") or "nobody") for d in reviews)
    return {
        "reviews": len(reviews),
        "per_day": round(len(reviews) / per_day, 2),
        "share": _rate(len(reviews), len(side)),
        "by_segment_per_day": {k: round(v / per_day, 2) for k, v in sorted(by_segment.items())},
        "by_rep_per_day": {k: round(v / per_day, 2) for k, v in sorted(by_rep.items())},
        "actions": dict(sorted(Counter(str(d["action"]) for d in side).items())),
    }


def side_metrics(
    side: Sequence[Mapping[str, Any]], outcomes: Sequence[Outcome | None], *, top_n: int
) -> dict[str, Any]:
    """Ranking and conversion metrics of one policy's decisions where outcomes are known."""
    known = [(d, o) for d, o in zip(side, outcomes, strict=True) if o is not None]
    scores = [_score(d) for d, _ in known]
    positives = [o.positive for _, o in known]
    by_band: dict[str, list[int]] = {}
    for (d, _), p in zip(known, positives, strict=True):
        c = by_band.setdefault(_band(d), [0, 0])
        c[0] += 1
        c[1] += p
    n = min(top_n, len(known))
    area, lift, precision = auc(scores, positives), lift_at(scores, positives, 0.1), precision_at(scores, positives, n)
    bands = {b: {"leads": c[0], "converted": c[1], "rate": _rate(c[1], c[0])} for b, c in by_band.items()}
    return {
        "auc": None if area is None else round(area, 4),
        "lift_top_decile": None if lift is None else round(lift, 3),
        "precision_at_n": None if precision is None else round(precision, 4),
        "n": n,
        "conversion_by_band": bands,
    }


def compare(pairs: Sequence[Pair], *, days: float, top_n: int = 50, examples: int = 10) -> dict[str, Any]:
    """The side-by-side report (plain data; the CLI prints it, ``--json`` dumps it)."""
    before = [p.before for p in pairs]
    after = [p.after for p in pairs]
    action_moves: Counter[str] = Counter()
    band_moves: Counter[str] = Counter()
    changed = Counter[str]()
    shown: list[dict[str, Any]] = []
    for p in pairs:
        diff = {
            "action": p.before["action"] != p.after["action"],
            "owner": p.before.get("owner") != p.after.get("owner"),
            "band": _band(p.before) != _band(p.after),
        }
        for key, moved in diff.items():
            changed[key] += moved
        changed["any"] += any(diff.values())
        # an owner change by another rule or team is a policy change; within the same rotation it is
        # (in a replay) mostly round-robin turns shifting after an earlier lead went elsewhere
        changed["route"] += _route(p.before) != _route(p.after)
        if diff["action"]:
            action_moves[f"{p.before['action']}→{p.after['action']}"] += 1
        if diff["band"]:
            band_moves[f"{_band(p.before)}→{_band(p.after)}"] += 1
        if any(diff.values()) and len(shown) < examples:
            shown.append({"lead": p.lead, "before": _brief(p.before), "after": _brief(p.after)})
    judged = [p for p in pairs if p.human_band is not None]
    owners = [p for p in pairs if p.human_owner is not None]
    outcomes = [p.outcome for p in pairs]
    return {
        "leads": len(pairs),
        "days": round(days, 2),
        "changed": {k: changed[k] for k in ("any", "action", "owner", "route", "band")},
        "action_changes": dict(action_moves.most_common()),
        "band_changes": dict(band_moves.most_common()),
        "examples": shown,
        "review_load": {"before": _review_load(before, days), "after": _review_load(after, days)},
        "labels": {
            "judged": len(judged),
            "band_agreement": {
                "before": _rate(sum(_band(p.before) == p.human_band for p in judged), len(judged)),
                "after": _rate(sum(_band(p.after) == p.human_band for p in judged), len(judged)),
            },
            "owner_agreement": {
                "before": _rate(sum(p.before.get("owner") == p.human_owner for p in owners), len(owners)),
                "after": _rate(sum(p.after.get("owner") == p.human_owner for p in owners), len(owners)),
            },
        },
        "outcomes": {
            "known": sum(1 for o in outcomes if o is not None),
            "positive": sum(1 for o in outcomes if o is not None and o.positive),
            "before": side_metrics(before, outcomes, top_n=top_n),
            "after": side_metrics(after, outcomes, top_n=top_n),
        },
    }


def _route(d: Mapping[str, Any]) -> tuple[Any, Any]:
    route = d.get("route") or {}
    return route.get("rule"), route.get("team")


def _brief(d: Mapping[str, Any]) -> dict[str, Any]:
    return {"action": d["action"], "owner": d.get("owner"), "band": _band(d), "score": d["score"]["total"]}
