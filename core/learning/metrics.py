"""Ranking metrics a RevOps team reads: AUC, precision@N, lift at the top decile.

Scores rank leads; outcomes say which converted. Ties in score are handled fairly (average
ranks for AUC, and the top-N takes tied leads in their given order, which callers make
deterministic). Pure Python on purpose: these run in reports over thousands of leads.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["auc", "lift_at", "precision_at"]


def auc(scores: Sequence[float], positives: Sequence[bool]) -> float | None:
    """Area under the ROC curve (the chance a random positive outranks a random negative);
    ``None`` when either class is missing."""
    if len(scores) != len(positives):
        raise ValueError("scores and outcomes differ in length")
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        mean_rank = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[order[k]] = mean_rank
        i = j + 1
    n_pos = sum(1 for p in positives if p)
    n_neg = len(positives) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    rank_sum = sum(r for r, p in zip(ranks, positives, strict=True) if p)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _top(scores: Sequence[float], n: int) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: -scores[i])[:n]


def precision_at(scores: Sequence[float], positives: Sequence[bool], n: int) -> float | None:
    """Share of positives among the ``n`` highest-scored leads."""
    top = _top(scores, min(n, len(scores)))
    return sum(1 for i in top if positives[i]) / len(top) if top else None


def lift_at(scores: Sequence[float], positives: Sequence[bool], fraction: float = 0.1) -> float | None:
    """Positive rate in the top ``fraction`` of leads by score over the overall rate."""
    if not scores:
        return None
    base = sum(1 for p in positives if p) / len(positives)
    if base == 0:
        return None
    n = max(1, round(len(scores) * fraction))
    top = _top(scores, n)
    return (sum(1 for i in top if positives[i]) / n) / base
