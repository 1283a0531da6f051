"""Fidelity and utility of synthetic data measured against real data (confidential, not DP).

Every function here reads real rows, so its results are statistics of confidential data and
belong in the confidential evaluation only (docs/privacy-model.md, "What is not protected"). Metrics:

* workload error: mean over all k-way marginals (k = 1, 2, 3) of the L1 distance between the
  normalised real and synthetic marginal tables, on codes over the public domain (0 to 2);
* SDMetrics-named 0-1 scores (higher is better): column shapes (KSComplement for numeric and
  datetime columns, TVComplement otherwise) and column pair trends (CorrelationSimilarity for
  numeric pairs, ContingencySimilarity otherwise);
* train-on-synthetic, test-on-real AUC for a binary target (HistGradientBoosting);
* pMSE propensity score: how well a classifier tells real from synthetic rows;
* subgroup outcome rates: the distribution of each sensitive column within the groups of
  each quasi-identifier, real against synthetic.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from dpsynth.errors import ConfigError, require
from dpsynth.tabular.schema import (
    BooleanColumn,
    CategoricalColumn,
    DatetimeColumn,
    NumericColumn,
    Role,
    Schema,
)
from dpsynth.tabular.table import Table

__all__ = [
    "column_pair_trends",
    "column_shapes",
    "pmse",
    "subgroup_rates",
    "tstr_auc",
    "workload_error",
]

Floats = npt.NDArray[np.float64]


def _marginal(table: Table, clique: Sequence[str]) -> Floats:
    shape = table.shape_of(clique)
    codes = table.column_codes(clique)
    flat = np.ravel_multi_index(tuple(codes.T), shape) if len(clique) > 1 else codes[:, 0]
    counts = np.bincount(flat, minlength=int(np.prod(shape))).astype(np.float64)
    out: Floats = counts / max(float(counts.sum()), 1.0)
    return out


def workload_error(real: Table, synthetic: Table, *, ks: Sequence[int] = (1, 2, 3),
                   max_marginals: int = 2000, rng: np.random.Generator | None = None) -> dict[str, float]:
    """Mean L1 distance between normalised real and synthetic k-way marginals, per k.

    Args:
        real: Real rows, encoded.
        synthetic: Synthetic rows, encoded over the same domain.
        ks: The marginal orders.
        max_marginals: Above this many k-way marginals, a uniform sample of this size is used.
        rng: Generator for that sample (default seeded with 0).

    Returns:
        ``{"1": e1, "2": e2, "3": e3}`` (each in [0, 2]; 0 is a perfect match).
    """
    if real.columns != synthetic.columns:
        raise ConfigError("real and synthetic tables must have the same columns")
    rng = rng or np.random.default_rng(0)
    out: dict[str, float] = {}
    for k in ks:
        cliques = list(itertools.combinations(real.columns, k))
        if not cliques:
            continue
        if len(cliques) > max_marginals:
            pick = rng.choice(len(cliques), size=max_marginals, replace=False)
            cliques = [cliques[i] for i in sorted(pick)]
        out[str(k)] = float(np.mean([np.abs(_marginal(real, c) - _marginal(synthetic, c)).sum()
                                     for c in cliques]))
    return out


def _numeric_values(s: pd.Series, col: Any) -> Floats:
    if isinstance(col, DatetimeColumn):
        ts = pd.to_datetime(s, errors="coerce", utc=True, format="mixed")
        ns: Floats = np.asarray(ts.dropna().astype("int64"), dtype=np.float64)
        return ns
    v: Floats = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    clipped: Floats = np.clip(v[np.isfinite(v)], *col.bounds)
    return clipped


def _is_numeric(col: Any) -> bool:
    return isinstance(col, (NumericColumn, DatetimeColumn))


def column_shapes(real_df: pd.DataFrame, syn_df: pd.DataFrame, real: Table, synthetic: Table,
                  schema: Schema) -> dict[str, dict[str, Any]]:
    """Per column, ``KSComplement`` (numeric, datetime) or ``TVComplement`` (others), in [0, 1]."""
    from scipy.stats import ks_2samp

    out: dict[str, dict[str, Any]] = {}
    for col in schema.modelled:
        if _is_numeric(col):
            a, b = _numeric_values(real_df[col.name], col), _numeric_values(syn_df[col.name], col)
            score = 1.0 - float(ks_2samp(a, b).statistic) if len(a) and len(b) else math.nan
            out[col.name] = {"metric": "KSComplement", "score": score}
        else:
            tv = 0.5 * np.abs(_marginal(real, (col.name,)) - _marginal(synthetic, (col.name,))).sum()
            out[col.name] = {"metric": "TVComplement", "score": 1.0 - float(tv)}
    return out


def _correlation(df: pd.DataFrame, a: Any, b: Any) -> float:
    x = pd.to_numeric(df[a.name], errors="coerce") if not isinstance(a, DatetimeColumn) else \
        pd.to_datetime(df[a.name], errors="coerce", utc=True, format="mixed").astype("int64")
    y = pd.to_numeric(df[b.name], errors="coerce") if not isinstance(b, DatetimeColumn) else \
        pd.to_datetime(df[b.name], errors="coerce", utc=True, format="mixed").astype("int64")
    r = pd.concat([x, y], axis=1).dropna().astype(float).corr().iloc[0, 1]
    return float(r) if np.isfinite(r) else 0.0


def column_pair_trends(real_df: pd.DataFrame, syn_df: pd.DataFrame, real: Table, synthetic: Table,
                       schema: Schema) -> list[dict[str, Any]]:
    """Per column pair, ``CorrelationSimilarity`` (both numeric) or ``ContingencySimilarity``."""
    out: list[dict[str, Any]] = []
    for a, b in itertools.combinations(schema.modelled, 2):
        if _is_numeric(a) and _is_numeric(b):
            r_real, r_syn = _correlation(real_df, a, b), _correlation(syn_df, a, b)
            out.append({"columns": [a.name, b.name], "metric": "CorrelationSimilarity",
                        "score": 1.0 - abs(r_real - r_syn) / 2.0, "real": r_real, "synthetic": r_syn})
        else:
            tv = 0.5 * np.abs(_marginal(real, (a.name, b.name)) - _marginal(synthetic, (a.name, b.name))).sum()
            out.append({"columns": [a.name, b.name], "metric": "ContingencySimilarity",
                        "score": 1.0 - float(tv)})
    return out


def _features(table: Table, schema: Schema, drop: str | None) -> tuple[npt.NDArray[np.float64], list[bool]]:
    keep = [c for c in schema.modelled if c.name != drop]
    x = table.column_codes([c.name for c in keep]).astype(np.float64)
    cat = [isinstance(c, (CategoricalColumn, BooleanColumn)) and c.domain_size() <= 255 for c in keep]
    return x, cat


def _classifier(cat: list[bool], seed: int) -> Any:
    require("sklearn", "audit")
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(categorical_features=np.asarray(cat) if any(cat) else None,
                                          max_iter=60, early_stopping=False, random_state=seed)


def _one_thread() -> Any:
    """Limit OpenMP/BLAS to one thread: on small data, shared cores make threads a net loss."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _binary_target(schema: Schema, target: str) -> tuple[int, str]:
    col = schema.column(target)
    if isinstance(col, BooleanColumn):
        return 1, "true"
    labels = col.labels() if col.modelled else []
    n_values = getattr(col, "n_values", 0)
    if n_values != 2:
        raise ConfigError(f"target {target!r} must be a binary column (2 declared values), has {n_values}")
    return 1, labels[1]


