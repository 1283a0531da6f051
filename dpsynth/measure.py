"""Noisy marginal measurements: the only place the marginal-based generators read private data.

Each marginal is counted exactly by a counting backend, the accountant is charged *before*
the count is taken, and exact discrete Gaussian noise (OpenDP) is added to the integer counts.
The result, a :class:`Measurement`, is public: it is part of the transcript that generation
works from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import numpy.typing as npt

from dpsynth.errors import ConfigError

if TYPE_CHECKING:
    from dpsynth.accountant import Accountant
    from dpsynth.backends.base import CountingBackend

__all__ = ["Measurement", "measure_marginals"]


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


def measure_marginals(
    backend: CountingBackend,
    cliques: Sequence[tuple[str, ...]],
    *,
    sigma: float,
    accountant: Accountant,
    sensitivity: float = 1.0,
    label: str = "measure",
    transform: Callable[[tuple[str, ...], npt.NDArray[np.int64]], npt.NDArray[np.int64]] | None = None,
) -> list[Measurement]:
    """Measure marginals with discrete Gaussian noise, charging the accountant first.

    Each clique is one Gaussian event of L2 ``sensitivity`` (1 for add/remove-one-row; the
    per-person row bound under user-level privacy). The charge happens before the count is
    taken, so an overspend raises :class:`~dpsynth.errors.BudgetExceededError` with nothing
    measured.

    Args:
        backend: The counting engine holding the private data.
        cliques: Column tuples to measure.
        sigma: Noise scale per cell.
        accountant: The accountant to charge.
        sensitivity: L2 sensitivity of one marginal under the privacy unit.
        label: Ledger label prefix.
        transform: Optional public aggregation applied to the exact counts before noise
            (e.g. merging cells); it must not increase the L2 sensitivity, as summing cells
            does not.

    Returns:
        One public :class:`Measurement` per clique, in order.
    """
    from dpsynth.events import GaussianEvent
    from dpsynth.noise import discrete_gaussian

    out: list[Measurement] = []
    for clique in cliques:
        clique = tuple(clique)
        accountant.charge(GaussianEvent(sigma=sigma, sensitivity=sensitivity, label=f"{label} {'×'.join(clique)}"))
        (counts,) = backend.count([clique])
        if transform is not None:
            counts = transform(clique, counts)
        out.append(Measurement(clique, discrete_gaussian(counts, sigma), float(sigma)))
    return out
