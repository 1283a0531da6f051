"""QI groups (equivalence classes) and the table of QI groups x sensitive values.

Rows with equal quasi-identifier values form a group; a null is a value of its own (pyCANON
drops rows with a null quasi-identifier instead). Every syntactic privacy model in
:mod:`dpsynth.audit.kanonymity` and :mod:`dpsynth.audit.syntactic` reads these.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from dpsynth.errors import ConfigError, SchemaError

__all__ = ["check_columns", "group_value_counts", "natural_order", "qi_group_ids",
           "qi_group_sizes"]


def check_columns(df: pd.DataFrame, columns: Sequence[str]) -> None:
    """Raise :class:`SchemaError` naming the first of ``columns`` missing from ``df``."""
    for c in columns:
        if c not in df.columns:
            raise SchemaError(f"column {c!r} is missing from the table")


def qi_group_ids(df: pd.DataFrame, qis: Sequence[str]) -> np.ndarray:
    """Group number of each row (rows with equal QI values, nulls equal, share a number)."""
    if not qis:
        raise ConfigError("at least one quasi-identifier is needed")
    check_columns(df, qis)
    key = np.zeros(len(df), dtype=np.int64)
    for c in qis:  # one int64 key per row, in the lexicographic order of the column codes
        codes = np.asarray(pd.factorize(df[c], use_na_sentinel=False)[0], dtype=np.int64)
        card = int(codes.max()) + 1 if codes.size else 1
        if key.size and int(key.max()) + 1 > (2**62) // card:
            key = np.unique(key, return_inverse=True)[1].astype(np.int64).ravel()
        key = key * card + codes
    return np.asarray(np.unique(key, return_inverse=True)[1]).ravel()


def qi_group_sizes(df: pd.DataFrame, qis: Sequence[str]) -> np.ndarray:
    """Size of each QI group (one entry per group, unordered)."""
    if len(df) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.bincount(qi_group_ids(df, qis))


def _value_codes(col: pd.Series, order: Sequence[object] | None) -> tuple[np.ndarray, int]:
    """Codes of a sensitive column: in ``order`` (nulls last) or in order of appearance."""
    if order is None:
        codes = np.asarray(pd.factorize(col, use_na_sentinel=False)[0])
        return codes, int(codes.max()) + 1 if codes.size else 0
    index = pd.Index(list(order))
    if index.has_duplicates:
        raise ConfigError(f"the order of column {col.name!r} lists a category twice")
    codes = np.asarray(index.get_indexer(pd.Index(col)))
    null = col.isna().to_numpy()
    outside = int(((codes < 0) & ~null).sum())
    if outside:
        raise SchemaError(f"column {col.name!r}: {outside} values are not in its declared order")
    return np.where(null, len(index), codes), len(index) + 1


def natural_order(col: pd.Series) -> list[object] | None:
    """The order a column carries itself: an ordered categorical's, or sorted numbers."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        return list(col.dtype.categories) if col.dtype.ordered else None
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        return list(np.unique(col.dropna().to_numpy()))
    return None


def group_value_counts(df: pd.DataFrame, qis: Sequence[str], sensitive: str, *,
                       order: Sequence[object] | None = None) -> np.ndarray:
    """Contingency table: QI groups x sensitive values (counts, int64).

    Args:
        df: The table.
        qis: Quasi-identifier columns.
        sensitive: The sensitive column.
        order: If given, the columns of the table follow this order (nulls last, then only
            the values that occur are kept); otherwise the order of first appearance.

    Returns:
        ``counts[g, v]``: records of group ``g`` with value ``v``; every column is non-empty.
    """
    check_columns(df, [sensitive])
    ids = qi_group_ids(df, qis)
    codes, n_values = _value_codes(df[sensitive], order)
    table = np.zeros((int(ids.max()) + 1 if ids.size else 0, n_values), dtype=np.int64)
    np.add.at(table, (ids, codes), 1)
    return table[:, table.sum(axis=0) > 0]
