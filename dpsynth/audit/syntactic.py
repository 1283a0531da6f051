"""The syntactic privacy models of pyCANON beyond k, l and t, one sensitive column at a time.

Each measure reads the contingency table of QI groups x sensitive values
(:func:`dpsynth.audit.qi_groups.group_value_counts`); ``p_v`` is the table-wide share of
value ``v`` and ``q_gv`` its share inside group ``g``. The definitions follow pyCANON 1.3.6
(Sáinz-Pardo Díaz & López García, 2022), checked value for value against it in
``tests/test_audit_pycanon_conformance.py``:

* (alpha,k)-anonymity: ``alpha`` is the largest share of one sensitive value in any group
  (``max_g max_v q_gv``); ``k`` is k-anonymity;
* recursive (c,l)-diversity: ``l`` is distinct l-diversity; a group with counts sorted
  ``r_1 >= r_2 >= ...`` satisfies it when ``r_1 < c (r_l + r_(l+1) + ...)``, so the smallest
  integer ``c`` is ``max_g floor(r_1 / (r_l + ...)) + 1`` (undefined, ``None``, when l < 2).
  pyCANON 1.3.6 sorts the counts ascending instead (``r_1`` is then the rarest value), which
  gives a different, nearly always 1 or 2, ``c``; ``pycanon_order=True`` reproduces it;
* basic beta-likeness: ``beta = max_g max_v (q_gv - p_v) / p_v``; enhanced beta-likeness as
  pyCANON computes it: ``max_v min(beta, -ln p_v)``, i.e. ``min(beta, -ln min_v p_v)``;
* delta-disclosure privacy: ``delta = max_g max_(v: q_gv > 0) |ln(q_gv / p_v)|``.

Several sensitive attributes at once (:func:`dpsynth.audit.kanonymity.worst_over_secrets`)
take pyCANON's convention (its default ``gen=True``): each measure's worst value over the
secrets, with the QI groups unchanged; recursive (c,l) uses the smallest l of all secrets. Like the rest of the audit,
these numbers are computed from the data they describe and certify nothing for synthetic data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.audit.qi_groups import group_value_counts, qi_group_sizes
from dpsynth.errors import ConfigError

__all__ = [
    "alpha_anonymity",
    "alpha_k_anonymity",
    "beta_likeness",
    "delta_disclosure",
    "ordinal_orders",
    "recursive_c",
    "recursive_cl_diversity",
    "secret_list",
]


def _shares(df: pd.DataFrame, qis: Sequence[str], sensitive: str
            ) -> tuple[np.ndarray, np.ndarray]:
    """``(q, p)``: per-group shares (groups x values) and table-wide shares of each value."""
    table = group_value_counts(df, qis, sensitive)
    q = table / table.sum(axis=1, keepdims=True)
    p = table.sum(axis=0) / len(df)
    return q, p


def secret_list(secrets: Sequence[str]) -> list[str]:
    """``secrets`` as a list; refuses a bare string or an empty list."""
    if isinstance(secrets, str) or not secrets:
        raise ConfigError("secrets must be a non-empty list of column names")
    return list(secrets)


def alpha_anonymity(df: pd.DataFrame, qis: Sequence[str], sensitive: str) -> float:
    """The alpha of (alpha,k)-anonymity for one secret: the largest share of a value in a group."""
    if len(df) == 0:
        return 0.0
    q, _ = _shares(df, qis, sensitive)
    return float(q.max())


def alpha_k_anonymity(df: pd.DataFrame, qis: Sequence[str], secrets: Sequence[str]
                      ) -> tuple[float, int]:
    """(alpha,k)-anonymity over several secrets: ``(max alpha over secrets, k)``."""
    alpha = max(alpha_anonymity(df, qis, s) for s in secret_list(secrets))
    sizes = qi_group_sizes(df, qis)
    return alpha, int(sizes.min()) if sizes.size else 0


def recursive_c(df: pd.DataFrame, qis: Sequence[str], sensitive: str, *, ell: int,
                pycanon_order: bool = False) -> int | None:
    """The smallest integer c with which every group is recursive (c, l)-diverse.

    Args:
        df: The table.
        qis: Quasi-identifier columns.
        sensitive: The sensitive column.
        ell: The l of the model; every group must hold at least ``ell`` distinct values (true
            for l up to the table's distinct l-diversity).
        pycanon_order: Rank the counts ascending over the values present, as pyCANON 1.3.6
            does, instead of descending (the published definition).

    Returns:
        ``c``, or ``None`` when ``l < 2`` (pyCANON reports NaN).

    Raises:
        ConfigError: Some group holds fewer than ``l`` distinct values.
    """
    if ell < 2 or len(df) == 0:
        return None
    table = group_value_counts(df, qis, sensitive)
    present = (table > 0).sum(axis=1)
    if int(present.min()) < ell:
        raise ConfigError(f"column {sensitive!r}: some QI group holds fewer than l={ell} "
                          "distinct values")
    rows = np.arange(table.shape[0])
    if pycanon_order:
        ranked = np.sort(table, axis=1)
        first_present = table.shape[1] - present
        head = ranked[rows, first_present]
        before = np.cumsum(ranked, axis=1)[rows, first_present + ell - 2]
        tail = ranked.sum(axis=1) - before
    else:
        ranked = -np.sort(-table, axis=1)
        head = ranked[:, 0]
        tail = ranked[:, ell - 1:].sum(axis=1)
    return int((head // tail).max()) + 1


def recursive_cl_diversity(df: pd.DataFrame, qis: Sequence[str], secrets: Sequence[str], *,
                           pycanon_order: bool = False) -> tuple[int | None, int]:
    """Recursive (c,l)-diversity over several secrets: ``(c, l)``.

    l is the smallest distinct l-diversity over the secrets and ``c`` the largest
    :func:`recursive_c` at that l (``None`` when l < 2), as pyCANON reports them.
    """
    secs = secret_list(secrets)
    l_div = min(int((group_value_counts(df, qis, s) > 0).sum(axis=1).min()) if len(df) else 0
                for s in secs)
    cs = [recursive_c(df, qis, s, ell=l_div, pycanon_order=pycanon_order) for s in secs]
    return (None if l_div < 2 else max(c for c in cs if c is not None)), l_div


def beta_likeness(df: pd.DataFrame, qis: Sequence[str], sensitive: str, *,
                  enhanced: bool = False) -> float:
    """beta-likeness of one secret: the largest relative gain ``(q - p) / p`` in any group.

    Args:
        df: The table.
        qis: Quasi-identifier columns.
        sensitive: The sensitive column.
        enhanced: pyCANON's enhanced beta: ``max_v min(beta, -ln p_v)``.

    Returns:
        The smallest beta the table satisfies (0.0 for an empty table).
    """
    if len(df) == 0:
        return 0.0
    q, p = _shares(df, qis, sensitive)
    beta = float(((q - p[None, :]) / p[None, :]).max())
    if enhanced:
        return max(min(beta, -math.log(float(pv))) for pv in p)
    return beta


def delta_disclosure(df: pd.DataFrame, qis: Sequence[str], sensitive: str) -> float:
    """delta-disclosure privacy of one secret: the largest ``|ln(q / p)|`` over values in a group."""
    if len(df) == 0:
        return 0.0
    q, p = _shares(df, qis, sensitive)
    ratio = q / p[None, :]
    with np.errstate(divide="ignore"):
        logs = np.where(q > 0, np.abs(np.log(np.where(q > 0, ratio, 1.0))), 0.0)
    return float(logs.max())


def ordinal_orders(schema: Any) -> dict[str, list[object]]:
    """The category order of every ordinal column of a dpsynth schema (for t-closeness).

    Args:
        schema: A :class:`dpsynth.tabular.schema.Schema`.

    Returns:
        ``{column: categories in schema order}`` for its ordinal columns (the ``other``
        label last, when the column has one).
    """
    return {c.name: [*c.categories, *([c.other_label] if getattr(c, "other", False) else [])]
            for c in schema.columns if getattr(c, "kind", None) == "ordinal"}
