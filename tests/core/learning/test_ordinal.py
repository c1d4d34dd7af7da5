"""Ordinal logistic regression recovers the weights and thresholds that made the data."""

from __future__ import annotations

import numpy as np
import pytest

from core.learning.ordinal import fit_ordinal


def test_given_data_from_a_known_ordinal_model_when_fitted_then_weights_and_thresholds_are_recovered() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6000, 3)) * [1.0, 10.0, 1.0]  # different units: standardising must not matter
    eta = x @ np.array([1.5, -0.1, 0.0]) + rng.logistic(size=6000)
    y = np.digitize(eta, [-0.5, 1.0]).astype(np.int64)
    model = fit_ordinal(x, y, classes=3, l2=1e-5)
    assert model.weights == pytest.approx([1.5, -0.1, 0.0], abs=0.08)
    assert model.thresholds == pytest.approx([-0.5, 1.0], abs=0.12)
    assert model.converged
    assert (model.predict(x) == y).mean() > 0.6


def test_given_two_classes_when_fitted_then_it_is_logistic_regression() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4000, 2))
    y = (x @ np.array([2.0, -1.0]) + rng.logistic(size=4000) > 0.5).astype(np.int64)
    model = fit_ordinal(x, y, classes=2, l2=1e-5)
    assert model.weights == pytest.approx([2.0, -1.0], abs=0.15)
    assert model.thresholds == pytest.approx([0.5], abs=0.12)


def test_given_a_class_without_examples_when_fitted_then_refused() -> None:
    with pytest.raises(ValueError, match="every class needs"):
        fit_ordinal(np.zeros((3, 1)), np.array([0, 0, 2]), classes=3)
