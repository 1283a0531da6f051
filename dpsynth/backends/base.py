"""The counting interface every engine implements.

A backend answers one question: the exact count tensor of each requested marginal over the
public domain. It is the only component that touches private rows in the marginal-based
pipeline, and it is only ever called from :mod:`dpsynth.measure`, after the accountant has
been charged. Counts never leave the driver without noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = ["CountingBackend"]


@runtime_checkable
class CountingBackend(Protocol):
    """Exact marginal counts over a public domain."""

    @property
    def domain(self) -> dict[str, int]:
        """Public ``{column: domain size}`` of the encoded columns, in order."""
        ...

    def count(self, cliques: Sequence[tuple[str, ...]]) -> list[npt.NDArray[np.int64]]:
        """Exact counts of each clique, shaped by the clique's domain sizes in clique order."""
        ...

    def close(self) -> None:
        """Release resources (connections, sessions); counting after close is an error."""
        ...
