"""Singling-out risk (WP29), after the attack/baseline/control design of Giomi et al. 2023.

The attacker reads only the synthetic data and writes predicates ("age <= 23 and sex = F
and zip = 12345") that match exactly one synthetic row, betting that they also isolate
exactly one real person. A predicate succeeds if it matches exactly one record of the real
(training) data; the control evaluates the same predicates on held-out records; the
baseline uses random predicates written without looking at the synthetic rows.

* univariate: rare synthetic values (``col == v`` seen once), and ``col <= min`` /
  ``col >= max`` for numeric columns;
* multivariate: for a random synthetic row and ``n_cols`` random columns, ``col == v`` for
  categorical values and nulls, ``col <= v`` or ``col >= v`` (random) for numbers.

Predicates are arrays of (column position, operator, value) evaluated with numpy on the
encoded records, never query strings, so any column name works and a predicate that cannot
be evaluated raises instead of silently counting as a failure (anonymeter#37).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dpsynth.audit.distance import EncodedTable
from dpsynth.audit.risk import RiskResult, residual_risk
from dpsynth.audit.stats import Interval
from dpsynth.errors import ConfigError

__all__ = [
    "Predicates",
    "SinglingOutResult",
    "count_matches",
    "multivariate_predicates",
    "singling_out_risk",
    "univariate_predicates",
]

EQ, LE, GE, ISNULL = 0, 1, 2, 3
_NO_PREDICATE = ("no {what} predicate isolates exactly one synthetic row, so this attacker "
                 "has nothing to try; the risk is 0 by construction, not by measurement")
_BLOCK = 1 << 22


@dataclass(frozen=True)
class Predicates:
    """A batch of conjunctive predicates, each with ``c`` conditions.

    Attributes:
        cols: (B, c) column positions into the combined value matrix.
        ops: (B, c) operators (0 ``==``, 1 ``<=``, 2 ``>=``, 3 ``is null``).
        values: (B, c) comparison values.
    """

    cols: NDArray[np.intp]
    ops: NDArray[np.int8]
    values: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.cols.shape[0])

    def take(self, idx: NDArray[np.intp]) -> Predicates:
        """The predicates at positions ``idx``."""
        return Predicates(self.cols[idx], self.ops[idx], self.values[idx])


def _values(t: EncodedTable) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    vals = np.concatenate([t.num, t.cat.astype(np.float64)], axis=1)
    is_num = np.concatenate([np.ones(t.num.shape[1], bool), np.zeros(t.cat.shape[1], bool)])
    return vals, is_num


def count_matches(table: EncodedTable, preds: Predicates) -> NDArray[np.int64]:
    """Number of records of ``table`` matching each predicate (memory-bounded batches)."""
    vals, _ = _values(table)
    n = vals.shape[0]
    if len(preds) == 0:
        return np.zeros(0, dtype=np.int64)
    if preds.cols.size and int(preds.cols.max()) >= vals.shape[1]:
        raise ConfigError("a predicate refers to a column outside the audited columns")
    c = preds.cols.shape[1]
    step = max(1, _BLOCK // max(1, n * c))
    out = np.empty(len(preds), dtype=np.int64)
    for s in range(0, len(preds), step):
        cols, ops, v = preds.cols[s:s + step], preds.ops[s:s + step], preds.values[s:s + step]
        x = vals[:, cols]  # (n, b, c)
        with np.errstate(invalid="ignore"):
            m = np.where(ops == EQ, x == v, False)
            m |= np.where(ops == LE, x <= v, False)
            m |= np.where(ops == GE, x >= v, False)
            m |= np.where(ops == ISNULL, np.isnan(x), False)
        out[s:s + step] = m.all(axis=2).sum(axis=0)
    return out


def univariate_predicates(syn: EncodedTable) -> Predicates:
    """All single-condition predicates the attacker derives from rare or extreme values."""
    vals, is_num = _values(syn)
    cols: list[int] = []
    ops: list[int] = []
    values: list[float] = []
    for j in range(vals.shape[1]):
        x = vals[:, j]
        nulls = np.isnan(x) if is_num[j] else x == -1.0
        if int(nulls.sum()) == 1:
            cols.append(j)
            ops.append(ISNULL if is_num[j] else EQ)
            values.append(np.nan if is_num[j] else -1.0)
        present = x[~nulls]
        if present.size == 0:
            continue
        uniq, counts = np.unique(present, return_counts=True)
        for v in uniq[counts == 1]:
            cols.append(j)
            ops.append(EQ)
            values.append(float(v))
        if is_num[j]:
            cols += [j, j]
            ops += [LE, GE]
            values += [float(present.min()), float(present.max())]
    return Predicates(np.asarray(cols, np.intp).reshape(-1, 1),
                      np.asarray(ops, np.int8).reshape(-1, 1),
                      np.asarray(values, np.float64).reshape(-1, 1))


def _row_predicates(vals: NDArray[np.float64], is_num: NDArray[np.bool_],
                    rows: NDArray[np.intp], cols: NDArray[np.intp],
                    rng: np.random.Generator) -> Predicates:
    v = vals[rows[:, None], cols] if rows.ndim == 1 else vals[rows, cols]
    num = is_num[cols]
    ops = np.where(rng.random(cols.shape) < 0.5, LE, GE).astype(np.int8)
    ops = np.where(num, ops, EQ).astype(np.int8)
    ops = np.where(num & np.isnan(v), ISNULL, ops).astype(np.int8)
    return Predicates(cols, ops, v)


def _random_cols(b: int, p: int, c: int, rng: np.random.Generator) -> NDArray[np.intp]:
    return np.argsort(rng.random((b, p)), axis=1)[:, :c].astype(np.intp)


def multivariate_predicates(syn: EncodedTable, n: int, *, n_cols: int,
                            rng: np.random.Generator, max_rounds: int = 20) -> Predicates:
    """Up to ``n`` predicates built from synthetic rows that match exactly one synthetic row."""
    vals, is_num = _values(syn)
    p = vals.shape[1]
    c = min(n_cols, p)
    kept: list[Predicates] = []
    total = 0
    for _ in range(max_rounds):
        b = max(2 * (n - total), 64)
        rows = rng.integers(0, vals.shape[0], size=b)
        cand = _row_predicates(vals, is_num, rows, _random_cols(b, p, c, rng), rng)
        good = np.flatnonzero(count_matches(syn, cand) == 1)[: n - total]
        kept.append(cand.take(good))
        total += good.size
        if total >= n:
            break
    return Predicates(np.concatenate([k.cols for k in kept]),
                      np.concatenate([k.ops for k in kept]),
                      np.concatenate([k.values for k in kept]))


def _baseline_predicates(syn: EncodedTable, n: int, c: int, rng: np.random.Generator
                         ) -> Predicates:
    """Random predicates: each condition's value comes from an independent random row."""
    vals, is_num = _values(syn)
    cols = _random_cols(n, vals.shape[1], c, rng)
    rows = rng.integers(0, vals.shape[0], size=cols.shape)
    return _row_predicates(vals, is_num, rows, cols, rng)


