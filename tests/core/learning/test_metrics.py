"""AUC, precision@N and lift at the top decile, against hand-computed values."""

from __future__ import annotations

import pytest

from core.learning.metrics import auc, lift_at, precision_at


def test_given_a_perfect_ranking_when_scored_then_auc_is_one_and_reversed_zero() -> None:
    assert auc([4, 3, 2, 1], [True, True, False, False]) == 1.0
    assert auc([1, 2, 3, 4], [True, True, False, False]) == 0.0


def test_given_ties_when_scored_then_tied_pairs_count_half() -> None:
    # positives 5, 3; negatives 3, 1 → pairs: (5>3)1 (5>1)1 (3=3)0.5 (3>1)1 → 3.5/4
    assert auc([5, 3, 3, 1], [True, True, False, False]) == pytest.approx(0.875)


def test_given_one_class_when_scored_then_auc_is_undefined() -> None:
    assert auc([1, 2], [True, True]) is None


def test_given_ten_leads_when_measured_then_precision_and_lift_are_as_counted() -> None:
    scores = list(range(10, 0, -1))
    positives = [True, False, True, False, False, False, False, False, False, True]
    assert precision_at(scores, positives, 2) == 0.5
    assert lift_at(scores, positives, 0.1) == pytest.approx(1.0 / 0.3)
    assert lift_at(scores, [False] * 10) is None
