"""Tests of dpsynth.privacy.budget: validation, golden conversions cross-checked live against OpenDP,
the never-overshooting inverse, and budget algebra."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dpsynth.errors import ConfigError
from dpsynth.privacy.budget import (
    ZCDP,
    ApproxDP,
    PureDP,
    budget_from_json,
    budget_summary,
    epsilon_to_rho,
    to_rho,
    zcdp_to_epsilon,
)


@lru_cache(maxsize=1)
def _dp() -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


def opendp_epsilon(rho: float, delta: float) -> float:
    """OpenDP's make_zCDP_to_approxDP epsilon for a rho-zCDP Gaussian (d_in = 1)."""
    dp = _dp()
    scale = math.sqrt(1.0 / (2.0 * rho))
    meas = dp.c.make_zCDP_to_approxDP(
        dp.m.make_gaussian(dp.atom_domain(T=int), dp.absolute_distance(T=int), scale=scale)
    )
    return float(meas.map(1).epsilon(delta))


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("factory", "pattern"),
    [
        (lambda: PureDP(-1.0), r"epsilon \(-1\.0\) must be > 0"),
        (lambda: PureDP(0.0), r"epsilon \(0\.0\) must be > 0"),
        (lambda: PureDP(math.inf), r"epsilon \(inf\) must be > 0"),
        (lambda: ApproxDP(1.0, 0.0), r"delta \(0\.0\) must be > 0 and < 1"),
        (lambda: ApproxDP(1.0, 1.0), r"delta \(1\.0\) must be > 0 and < 1"),
        (lambda: ApproxDP(-2.0, 1e-5), r"epsilon \(-2\.0\) must be > 0"),
        (lambda: ZCDP(math.nan), r"rho \(nan\) must be > 0"),
        (lambda: ZCDP("0.1"), r"rho \('0\.1'\) must be a number"),  # type: ignore[arg-type]
        (lambda: ZCDP(True), r"rho \(True\) must be a number"),
    ],
)
def test_budgets_validate_on_construction(factory: Any, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        factory()


def test_budgets_are_frozen_and_round_trip_json() -> None:
    for budget in (PureDP(1.5), ApproxDP(2.0, 1e-6), ZCDP(0.3)):
        with pytest.raises(AttributeError):
            budget.epsilon = 3.0  # type: ignore[misc,union-attr]
        assert budget_from_json(budget.to_json()) == budget
    with pytest.raises(ConfigError, match="budget type"):
        budget_from_json({"type": "Laplace"})


# ------------------------------------------------------------------------ golden values
GOLDEN = [(0.02, 0.79431), (0.1, 1.91424), (0.5, 4.72839), (1.0, 7.07720)]


@pytest.mark.parametrize(("rho", "eps"), GOLDEN)
def test_zcdp_to_epsilon_golden_and_matches_opendp(rho: float, eps: float) -> None:
    ours = zcdp_to_epsilon(rho, 1e-5)
    assert ours == pytest.approx(eps, abs=1e-5)
    theirs = opendp_epsilon(rho, 1e-5)
    assert abs(ours - theirs) < 1e-4
    assert ours >= theirs - 1e-12  # rounding goes up, never below the reference
    assert ours <= rho + 2.0 * math.sqrt(rho * math.log(1e5))


@settings(max_examples=60, deadline=None)
@given(
    rho=st.floats(1e-4, 20.0),
    log10_delta=st.floats(-12.0, -2.0),
)
def test_zcdp_to_epsilon_agrees_with_opendp_everywhere(rho: float, log10_delta: float) -> None:
    delta = 10.0**log10_delta
    ours = zcdp_to_epsilon(rho, delta)
    theirs = opendp_epsilon(rho, delta)
    assert ours == pytest.approx(theirs, rel=1e-7, abs=1e-9)


@settings(max_examples=500, deadline=None)
@given(rho=st.floats(1e-9, 1e4), log10_delta=st.floats(-15.0, -1e-3))
def test_zcdp_to_epsilon_is_below_the_classic_bound(rho: float, log10_delta: float) -> None:
    delta = 10.0**log10_delta
    eps = zcdp_to_epsilon(rho, delta)
    assert 0.0 <= eps <= rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta))


