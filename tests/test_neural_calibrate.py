"""Marginal calibration of the neural generators: raking and the noisy 1-way measurement."""

from __future__ import annotations

import numpy as np
import pytest

from dpsynth.backends.numpy import NumpyBackend
from dpsynth.errors import BudgetExceededError, ConfigError
from dpsynth.neural.calibrate import calibrated_sample, measure_one_way, rake_weights
from dpsynth.privacy.accountant import Accountant
from dpsynth.privacy.budget import ZCDP, ApproxDP
from dpsynth.privacy.events import GaussianEvent
from dpsynth.privacy.gate import PrivateData
from dpsynth.tabular.table import Table

pytestmark = pytest.mark.neural


def _gate(table: Table, accountant: Accountant) -> PrivateData:
    return PrivateData(NumpyBackend(table), accountant, sensitivity=1.0)


def _weighted(codes: np.ndarray, w: np.ndarray, j: int, size: int) -> np.ndarray:
    return np.bincount(codes[:, j], weights=w, minlength=size)


def test_raking_matches_feasible_targets_and_keeps_the_joint_structure() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 3, size=5000)
    b = np.where(rng.random(5000) < 0.8, a % 2, 1 - a % 2)  # b depends on a
    codes = np.stack([a, b], axis=1)
    targets = [np.array([0.5, 0.3, 0.2]), np.array([0.4, 0.6])]
    w = rake_weights(codes, targets, max_iter=200, tol=1e-10)
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    assert np.allclose(_weighted(codes, w, 0, 3), targets[0], atol=1e-8)
    assert np.allclose(_weighted(codes, w, 1, 2), targets[1], atol=1e-8)
    # Raking reweights whole rows and keeps the a-b odds ratios (the IPF invariant).
    def odds(weights: np.ndarray) -> np.ndarray:
        t = np.bincount(a * 2 + b, weights=weights, minlength=6).reshape(3, 2)
        return (t[:, 0] / t[:, 1]) / (t[0, 0] / t[0, 1])

    assert np.allclose(odds(w), odds(np.ones(5000)), rtol=1e-6)
    assert odds(w)[1] < 0.2  # a strong association, not flattened to independence
    assert np.array_equal(w, rake_weights(codes, targets, max_iter=200, tol=1e-10))


def test_raking_handles_zero_and_unhit_cells() -> None:
    codes = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [1, 1]])
    # Column 0: cell 2 is never hit (its 0.5 is unmatched, the rest is renormalised).
    # Column 1: cell 1 has target 0, so rows with b == 1 get weight 0.
    targets = [np.array([0.25, 0.25, 0.5]), np.array([1.0, 0.0])]
    w = rake_weights(codes, targets, max_iter=100, tol=1e-12)
    assert w[[1, 3, 4]].tolist() == [0.0, 0.0, 0.0]
    assert np.allclose(w[[0, 2]], [0.5, 0.5])
    # A column whose hit cells all have target 0 is skipped, not a division by zero.
    w = rake_weights(codes, [np.array([0.0, 0.0, 1.0]), np.array([0.5, 0.5])], max_iter=50)
    assert np.isfinite(w).all() and w.sum() == pytest.approx(1.0)
    assert rake_weights(np.zeros((0, 2), dtype=np.int64), targets).shape == (0,)
    with pytest.raises(ConfigError, match="shape"):
        rake_weights(codes, targets[:1])


def test_calibrated_sample_is_rng_driven_and_moves_toward_targets() -> None:
    def draw_with(seed: int):  # type: ignore[no-untyped-def]
        gen = np.random.default_rng(seed)
        return lambda m: np.stack([gen.choice(4, size=m, p=[0.7, 0.1, 0.1, 0.1])], axis=1)

    target = [np.array([0.25, 0.25, 0.25, 0.25])]
    out = calibrated_sample(draw_with(1), 4000, target, np.random.default_rng(2),
                            oversample=4, max_iter=20)
    freq = np.bincount(out[:, 0], minlength=4) / 4000
    assert np.abs(freq - 0.25).max() < 0.03  # uncalibrated it would be 0.7 / 0.1
    again = calibrated_sample(draw_with(1), 4000, target, np.random.default_rng(2),
                              oversample=4, max_iter=20)
    assert np.array_equal(out, again)
    assert calibrated_sample(draw_with(1), 0, target, np.random.default_rng(2),
                             oversample=4, max_iter=20).shape == (0, 1)


def test_measure_one_way_charges_each_column_and_estimates_the_count() -> None:
    rng = np.random.default_rng(3)
    codes = np.stack([rng.integers(0, 4, 20000), rng.integers(0, 30, 20000)], axis=1)
    table = Table(("x", "y"), (4, 30), codes)
    acc = Accountant(ApproxDP(1.0, 1e-6))
    out = measure_one_way(_gate(table, acc), rho=0.02, label="t: 1-way")
    events = [e.event for e in acc.ledger]
    assert [type(e) for e in events] == [GaussianEvent, GaussianEvent]
    assert [e.label for e in events] == ["t: 1-way x", "t: 1-way y"]
    assert sum(e.rho for e in events) == pytest.approx(0.02)
    assert out.sigma == pytest.approx(np.sqrt(50.0)) and out.events == tuple(events)
    # Weighted sums: variance sigma^2 / (1/4 + 1/30) -> sd ~ 13; 6 sd is a loose bound.
    assert abs(out.n_estimate - 20000) < 6 * out.sigma / np.sqrt(1 / 4 + 1 / 30)
    assert np.allclose(out.marginals[0], np.bincount(codes[:, 0]) / 20000, atol=0.005)
    assert all(m.sum() == pytest.approx(1.0, abs=1e-5) for m in out.marginals)
    with pytest.raises(BudgetExceededError):
        measure_one_way(_gate(table, acc), rho=5.0, label="t: 1-way")
    assert len(acc.ledger) == 2  # refused before any charge or count
    empty = Table(("x",), (3,), np.zeros((0, 1), dtype=np.int64))
    out = measure_one_way(_gate(empty, Accountant(ZCDP(1.0))), rho=0.5, label="e")
    assert out.marginals[0].sum() == pytest.approx(1.0, abs=1e-5) and out.n_estimate >= 0
