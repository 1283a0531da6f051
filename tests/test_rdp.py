"""Tests of dpsynth.privacy.rdp: Opacus' golden value, independent numerical checks of the sampled
Gaussian's RDP, conversion soundness against the exact Gaussian, monotonicity, and the
never-overshooting noise calibration (opacus#346)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from dpsynth.errors import BudgetExceededError, ConfigError
from dpsynth.privacy.budget import zcdp_to_epsilon
from dpsynth.privacy.rdp import (
    DEFAULT_ORDERS,
    dpsgd_epsilon,
    noise_multiplier_for_epsilon,
    rdp_to_epsilon,
    subsampled_gaussian_rdp,
    zcdp_rdp,
)

OPACUS_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))


def test_opacus_golden_value() -> None:
    # opacus tests/accountants_test.py: sigma=1.5, q=0.04, 90 epochs -> 2250 steps, delta=1e-5
    eps = dpsgd_epsilon(1.5, 0.04, 2250, 1e-5)
    assert eps == pytest.approx(7.3291, abs=1e-3)
    assert dpsgd_epsilon(1.5, 0.04, 2250, 1e-5, orders=OPACUS_ORDERS) == pytest.approx(eps)


def test_default_orders_exclude_one_and_reach_256() -> None:
    assert min(DEFAULT_ORDERS) == pytest.approx(1.1)
    assert max(DEFAULT_ORDERS) == 256
    assert set(OPACUS_ORDERS) <= set(DEFAULT_ORDERS)
    for bad in ([1.0, 2.0], [0.5], [], [2.0, math.inf]):
        with pytest.raises(ConfigError, match="orders"):
            subsampled_gaussian_rdp(1.0, 0.1, 1, bad)


def test_edge_cases_q0_q1() -> None:
    orders = [1.5, 2.0, 7.0, 32.5]
    assert np.all(subsampled_gaussian_rdp(1.0, 0.0, 100, orders) == 0.0)
    # q = 1 is the plain Gaussian: alpha / (2 sigma^2) per step
    np.testing.assert_allclose(
        subsampled_gaussian_rdp(2.0, 1.0, 3, orders), 3 * np.array(orders) / 8.0
    )
    np.testing.assert_allclose(zcdp_rdp(0.25, orders), 0.25 * np.array(orders))


@pytest.mark.parametrize("sigma", [0.7, 1.0, 2.5])
@pytest.mark.parametrize("q", [0.01, 0.1, 0.5])
def test_order_two_closed_form(sigma: float, q: float) -> None:
    # A_2 = 1 + q^2 (exp(1/sigma^2) - 1)
    expected = math.log1p(q * q * math.expm1(1.0 / sigma**2))
    assert subsampled_gaussian_rdp(sigma, q, 1, [2.0])[0] == pytest.approx(expected, rel=1e-12)


def _log_a_by_quadrature(q: float, sigma: float, alpha: float) -> float:
    """E_{z~N(0, sigma^2)}[((1-q) + q exp((2z-1)/(2 sigma^2)))^alpha] by numerical integration."""

    def integrand(z: float) -> float:
        ratio = (1 - q) + q * math.exp((2 * z - 1) / (2 * sigma**2))
        return float(stats.norm.pdf(z, scale=sigma)) * ratio**alpha

    value, _ = integrate.quad(integrand, -40 * sigma, 40 * sigma, limit=400, epsabs=0, epsrel=1e-11)
    return math.log(value)


@pytest.mark.parametrize(
    ("q", "sigma", "alpha"),
    [(0.1, 1.0, 1.5), (0.1, 1.0, 2.5), (0.04, 1.5, 7.3), (0.2, 2.0, 3.0), (0.01, 0.8, 12.7)],
)
def test_rdp_matches_numerical_integration(q: float, sigma: float, alpha: float) -> None:
    expected = _log_a_by_quadrature(q, sigma, alpha) / (alpha - 1)
    ours = subsampled_gaussian_rdp(sigma, q, 1, [alpha])[0]
    assert ours == pytest.approx(expected, rel=1e-6)


def test_fractional_and_integer_expansions_agree_near_integers() -> None:
    for alpha in (2.0, 3.0, 8.0, 20.0):
        near = subsampled_gaussian_rdp(1.1, 0.05, 1, [alpha - 1e-7, alpha, alpha + 1e-7])
        assert near[0] == pytest.approx(near[1], rel=1e-5)
        assert near[2] == pytest.approx(near[1], rel=1e-5)


def _gaussian_exact_delta(eps: float, sigma: float) -> float:
    """Exact delta(eps) of the Gaussian mechanism with sensitivity 1 (Balle and Wang 2018)."""
    a, b = 1.0 / (2 * sigma), eps * sigma
    return float(stats.norm.cdf(a - b) - math.exp(eps) * stats.norm.cdf(-a - b))


@pytest.mark.parametrize("sigma", [0.5, 1.0, 3.0, 10.0])
@pytest.mark.parametrize("delta", [1e-3, 1e-6, 1e-10])
def test_conversion_is_sound_for_the_gaussian(sigma: float, delta: float) -> None:
    # A7: for one Gaussian the converted epsilon may be loose, never optimistic
    eps = dpsgd_epsilon(sigma, 1.0, 1, delta)
    assert _gaussian_exact_delta(eps, sigma) <= delta
    # and the RDP route is never better than the tight zCDP conversion (continuous orders)
    assert eps >= zcdp_to_epsilon(1 / (2 * sigma**2), delta) - 1e-12
    assert eps <= 1.05 * zcdp_to_epsilon(1 / (2 * sigma**2), delta)


def test_rdp_to_epsilon_is_never_negative() -> None:
    # opacus#585: tiny RDP and large delta gave a negative epsilon
    orders = list(DEFAULT_ORDERS)
    eps, _ = rdp_to_epsilon(orders, subsampled_gaussian_rdp(50.0, 0.001, 1, orders), 0.9)
    assert eps == 0.0
    assert rdp_to_epsilon(orders, np.zeros(len(orders)), 1e-5)[0] == 0.0
    inf_eps, _ = rdp_to_epsilon([2.0], [math.inf], 1e-5)
    assert inf_eps == math.inf
    with pytest.raises(ConfigError, match="same length"):
        rdp_to_epsilon([2.0, 3.0], [1.0], 1e-5)


@settings(max_examples=25, deadline=None)
@given(
    sigma=st.floats(0.6, 5.0),
    q=st.floats(0.001, 0.5),
    steps=st.integers(1, 3000),
    factor=st.floats(1.05, 2.0),
    log10_delta=st.floats(-10, -2),
)
def test_epsilon_is_nonnegative_and_monotone(
    sigma: float, q: float, steps: int, factor: float, log10_delta: float
) -> None:
    delta = 10**log10_delta
    eps = dpsgd_epsilon(sigma, q, steps, delta)
    assert eps >= 0
    assert dpsgd_epsilon(sigma * factor, q, steps, delta) <= eps  # more noise
    assert dpsgd_epsilon(sigma, min(q * factor, 1.0), steps, delta) >= eps  # more sampling
    assert dpsgd_epsilon(sigma, q, steps + max(1, int(steps * (factor - 1))), delta) >= eps


# ------------------------------------------------------------------ calibration (A2/A6)
@settings(max_examples=8, deadline=None)
@given(
    target=st.floats(0.3, 10.0),
    q=st.floats(0.002, 0.3),
    steps=st.integers(1, 2000),
    log10_delta=st.floats(-9, -3),
)
def test_noise_multiplier_never_overshoots(
    target: float, q: float, steps: int, log10_delta: float
) -> None:
    delta = 10**log10_delta
    sigma = noise_multiplier_for_epsilon(target, delta, q, steps, rel_tol=1e-3)
    assert dpsgd_epsilon(sigma, q, steps, delta) <= target
    # and it is (nearly) the smallest such sigma
    assert dpsgd_epsilon(sigma * (1 - 2e-3), q, steps, delta) > target


def test_noise_multiplier_golden_and_extra_rdp() -> None:
    sigma = noise_multiplier_for_epsilon(7.3291, 1e-5, 0.04, 2250)
    assert sigma == pytest.approx(1.5, rel=2e-4)
    assert dpsgd_epsilon(sigma, 0.04, 2250, 1e-5) <= 7.3291
    # part of the budget already spent by zCDP measurements: more noise is needed
    extra = zcdp_rdp(0.05)
    sigma2 = noise_multiplier_for_epsilon(7.3291, 1e-5, 0.04, 2250, extra_rdp=extra)
    assert sigma2 > sigma
    assert dpsgd_epsilon(sigma2, 0.04, 2250, 1e-5, extra_rdp=extra) <= 7.3291
    with pytest.raises(BudgetExceededError, match="already used up"):
        noise_multiplier_for_epsilon(1.0, 1e-5, 0.04, 10, extra_rdp=zcdp_rdp(5.0))


def test_invalid_arguments_are_named() -> None:
    with pytest.raises(ConfigError, match=r"noise_multiplier \(0\.0\)"):
        subsampled_gaussian_rdp(0.0, 0.1, 1)
    with pytest.raises(ConfigError, match=r"sample_rate \(1\.5\)"):
        subsampled_gaussian_rdp(1.0, 1.5, 1)
    with pytest.raises(ConfigError, match="steps"):
        subsampled_gaussian_rdp(1.0, 0.1, -1)
    with pytest.raises(ConfigError, match="target_eps"):
        noise_multiplier_for_epsilon(-1.0, 1e-5, 0.1, 10)


# ------------------------------------------------------------------ cross-check (Opacus)
@pytest.mark.parametrize(
    ("sigma", "q", "steps", "delta"),
    [(1.5, 0.04, 2250, 1e-5), (1.0, 0.01, 10_000, 1e-6), (0.8, 0.2, 50, 1e-5), (4.0, 0.5, 7, 1e-8)],
)
def test_matches_opacus_rdp_accountant(sigma: float, q: float, steps: int, delta: float) -> None:
    pytest.importorskip("opacus")
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

    theirs_rdp = compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=OPACUS_ORDERS)
    ours_rdp = subsampled_gaussian_rdp(sigma, q, steps, OPACUS_ORDERS)
    # Both truncate the fractional-order series at exp(-30) terms; they differ by ~1e-9
    # relative at alpha=1.1 (ours is the closer to numerical integration there).
    np.testing.assert_allclose(ours_rdp, theirs_rdp, rtol=1e-7)
    theirs_eps, _ = get_privacy_spent(orders=OPACUS_ORDERS, rdp=theirs_rdp, delta=delta)
    assert rdp_to_epsilon(OPACUS_ORDERS, ours_rdp, delta)[0] == pytest.approx(theirs_eps, rel=1e-7)
