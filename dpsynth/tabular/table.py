"""The integer-coded table: private codes over a public domain.

A :class:`Table` is what encoding produces and what counting backends read. Its column names
and domain sizes are public (they come from the schema); its codes and its row count are
private, so nothing outside a charged measurement may look at them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from dpsynth.errors import ConfigError, PrivateAccessError

__all__ = ["RaisingTable", "Table"]


@dataclass(frozen=True, eq=False)
class Table:
    """Integer codes of a confidential table over a public domain.

    Attributes:
        columns: Column names (public), in the order of ``codes``' columns.
        sizes: Domain size of each column (public), so code ``c`` of column ``j`` is in
            ``0 .. sizes[j]-1``.
        codes: ``(n, d)`` array of codes (private). ``n`` itself is private.
    """

    columns: tuple[str, ...]
    sizes: tuple[int, ...]
    codes: npt.NDArray[np.int64] = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.columns) != len(self.sizes):
            raise ConfigError(
                f"columns ({len(self.columns)}) and sizes ({len(self.sizes)}) must have equal length"
            )
        if len(set(self.columns)) != len(self.columns):
            raise ConfigError("column names must be unique")
        if self.codes.ndim != 2 or self.codes.shape[1] != len(self.columns):
            raise ConfigError(f"codes must be a 2-d array with {len(self.columns)} columns")

    def index(self, column: str) -> int:
        """Position of ``column``, raising a :class:`ConfigError` naming it if unknown."""
        try:
            return self.columns.index(column)
        except ValueError:
            raise ConfigError(f"column {column!r} is not in the table") from None

    def domain(self) -> dict[str, int]:
        """The public domain as ``{column: size}``."""
        return dict(zip(self.columns, self.sizes, strict=True))

    def shape_of(self, clique: Sequence[str]) -> tuple[int, ...]:
        """Public shape of the marginal over ``clique``."""
        return tuple(self.sizes[self.index(c)] for c in clique)

    def column_codes(self, clique: Sequence[str]) -> npt.NDArray[np.int64]:
        """The ``(n, len(clique))`` codes of ``clique`` (private)."""
        return self.codes[:, [self.index(c) for c in clique]]

    @property
    def num_rows(self) -> int:
        """The exact row count. Private: use only inside a charged measurement or an audit."""
        return int(self.codes.shape[0])


class RaisingTable(Table):
    """A table whose private parts raise on any access.

    Used to prove the post-processing boundary: once the last measurement is taken, the
    generator must work with the transcript alone.
    """

    def __init__(self, columns: tuple[str, ...], sizes: tuple[int, ...]) -> None:
        object.__setattr__(self, "columns", tuple(columns))
        object.__setattr__(self, "sizes", tuple(sizes))

    def __getattribute__(self, name: str) -> object:
        if name in ("codes", "num_rows", "column_codes"):
            raise PrivateAccessError(f"private table accessed after the last measurement ({name})")
        return object.__getattribute__(self, name)
