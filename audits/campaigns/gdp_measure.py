"""D2: tight Gaussian-DP audit of MST's measure step (docs/self-audits.md, "Campaigns and their planted bugs").

One real ``fit_mst`` run on the D1 worst-case data fixes the measured cliques and their noise
scales. Then ``N`` independent replicas of the measure step run per world through
:meth:`dpsynth.privacy.gate.PrivateData.measure` itself (accountant charged, counts taken from a
:class:`~dpsynth.backends.numpy.NumpyBackend`, noise from ``dpsynth.privacy.noise``). Only the
target's cell changes between the worlds (add/remove one row), so the harness backend
returns, for each clique, that cell's exact count repeated ``N`` times: one call to the
noise primitive draws all replicas at once. The score of a replica is the Gaussian
log-likelihood-ratio statistic ``sum_m noisy_m / sigma_m**2``.

The measure step composes Gaussian mechanisms, so it is ``mu``-GDP with
``mu = sqrt(2 * rho_measure)``. The correct code must give ``mu_lb <= sqrt(2 rho_measure)``;
the planted ``sigma/2`` bug must give ``mu_lb > sqrt(2 rho_total)`` (more than the whole
budget, selection included, could explain).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from audits.campaigns.common import (
    NoiseBug,
    Timer,
    VariantResult,
    eps_verdict,
    mu_holdout,
    noise_bug,
)
from audits.campaigns.transcript import COLUMNS, D_MINUS, TARGET, Row, frame, public_schema
from dpsynth.backends.numpy import NumpyBackend
from dpsynth.mechanisms.mst import MSTConfig, fit_mst
from dpsynth.privacy.accountant import Accountant
from dpsynth.privacy.budget import ZCDP
from dpsynth.privacy.gate import PrivateData
from dpsynth.tabular.encoding import encode

__all__ = ["TargetCellBackend", "run"]

NAME = "d2_measure"
#: (rho, replicas per world) per mode. rho = 0.5 resolves mu to ~0.05 with 2 x 2000
#: replicas. At the D1 claim rho = 0.02 the sigma/2 bug (mu 0.33) must clear 0.20: with
#: 2 x 20 000 replicas its bound is 0.24 +- 0.02, with 2 x 50 000 it is 0.27 +- 0.01.
FAST_RUNS = ((0.5, 2000),)
FULL_RUNS = ((0.02, 50000), (0.5, 5000))


class TargetCellBackend:
    """Audit harness: the target's cell of each marginal, repeated ``replicas`` times.

    Counts come from a real :class:`NumpyBackend`; each clique's answer has shape
    ``(replicas, 1, ..., 1)`` so :meth:`PrivateData.measure` noises every replica
    independently in one call.
    """

    def __init__(self, inner: NumpyBackend, cell: dict[str, int], replicas: int) -> None:
        self._inner = inner
        self._cell = cell
        self._replicas = replicas

    @property
    def domain(self) -> dict[str, int]:
        """The inner backend's public domain."""
        return self._inner.domain

    def count(self, cliques: Sequence[tuple[str, ...]]) -> list[npt.NDArray[np.int64]]:
        """The target cell's exact count per clique, tiled to ``(replicas, 1, ...)``."""
        out = []
        for clique, counts in zip(cliques, self._inner.count(cliques), strict=True):
            value = int(counts[tuple(self._cell[c] for c in clique)])
            out.append(np.full((self._replicas,) + (1,) * (len(clique) - 1), value,
                               dtype=np.int64))
        return out

    def close(self) -> None:
        """Close the inner backend."""
        self._inner.close()


def _plan(rho: float) -> list[tuple[tuple[str, ...], float]]:
    """Cliques and noise scales of MST's measure step, read off one real run."""
    table = encode(frame(list(D_MINUS)), public_schema())
    fit = fit_mst(PrivateData(NumpyBackend(table), Accountant(ZCDP(rho))), rho=rho, config=MSTConfig(iters=1))
    return [(m.clique, m.sigma) for m in fit.measurements]


def _world_scores(rows: Sequence[Row], plan: list[tuple[tuple[str, ...], float]],
                  rho: float, n: int) -> tuple[npt.NDArray[np.float64], float]:
    schema = public_schema()
    cell = {c: schema.category_code(c, v) for c, v in zip(COLUMNS, TARGET, strict=True)}
    backend = TargetCellBackend(NumpyBackend(encode(frame(rows), schema)), cell, n)
    acc = Accountant(ZCDP(rho))
    gate = PrivateData(backend, acc)
    total = np.zeros(n)
    for clique, sigma in plan:
        (m,) = gate.measure([clique], sigma=sigma, label="d2 replica")
        total += m.values.reshape(n).astype(np.float64) / m.sigma**2
    return total, acc.spent_rho


def _audit(variant: NoiseBug, rho: float, n: int, rng: np.random.Generator) -> VariantResult:
    plan = _plan(rho)
    with Timer() as t, noise_bug(variant):
        non, rho_measure = _world_scores(list(D_MINUS), plan, rho, n)
        mem, _ = _world_scores([*D_MINUS, TARGET], plan, rho, n)
        mu, det = mu_holdout(mem, non, rng=rng)
    mu_measure, mu_total = math.sqrt(2 * rho_measure), math.sqrt(2 * rho)
    correct = variant == "none"
    det.update({"rho_total": rho, "rho_measure": rho_measure, "mu_measure": mu_measure,
                "mu_total": mu_total, "measurements": [[list(c), s] for c, s in plan]})
    return eps_verdict(campaign=NAME, variant=f"{'correct' if correct else variant}@rho={rho:g}",
                       expect="pass" if correct else "caught", measure="mu",
                       claim=mu_measure if correct else mu_total, lower_bound=mu, trials=n,
                       seconds=t.seconds, details=det)


def run(*, fast: bool, rng: np.random.Generator) -> list[VariantResult]:
    """Audit the measure step, correct and with noise at ``sigma/2`` (full: also no noise)."""
    out = []
    for rho, n in FAST_RUNS if fast else FULL_RUNS:
        variants: tuple[NoiseBug, ...] = (("none", "half_sigma") if fast else
                                          ("none", "half_sigma", "no_noise"))
        for variant in variants:
            out.append(_audit(variant, rho, n, rng))
    return out
