"""Memory-lean estimation: the buffer-reusing accelerated method and WarmStart change nothing.

The accelerated method writes the trial point over ``y``'s buffers, swaps them with ``x`` on
acceptance and runs element-wise passes in slices; the reference below is the whole-model
formulation it replaced (every iterate materialised). Both give the same potentials bit for
bit here (same arithmetic per cell; only the L1 step length is summed slice by slice).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pytest

from dpsynth.arrays import FloatArray
from dpsynth.errors import ConfigError
from dpsynth.pgm import Domain, WarmStart, build_junction_tree, estimate
from dpsynth.pgm.estimate import potentials_from_marginals, warm_potentials
from dpsynth.pgm.inference import Calibrator
from dpsynth.pgm.objective import Objective, measurement_terms
from dpsynth.pgm.optimizers import accelerated_descent
from dpsynth.privacy.measure import Measurement


def _reference(calibrator: Calibrator, objective: Objective, theta: list[FloatArray],
               iters: int, tol: float = 1e-3) -> list[FloatArray]:
    """The whole-model accelerated method (every iterate materialised)."""
    x = list(calibrator.calibrate(theta).probs)
    f_x = objective.loss(objective.marginals(x))
    lip = 2.0 * objective.total**2 * sum(t.coef for t in objective.terms) / 1e6
    big_a, history, z = 0.0, [f_x], x
    for _ in range(iters):
        for _ in range(60):
            a = (1.0 + np.sqrt(1.0 + 4.0 * lip * big_a)) / (2.0 * lip)
            tau = a / (big_a + a)
            y = [(1.0 - tau) * xc + tau * zc for xc, zc in zip(x, z, strict=True)]
            y_mus = objective.marginals(y)
            f_y = objective.loss(y_mus)
            grads, per_term = objective.gradient(y_mus)
            cand = [t - a * g for t, g in zip(theta, grads, strict=True)]
            try:
                z_new = calibrator.calibrate(cand).probs
            except ConfigError:
                lip *= 2.0
                continue
            x_new = [(1.0 - tau) * xc + tau * zc for xc, zc in zip(x, z_new, strict=True)]
            dist = max(float(np.abs(xn - yc).sum()) for xn, yc in zip(x_new, y, strict=True))
            x_new_mus = objective.marginals(x_new)
            f_new = objective.loss(x_new_mus)
            lin = sum(float(np.sum(g * (nm - ym))) for g, nm, ym in zip(per_term, x_new_mus, y_mus, strict=True))
            if np.isfinite(f_new) and f_new <= f_y + lin + 0.5 * lip * dist**2 + 1e-12 * abs(f_y):
                break
            lip *= 2.0
        else:
            break
        theta, x, z, big_a, f_x = cand, x_new, list(z_new), big_a + a, f_new
        lip /= 2.0
        history.append(min(f_x, history[-1]))
        if len(history) > 11 and history[-11] - history[-1] <= tol * history[-1]:
            break
    return x


def _problem(seed: int) -> tuple[Domain, list[Measurement]]:
    rng = np.random.default_rng(seed)
    domain = Domain.from_dict({f"c{i}": int(s) for i, s in enumerate(rng.integers(2, 6, 8))})
    p = rng.dirichlet(np.full(domain.size(), 0.3)).reshape(domain.shape)
    triples = list(itertools.combinations(domain.attrs, 3))
    cliques: list[tuple[str, ...]] = [triples[i] for i in rng.choice(len(triples), 6, replace=False)]
    cliques += [(a,) for a in domain.attrs] + [("c1", "c0")]
    out = []
    for c in cliques:
        canon = domain.canonical(c)
        axes = tuple(i for i, a in enumerate(domain.attrs) if a not in c)
        table = np.transpose(p.sum(axis=axes), [canon.index(a) for a in c]) * 20_000
        noisy = np.rint(table + rng.normal(0.0, 4.0, table.shape)).astype(np.int64)
        out.append(Measurement(c, noisy, 4.0 if len(c) > 1 else 10.0))
    return domain, out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_buffer_reusing_accelerated_equals_whole_model(seed: int) -> None:
    domain, ms = _problem(seed)
    warm = estimate(domain, ms[:-3], iters=15)
    tree = build_junction_tree(domain, [m.clique for m in ms])
    objective = Objective(tree, measurement_terms(tree, ms), total=20_000.0)
    calibrator = Calibrator(tree)
    theta = warm_potentials(tree, warm)
    ours = accelerated_descent(calibrator, objective, [t.copy() for t in theta], 150, 1e-3, None)
    ref = _reference(calibrator, objective, [t.copy() for t in theta], 150)
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(potentials_from_marginals(tree, ours), potentials_from_marginals(tree, ref), strict=True):
        np.testing.assert_array_equal(a, b)


def _arrays(model_potentials: Sequence[FloatArray]) -> list[FloatArray]:
    return [np.asarray(t) for t in model_potentials]


def test_warm_start_holder_gives_the_same_model_and_is_single_use() -> None:
    domain, ms = _problem(3)
    first = estimate(domain, ms[:-3], iters=20)
    plain = estimate(domain, ms, iters=40, warm_start=first)
    holder = WarmStart(first)
    boxed = estimate(domain, ms, iters=40, warm_start=holder)
    for a, b in zip(_arrays(plain.log_potentials()), _arrays(boxed.log_potentials()), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ConfigError, match="only one estimate"):
        holder.take()
