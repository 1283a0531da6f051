"""Exact DP noise and selection primitives, all drawn by OpenDP.

Nothing here takes a seed: OpenDP samples from the operating system's CSPRNG. Counts are
integers and noisy counts are integers, so released values lie on a public grid (no
floating-point side channel).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from dpsynth.errors import ConfigError
from dpsynth.privacy.events import gumbel_scale_for_rho

__all__ = [
    "discrete_gaussian",
    "gaussian_threshold",
    "gumbel_scale_for_rho",
    "noisy_max",
    "threshold_cost",
    "threshold_for",
]


def _enable_contrib() -> None:
    """Enable OpenDP's ``contrib`` features (what ``dp.enable_features("contrib")`` does).

    Only the OpenDP modules used here are imported, never ``opendp.prelude``: the prelude
    imports ``opendp.extras`` and with it scikit-learn (1-5 s of start-up per process).
    """
    from opendp.mod import enable_features

    enable_features("contrib")


@lru_cache(maxsize=256)
def _gaussian_vector(scale: float) -> Any:
    from opendp.domains import atom_domain, vector_domain
    from opendp.measurements import make_gaussian
    from opendp.metrics import l2_distance

    _enable_contrib()
    return make_gaussian(vector_domain(atom_domain(T=int)), l2_distance(T=int), scale=scale)


def discrete_gaussian(counts: npt.NDArray[np.int64], sigma: float) -> npt.NDArray[np.int64]:
    """Add exact discrete Gaussian noise of scale ``sigma`` to integer counts.

    Args:
        counts: Integer array of any shape.
        sigma: Noise scale (standard deviation parameter), > 0.

    Returns:
        Integer array of the same shape: ``counts + Z`` with ``Z`` i.i.d. discrete Gaussian.
    """
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ConfigError(f"sigma ({sigma}) must be a finite number > 0")
    flat = np.asarray(counts, dtype=np.int64).ravel()
    if flat.size == 0:
        return flat.reshape(np.shape(counts))
    meas = _gaussian_vector(float(sigma))
    noisy = np.asarray(meas(flat.tolist()), dtype=np.int64)
    return noisy.reshape(np.shape(counts))


@lru_cache(maxsize=256)
def _noisy_max(scale: float) -> Any:
    from opendp.domains import atom_domain, vector_domain
    from opendp.measurements import make_noisy_max
    from opendp.measures import zero_concentrated_divergence
    from opendp.metrics import linf_distance

    _enable_contrib()
    return make_noisy_max(
        vector_domain(atom_domain(T=float, nan=False)),
        linf_distance(T=float, monotonic=False),
        zero_concentrated_divergence(),
        scale=scale,
    )


def noisy_max(scores: Sequence[float] | npt.NDArray[np.float64], scale: float) -> int:
    """Index of the noisy maximum of ``scores`` with Gumbel noise of ``scale`` (OpenDP)."""
    values = [float(s) for s in np.asarray(scores, dtype=np.float64).ravel()]
    if not values:
        raise ConfigError("noisy_max needs at least one score")
    if not all(math.isfinite(v) for v in values):
        raise ConfigError("noisy_max scores must be finite")
    if not (scale > 0 and math.isfinite(scale)):
        raise ConfigError(f"scale ({scale}) must be a finite number > 0")
    return int(_noisy_max(float(scale))(values))


@lru_cache(maxsize=256)
def _gaussian_threshold(sigma: float, threshold: int) -> Any:
    from opendp.domains import atom_domain, map_domain
    from opendp.measurements import make_gaussian_threshold
    from opendp.metrics import absolute_distance, l02inf_distance
    from opendp.typing import i64

    _enable_contrib()
    return make_gaussian_threshold(map_domain(atom_domain(T=str), atom_domain(T=i64)),
                                   l02inf_distance(absolute_distance(T=i64)), scale=sigma, threshold=threshold)


def threshold_cost(sigma: float, threshold: int, bound: int) -> tuple[float, float]:
    """OpenDP's (rho, delta) of a Gaussian-thresholded histogram when one unit holds ``bound`` rows.

    The unit may add up to ``bound`` keys, each count by up to ``bound`` (so l0 = l2 = linf =
    ``bound``, a conservative bound on the l2 norm).
    """
    if not (isinstance(bound, int) and bound >= 1):
        raise ConfigError(f"bound ({bound!r}) must be an integer >= 1")
    rho, delta = _gaussian_threshold(float(sigma), int(threshold)).map((bound, bound, bound))
    return float(rho), float(delta)


def threshold_for(sigma: float, delta: float, bound: int) -> int:
    """The smallest integer threshold at which a Gaussian-thresholded histogram uses at most ``delta``."""
    if not 0.0 < delta < 1.0:
        raise ConfigError(f"delta ({delta}) must be > 0 and < 1")
    lo, hi = bound, max(bound + 1, int(bound + sigma * 50) + 1)
    while threshold_cost(sigma, hi, bound)[1] > delta:  # pragma: no cover - sigma*50 is far out
        hi *= 2
    while lo < hi:  # the delta falls as the threshold rises
        mid = (lo + hi) // 2
        if threshold_cost(sigma, mid, bound)[1] <= delta:
            hi = mid
        else:
            lo = mid + 1
    return lo


def gaussian_threshold(counts: dict[str, int], sigma: float, threshold: int) -> dict[str, int]:
    """Noisy counts of the keys whose discrete-Gaussian-noised count clears ``threshold`` (OpenDP).

    Keys below the threshold are dropped, so a key held by few units never appears.
    """
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ConfigError(f"sigma ({sigma}) must be a finite number > 0")
    clean = {str(k): int(v) for k, v in counts.items() if int(v) > 0}
    if not clean:
        return {}
    out = _gaussian_threshold(float(sigma), int(threshold))(clean)
    return {str(k): int(v) for k, v in out.items()}
