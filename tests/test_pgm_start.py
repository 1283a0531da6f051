"""Where descent starts: the exact independent optimum and the start from the noisy measurements."""

from __future__ import annotations

import numpy as np
import pytest

from dpsynth.errors import ConfigError
from dpsynth.pgm import Domain, estimate
from dpsynth.pgm.estimate import _project_simplex
from dpsynth.privacy.measure import Measurement

DOMAIN = Domain.from_dict({"a": 3, "b": 4, "c": 2, "d": 5})
N = 10_000


def _noisy(cliques: list[tuple[str, ...]], sigma: float, seed: int) -> list[Measurement]:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(DOMAIN.size(), 1.0)).reshape(DOMAIN.shape)
    out = []
    for c in cliques:
        axes = tuple(i for i, a in enumerate(DOMAIN.attrs) if a not in c)
        exact = p.sum(axis=axes) * N
        out.append(Measurement(c, exact + rng.normal(0, sigma, exact.shape), sigma))
    return out


def _loss(model, ms: list[Measurement], total: float) -> float:  # type: ignore[no-untyped-def]
    return sum(float(np.sum((model.marginal(m.clique) - m.values) ** 2)) / m.sigma for m in ms)


@pytest.mark.parametrize("seed", range(5))
def test_simplex_projection_is_the_nearest_point_of_the_simplex(seed: int) -> None:
    rng = np.random.default_rng(seed)
    v = rng.normal(0.2, 0.5, 7)
    p = _project_simplex(v)
    assert p.min() >= 0 and p.sum() == pytest.approx(1.0)
    # no random point of the simplex is nearer (the projection is the unique minimiser)
    others = rng.dirichlet(np.full(7, 0.3), 20_000)
    assert np.linalg.norm(v - p) <= np.linalg.norm(others - v, axis=1).min() + 1e-12
    np.testing.assert_allclose(_project_simplex(p), p, atol=1e-12)  # a point of the simplex stays put


@pytest.mark.parametrize("seed", range(3))
def test_one_way_measurements_are_fitted_exactly_without_descent(seed: int) -> None:
    ms = _noisy([("a",), ("b",), ("c",), ("d",), ("b",)], sigma=400.0, seed=seed)  # b twice, heavy noise
    exact = estimate(DOMAIN, ms, total=N, iters=10)
    # a constraint forces the descent path; this one removes one cell of 120, which the full joint
    # absorbs, so long descent converges to the same optimum of the 1-way loss
    loose = estimate(DOMAIN, ms, total=N, iters=3000, tol=0.0, constraints=[{"a": 0, "b": 0, "c": 0, "d": 0}])
    assert _loss(exact, ms, N) <= _loss(loose, ms, N) + 1e-6 * _loss(loose, ms, N)
    for a in DOMAIN.attrs:
        np.testing.assert_allclose(exact.marginal((a,)) / N, loose.marginal((a,)) / N, atol=2e-3)
    # the two noisy b measurements are pooled: b's table is the projection of their weighted mean
    b = (ms[1].values + ms[4].values) / (2 * N)
    np.testing.assert_allclose(exact.marginal(("b",)) / N, np.maximum(_project_simplex(b), 1e-12), atol=1e-9)


def test_the_measured_start_reaches_a_lower_loss_in_fewer_iterations() -> None:
    cliques = [("a",), ("b",), ("c",), ("d",), ("a", "b"), ("b", "c"), ("c", "d")]
    wins = 0
    for seed in range(5):
        ms = _noisy(cliques, sigma=30.0, seed=seed)
        iters = {}
        loss = {}
        for start in ("uniform", "measurements"):
            seen: list[float] = []
            model = estimate(DOMAIN, ms, total=N, iters=1000, start=start,  # type: ignore[arg-type]
                             callback=lambda i, f, seen=seen: seen.append(f))
            iters[start], loss[start] = len(seen), _loss(model, ms, N)
        assert loss["measurements"] <= loss["uniform"] * (1 + 1e-3)
        wins += iters["measurements"] < iters["uniform"]
    assert wins >= 4


def test_the_measured_start_keeps_structural_zeros_and_checks_its_name() -> None:
    ms = _noisy([("a",), ("b",), ("a", "b")], sigma=5.0, seed=0)
    model = estimate(DOMAIN, ms, total=N, iters=50, start="measurements", constraints=[{"a": 1, "b": 2}])
    assert model.marginal(("a", "b"))[1, 2] == 0.0
    with pytest.raises(ConfigError, match="start"):
        estimate(DOMAIN, ms, total=N, start="noisy")  # type: ignore[arg-type]