def tstr_auc(synthetic: Table, test: Table, schema: Schema, target: str, *,
             train_real: Table | None = None, seed: int = 0) -> dict[str, Any]:
    """Train on synthetic, test on real: ROC AUC for a binary ``target`` (code 1 is positive).

    Args:
        synthetic: Synthetic rows (training set).
        test: Real rows the generator was not fitted on, ideally (the test set).
        schema: The public schema.
        target: A column with exactly two declared values (or a boolean).
        train_real: Real training rows for the train-on-real baseline, if any.
        seed: Seed of the classifier.

    Returns:
        ``{"target", "positive", "auc_tstr", "auc_trtr"}``; an AUC is ``None`` when the test or
        training set holds a single class.
    """
    from sklearn.metrics import roc_auc_score

    positive, label = _binary_target(schema, target)

    def auc(train: Table) -> float | None:
        x, cat = _features(train, schema, target)
        y = train.column_codes([target])[:, 0] == positive
        xt, _ = _features(test, schema, target)
        yt = test.column_codes([target])[:, 0] == positive
        if y.all() or not y.any() or yt.all() or not yt.any():
            return None
        with _one_thread():
            model = _classifier(cat, seed).fit(x, y)
            return float(roc_auc_score(yt, model.predict_proba(xt)[:, 1]))

    return {"target": target, "positive": label, "auc_tstr": auc(synthetic),
            "auc_trtr": None if train_real is None else auc(train_real)}


