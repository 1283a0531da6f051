"""What the model engine needs of a noisy marginal: a protocol, so ``pgm`` knows nothing of privacy.

:class:`dpsynth.privacy.measure.Measurement` satisfies it; so does any object with these four
attributes (tests build their own).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["Measurement"]


class Measurement(Protocol):
    """A noisy marginal over ``clique``: ``values`` with per-cell noise scale ``sigma``."""

    @property
    def clique(self) -> tuple[str, ...]:
        """The columns of the marginal, in the order of ``values``' axes."""
        ...

    @property
    def values(self) -> npt.NDArray[np.int64]:
        """Noisy counts shaped like the clique's domain (integers or floats)."""
        ...

    @property
    def sigma(self) -> float:
        """Noise scale of each cell."""
        ...

    @property
    def weight(self) -> float:
        """Relative weight in estimation."""
        ...
