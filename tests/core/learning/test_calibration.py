"""Calibration curves: monotone, within [0, 1], faithful to acceptance; reliability and ECE."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.confidence import Calibration, Curve
from core.learning.calibration import (
    expected_calibration_error,
    fit_curve,
    pool_adjacent_violators,
    reliability,
)

labels = st.lists(
    st.tuples(st.floats(min_value=0, max_value=1, allow_nan=False), st.booleans()), min_size=1, max_size=200
)


@given(labels)
@settings(max_examples=150, deadline=None)
def test_given_any_labels_when_fitted_then_the_curve_is_monotone_and_within_0_1(data: list[tuple[float, bool]]) -> None:
    curve = fit_curve(data)
    grid = [i / 100 for i in range(101)]
    values = [curve(x) for x in grid]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert values == sorted(values)


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0.1, 5)), min_size=1, max_size=60))
@settings(max_examples=150, deadline=None)
def test_given_weighted_points_when_pooled_then_blocks_increase_and_keep_the_weighted_mean(
    points: list[tuple[float, float, float]],
) -> None:
    blocks = pool_adjacent_violators(points)
    assert [b.y for b in blocks] == sorted(b.y for b in blocks)
    assert [b.x for b in blocks] == sorted(b.x for b in blocks)
    total = sum(w for _, _, w in points)
    assert sum(b.weight for b in blocks) == pytest.approx(total)
    assert sum(b.y * b.weight for b in blocks) == pytest.approx(sum(y * w for _, y, w in points))


def test_given_a_violation_when_pooled_then_the_two_points_share_their_mean() -> None:
    blocks = pool_adjacent_violators([(0.1, 0.0, 1), (0.2, 1.0, 1), (0.3, 0.0, 1), (0.4, 1.0, 1)])
    assert [(round(b.x, 2), b.y, b.weight) for b in blocks] == [(0.1, 0.0, 1), (0.25, 0.5, 2), (0.4, 1.0, 1)]


def test_given_acceptance_rising_with_confidence_when_fitted_then_the_curve_follows_it() -> None:
    rng = random.Random(7)
    data = []
    for _ in range(4000):
        raw = rng.random()
        data.append((raw, rng.random() < 0.2 + 0.7 * raw))  # truth: P(accept) = 0.2 + 0.7·raw
    curve = fit_curve(data)
    for raw in (0.1, 0.5, 0.9):
        assert curve(raw) == pytest.approx(0.2 + 0.7 * raw, abs=0.06)


def test_given_a_single_rejection_at_high_confidence_when_fitted_then_it_is_shrunk_not_zero() -> None:
    data = [(0.3, True)] * 20 + [(0.9, False)]
    assert fit_curve(data)(0.9) > 0.5


def test_given_no_labels_when_fitted_then_refused() -> None:
    with pytest.raises(ValueError, match="without labels"):
        fit_curve([])


def test_given_a_pooled_curve_when_a_segment_has_none_then_the_pool_applies() -> None:
    pooled = Curve(((0.0, 0.1), (1.0, 0.3)))
    own = Curve(((0.0, 0.8), (1.0, 0.9)))
    calibration = Calibration(curves={"smb": own}, pooled=pooled)
    assert calibration.apply("smb", 0.5) == 0.85
    assert calibration.apply("enterprise", 0.5) == 0.2
    assert Calibration().apply("smb", 0.42) == 0.42


def test_given_labels_when_binned_then_the_table_and_ece_are_as_counted_by_hand() -> None:
    data = [(0.15, True), (0.15, False), (0.85, True), (0.85, True), (0.85, True), (0.85, False)]
    table = reliability(data, bins=10)
    assert [(b.lo, b.n, b.accept_rate) for b in table] == [(0.1, 2, 0.5), (0.8, 4, 0.75)]
    # |0.5 − 0.15|·2/6 + |0.75 − 0.85|·4/6
    assert expected_calibration_error(table) == pytest.approx(0.35 * 2 / 6 + 0.10 * 4 / 6)
    assert expected_calibration_error([]) is None


def test_given_a_confidence_of_exactly_one_when_binned_then_it_lands_in_the_last_bin() -> None:
    assert reliability([(1.0, True)], bins=4)[0].lo == 0.75
