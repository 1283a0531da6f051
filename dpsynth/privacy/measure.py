"""The noisy marginal measurement: the public record of one charged read of private data.

Measurements are made by :meth:`dpsynth.privacy.gate.PrivateData.measure` (charge, exact count,
OpenDP discrete Gaussian). A :class:`Measurement` is public: it is part of the transcript
that estimation and generation work from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from dpsynth.errors import ConfigError

__all__ = ["Measurement"]


@dataclass(frozen=True, eq=False)
class Measurement:
    """A noisy marginal: public, part of the transcript.

    Attributes:
        clique: The columns of the marginal, in the order of ``values``' axes.
        values: Noisy integer counts shaped like the clique's public domain.
        sigma: The scale of the discrete Gaussian noise added to each cell.
        weight: Relative weight in estimation (``1.0`` unless a mechanism says otherwise).
    """

    clique: tuple[str, ...]
    values: npt.NDArray[np.int64] = field(repr=False)
    sigma: float
    weight: float = 1.0

    def __post_init__(self) -> None:
        if len(set(self.clique)) != len(self.clique) or not self.clique:
            raise ConfigError(f"clique {self.clique} must be a non-empty tuple of distinct columns")
        if self.values.ndim != len(self.clique):
            raise ConfigError(
                f"values of clique {self.clique} must have {len(self.clique)} axes"
            )
        if not self.sigma > 0:
            raise ConfigError(f"sigma ({self.sigma}) must be > 0")
