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
  (``EMD = sum_i |cumulative difference_i| / (m - 1)`` over the m distinct values present, in
  the column's order: numbers sorted, an ordinal in its schema order, text never sorted) and
  the equal distance for categorical ones (``EMD = 1/2 sum_i |p_i - q_i|``);
* all of these and pyCANON's other models (:mod:`dpsynth.audit.syntactic`) for several
  sensitive columns at once (:func:`worst_over_secrets`), and the report that gathers them.

These describe one table. For synthetic data they certify nothing (docs/auditing.md): there
is no 1:1 mapping between synthetic rows and people, and a generator can copy an outlier into
a large QI group.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dpsynth.audit import syntactic as syn
from dpsynth.audit.qi_groups import (
    check_columns,
    group_value_counts,
    natural_order,
    qi_group_ids,
    qi_group_sizes,
)
from dpsynth.errors import ConfigError

__all__ = [
    "SecretsWorstCase",
    "SyntacticReport",
    "group_value_counts",
    "k_anonymity",
    "l_diversity_distinct",
    "l_diversity_entropy",
    "qi_group_ids",
    "qi_group_sizes",
    "syntactic_report",
    "t_closeness",
    "unique_share",
    "worst_over_secrets",
]

def k_anonymity(df: pd.DataFrame, qis: Sequence[str]) -> int:
    """The k of k-anonymity: the size of the smallest QI group (0 for an empty table)."""
    sizes = qi_group_sizes(df, qis)
    return int(sizes.min()) if sizes.size else 0


def unique_share(df: pd.DataFrame, qis: Sequence[str]) -> float:
    """Share of records that are alone in their QI group."""
    sizes = qi_group_sizes(df, qis)
    return float((sizes == 1).sum() / len(df)) if len(df) else 0.0

def _contingency(df: pd.DataFrame, qis: Sequence[str], sensitive: str) -> np.ndarray:
    return group_value_counts(df, qis, sensitive)


def l_diversity_distinct(df: pd.DataFrame, qis: Sequence[str], sensitive: str) -> int:
    """Distinct l-diversity: the fewest distinct sensitive values in any QI group."""
    if len(df) == 0:
        return 0
    table = _contingency(df, qis, sensitive)
    return int((table > 0).sum(axis=1).min())


def l_diversity_entropy(df: pd.DataFrame, qis: Sequence[str], sensitive: str) -> float:
    """Entropy l-diversity: ``exp`` of the smallest per-group entropy (natural log).

    pyCANON reports ``int`` of this value (it truncates); dpsynth keeps the real number.
    """
    if len(df) == 0:
        return 0.0
    table = _contingency(df, qis, sensitive).astype(np.float64)
    p = table / table.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    return float(math.exp(float(h.min())))


def t_closeness(df: pd.DataFrame, qis: Sequence[str], sensitive: str, *,
                ordered: bool | None = None, order: Sequence[object] | None = None) -> float:
    """t-closeness: the largest EMD between a QI group's and the table's sensitive values.

    The ordered distance runs over the ``m`` values that occur in the table, in their order
    (``|i - j| / (m - 1)``), as ARX and pyCANON do; the equal distance is half the L1 distance.

    Args:
        df: The table.
        qis: Quasi-identifier columns.
        sensitive: The sensitive column.
        ordered: Use the ordered distance (numeric/ordinal) or the equal distance
            (categorical). Default: ordered iff ``order`` is given, the column is numeric or
            it is an ordered pandas categorical. Text is never sorted: ``ordered=True`` on a
            text column needs ``order``.
        order: The categories in their order (an ordinal column's schema categories; see
            :func:`dpsynth.audit.syntactic.ordinal_orders`). Nulls sort after every value.

    Returns:
        The smallest t the table satisfies.

    Raises:
        ConfigError: ``ordered=True`` on a column with no order, or ``order`` with
            ``ordered=False``.
        SchemaError: The column holds values outside ``order``.
    """
    if len(df) == 0:
        return 0.0
    check_columns(df, [sensitive])
    if ordered is False and order is not None:
        raise ConfigError(f"column {sensitive!r}: order given with ordered=False")
    use = None if ordered is False else order if order is not None else \
        natural_order(df[sensitive])
    if use is None and ordered:
        raise ConfigError(f"column {sensitive!r} has no order of its own: pass its categories "
                          "in order (order=..., from the schema) for ordered=True")
    table = group_value_counts(df, qis, sensitive, order=use).astype(np.float64)
    p = table / table.sum(axis=1, keepdims=True)
    q = table.sum(axis=0) / table.sum()
    diff = p - q[None, :]
    if use is not None:
        m = table.shape[1]
        if m < 2:
            return 0.0
        emd = np.abs(np.cumsum(diff, axis=1)[:, :-1]).sum(axis=1) / (m - 1)
    else:
        emd = 0.5 * np.abs(diff).sum(axis=1)
    return float(emd.max())


@dataclass(frozen=True)
class SecretsWorstCase:
    """Every syntactic measure, worst over the secrets (pyCANON's multi-secret convention).

    Attributes:
        secrets: The sensitive columns.
        k: k-anonymity.
        alpha: alpha of (alpha,k)-anonymity (largest over secrets).
        l_distinct: Distinct l-diversity (smallest over secrets).
        l_entropy: Entropy l-diversity (smallest; pyCANON truncates it to an int).
        recursive_c: c of recursive (c,l)-diversity at ``l_distinct`` (``None`` if l < 2).
        t_closeness: t (largest; ordered distance for secrets with an order).
        beta_basic: Basic beta-likeness (largest).
        beta_enhanced: Enhanced beta-likeness as pyCANON computes it (largest).
        delta_disclosure: delta-disclosure privacy (largest).
    """

    secrets: tuple[str, ...]
    k: int
    alpha: float
    l_distinct: int
    l_entropy: float
    recursive_c: int | None
    t_closeness: float
    beta_basic: float
    beta_enhanced: float
    delta_disclosure: float

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict."""
        return {"secrets": list(self.secrets), "k": self.k, "alpha": self.alpha,
                "l_diversity_distinct": self.l_distinct, "l_diversity_entropy": self.l_entropy,
                "recursive_c": self.recursive_c, "t_closeness": self.t_closeness,
                "beta_likeness_basic": self.beta_basic,
                "beta_likeness_enhanced": self.beta_enhanced,
                "delta_disclosure": self.delta_disclosure}


def worst_over_secrets(df: pd.DataFrame, qis: Sequence[str], secrets: Sequence[str], *,
                       orders: Mapping[str, Sequence[object]] | None = None
                       ) -> SecretsWorstCase:
    """All measures of ``df`` with several secrets at once, each at its worst secret.

    Args:
        df: The table.
        qis: Quasi-identifier columns.
        secrets: Sensitive columns.
        orders: Category order of ordinal secrets (:func:`dpsynth.audit.syntactic.ordinal_orders`); their
            t-closeness uses the ordered distance in that order.

    Returns:
        The worst case (pyCANON ``gen=True``).
    """
    secs = syn.secret_list(secrets)
    orders = orders or {}
    c, l_div = syn.recursive_cl_diversity(df, qis, secs)
    return SecretsWorstCase(
        secrets=tuple(secs), k=k_anonymity(df, qis),
        alpha=max(syn.alpha_anonymity(df, qis, s) for s in secs), l_distinct=l_div,
        l_entropy=min(l_diversity_entropy(df, qis, s) for s in secs), recursive_c=c,
        t_closeness=max(t_closeness(df, qis, s, order=orders.get(s)) for s in secs),
        beta_basic=max(syn.beta_likeness(df, qis, s) for s in secs),
        beta_enhanced=max(syn.beta_likeness(df, qis, s, enhanced=True) for s in secs),
        delta_disclosure=max(syn.delta_disclosure(df, qis, s) for s in secs))


@dataclass(frozen=True)
class SyntacticReport:
    """Syntactic privacy models on one table (informational; certify nothing for synthetic data).

    Per-secret values treat each secret alone; ``worst`` takes all secrets at once (pyCANON's
    convention, :func:`dpsynth.audit.syntactic.worst_over_secrets`).

    Attributes:
        k: Smallest QI group size.
        unique_share: Share of records unique on the QIs.
        n_groups: Number of QI groups.
        n_records: Number of records.
        l_distinct: Distinct l-diversity per sensitive column.
        l_entropy: Entropy l-diversity per sensitive column.
        t_closeness: t-closeness per sensitive column (ordered distance for ordinal secrets
            given an order, and for numeric ones).
        alpha: alpha of (alpha,k)-anonymity per sensitive column.
        recursive_c: c of recursive (c,l)-diversity per sensitive column, at that column's
            distinct l (``None`` where l < 2).
        beta_basic: Basic beta-likeness per sensitive column.
        beta_enhanced: Enhanced beta-likeness (pyCANON's) per sensitive column.
        delta_disclosure: delta-disclosure privacy per sensitive column.
        worst: Every measure over all secrets at once (JSON-ready), or empty without secrets.
    """

    k: int
    unique_share: float
    n_groups: int
    n_records: int
    l_distinct: dict[str, int] = field(default_factory=dict)
    l_entropy: dict[str, float] = field(default_factory=dict)
    t_closeness: dict[str, float] = field(default_factory=dict)
    alpha: dict[str, float] = field(default_factory=dict)
    recursive_c: dict[str, int | None] = field(default_factory=dict)
    beta_basic: dict[str, float] = field(default_factory=dict)
    beta_enhanced: dict[str, float] = field(default_factory=dict)
    delta_disclosure: dict[str, float] = field(default_factory=dict)
    worst: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict."""
        return {"k": self.k, "unique_share": self.unique_share, "n_groups": self.n_groups,
                "n_records": self.n_records, "l_diversity_distinct": dict(self.l_distinct),
                "l_diversity_entropy": dict(self.l_entropy),
                "t_closeness": dict(self.t_closeness), "alpha": dict(self.alpha),
                "recursive_c": dict(self.recursive_c), "beta_likeness_basic":
                dict(self.beta_basic), "beta_likeness_enhanced": dict(self.beta_enhanced),
                "delta_disclosure": dict(self.delta_disclosure),
                "all_secrets": dict(self.worst)}


def syntactic_report(df: pd.DataFrame, qis: Sequence[str], secrets: Sequence[str], *,
                     orders: Mapping[str, Sequence[object]] | None = None) -> SyntacticReport:
    """All syntactic measures of ``df`` for the given QIs and sensitive columns.

    Args:
        df: The table.
        qis: Quasi-identifier columns.
        secrets: Sensitive columns.
        orders: Category order of ordinal secrets (``syntactic.ordinal_orders(schema)``);
            their t-closeness uses the ordered distance in that order, never sorted text.

    Returns:
        The report.
    """
    orders = orders or {}
    sizes = qi_group_sizes(df, qis)
    l_div = {s: l_diversity_distinct(df, qis, s) for s in secrets}
    return SyntacticReport(
        k=int(sizes.min()) if sizes.size else 0,
        unique_share=float((sizes == 1).sum() / len(df)) if len(df) else 0.0,
        n_groups=int(sizes.size), n_records=len(df), l_distinct=l_div,
        l_entropy={s: l_diversity_entropy(df, qis, s) for s in secrets},
        t_closeness={s: t_closeness(df, qis, s, order=orders.get(s)) for s in secrets},
        alpha={s: syn.alpha_anonymity(df, qis, s) for s in secrets},
        recursive_c={s: syn.recursive_c(df, qis, s, ell=l_div[s]) for s in secrets},
        beta_basic={s: syn.beta_likeness(df, qis, s) for s in secrets},
        beta_enhanced={s: syn.beta_likeness(df, qis, s, enhanced=True) for s in secrets},
        delta_disclosure={s: syn.delta_disclosure(df, qis, s) for s in secrets},
        worst=worst_over_secrets(df, qis, secrets, orders=orders).to_json()
        if secrets and len(df) else {})
