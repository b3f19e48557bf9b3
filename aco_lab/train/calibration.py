"""Calibration of predicted success probabilities, fitted on a held-out fold, stored as plain data.

- "platt": p' = sigmoid(a * logit(p) + b), two floats fitted by Newton's method on the log
  loss (a slope kept >= 0 so calibration never reverses the order of probabilities, which
  keeps success non-decreasing in the tier);
- "isotonic": a non-decreasing step function, stored as its knots and applied with
  linear interpolation between them;
- "none": identity.

The runtime applies the stored form with `aco.policy.calibrate`, so lab and runtime agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aco.policy import CALIBRATION_METHODS, calibrate, clip_probability

PLATT_RIDGE = 1e-3  # tiny L2 pull on (a - 1, b): keeps the fit finite on separable folds
NEWTON_STEPS = 50


@dataclass(frozen=True, slots=True)
class CalibrationMetrics:
    """Brier score and log loss of a fold's probabilities before and after calibration."""

    n: int
    brier_before: float
    brier_after: float
    log_loss_before: float
    log_loss_after: float

    def as_dict(self) -> dict[str, float | int]:
        """Plain dict for the bundle's validation metrics."""
        return {name: getattr(self, name) for name in self.__slots__}


def fit_calibration(probabilities: np.ndarray, labels: np.ndarray, method: str) -> dict:
    """Fit a calibration map of predicted probabilities to 0/1 outcomes; plain data."""
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration must be one of {CALIBRATION_METHODS}, got {method!r}")
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()
    if method == "none" or p.size == 0:
        return {"method": "none"}
    if method == "platt":
        a, b = _fit_platt(p, y)
        return {"method": "platt", "a": a, "b": b}
    return _fit_isotonic(p, y)


def build_calibration_metrics(
    probabilities: np.ndarray, labels: np.ndarray, calibration: dict
) -> CalibrationMetrics:
    """Brier and log loss on one fold, before and after applying `calibration`."""
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()
    after = calibrate(p, calibration)
    return CalibrationMetrics(
        n=int(p.size),
        brier_before=brier_score(p, y),
        brier_after=brier_score(after, y),
        log_loss_before=log_loss(p, y),
        log_loss_after=log_loss(after, y),
    )


def brier_score(p: np.ndarray, y: np.ndarray) -> float:
    """Mean squared error of probabilities against 0/1 outcomes."""
    return float(np.mean((p - y) ** 2)) if p.size else float("nan")


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of 0/1 outcomes (probabilities clipped away from 0 and 1)."""
    if not p.size:
        return float("nan")
    q = clip_probability(p)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log1p(-q)))


def _fit_platt(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Damped Newton's method on the regularised log loss of sigmoid(a * logit(p) + b)."""
    q = clip_probability(p)
    x = np.log(q) - np.log1p(-q)
    theta = np.array([1.0, 0.0])
    loss = _platt_loss(theta, x, y)
    for _ in range(NEWTON_STEPS):
        s = 1.0 / (1.0 + np.exp(-np.clip(theta[0] * x + theta[1], -700.0, 700.0)))
        w = s * (1 - s)
        grad = np.array([np.dot(s - y, x), np.sum(s - y)]) + PLATT_RIDGE * (theta - [1.0, 0.0])
        wx = np.dot(w, x)
        hess = np.array([[np.dot(w, x * x) + PLATT_RIDGE, wx], [wx, np.sum(w) + PLATT_RIDGE]])
        step = np.linalg.solve(hess, grad)
        # Halve the step until the loss falls: a full Newton step can overshoot.
        for _ in range(30):
            new_loss = _platt_loss(theta - step, x, y)
            if new_loss <= loss:
                break
            step = step / 2
        else:
            break
        theta, converged = theta - step, loss - new_loss < 1e-12 * max(1.0, loss)
        loss = new_loss
        if converged:
            break
    a, b = float(theta[0]), float(theta[1])
    if a < 0:  # reversed order would break monotonicity in the tier: fall back to a constant
        rate = min(max(float(y.mean()), 1e-6), 1 - 1e-6)
        a, b = 0.0, float(np.log(rate / (1 - rate)))
    return a, b


def _platt_loss(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    z = theta[0] * x + theta[1]
    # log(1 + e^z) - y z, computed stably; plus the ridge pull towards (1, 0).
    nll = np.sum(np.logaddexp(0.0, z) - y * z)
    return float(nll + 0.5 * PLATT_RIDGE * ((theta[0] - 1) ** 2 + theta[1] ** 2))


def _fit_isotonic(p: np.ndarray, y: np.ndarray) -> dict:
    """Pool-adjacent-violators fit; knots at the pooled blocks' mean inputs."""
    xs, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    ys = np.bincount(inverse, weights=y, minlength=xs.size)
    # Blocks of (sum x, sum y, count), merged while their means decrease.
    blocks: list[list[float]] = []
    for xv, yv, nv in zip(xs, ys, counts, strict=True):
        blocks.append([xv * nv, yv, float(nv)])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][2] >= blocks[-1][1] / blocks[-1][2]:
            last = blocks.pop()
            blocks[-1] = [blocks[-1][0] + last[0], blocks[-1][1] + last[1], blocks[-1][2] + last[2]]
    knots_x = [bx / n for bx, _, n in blocks]
    knots_y = [float(np.clip(by / n, 0.0, 1.0)) for _, by, n in blocks]
    return {"method": "isotonic", "x": [float(v) for v in knots_x], "y": knots_y}
