"""The package's names for typed numpy arrays (one owner, so every module means the same thing).

A leaf module: it imports numpy only, so any layer (the privacy core included) may use it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["BoolArray", "FloatArray", "IntArray"]

FloatArray = npt.NDArray[np.float64]
"""An array of 64-bit floats (probabilities, log-potentials, noisy counts as floats)."""

IntArray = npt.NDArray[np.int64]
"""An array of 64-bit integers (codes, exact or noisy integer counts)."""

BoolArray = npt.NDArray[np.bool_]
"""An array of booleans (masks)."""
