"""Ordinal logistic regression (proportional odds): one weight vector, ordered thresholds.

Why this model: a policy score *is* a weighted sum with ordered band thresholds, so the
model's weights become points and its thresholds become band boundaries with no translation
layer to explain. With two classes it is plain logistic regression. Written here (numpy
only) because fitting a few dozen weights on a few thousand labels needs nothing more, and
the product must not depend on a machine-learning stack at runtime.

``P(y ≥ k) = σ(x·w − θ_k)`` for k = 1…K−1 with θ increasing. Fitting minimises the mean
negative log-likelihood plus ``l2/2·|w|²`` on standardised features (so one penalty suits
every feature's unit) by Adam, deterministically (no random start).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["Array", "OrdinalModel", "fit_ordinal", "log_loss"]

Array = NDArray[np.float64]


@dataclass(frozen=True)
class OrdinalModel:
    """Weights in the features' own units; ``thresholds[k-1]`` separates class k−1 from k."""

    weights: Array
    thresholds: Array
    converged: bool
    iterations: int
    loss: float

    def linear(self, x: Array) -> Array:
        """The score ``x·w`` (higher means a higher class)."""
        return np.asarray(x @ self.weights, dtype=np.float64)

    def predict(self, x: Array) -> NDArray[np.int64]:
        """The class of each row: how many thresholds its score reaches."""
        eta = self.linear(x)
        return np.asarray((eta[:, None] >= self.thresholds[None, :]).sum(axis=1), dtype=np.int64)


def log_loss(eta: Array, thresholds: Array, y: NDArray[np.int64], sample_weight: Array | None = None) -> float:
    """Mean negative log-likelihood of classes ``y`` given scores ``eta`` (no penalty): how two
    models of the same rows compare, whatever their form."""
    eta = np.asarray(eta, dtype=np.float64)
    sw = np.ones(len(eta)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    padded = np.concatenate([[-np.inf], np.asarray(thresholds, dtype=np.float64), [np.inf]])
    prob = _sigmoid(eta - padded[y]) - _sigmoid(eta - padded[y + 1])
    return float(-(sw * np.log(np.clip(prob, 1e-12, None))).sum() / sw.sum())


def _sigmoid(z: Array) -> Array:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)), dtype=np.float64)


def fit_ordinal(
    x: Array,
    y: NDArray[np.int64],
    *,
    classes: int,
    l2: float = 1e-2,
    sample_weight: Array | None = None,
    max_iterations: int = 3000,
    tolerance: float = 1e-6,
    learning_rate: float = 0.05,
) -> OrdinalModel:
    """Fit on rows ``x`` (n × d) with classes ``y`` in ``0…classes−1`` (every class present)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    n, d = x.shape
    if n == 0 or classes < 2:
        raise ValueError("need rows and at least two classes")
    if y.min() < 0 or y.max() >= classes:
        raise ValueError("class labels must lie in 0…classes−1")
    present = np.bincount(y, minlength=classes)
    if (present == 0).any():
        raise ValueError(f"every class needs at least one example (counts {present.tolist()})")
    sw = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    sw = sw / sw.sum()

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale

    k1 = classes - 1
    # thresholds start at the empirical cumulative log-odds, weights at zero
    cum = np.cumsum(present[::-1])[::-1][1:] / n  # P(y ≥ k), k = 1…K−1
    cum = np.clip(cum, 1e-3, 1 - 1e-3)
    theta0 = -np.log(cum / (1 - cum))
    params = np.concatenate([np.zeros(d), [theta0[0]], np.log(np.maximum(np.diff(theta0), 1e-3))])
    m = np.zeros_like(params)
    v = np.zeros_like(params)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    last = np.inf
    converged = False
    it = 0
    loss = np.inf
    for it in range(1, max_iterations + 1):
        loss, grad = _loss_grad(params, z, y, sw, d, k1, l2)
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad * grad
        step = learning_rate * (m / (1 - beta1**it)) / (np.sqrt(v / (1 - beta2**it)) + eps)
        params = params - step
        if abs(last - loss) < tolerance * max(1.0, abs(loss)) and float(np.abs(grad).max()) < 1e-3:
            converged = True
            break
        last = loss

    w_std = params[:d]
    theta_std = _thresholds(params, d, k1)
    weights = w_std / scale
    shift = float((w_std * mean / scale).sum())
    return OrdinalModel(weights, theta_std + shift, converged, it, float(loss))


def _thresholds(params: Array, d: int, k1: int) -> Array:
    if k1 == 1:
        return np.asarray(params[d : d + 1], dtype=np.float64)
    gaps = np.exp(params[d + 1 : d + k1])
    return np.asarray(np.concatenate([[params[d]], params[d] + np.cumsum(gaps)]), dtype=np.float64)


def _loss_grad(
    params: Array, z: Array, y: NDArray[np.int64], sw: Array, d: int, k1: int, l2: float
) -> tuple[float, Array]:
    w = params[:d]
    theta = _thresholds(params, d, k1)
    eta = z @ w
    # upper[i] = P(y ≥ y_i), lower[i] = P(y ≥ y_i + 1); the class probability is their difference
    padded = np.concatenate([[-np.inf], theta, [np.inf]])
    a = eta - padded[y]
    b = eta - padded[y + 1]
    fa, fb = _sigmoid(a), _sigmoid(b)
    prob = np.clip(fa - fb, 1e-12, None)
    da = fa * (1 - fa)  # density at a (0 when a = +inf)
    db = fb * (1 - fb)
    loss = float(-(sw * np.log(prob)).sum() + 0.5 * l2 * (w @ w))
    g_eta = -(sw * (da - db) / prob)
    grad_w = z.T @ g_eta + l2 * w
    # d loss / d theta_k: +da/prob where y_i = k (upper bound is theta_k), −db/prob where y_i+1 = k
    g_theta = np.zeros(k1)
    for k in range(1, k1 + 1):
        upper = y == k
        lower = y + 1 == k
        g_theta[k - 1] = float(
            (sw[upper] * da[upper] / prob[upper]).sum() - (sw[lower] * db[lower] / prob[lower]).sum()
        )
    # chain rule through θ1 and the log-gaps: θ_k = θ1 + Σ_{j<k} exp(δ_j)
    grad_t1 = g_theta.sum()
    grad_gaps = np.zeros(max(k1 - 1, 0))
    if k1 > 1:
        gaps = np.exp(params[d + 1 : d + k1])
        for j in range(k1 - 1):
            grad_gaps[j] = g_theta[j + 1 :].sum() * gaps[j]
    return loss, np.concatenate([grad_w, [grad_t1], grad_gaps])
