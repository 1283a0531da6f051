"""Approximate zCDP events (thresholded histograms): their delta is used up, cross-checked with OpenDP."""

from __future__ import annotations

import json
import math

import pytest

from dpsynth.errors import BudgetExceededError, ConfigError
from dpsynth.privacy.accountant import Accountant
from dpsynth.privacy.budget import ZCDP, ApproxDP, epsilon_to_rho, zcdp_to_epsilon
from dpsynth.privacy.events import ApproxZCDPEvent, GaussianEvent, delta_of, epsilon_of, event_from_json
from dpsynth.privacy.noise import gaussian_threshold, threshold_cost, threshold_for


def test_event_round_trips_and_validates() -> None:
    ev = ApproxZCDPEvent(0.01, 1e-10, label="categories")
    assert event_from_json(json.loads(json.dumps(ev.to_json()))) == ev
    for bad in (0.0, 1.0, -1e-9, math.nan, True):
        with pytest.raises(ConfigError, match="delta"):
            ApproxZCDPEvent(0.01, bad)  # type: ignore[arg-type]


def test_conversion_uses_what_is_left_of_delta() -> None:
    events = [GaussianEvent(10.0), ApproxZCDPEvent(0.02, 4e-7)]
    eps, conversion = epsilon_of(events, 1e-6)
    assert delta_of(events) == 4e-7
    assert eps == pytest.approx(zcdp_to_epsilon(0.005 + 0.02, 6e-7), rel=1e-12)
    assert "thresholded" in conversion
    with pytest.raises(ConfigError, match="all of the delta"):
        epsilon_of(events, 4e-7)


def test_opendp_agrees_with_our_conversion_of_a_threshold() -> None:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    sigma, threshold = 10.0, 60
    meas = dp.m.make_gaussian_threshold(
        dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T=dp.i64)),
        dp.l02inf_distance(dp.absolute_distance(T=dp.i64)), scale=sigma, threshold=threshold)
    opendp_eps, opendp_delta = dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(meas), 1e-6).map((1, 1, 1))
    rho, used = threshold_cost(sigma, threshold, 1)
    ours, _ = epsilon_of([ApproxZCDPEvent(rho, used)], 1e-6)
    assert opendp_delta == pytest.approx(1e-6)
    assert ours == pytest.approx(opendp_eps, rel=1e-9)


def test_the_budget_shrinks_with_the_delta_used() -> None:
    budget = ApproxDP(1.0, 1e-6)
    acc = Accountant(budget)
    acc.charge(ApproxZCDPEvent(0.01, 5e-7, label="threshold"))
    room = epsilon_to_rho(1.0, 5e-7) - 0.01
    assert acc.remaining_rho == pytest.approx(room, rel=1e-12)
    assert acc.remaining_rho < budget.rho - 0.01  # less than if the threshold used no delta
    with pytest.raises(BudgetExceededError):
        acc.charge(GaussianEvent(1 / math.sqrt(2 * room * 1.001)))
    acc.charge(GaussianEvent(1 / math.sqrt(2 * room)))
    assert acc.epsilon() <= 1.0 + 1e-9


def test_delta_events_need_an_approx_budget_and_cannot_use_all_delta() -> None:
    with pytest.raises(BudgetExceededError, match="ApproxDP"):
        Accountant(ZCDP(1.0)).charge(ApproxZCDPEvent(0.01, 1e-9))
    acc = Accountant(ApproxDP(1.0, 1e-6))
    with pytest.raises(BudgetExceededError, match="all of the budget delta"):
        acc.charge(ApproxZCDPEvent(0.001, 1e-6))
    assert acc.ledger == ()


def test_threshold_for_is_the_smallest_within_delta() -> None:
    for sigma, delta, bound in ((10.0, 1e-9, 1), (250.0, 1e-11, 1), (40.0, 1e-8, 3)):
        t = threshold_for(sigma, delta, bound)
        assert threshold_cost(sigma, t, bound)[1] <= delta < threshold_cost(sigma, t - 1, bound)[1]
        assert threshold_cost(sigma, t, bound)[0] == pytest.approx(bound**2 / (2 * sigma**2))


def test_a_value_held_by_one_unit_never_passes_the_threshold() -> None:
    sigma = 5.0
    t = threshold_for(sigma, 1e-6, 1)  # a single row passes with probability <= 1e-6
    released = [gaussian_threshold({"common": 500, "rare": 1}, sigma, t) for _ in range(300)]
    assert all("rare" not in r for r in released)
    assert all("common" in r for r in released)
    noisy = [r["common"] for r in released]
    mean = sum(noisy) / len(noisy)
    assert abs(mean - 500) < 4 * sigma / math.sqrt(len(noisy))
    sd = math.sqrt(sum((x - mean) ** 2 for x in noisy) / (len(noisy) - 1))
    assert 0.8 * sigma < sd < 1.2 * sigma  # the noise has the scale charged (not 0.75x or 1.25x)