@dataclass(frozen=True)
class SinglingOutResult:
    """Univariate and multivariate singling-out risks; ``risk`` is the larger of the two."""

    univariate: RiskResult
    multivariate: RiskResult
    n_cols: int

    @property
    def risk(self) -> RiskResult:
        """The headline (worst) risk."""
        return max((self.univariate, self.multivariate), key=lambda r: r.value)

    @property
    def mode(self) -> str:
        """Which variant gives the headline risk."""
        return "univariate" if self.risk is self.univariate else "multivariate"

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict."""
        return {"risk": self.risk.to_json(), "mode": self.mode, "n_cols": self.n_cols,
                "univariate": self.univariate.to_json(),
                "multivariate": self.multivariate.to_json()}


def _risk(preds: Predicates, base: Predicates, real: EncodedTable,
          control: EncodedTable | None, confidence: float, what: str, requested: int
          ) -> RiskResult:
    if len(preds) == 0:
        zero = Interval(0.0, 0.0, confidence)
        return RiskResult(value=0.0, ci=zero, attack_rate=0.0, attack_ci=zero,
                          baseline_rate=0.0, baseline_ci=zero,
                          control_rate=None if control is None else 0.0,
                          control_ci=None if control is None else zero, n_attacks=0,
                          n_control=0, warnings=(_NO_PREDICATE.format(what=what),))
    ok = int((count_matches(real, preds) == 1).sum())
    b_ok = int((count_matches(real, base) == 1).sum())
    c_ok = None if control is None else int((count_matches(control, preds) == 1).sum())
    r = residual_risk(n_success=ok, n_attacks=len(preds), n_baseline_success=b_ok,
                      n_baseline=len(base), n_control_success=c_ok,
                      n_control=0 if control is None else len(preds), confidence=confidence,
                      what=f"{what} singling-out")
    extra: list[str] = []
    if len(preds) < requested:
        extra.append(f"only {len(preds)} of {requested} requested {what} singling-out "
                     "predicates could be built from the synthetic data")
    if control is not None and not 0.8 <= real.n_rows / max(control.n_rows, 1) <= 1.25:
        extra.append("real and holdout sizes differ by more than 25%; singling-out rates "
                     "depend on table size, so the control comparison is biased")
    if extra:
        r = dataclasses.replace(r, warnings=r.warnings + tuple(extra))
    return r


def singling_out_risk(real: EncodedTable, syn: EncodedTable, control: EncodedTable | None,
                      *, n_attacks: int, rng: np.random.Generator, n_cols: int = 3,
                      confidence: float = 0.95) -> SinglingOutResult:
    """Univariate and multivariate singling-out risks.

    Args:
        real: Encoded training records.
        syn: Encoded synthetic records.
        control: Encoded held-out records, or None.
        n_attacks: Number of predicates per variant.
        rng: Randomness for predicate generation.
        n_cols: Conditions per multivariate predicate.
        confidence: Level of the Wilson intervals.
    """
    if n_attacks < 1:
        raise ConfigError(f"n_attacks ({n_attacks}) must be >= 1")
    uni = univariate_predicates(syn)
    uni_single = uni.take(np.flatnonzero(count_matches(syn, uni) == 1))
    if len(uni_single) > n_attacks:
        uni_single = uni_single.take(rng.choice(len(uni_single), n_attacks, replace=False))
    uni_base = _baseline_predicates(syn, max(len(uni_single), 1), 1, rng)
    multi = multivariate_predicates(syn, n_attacks, n_cols=n_cols, rng=rng)
    c = min(n_cols, len(real.columns))
    multi_base = _baseline_predicates(syn, max(len(multi), 1), c, rng)
    return SinglingOutResult(
        univariate=_risk(uni_single, uni_base, real, control, confidence, "univariate",
                         n_attacks),
        multivariate=_risk(multi, multi_base, real, control, confidence, "multivariate",
                           n_attacks),
        n_cols=c)
