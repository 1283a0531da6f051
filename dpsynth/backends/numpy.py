"""In-memory counting with numpy: ``ravel_multi_index`` + ``bincount``, cached per marginal."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from dpsynth.errors import ConfigError, PrivateAccessError
from dpsynth.tabular.table import Table

__all__ = ["NumpyBackend"]


class NumpyBackend:
    """Count marginals of an in-memory :class:`~dpsynth.tabular.table.Table`.

    Each marginal is counted once; a repeated request is answered from the cache (the cache
    holds exact counts and lives only as long as the backend, inside the trusted process).
    """

    def __init__(self, table: Table) -> None:
        self._table: Table | None = table
        self._domain = table.domain()
        self._cache: dict[tuple[str, ...], npt.NDArray[np.int64]] = {}

    @property
    def domain(self) -> dict[str, int]:
        return dict(self._domain)

    def _count_one(self, table: Table, clique: tuple[str, ...]) -> npt.NDArray[np.int64]:
        key = tuple(sorted(clique))
        if key not in self._cache:
            shape = table.shape_of(key)
            if not key:
                raise ConfigError("a marginal needs at least one column")
            codes = table.column_codes(key)
            flat = np.ravel_multi_index(tuple(codes.T), shape) if len(key) > 1 else codes[:, 0]
            self._cache[key] = np.bincount(flat, minlength=int(np.prod(shape))).reshape(shape).astype(np.int64)
        counts = self._cache[key]
        order = [key.index(c) for c in clique]
        return counts.transpose(order) if order != sorted(order) else counts

    def count(self, cliques: Sequence[tuple[str, ...]]) -> list[npt.NDArray[np.int64]]:
        if self._table is None:
            raise PrivateAccessError("the counting backend is closed")
        for c in cliques:
            for col in c:
                if col not in self._domain:
                    raise ConfigError(f"column {col!r} is not in the encoded table")
        return [self._count_one(self._table, tuple(c)) for c in cliques]

    def forget(self, cliques: Sequence[tuple[str, ...]]) -> None:
        """Drop the cached counts of ``cliques`` (their caller keeps what it needs)."""
        for c in cliques:
            self._cache.pop(tuple(sorted(c)), None)

    def rows(self) -> Table:
        """The encoded private table, for DP-SGD only (called by the gate after its charge)."""
        if self._table is None:
            raise PrivateAccessError("the counting backend is closed")
        return self._table

    def close(self) -> None:
        self._table = None
        self._cache.clear()