@settings(max_examples=300, deadline=None)
@given(
    rho=st.floats(1e-6, 100.0),
    factor=st.floats(1.001, 3.0),
    log10_delta=st.floats(-14.0, -1.0),
)
def test_zcdp_to_epsilon_is_monotone(rho: float, factor: float, log10_delta: float) -> None:
    delta = 10.0**log10_delta
    eps = zcdp_to_epsilon(rho, delta)
    assert zcdp_to_epsilon(rho * factor, delta) >= eps  # more rho, more epsilon
    assert zcdp_to_epsilon(rho, delta / factor) >= eps  # smaller delta, more epsilon


def test_zcdp_to_epsilon_edges() -> None:
    assert zcdp_to_epsilon(0.0, 1e-5) == 0.0
    assert zcdp_to_epsilon(1e-20, 1e-5) == 0.0  # TV distance ~1e-10 < delta: (0, delta)-DP
    with pytest.raises(ConfigError, match="rho"):
        zcdp_to_epsilon(-1.0, 1e-5)
    with pytest.raises(ConfigError, match="delta"):
        zcdp_to_epsilon(1.0, 0.0)


# ------------------------------------------------------------------ the inverse (A2)
def _check_never_overshoots(log10_eps: float, log10_delta: float) -> None:
    eps, delta = 10.0**log10_eps, 10.0**log10_delta
    rho = epsilon_to_rho(eps, delta)
    assert rho > 0
    assert zcdp_to_epsilon(rho, delta) <= eps  # exactly, never above (opacus#346)


@pytest.mark.slow
@settings(max_examples=10_000, deadline=None, database=None)
@given(log10_eps=st.floats(-3.0, 2.0), log10_delta=st.floats(-15.0, -0.05))
def test_epsilon_to_rho_never_overshoots_10k_hypothesis(
    log10_eps: float, log10_delta: float
) -> None:
    _check_never_overshoots(log10_eps, log10_delta)


@settings(max_examples=500, deadline=None)
@given(log10_eps=st.floats(-3.0, 2.0), log10_delta=st.floats(-15.0, -0.05))
def test_epsilon_to_rho_never_overshoots(log10_eps: float, log10_delta: float) -> None:
    _check_never_overshoots(log10_eps, log10_delta)


def test_epsilon_to_rho_never_overshoots_10k_sweep() -> None:
    # The 10,000-case check in the fast suite (hypothesis' per-example overhead makes its
    # 10k version take ~15 s, so that one is marked slow); log-uniform over the same box.
    rng = np.random.default_rng(20240601)
    for log10_eps, log10_delta in zip(
        rng.uniform(-3.0, 2.0, 10_000), rng.uniform(-15.0, -0.05, 10_000), strict=True
    ):
        _check_never_overshoots(float(log10_eps), float(log10_delta))


@settings(max_examples=500, deadline=None)
@given(log10_eps=st.floats(-2.0, 1.5), log10_delta=st.floats(-12.0, -2.0))
def test_epsilon_to_rho_is_tight(log10_eps: float, log10_delta: float) -> None:
    eps, delta = 10.0**log10_eps, 10.0**log10_delta
    rho = epsilon_to_rho(eps, delta)
    assert zcdp_to_epsilon(rho * (1 + 1e-8), delta) > eps  # the largest such rho, to 1e-8
    assert rho >= (math.sqrt(math.log(1 / delta) + eps) - math.sqrt(math.log(1 / delta))) ** 2


def test_epsilon_to_rho_matches_opendp() -> None:
    for eps, delta in [(1.0, 1e-9), (0.5, 1e-6), (3.0, 1e-5), (10.0, 1e-8)]:
        rho = epsilon_to_rho(eps, delta)
        assert opendp_epsilon(rho, delta) <= eps * (1 + 1e-9)
        assert opendp_epsilon(rho * 1.0001, delta) > eps


