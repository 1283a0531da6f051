"""Intervals, AUC and the empirical epsilon bound against scipy / sklearn / hand values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from dpsynth.audit.epsilon import empirical_epsilon, epsilon_lower_bound, gdp_mu_lower_bound
from dpsynth.audit.stats import (
    bootstrap_auc_ci,
    clopper_pearson_interval,
    clopper_pearson_lower,
    clopper_pearson_upper,
    delong_auc_ci,
    roc_auc,
    tpr_at_fpr,
    wilson_interval,
)
from dpsynth.errors import ConfigError


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (37, 500), (250, 500)])
def test_wilson_matches_scipy(k: int, n: int) -> None:
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    got = wilson_interval(k, n, 0.95)
    assert got.lo == pytest.approx(ref.low, abs=1e-12)
    assert got.hi == pytest.approx(ref.high, abs=1e-12)


def test_wilson_hand_value() -> None:
    # k=3, n=10, z=1.959964: centre (0.3 + z^2/20)/(1 + z^2/10), half-width by hand.
    z = 1.959963984540054
    centre = (0.3 + z * z / 20) / (1 + z * z / 10)
    half = z * math.sqrt(0.3 * 0.7 / 10 + z * z / 400) / (1 + z * z / 10)
    got = wilson_interval(3, 10)
    assert (got.lo, got.hi) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert got.lo == pytest.approx(0.10779, abs=1e-5)
    assert got.hi == pytest.approx(0.60322, abs=1e-5)


@pytest.mark.parametrize(("k", "n"), [(0, 20), (1, 20), (7, 20), (20, 20), (120, 1000)])
def test_clopper_pearson_matches_scipy(k: int, n: int) -> None:
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    got = clopper_pearson_interval(k, n, 0.95)
    assert got.lo == pytest.approx(ref.low, abs=1e-10)
    assert got.hi == pytest.approx(ref.high, abs=1e-10)


def test_clopper_pearson_one_sided_edges() -> None:
    assert clopper_pearson_upper(5, 5, 0.01) == 1.0
    assert clopper_pearson_lower(0, 5, 0.01) == 0.0
    # k=0: upper bound solves (1-p)^n = gamma.
    assert clopper_pearson_upper(0, 100, 0.05) == pytest.approx(1 - 0.05 ** (1 / 100), 1e-10)
    with pytest.raises(ConfigError):
        wilson_interval(3, 0)


def test_auc_and_delong_against_sklearn_and_hand() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    s = np.concatenate([rng.normal(1, 1, 300), rng.normal(0, 1, 400)]).round(1)  # with ties
    y = np.concatenate([np.ones(300, bool), np.zeros(400, bool)])
    assert roc_auc(s, y) == pytest.approx(metrics.roc_auc_score(y, s), abs=1e-12)
    # Hand example: members {3, 2}, non-members {1, 2}: pairs 1 + 1 + 1 + 1/2 = 3.5 of 4.
    hs, hy = np.array([3.0, 2.0, 1.0, 2.0]), np.array([True, True, False, False])
    assert roc_auc(hs, hy) == pytest.approx(0.875)
    ci = delong_auc_ci(s, y, 0.95)
    auc = roc_auc(s, y)
    assert ci.lo < auc < ci.hi and 0.05 < ci.hi - ci.lo < 0.15
    # DeLong variance by the explicit pairwise formula.
    pos, neg = s[y], s[~y]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    se = math.sqrt(v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size)
    assert (ci.hi - ci.lo) / 2 == pytest.approx(1.959963984540054 * se, rel=1e-9)
    boot = bootstrap_auc_ci(s, y, rng=rng, n_boot=300)
    assert boot.lo == pytest.approx(ci.lo, abs=0.02) and boot.hi == pytest.approx(ci.hi, abs=0.02)


def test_tpr_at_fpr() -> None:
    s = np.array([10.0, 9.0, 8.0, 1.0, 7.5, 2.0, 1.0, 0.0])
    y = np.array([True, True, True, True, False, False, False, False])
    assert tpr_at_fpr(s, y, 0.0) == 0.75
    assert tpr_at_fpr(s, y, 0.25) == 0.75
    assert tpr_at_fpr(s, y, 0.5) == 0.75


def test_epsilon_lower_bound_hand_value() -> None:
    # FP=0 of 1000 and FN=0 of 1000 at alpha=0.05: both upper bounds are 1-(0.025)^(1/1000).
    p = 1 - 0.025 ** (1 / 1000)
    assert epsilon_lower_bound(0, 1000, 0, 1000, alpha=0.05) == pytest.approx(
        math.log((1 - p) / p), rel=1e-9)
    assert epsilon_lower_bound(500, 1000, 500, 1000) == 0.0
    # Trial budget (docs/self-audits.md, "Measured numbers"): 500 per world, perfect attack -> about 4.91.
    assert epsilon_lower_bound(0, 500, 0, 500, alpha=0.05) == pytest.approx(4.91, abs=0.01)
    assert gdp_mu_lower_bound(500, 1000, 500, 1000) == 0.0
    assert gdp_mu_lower_bound(0, 1000, 0, 1000) > 4.0


def test_empirical_epsilon_null_and_planted() -> None:
    rng = np.random.default_rng(1)
    false_alarms = 0
    for _ in range(200):
        b = empirical_epsilon(rng.normal(size=500), rng.normal(size=500), rng=rng, alpha=1e-3)
        false_alarms += b.epsilon > 0
    assert false_alarms <= 2  # jax_privacy PR#270: null scores must not yield epsilon > 0
    planted = empirical_epsilon(rng.normal(3, 1, 1000), rng.normal(0, 1, 1000), rng=rng,
                                alpha=1e-3)
    assert planted.epsilon > 1.0 and planted.mu > 1.5
