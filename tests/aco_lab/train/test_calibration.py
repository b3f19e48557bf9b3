"""Calibration maps: fitted on one fold, applied by the runtime's aco.policy.calibrate."""

import numpy as np
import pytest

from aco.policy import calibrate
from aco_lab.train.calibration import build_calibration_metrics, fit_calibration, log_loss


def overconfident(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes drawn from p, predictions pushed towards 0 and 1."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, n)
    y = (rng.uniform(size=n) < p).astype(float)
    logit = np.log(p / (1 - p)) * 3.0
    return 1 / (1 + np.exp(-logit)), y


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibration_lowers_log_loss_on_new_data(method: str) -> None:
    p, y = overconfident(seed=0)
    calibration = fit_calibration(p, y, method)
    p2, y2 = overconfident(seed=1)
    metrics = build_calibration_metrics(p2, y2, calibration)
    assert metrics.log_loss_after < metrics.log_loss_before - 0.05
    assert metrics.brier_after < metrics.brier_before


@pytest.mark.parametrize("method", ["platt", "isotonic", "none"])
def test_calibration_never_reverses_the_order(method: str) -> None:
    p, y = overconfident(seed=2)
    calibration = fit_calibration(p, y, method)
    grid = np.linspace(0, 1, 501)
    assert np.all(np.diff(calibrate(grid, calibration)) >= -1e-12)


def test_platt_on_anti_correlated_scores_falls_back_to_the_base_rate() -> None:
    p, y = overconfident(seed=3)
    calibration = fit_calibration(1 - p, y, "platt")
    assert calibration["a"] == 0.0
    assert calibrate(np.array([0.1, 0.9]), calibration) == pytest.approx([y.mean()] * 2, abs=1e-6)


def test_calibration_is_plain_data() -> None:
    p, y = overconfident(n=300)
    for method in ("platt", "isotonic", "none"):
        cal = fit_calibration(p, y, method)
        assert all(isinstance(v, str | float | list) for v in cal.values())


def test_unknown_method_is_refused_and_log_loss_is_finite_at_the_edges() -> None:
    with pytest.raises(ValueError, match="calibration"):
        fit_calibration(np.array([0.5]), np.array([1.0]), "magic")
    assert np.isfinite(log_loss(np.array([0.0, 1.0]), np.array([1.0, 0.0])))
