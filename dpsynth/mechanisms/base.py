"""What every marginal-based mechanism shares: the fit result and the noisy-total estimate.

A mechanism runs SELECT / MEASURE / GENERATE: it selects marginals (with charged noisy-max
steps), measures them (charged Gaussian steps), and estimates a graphical model from the
measurements alone. :class:`MarginalFit` is the public transcript plus the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from dpsynth.mechanisms.compress import Compression
from dpsynth.pgm import Domain, Model
from dpsynth.privacy.guarantee import PrivacyStatement, marginal_statement
from dpsynth.privacy.measure import Measurement

__all__ = ["MarginalFit", "sigma_for_rho"]


@dataclass(frozen=True, eq=False)
class MarginalFit:
    """The outcome of a marginal-based mechanism: public transcript and fitted model.

    Attributes:
        mechanism: Name of the mechanism.
        domain: The public domain the model is over.
        measurements: Every noisy measurement taken (the transcript).
        selected: Cliques chosen by private selection steps, in order.
        model: The graphical model estimated from ``measurements`` alone.
        total: DP estimate of the number of rows (from the noisy measurements).
        params: Public parameters of the run (for the manifest).
        compression: When set, ``model`` is over the compressed domain (see
            :mod:`dpsynth.mechanisms.compress`), and so are the 2-way measurements.
    """

    mechanism: str
    domain: Domain
    measurements: tuple[Measurement, ...]
    selected: tuple[tuple[str, ...], ...]
    model: Model
    total: float
    params: dict[str, Any] = field(default_factory=dict)
    compression: Compression | None = None

    @property
    def statement(self) -> PrivacyStatement:
        """How this fit's guarantee is obtained (noise, accounting, randomness)."""
        return marginal_statement(self.mechanism)


def sigma_for_rho(rho: float, *, count: int = 1, sensitivity: float = 1.0) -> float:
    """Noise scale so that ``count`` Gaussian measurements of ``sensitivity`` cost ``rho``."""
    return float(sensitivity * math.sqrt(count / (2.0 * rho)))
