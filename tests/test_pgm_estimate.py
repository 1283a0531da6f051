"""Estimation: recovery from exact marginals, noise behaviour, totals, constraints, warm start."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dpsynth.errors import ConfigError, ModelTooLargeError
from dpsynth.pgm import Domain, estimate, estimate_total
from dpsynth.privacy.measure import Measurement

DOMAIN = Domain.from_dict({"a": 3, "b": 4, "c": 2, "d": 5, "e": 3})
N = 100_000


def _truth(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(DOMAIN.size(), 2.0)).reshape(DOMAIN.shape)


def _marg(p: np.ndarray, attrs: tuple[str, ...]) -> np.ndarray:
    axes = tuple(i for i, a in enumerate(DOMAIN.attrs) if a not in attrs)
    canon = DOMAIN.canonical(attrs)
    return np.transpose(p.sum(axis=axes), [canon.index(a) for a in attrs])


def _exact(p: np.ndarray, cliques: list[tuple[str, ...]]) -> list[Measurement]:
    return [Measurement(c, np.round(_marg(p, c) * N).astype(np.int64), 1.0) for c in cliques]


SHAPES = {
    "tree": [("a", "b"), ("b", "c"), ("b", "d"), ("d", "e")],
    "triangle": [("a", "b"), ("b", "c"), ("c", "a"), ("d", "e")],
    "four_cycle": [("a", "b"), ("b", "c"), ("c", "d"), ("d", "a")],
    "disconnected": [("a", "b"), ("d", "e"), ("c",)],
    "single": [("a",), ("b",), ("c",), ("d",), ("e",)],
    "reordered_3way": [("c", "a", "b"), ("e", "b")],
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_recovers_exact_marginals(shape: str) -> None:
    p = _truth()
    cliques = SHAPES[shape]
    model = estimate(DOMAIN, _exact(p, cliques))
    assert model.total == pytest.approx(N, rel=1e-3)
    for c in cliques:
        l1 = np.abs(model.probability(c) - _marg(p, c)).sum()
        assert l1 < 1e-2, (c, l1)
        np.testing.assert_allclose(model.marginal(c).sum(), model.total)
    # unmeasured attributes are uniform (e.g. "e" in the 4-cycle)
    if shape == "four_cycle":
        np.testing.assert_allclose(model.probability(("e",)), 1 / 3, atol=1e-9)


@pytest.mark.parametrize("shape", ["tree", "triangle", "reordered_3way"])
def test_float32_descent_fits_the_same_model(shape: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``precision="float32"`` runs the descent on float32 tables (checked on the calibrator's
    input) and returns float64 potentials whose marginals agree with the float64 fit."""
    from dpsynth.pgm import inference

    rng = np.random.default_rng(3)
    p = _truth(1)
    noisy = [Measurement(m.clique, m.values + np.rint(rng.normal(0, 30, m.values.shape)).astype(np.int64), 30.0)
             for m in _exact(p, SHAPES[shape])]
    seen: set[np.dtype[np.generic]] = set()
    calibrate = inference.Calibrator.calibrate

    def spy(self: inference.Calibrator, logs: list[np.ndarray]) -> inference.Beliefs:
        seen.update(t.dtype for t in logs)
        beliefs = calibrate(self, logs)
        assert {b.dtype for b in beliefs.probs} == {logs[0].dtype}  # calibration keeps the precision
        return beliefs

    wide = estimate(DOMAIN, noisy, iters=400, tol=1e-6)
    monkeypatch.setattr(inference.Calibrator, "calibrate", spy)
    narrow = estimate(DOMAIN, noisy, iters=400, tol=1e-6, precision="float32")
    assert seen == {np.dtype(np.float32)}
    assert {f.values.dtype for f in narrow.potentials.values()} == {np.dtype(np.float64)}
    for c in SHAPES[shape]:
        # 1e-4 of the total: far below the noise (sigma 30 on 100,000 records)
        np.testing.assert_allclose(narrow.marginal(c), wide.marginal(c), atol=1e-4 * N)
    with pytest.raises(ConfigError, match="precision"):
        estimate(DOMAIN, noisy, precision="float16")  # type: ignore[arg-type]


def test_error_shrinks_with_sigma() -> None:
    p = _truth(1)
    cliques = SHAPES["tree"]
    rng = np.random.default_rng(5)
    errors = []
    for sigma in (3000.0, 300.0, 30.0):
        ms = []
        for c in cliques:
            exact = _marg(p, c) * N
            noisy = np.round(exact + rng.normal(0.0, sigma, exact.shape)).astype(np.int64)
            ms.append(Measurement(c, noisy, sigma))
        model = estimate(DOMAIN, ms, total=N)
        errors.append(np.mean([np.abs(model.probability(c) - _marg(p, c)).sum() for c in cliques]))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.02


def test_total_is_inverse_variance_weighted() -> None:
    a = Measurement(("a",), np.array([100, 100, 100]), 1.0)  # sum 300, variance 3
    b = Measurement(("a", "b"), np.full((3, 4), 50), 2.0)  # sum 600, variance 48
    expected = (300 / 3 + 600 / 48) / (1 / 3 + 1 / 48)
    assert estimate_total([a, b]) == pytest.approx(expected)
    assert estimate_total([Measurement(("a",), np.array([-5, -5, 0]), 1.0)]) == 1.0


