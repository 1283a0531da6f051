"""The counting interface every engine implements.

A backend answers one question: the exact count tensor of each requested marginal over the
public domain. It is the only component that touches private rows in the marginal-based
pipeline, and it is only ever called from :mod:`dpsynth.privacy.measure`, after the accountant has
been charged. Counts never leave the driver without noise.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from dpsynth.errors import ConfigError, PrivateAccessError
from dpsynth.tabular.schema import Schema

__all__ = ["CachedCounts", "CountingBackend"]

log = logging.getLogger(__name__)


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


class CachedCounts(ABC):
    """Shared front of the streaming engines: request checks, one pass per request, a cache.

    Subclasses call :meth:`_init_cache` and implement :meth:`_compute`, which counts every
    requested key (column names in schema order) in one pass and stores the tensors in
    ``self._cache``. The cache holds exact counts and lives as long as the backend, inside the
    trusted process.
    """

    def _init_cache(self, schema: Schema) -> None:
        self._schema = schema
        self._domain = schema.domain()
        self._cache: dict[tuple[str, ...], npt.NDArray[np.int64]] = {}
        self._closed = False

    @property
    def domain(self) -> dict[str, int]:
        """Public ``{column: domain size}`` of the encoded columns, in order."""
        return dict(self._domain)

    @abstractmethod
    def _compute(self, keys: list[tuple[str, ...]]) -> None:
        """Count ``keys`` (uncached, columns in schema order) into ``self._cache``."""

    def forget(self, cliques: Sequence[tuple[str, ...]]) -> None:
        """Drop the cached counts of ``cliques`` (their caller keeps what it needs)."""
        order = [c.name for c in self._schema.modelled]
        for c in cliques:
            if all(col in order for col in c):
                self._cache.pop(tuple(sorted(c, key=order.index)), None)

    def count(self, cliques: Sequence[tuple[str, ...]]) -> list[npt.NDArray[np.int64]]:
        """Exact counts of each clique (all uncached ones in one pass over the data)."""
        if self._closed:
            raise PrivateAccessError("the counting backend is closed")
        for c in cliques:
            if not c:
                raise ConfigError("a marginal needs at least one column")
            for col in c:
                if col not in self._domain:
                    raise ConfigError(f"column {col!r} is not in the encoded table")
            if len(set(c)) != len(c):
                raise ConfigError(f"marginal {tuple(c)} repeats a column")
        order = [c.name for c in self._schema.modelled]
        keys = [tuple(sorted(c, key=order.index)) for c in cliques]
        todo = list(dict.fromkeys(k for k in keys if k not in self._cache))
        if todo:
            log.debug("counting %d marginal(s) in one %s pass", len(todo), type(self).__name__)
            self._compute(todo)
        return [
            self._cache[k].transpose([k.index(c) for c in clique])
            for clique, k in zip(cliques, keys, strict=True)
        ]