def pmse(real: Table, synthetic: Table, schema: Schema, *, max_rows: int = 4000,
         seed: int = 0) -> dict[str, float]:
    """Propensity mean squared error of a real-vs-synthetic classifier (3-fold, out of fold).

    Returns:
        ``{"pmse", "score"}``: ``pmse`` in [0, c(1-c)] where ``c`` is the synthetic share, and
        ``score = 1 - pmse / (c(1-c))`` in [0, 1] (1: indistinguishable).
    """
    require("sklearn", "audit")
    from sklearn.model_selection import cross_val_predict

    rng = np.random.default_rng(seed)
    xr, cat = _features(real, schema, None)
    xs, _ = _features(synthetic, schema, None)
    xr = xr[rng.permutation(len(xr))[:max_rows]]
    xs = xs[rng.permutation(len(xs))[:max_rows]]
    x = np.vstack([xr, xs])
    y = np.r_[np.zeros(len(xr)), np.ones(len(xs))]
    c = len(xs) / len(x)
    with _one_thread():
        p = cross_val_predict(_classifier(cat, seed), x, y, cv=3, method="predict_proba")[:, 1]
    value = float(np.mean((p - c) ** 2))
    return {"pmse": value, "score": float(max(0.0, 1.0 - value / (c * (1 - c))))}


def subgroup_rates(real: Table, synthetic: Table, schema: Schema, *,
                   max_groups: int = 50) -> list[dict[str, Any]]:
    """Outcome rates of each sensitive column within each quasi-identifier's groups.

    For a sensitive column with two values the rate is the share of its second value; with
    more values each group reports the total-variation distance between the real and synthetic
    outcome distributions. Quasi-identifiers with more than ``max_groups`` codes are skipped.
    """
    out: list[dict[str, Any]] = []
    for s_name in schema.roles(Role.sensitive):
        s_col = schema.column(s_name)
        binary = getattr(s_col, "n_values", 2 if isinstance(s_col, BooleanColumn) else 0) == 2
        for q_name in schema.roles(Role.quasi_identifier):
            q_col = schema.column(q_name)
            if q_name == s_name or q_col.domain_size() > max_groups:
                continue
            shape = (q_col.domain_size(), s_col.domain_size())
            r = _marginal(real, (q_name, s_name)).reshape(shape)
            y = _marginal(synthetic, (q_name, s_name)).reshape(shape)
            groups = []
            for g, label in enumerate(q_col.labels()):
                rg, yg = r[g].sum(), y[g].sum()
                if rg == 0:
                    continue
                rd, yd = r[g] / rg, (y[g] / yg if yg > 0 else np.zeros_like(r[g]))
                row: dict[str, Any] = {"group": label, "real_share": float(rg), "synthetic_share": float(yg)}
                if binary:
                    row.update(real_rate=float(rd[1]), synthetic_rate=float(yd[1]),
                               difference=float(yd[1] - rd[1]))
                else:
                    row.update(tv_distance=float(0.5 * np.abs(rd - yd).sum()))
                groups.append(row)
            out.append({"sensitive": s_name, "by": q_name, "binary": binary,
                        "outcome": s_col.labels()[1] if binary else None, "groups": groups})
    return out
