"""Selection of vulnerable target records: outliers first (Meeus et al., ESORICS 2023).

Records far from everything else are the ones a generator memorises and the ones CNIL asks
auditors to look at. The score of a record is its mean distance (Gower-like, see
:mod:`dpsynth.audit.distance`) to its ``k`` nearest other records; the highest scores are
the targets.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from dpsynth.audit.distance import DEFAULT_BLOCK_ELEMENTS, EncodedTable, distance_blocks
from dpsynth.errors import ConfigError

__all__ = ["outlier_scores", "select_outlier_targets"]


def outlier_scores(records: EncodedTable, *, k: int = 5,
                   block_elements: int = DEFAULT_BLOCK_ELEMENTS) -> NDArray[np.float64]:
    """Mean distance of each record to its ``k`` nearest other records."""
    n = records.n_rows
    if not 1 <= k < n:
        raise ConfigError(f"k ({k}) must lie in [1, number of records - 1 ({n - 1})]")
    out = np.empty(n, dtype=np.float64)
    for start, d in distance_blocks(records, records, block_elements=block_elements):
        rows = np.arange(d.shape[0])
        d[rows, start + rows] = np.inf  # a record is not its own neighbour
        nearest = np.partition(d, k - 1, axis=1)[:, :k]
        out[start:start + d.shape[0]] = nearest.mean(axis=1)
    return out


def select_outlier_targets(records: EncodedTable, n_targets: int, *, k: int = 5
                           ) -> NDArray[np.intp]:
    """Positions of the ``n_targets`` records with the highest outlier score, highest first."""
    if n_targets < 0:
        raise ConfigError(f"n_targets ({n_targets}) must be >= 0")
    scores = outlier_scores(records, k=k)
    order = np.argsort(-scores, kind="stable")
    return order[: min(n_targets, order.size)].astype(np.intp)
