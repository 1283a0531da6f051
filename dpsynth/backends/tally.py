"""Counting many marginals through a few larger ones: the union plan and packed keys.

Counting each requested marginal separately costs one pass over the (pre-aggregated) rows per
marginal. A :class:`UnionPlan` groups the requested column sets into a few *unions* whose
dense tables stay under a cell cap; the engine counts each union once (one flat integer index
per row and union), and the requested marginals are sums of the union tables. For all 105
pairs of Adult's 15 columns that is 16 one-column groupings instead of 105 two-column ones.

:func:`strides` packs all codes of a row into one 64-bit key, which engines group on faster
than on many columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from dpsynth.errors import DPSynthError

__all__ = ["MAX_KEY", "UnionPlan", "plan_unions", "strides"]

#: Packed keys stay below this, so they fit a signed 64-bit integer in every engine.
MAX_KEY = 1 << 62


def strides(sizes: Sequence[int]) -> list[int] | None:
    """Mixed-radix strides (last column fastest), or None when the key space exceeds :data:`MAX_KEY`."""
    out, step = [0] * len(sizes), 1
    for i in range(len(sizes) - 1, -1, -1):
        out[i] = step
        step *= int(sizes[i])
        if step > MAX_KEY:
            return None
    return out


def _cells(cols: frozenset[int], sizes: Sequence[int]) -> int:
    return int(np.prod([sizes[c] for c in cols], dtype=np.float64))


def plan_unions(
    sets: Sequence[Sequence[int]], sizes: Sequence[int], cap: int
) -> list[tuple[int, ...]]:
    """Group column sets into unions of at most ``cap`` dense cells (a set larger alone is its own).

    Greedy: sets in decreasing size join the existing union that grows least, if it stays
    under the cap; otherwise they open a new union.
    """
    unions: list[frozenset[int]] = []
    for s in sorted({frozenset(s) for s in sets}, key=lambda s: (-_cells(s, sizes), sorted(s))):
        if any(s <= u for u in unions):
            continue
        best, grow = -1, None
        for i, u in enumerate(unions):
            merged = _cells(u | s, sizes)
            if merged <= cap and (grow is None or merged - _cells(u, sizes) < grow):
                best, grow = i, merged - _cells(u, sizes)
        if best < 0:
            unions.append(s)
        else:
            unions[best] = unions[best] | s
    return [tuple(sorted(u)) for u in unions]


class UnionPlan:
    """Count ``sets`` (tuples of column positions) through a few dense unions of them.

    Args:
        sizes: Public domain size of every column, in order.
        sets: The requested column sets (positions into ``sizes``), each in its output order.
        cap: Largest dense union table, in cells (a requested set larger than this is
            counted on its own).

    The engine computes, for every row, the flat index of the row in each union's dense table
    (:meth:`flat_terms` gives ``index = sum(code[c] * multiplier)``) and counts rows per union
    index; :meth:`assemble` turns those counts into the requested marginals.
    """

    def __init__(
        self, sizes: Sequence[int], sets: Sequence[tuple[int, ...]], *, cap: int = 1 << 18
    ) -> None:
        self._sizes = [int(s) for s in sizes]
        self._sets = [tuple(s) for s in sets]
        self.unions = plan_unions(self._sets, self._sizes, cap)

    def cells(self, j: int) -> int:
        """Dense cells of union ``j``."""
        return _cells(frozenset(self.unions[j]), self._sizes)

    def flat_terms(self, j: int) -> list[tuple[int, int]]:
        """``(column position, multiplier)`` pairs whose weighted sum is union ``j``'s flat index."""
        out, step = [], 1
        for c in reversed(self.unions[j]):
            out.append((c, step))
            step *= self._sizes[c]
        return out[::-1]

    def assemble(
        self, flat: Sequence[npt.NDArray[np.int64]], counts: Sequence[npt.NDArray[np.int64]]
    ) -> list[npt.NDArray[np.int64]]:
        """The requested marginals from each union's ``(flat index, count)`` rows."""
        tables = []
        for j, (idx, n) in enumerate(zip(flat, counts, strict=True)):
            idx = np.asarray(idx, dtype=np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= self.cells(j)):
                raise DPSynthError("the engine returned a cell outside a union's domain")
            dense = np.zeros(self.cells(j), dtype=np.int64)
            np.add.at(dense, idx, np.asarray(n, dtype=np.int64))
            tables.append(dense)
        return self.assemble_dense(tables)

    def accumulate(
        self,
        tables: list[npt.NDArray[np.float64]],
        flat: Sequence[npt.NDArray[np.int64]],
        counts: npt.NDArray[np.int64],
    ) -> None:
        """Add a batch of rows (each union's flat index per row, and the row counts) to ``tables``.

        ``tables`` starts as ``[np.zeros(plan.cells(j)) for j ...]``; float64 sums of integer
        counts are exact below 2**53.
        """
        weights = np.asarray(counts, dtype=np.float64)
        for table, idx in zip(tables, flat, strict=True):
            idx = np.asarray(idx, dtype=np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= table.size):
                raise DPSynthError("the engine returned a cell outside a union's domain")
            table += np.bincount(idx, weights=weights, minlength=table.size)

    def assemble_dense(self, tables: Sequence[npt.NDArray[Any]]) -> list[npt.NDArray[np.int64]]:
        """The requested marginals from each union's flat dense count table."""
        shaped = [
            np.rint(t).astype(np.int64).reshape([self._sizes[c] for c in u])
            for t, u in zip(tables, self.unions, strict=True)
        ]
        out = []
        for s in self._sets:
            j = next(i for i, u in enumerate(self.unions) if set(s) <= set(u))
            u = self.unions[j]
            summed = shaped[j].sum(axis=tuple(i for i, c in enumerate(u) if c not in s))
            kept = [c for c in u if c in s]
            out.append(
                np.ascontiguousarray(summed.transpose([kept.index(c) for c in s]), dtype=np.int64)
            )
        return out
