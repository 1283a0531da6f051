"""B4: Clopper-Pearson audits of dpsynth's two noise primitives on worst-case neighbours.

* Discrete Gaussian on a count (``dpsynth.privacy.noise.discrete_gaussian``): neighbours hold ``0``
  and ``Delta``; the score is the noisy count. The claim is Gaussian-DP ``mu = Delta/sigma``
  (the accountant's ``rho = mu**2/2``), audited with the GDP bound; the pure CP epsilon bound
  is recorded too. Planted bugs: noise at ``sigma/2`` and neighbours at ``2*Delta`` (doubled
  sensitivity); both have ``mu = 2``.
* Report-noisy-max (``dpsynth.privacy.noise.noisy_max``): score vectors at L-inf distance ``Delta``
  that move the audited candidate up and its ``m`` rivals down; the score is "candidate 0
  won". The claim is the pure epsilon ``2*Delta/scale`` of the exponential mechanism (which is
  the ``rho = Delta**2/(2*scale**2)`` dpsynth charges). Planted bugs: doubled sensitivity and
  halved scale.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from audits.campaigns.common import (
    Sizes,
    Timer,
    VariantResult,
    eps_verdict,
    epsilon_details,
    mu_holdout,
)
from dpsynth.privacy.noise import discrete_gaussian, noisy_max

__all__ = ["FAST", "FULL", "run"]

NAME = "b4_primitives"
FAST = Sizes(correct=2000, planted=2000)
FULL = Sizes(correct=5000, planted=2000)

DELTA_COUNT = 8  # count sensitivity (e.g. a per-person row bound of 8)
SIGMA = 8.0  # mu = DELTA_COUNT / SIGMA = 1
NM_DELTA = 1.0
NM_SCALE = 1.0  # pure epsilon = 2 * NM_DELTA / NM_SCALE = 2
NM_RIVALS = 20  # more rivals widen the bug-vs-claim gap (bug lb ~2.5 vs claim 2)


def _gaussian(variant: str, n: int, rng: np.random.Generator) -> VariantResult:
    shift, sigma = DELTA_COUNT, SIGMA
    if variant == "half_sigma":
        sigma = SIGMA / 2
    elif variant == "double_sensitivity":
        shift = 2 * DELTA_COUNT
    with Timer() as t:
        non = discrete_gaussian(np.zeros(n, dtype=np.int64), sigma).astype(np.float64)
        mem = discrete_gaussian(np.full(n, shift, dtype=np.int64), sigma).astype(np.float64)
        mu, det = mu_holdout(mem, non, rng=rng)
        eps, eps_det = epsilon_details(mem, non, rng=rng, delta=0.0)
    det.update({"primitive": "discrete_gaussian", "sensitivity": DELTA_COUNT,
                "sigma_claimed": SIGMA, "sigma_used": sigma, "neighbour_shift": shift,
                "eps_lb_pure_cp": eps, "eps_cp": eps_det})
    return eps_verdict(campaign=NAME, variant=f"discrete_gaussian/{variant}",
                       expect="pass" if variant == "correct" else "caught", measure="mu",
                       claim=DELTA_COUNT / SIGMA, lower_bound=mu, trials=n, seconds=t.seconds,
                       details=det)


def _winner_is_target(scores: list[float], scale: float, n: int) -> npt.NDArray[np.float64]:
    return np.array([float(noisy_max(scores, scale) == 0) for _ in range(n)])


def _noisy_max(variant: str, n: int, rng: np.random.Generator) -> VariantResult:
    move, scale = NM_DELTA, NM_SCALE
    if variant == "double_sensitivity":
        move = 2 * NM_DELTA
    elif variant == "half_scale":
        scale = NM_SCALE / 2
    # World 0: target at 0, rivals at +Delta. World 1: every score moved by `move` the other
    # way (target up, rivals down), so the L-inf distance is `move` (Delta when correct).
    world0 = [0.0] + [NM_DELTA] * NM_RIVALS
    world1 = [move] + [NM_DELTA - move] * NM_RIVALS
    with Timer() as t:
        non = _winner_is_target(world0, scale, n)
        mem = _winner_is_target(world1, scale, n)
        eps, det = epsilon_details(mem, non, rng=rng, delta=0.0)
    det.update({"primitive": "noisy_max", "sensitivity": NM_DELTA, "scale_claimed": NM_SCALE,
                "scale_used": scale, "linf_distance": move, "rivals": NM_RIVALS,
                "win_rate_world0": float(non.mean()), "win_rate_world1": float(mem.mean())})
    return eps_verdict(campaign=NAME, variant=f"noisy_max/{variant}",
                       expect="pass" if variant == "correct" else "caught", measure="eps",
                       claim=2 * NM_DELTA / NM_SCALE, lower_bound=eps, trials=n,
                       seconds=t.seconds, details=det)


def run(*, fast: bool, rng: np.random.Generator) -> list[VariantResult]:
    """Audit both primitives: the correct calibration and planted miscalibrations."""
    sizes = FAST if fast else FULL
    out = [_gaussian(v, sizes.correct if v == "correct" else sizes.planted, rng)
           for v in ("correct", "half_sigma", "double_sensitivity")]
    nm_variants = ("correct", "double_sensitivity") if fast else (
        "correct", "double_sensitivity", "half_scale")
    out += [_noisy_max(v, sizes.correct if v == "correct" else sizes.planted, rng)
            for v in nm_variants]
    return out