# ------------------------------------------------------------------------ budget algebra
def test_pure_dp_rho() -> None:
    assert to_rho(PureDP(2.0)) == 2.0
    assert to_rho(PureDP(0.1)) == pytest.approx(0.005)
    assert to_rho(ZCDP(0.25)) == 0.25


@settings(max_examples=200, deadline=None)
@given(a=st.floats(1e-6, 10.0), b=st.floats(1e-6, 10.0), c=st.floats(1e-6, 10.0))
def test_zcdp_composition_algebra(a: float, b: float, c: float) -> None:
    assert ZCDP(a) + ZCDP(b) == ZCDP(b) + ZCDP(a)
    assert ((ZCDP(a) + ZCDP(b)) + ZCDP(c)).rho == pytest.approx((ZCDP(a) + (ZCDP(b) + ZCDP(c))).rho)
    assert (ZCDP(a) + ZCDP(b)).rho >= max(a, b)
    # composing in rho is never worse than composing the epsilons (subadditivity of sqrt)
    delta = 1e-6
    assert (ZCDP(a) + ZCDP(b)).epsilon(delta) <= ZCDP(a).epsilon(delta) + ZCDP(b).epsilon(
        delta
    ) + 1e-9


@settings(max_examples=300, deadline=None)
@given(
    rho=st.floats(1e-9, 100.0),
    weights=st.one_of(st.integers(1, 50), st.lists(st.floats(1e-3, 1e3), min_size=1, max_size=30)),
)
def test_zcdp_split_never_exceeds_the_whole(rho: float, weights: Any) -> None:
    parts = ZCDP(rho).split(weights)
    n = weights if isinstance(weights, int) else len(weights)
    assert len(parts) == n
    assert math.fsum(p.rho for p in parts) <= rho
    assert math.fsum(p.rho for p in parts) == pytest.approx(rho, rel=1e-12)


@settings(max_examples=300, deadline=None)
@given(
    eps=st.floats(0.01, 30.0),
    factor=st.floats(1.01, 4.0),
    log10_delta=st.floats(-12.0, -2.0),
)
def test_approx_dp_to_rho_is_monotone_and_round_trips(
    eps: float, factor: float, log10_delta: float
) -> None:
    delta = 10.0**log10_delta
    rho = to_rho(ApproxDP(eps, delta))
    assert to_rho(ApproxDP(eps * factor, delta)) > rho
    assert to_rho(ApproxDP(eps, min(delta * factor, 0.5))) >= rho
    back = epsilon_to_rho(zcdp_to_epsilon(rho, delta), delta)
    assert back == pytest.approx(rho, rel=1e-9)


# ------------------------------------------------------------------------ CLI summary
def test_budget_summary_rho_to_epsilon() -> None:
    out = budget_summary(rho=0.02, epsilon=None, delta=1e-5)
    assert set(out) == {"epsilon", "delta", "rho", "conversion"}
    assert out["epsilon"] == pytest.approx(0.79431, abs=1e-5)
    assert out["rho"] == 0.02 and out["delta"] == 1e-5
    assert "Canonne" in str(out["conversion"])


def test_budget_summary_epsilon_to_rho() -> None:
    out = budget_summary(rho=None, epsilon=1.0, delta=1e-9)
    rho = out["rho"]
    assert isinstance(rho, float)
    assert zcdp_to_epsilon(rho, 1e-9) <= 1.0 < zcdp_to_epsilon(rho * (1 + 1e-8), 1e-9)
    assert rho == pytest.approx(0.0149730577, rel=1e-8)
    assert out["epsilon"] == 1.0


def test_budget_summary_needs_exactly_one() -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        budget_summary(rho=0.1, epsilon=1.0, delta=1e-5)
    with pytest.raises(ConfigError, match="exactly one"):
        budget_summary(rho=None, epsilon=None, delta=1e-5)
    with pytest.raises(ConfigError, match="delta"):
        budget_summary(rho=0.1, epsilon=None, delta=2.0)
