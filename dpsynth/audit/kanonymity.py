"""Syntactic privacy models on one table, following the ARX definitions.

A QI group (equivalence class) is the set of rows with equal quasi-identifier values; nulls
form their own value. Provided here:

* k-anonymity: the size of the smallest QI group;
* the share of records that are unique on the QIs (groups of size 1);
* distinct l-diversity: the smallest number of distinct sensitive values in a group;
* entropy l-diversity: ``exp(min over groups of H(sensitive | group))``, so a group satisfies
  entropy l-diversity iff its entropy is >= ln l;
* t-closeness: the largest Earth Mover's Distance between a group's sensitive distribution
  and the table-wide one, with the ordered distance for numeric/ordinal attributes
  (``EMD = sum_i |cumulative difference_i| / (m - 1)`` over the m sorted distinct values) and
  the equal distance for categorical ones (``EMD = 1/2 sum_i |p_i - q_i|``).

These describe one table. For synthetic data they certify nothing (docs/auditing.md): there
is no 1:1 mapping between synthetic rows and people, and a generator can copy an outlier into
a large QI group.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dpsynth.errors import ConfigError, SchemaError

__all__ = [
    "SyntacticReport",
    "k_anonymity",
    "l_diversity_distinct",
    "l_diversity_entropy",
    "qi_group_ids",
    "qi_group_sizes",
    "syntactic_report",
    "t_closeness",
    "unique_share",
]


def _check(df: pd.DataFrame, columns: Sequence[str]) -> None:
    for c in columns:
        if c not in df.columns:
            raise SchemaError(f"column {c!r} is missing from the table")


def qi_group_ids(df: pd.DataFrame, qis: Sequence[str]) -> np.ndarray:
    """Group number of each row (rows with equal QI values, nulls equal, share a number)."""
    if not qis:
        raise ConfigError("at least one quasi-identifier is needed")
    _check(df, qis)
    keys = [pd.factorize(df[c], use_na_sentinel=False)[0] for c in qis]
    stacked = np.stack(keys, axis=1) if keys else np.zeros((len(df), 0), dtype=np.int64)
    _, ids = np.unique(stacked, axis=0, return_inverse=True)
    return np.asarray(ids).ravel()


def qi_group_sizes(df: pd.DataFrame, qis: Sequence[str]) -> np.ndarray:
    """Size of each QI group (one entry per group, unordered)."""
    if len(df) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.bincount(qi_group_ids(df, qis))


def k_anonymity(df: pd.DataFrame, qis: Sequence[str]) -> int:
    """The k of k-anonymity: the size of the smallest QI group (0 for an empty table)."""
    sizes = qi_group_sizes(df, qis)
    return int(sizes.min()) if sizes.size else 0


def unique_share(df: pd.DataFrame, qis: Sequence[str]) -> float:
    """Share of records that are alone in their QI group."""
    sizes = qi_group_sizes(df, qis)
    return float((sizes == 1).sum() / len(df)) if len(df) else 0.0


def _groups(df: pd.DataFrame, qis: Sequence[str], sensitive: str
            ) -> tuple[np.ndarray, np.ndarray, int]:
    _check(df, [sensitive])
    ids = qi_group_ids(df, qis)
    codes = pd.factorize(df[sensitive], use_na_sentinel=False)[0]
    return ids, np.asarray(codes), int(codes.max()) + 1 if len(codes) else 0


def _contingency(df: pd.DataFrame, qis: Sequence[str], sensitive: str) -> np.ndarray:
    ids, codes, n_values = _groups(df, qis, sensitive)
    table = np.zeros((int(ids.max()) + 1 if ids.size else 0, n_values), dtype=np.int64)
    np.add.at(table, (ids, codes), 1)
    return table


def l_diversity_distinct(df: pd.DataFrame, qis: Sequence[str], sensitive: str) -> int:
    """Distinct l-diversity: the fewest distinct sensitive values in any QI group."""
    if len(df) == 0:
        return 0
    table = _contingency(df, qis, sensitive)
    return int((table > 0).sum(axis=1).min())


def l_diversity_entropy(df: pd.DataFrame, qis: Sequence[str], sensitive: str) -> float:
    """Entropy l-diversity: ``exp`` of the smallest per-group entropy (natural log)."""
    if len(df) == 0:
        return 0.0
    table = _contingency(df, qis, sensitive).astype(np.float64)
    p = table / table.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    return float(math.exp(float(h.min())))


def t_closeness(df: pd.DataFrame, qis: Sequence[str], sensitive: str, *,
                ordered: bool | None = None) -> float:
    """t-closeness: the largest EMD between a QI group's and the table's sensitive values.

    Args:
        df: The table.
        qis: Quasi-identifier columns.
        sensitive: The sensitive column.
        ordered: Use the ordered distance (numeric/ordinal) or the equal distance
            (categorical). Default: ordered iff the column is numeric. For the ordered
            distance, nulls sort after every value.

    Returns:
        The smallest t the table satisfies.
    """
    if len(df) == 0:
        return 0.0
    _check(df, [sensitive])
    col = df[sensitive]
    if ordered is None:
        ordered = bool(pd.api.types.is_numeric_dtype(col.dtype)) and \
            not pd.api.types.is_bool_dtype(col.dtype)
    ids = qi_group_ids(df, qis)
    if ordered:
        values = pd.Series(col).sort_values(na_position="last").drop_duplicates()
        order = pd.Index(values)
        codes = np.asarray(order.get_indexer(col))
        if (codes < 0).any():  # NaN lookups
            codes = np.where(col.isna().to_numpy(), len(order) - 1, codes)
        n_values = len(order)
    else:
        codes = np.asarray(pd.factorize(col, use_na_sentinel=False)[0])
        n_values = int(codes.max()) + 1
    table = np.zeros((int(ids.max()) + 1, n_values), dtype=np.float64)
    np.add.at(table, (ids, codes), 1.0)
    p = table / table.sum(axis=1, keepdims=True)
    q = table.sum(axis=0) / table.sum()
    diff = p - q[None, :]
    if ordered:
        if n_values < 2:
            return 0.0
        emd = np.abs(np.cumsum(diff, axis=1)[:, :-1]).sum(axis=1) / (n_values - 1)
    else:
        emd = 0.5 * np.abs(diff).sum(axis=1)
    return float(emd.max())


@dataclass(frozen=True)
class SyntacticReport:
    """k-anonymity family on one table (informational; certifies nothing for synthetic data).

    Attributes:
        k: Smallest QI group size.
        unique_share: Share of records unique on the QIs.
        n_groups: Number of QI groups.
        n_records: Number of records.
        l_distinct: Distinct l-diversity per sensitive column.
        l_entropy: Entropy l-diversity per sensitive column.
        t_closeness: t-closeness per sensitive column.
    """

    k: int
    unique_share: float
    n_groups: int
    n_records: int
    l_distinct: dict[str, int] = field(default_factory=dict)
    l_entropy: dict[str, float] = field(default_factory=dict)
    t_closeness: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict."""
        return {"k": self.k, "unique_share": self.unique_share, "n_groups": self.n_groups,
                "n_records": self.n_records, "l_diversity_distinct": dict(self.l_distinct),
                "l_diversity_entropy": dict(self.l_entropy),
                "t_closeness": dict(self.t_closeness)}


def syntactic_report(df: pd.DataFrame, qis: Sequence[str], secrets: Sequence[str]
                     ) -> SyntacticReport:
    """All syntactic metrics of ``df`` for the given QIs and sensitive columns."""
    sizes = qi_group_sizes(df, qis)
    return SyntacticReport(
        k=int(sizes.min()) if sizes.size else 0,
        unique_share=float((sizes == 1).sum() / len(df)) if len(df) else 0.0,
        n_groups=int(sizes.size), n_records=len(df),
        l_distinct={s: l_diversity_distinct(df, qis, s) for s in secrets},
        l_entropy={s: l_diversity_entropy(df, qis, s) for s in secrets},
        t_closeness={s: t_closeness(df, qis, s) for s in secrets})