def test_constraints_get_zero_mass() -> None:
    p = _truth(2)
    cliques = SHAPES["tree"]
    forbidden = {"a": 0, "e": [1, 2]}
    model = estimate(DOMAIN, _exact(p, cliques), constraints=[forbidden])
    joint = model.probability(("a", "e"))
    assert joint[0, 1] == 0.0 and joint[0, 2] == 0.0
    assert joint[0, 0] > 0 and joint[1, 1] > 0
    three = model.project(("e", "b", "a")).values
    assert np.all(three[1:, :, 0] == 0.0)


def test_warm_start_continues_from_a_previous_model() -> None:
    p = _truth(3)
    first = estimate(DOMAIN, _exact(p, SHAPES["tree"]))
    grown = SHAPES["tree"] + [("a", "c", "e")]
    losses: list[float] = []
    cold: list[float] = []
    warm = estimate(
        DOMAIN, _exact(p, grown), warm_start=first, callback=lambda i, loss: losses.append(loss)
    )
    estimate(DOMAIN, _exact(p, grown), callback=lambda i, loss: cold.append(loss), iters=5)
    assert losses[0] < cold[0]
    assert np.abs(warm.probability(("a", "c", "e")) - _marg(p, ("a", "c", "e"))).sum() < 1e-2


def test_a_warm_refit_starts_its_line_search_from_the_last_smoothness() -> None:
    """The fit records its last smoothness constant; a warm refit starts there instead of at
    the worst case / 10^6, so it rejects fewer trial steps for the same iterations and ends
    where the cold-constant refit ends."""
    from dpsynth.pgm import inference

    p = _truth(4)
    grown = SHAPES["tree"] + [("a", "c", "e")]
    noisy = [Measurement(m.clique, m.values + np.random.default_rng(1).integers(-50, 50, m.values.shape), 30.0)
             for m in _exact(p, grown)]
    first = estimate(DOMAIN, noisy[:-1], iters=200)
    assert first.smoothness is not None and first.smoothness > 0
    calls = {"n": 0}
    calibrate = inference.Calibrator.calibrate

    def counting(self: inference.Calibrator, log_potentials: list[np.ndarray]) -> inference.Beliefs:
        calls["n"] += 1
        return calibrate(self, log_potentials)

    runs = {}
    for hint in (first.smoothness, None):
        calls["n"] = 0
        start = dataclasses.replace(first, smoothness=hint)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(inference.Calibrator, "calibrate", counting)
            model = estimate(DOMAIN, noisy, warm_start=start, iters=40, tol=0.0)
        runs[hint is not None] = (calls["n"], model)
    assert runs[True][0] < runs[False][0] - 5  # the cold constant needs ~10 extra trials
    for c in grown:
        np.testing.assert_allclose(runs[True][1].probability(c), runs[False][1].probability(c), atol=2e-3)


def test_invalid_inputs() -> None:
    with pytest.raises(ConfigError, match="shape"):
        estimate(DOMAIN, [Measurement(("a",), np.zeros(4, dtype=np.int64), 1.0)])
    with pytest.raises(ConfigError, match="'z'"):
        estimate(DOMAIN, [Measurement(("z",), np.zeros(4, dtype=np.int64), 1.0)])
    with pytest.raises(ConfigError, match="codes outside"):
        estimate(DOMAIN, [], constraints=[{"a": 7}])
    with pytest.raises(ModelTooLargeError, match="'b'"):
        estimate(DOMAIN, _exact(_truth(), [("a", "b", "c", "d")]), max_cells=100)


def test_the_total_standard_error_is_the_inverse_variance_pooled_one() -> None:
    """Two measurements of 4 and 9 cells at sigma 2 and 3: variances 16 and 81."""
    from dpsynth.pgm import total_stderr

    ms = [Measurement(("a", "c"), np.zeros((3, 2), dtype=np.int64) + 5, 2.0),
          Measurement(("b",), np.zeros(4, dtype=np.int64), 3.0)]
    assert total_stderr(ms) == pytest.approx((1 / (6 * 4) + 1 / (4 * 9)) ** -0.5)
    rng = np.random.default_rng(11)  # and it is the spread of estimate_total on pure noise
    draws = [estimate_total([Measurement(m.clique, rng.normal(0, m.sigma, m.values.shape) + 1e6 / m.values.size,
                                         m.sigma) for m in ms]) for _ in range(4000)]
    assert np.std(draws) == pytest.approx(total_stderr(ms), rel=0.05)


@pytest.mark.parametrize(("rows", "stderr", "warns"), [(5, None, True), (25, None, False), (25, 10.0, True),
                                                        (25, 5.0, False), (31, 10.0, False)])
def test_the_tiny_input_warning_counts_the_estimates_noise(
        rows: int, stderr: float | None, warns: bool, capsys: pytest.CaptureFixture[str]) -> None:
    from dpsynth.cli.core_cmds import warn_if_tiny

    warn_if_tiny(rows, "aim", stderr)
    err = capsys.readouterr().err
    assert ("DP estimate of the input size" in err) is warns
    if warns and stderr is not None:
        assert "within 3 standard errors" in err
