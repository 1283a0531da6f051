"""Singling-out risk (WP29), after the attack/baseline/control design of Giomi et al. 2023.

The attacker reads only the synthetic data and writes predicates ("age <= 23 and sex = F
and zip = 12345") that match exactly one synthetic row, betting that they also isolate
exactly one real person. A predicate succeeds if it matches exactly one record of the real
(training) data; the control evaluates the same predicates on held-out records; the
baseline uses random predicates written without looking at the synthetic rows.

* univariate: rare synthetic values (``col == v`` seen once), ``col <= min`` / ``col >= max``
  for numbers — as many as the synthetic data holds;
* multivariate: from a random synthetic row and ``n_cols`` random columns, ``col == v`` for
  categories and nulls, and for numbers a condition toward the tail (``<=`` at or below the
  synthetic median, ``>=`` above), as Anonymeter does. Distinct predicates are collected in
  rounds until ``n_attacks`` are found, the search stalls (the data cannot produce more: a
  warning says so), or ``max_rounds`` is reached.

A variant with fewer than ``min_predicates`` (50) predicates never decides the headline while
the other has enough; among eligible variants the higher risk is the headline, reason stated.
Control successes are rescaled to the training size when holdout and training sizes differ
(Anonymeter's fitted model, :func:`~dpsynth.audit.stats.fit_size_correction`). Predicates are
arrays of (column, operator, value) evaluated with numpy, never query strings, so any column
name works and a predicate that cannot be evaluated raises (anonymeter#37).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dpsynth.audit.distance import EncodedTable
from dpsynth.audit.risk import Estimator, RiskResult, choose_headline, residual_risk
from dpsynth.audit.stats import Interval, fit_size_correction
from dpsynth.errors import ConfigError

__all__ = [
    "MIN_HEADLINE",
    "PredicateSearch",
    "Predicates",
    "SinglingOutResult",
    "choose_headline",
    "count_matches",
    "multivariate_predicates",
    "search_multivariate",
    "singling_out_risk",
    "univariate_predicates",
]

EQ, LE, GE, ISNULL = 0, 1, 2, 3
_NO_PREDICATE = ("no {what} predicate isolates exactly one synthetic row, so this attacker "
                 "has nothing to try; the risk is 0 by construction, not by measurement")
_BLOCK = 1 << 22
_SCREEN = 4096
MIN_HEADLINE = 50  # a variant with fewer predicates never decides the headline


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
    """Number of records of ``table`` matching each predicate (memory-bounded batches).

    A condition is an interval check (``==`` is ``[v, v]``, ``<=`` ``[-inf, v]``, ``>=``
    ``[v, inf]``) on a contiguous gather of its column; ``is null`` is checked apart.
    """
    vals, _ = _values(table)
    n = vals.shape[0]
    if len(preds) == 0:
        return np.zeros(0, dtype=np.int64)
    if preds.cols.size and int(preds.cols.max()) >= vals.shape[1]:
        raise ConfigError("a predicate refers to a column outside the audited columns")
    cols_t = np.ascontiguousarray(vals.T)  # (p, n): a gather copies contiguous rows
    lo = np.where((preds.ops == EQ) | (preds.ops == GE), preds.values, -np.inf)
    hi = np.where((preds.ops == EQ) | (preds.ops == LE), preds.values, np.inf)
    null = preds.ops == ISNULL
    lo[null], hi[null] = np.inf, -np.inf  # never matched by the bounds
    step = max(1, _BLOCK // max(1, n))
    out = np.empty(len(preds), dtype=np.int64)
    for s in range(0, len(preds), step):
        m = np.ones((min(step, len(preds) - s), n), dtype=bool)
        for j in range(preds.cols.shape[1]):
            x = cols_t[preds.cols[s:s + step, j]]  # (b, n)
            with np.errstate(invalid="ignore"):
                hit = (x >= lo[s:s + step, j, None]) & (x <= hi[s:s + step, j, None])
            if null[s:s + step, j].any():
                hit |= np.isnan(x) & null[s:s + step, j, None]
            m &= hit
        out[s:s + step] = m.sum(axis=1)
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
                    rows: NDArray[np.intp], cols: NDArray[np.intp], rng: np.random.Generator,
                    medians: NDArray[np.float64] | None = None) -> Predicates:
    """Conditions copied from rows: tail-directed with ``medians``, else random ``<=``/``>=``."""
    v = vals[rows[:, None], cols] if rows.ndim == 1 else vals[rows, cols]
    num = is_num[cols]
    if medians is None:
        ops = np.where(rng.random(cols.shape) < 0.5, LE, GE).astype(np.int8)
    else:
        with np.errstate(invalid="ignore"):
            ops = np.where(v > medians[cols], GE, LE).astype(np.int8)
    ops = np.where(num, ops, EQ).astype(np.int8)
    ops = np.where(num & np.isnan(v), ISNULL, ops).astype(np.int8)
    return Predicates(cols, ops, v)


def _random_cols(b: int, p: int, c: int, rng: np.random.Generator) -> NDArray[np.intp]:
    return np.argsort(rng.random((b, p)), axis=1)[:, :c].astype(np.intp)


def _keys(preds: Predicates) -> NDArray[np.void]:
    """One byte key per predicate, independent of the order of its conditions."""
    order = np.argsort(preds.cols, axis=1, kind="stable")
    rows = np.arange(len(preds))[:, None]
    vals = np.where(np.isnan(preds.values), np.inf, preds.values)[rows, order]
    both = np.concatenate([preds.cols[rows, order].astype(np.int64),
                           preds.ops[rows, order].astype(np.int64),
                           np.where(vals == 0.0, 0.0, vals).view(np.int64)], axis=1)
    both = np.ascontiguousarray(both)
    return both.view(np.dtype((np.void, both.dtype.itemsize * both.shape[1]))).ravel()


@dataclass(frozen=True)
class PredicateSearch:
    """Outcome of the multivariate search: ``predicates`` (distinct, each isolating one
    synthetic row), ``requested``, ``candidates`` tried, ``rounds`` run, and ``exhausted``
    (True when the search stalled: the synthetic data yields no more)."""

    predicates: Predicates
    requested: int
    candidates: int
    rounds: int
    exhausted: bool

    def warning(self) -> str | None:
        """An honest sentence when fewer than ``requested`` were found, else None."""
        n = len(self.predicates)
        if n >= self.requested:
            return None
        if self.exhausted:
            return (f"the synthetic data yields only {n} distinct multivariate predicates that "
                    f"isolate one synthetic row ({self.candidates} candidates tried, the last "
                    f"rounds found none new); fewer predicates widen the interval")
        return (f"the multivariate search stopped at max_rounds ({self.rounds}) with {n} of "
                f"{self.requested} predicates ({self.candidates} candidates tried); raise "
                "max_rounds to search further")


def search_multivariate(syn: EncodedTable, n: int, *, n_cols: int, rng: np.random.Generator,
                        max_rounds: int = 400, batch_size: int = 2048,
                        stall_rounds: int = 8) -> PredicateSearch:
    """Collect up to ``n`` distinct tail-directed predicates isolating one synthetic row.

    Each round tries ``batch_size`` candidates built from random rows and columns. The search
    ends when ``n`` are found, after ``stall_rounds`` rounds in a row without a new predicate
    (the synthetic data cannot produce more), or after ``max_rounds`` rounds.
    """
    if max_rounds < 1 or batch_size < 1 or stall_rounds < 1:
        raise ConfigError("max_rounds, batch_size and stall_rounds must be >= 1")
    vals, is_num = _values(syn)
    p = vals.shape[1]
    c = min(n_cols, p)
    medians = np.full(p, np.nan)  # synthetic medians (all-null columns keep NaN)
    ok = is_num & ~np.isnan(vals).all(axis=0)
    medians[ok] = np.nanmedian(vals[:, ok], axis=0) if ok.any() else medians[ok]
    screen = None  # a subsample: >= 2 matches there means >= 2 in the whole table
    if vals.shape[0] > 4 * _SCREEN:
        screen = syn.take(rng.choice(vals.shape[0], size=_SCREEN, replace=False))
    kept: list[Predicates] = []
    seen: set[bytes] = set()
    total = tried = stall = rounds = 0
    while total < n and rounds < max_rounds and stall < stall_rounds:
        rounds += 1
        rows = rng.integers(0, vals.shape[0], size=batch_size)
        cand = _row_predicates(vals, is_num, rows, _random_cols(batch_size, p, c, rng), rng,
                               medians)
        tried += batch_size
        if screen is not None:
            cand = cand.take(np.flatnonzero(count_matches(screen, cand) <= 1))
        good = cand.take(np.flatnonzero(count_matches(syn, cand) == 1))
        fresh: list[int] = []
        for j, key in enumerate(_keys(good)):
            if key.tobytes() not in seen and total + len(fresh) < n:
                seen.add(key.tobytes())
                fresh.append(j)
        kept.append(good.take(np.asarray(fresh, dtype=np.intp)))
        total += len(fresh)
        stall = 0 if fresh else stall + 1
    preds = Predicates(np.concatenate([k.cols for k in kept]).reshape(-1, c),
                       np.concatenate([k.ops for k in kept]).reshape(-1, c),
                       np.concatenate([k.values for k in kept]).reshape(-1, c))
    return PredicateSearch(preds, n, tried, rounds, exhausted=stall >= stall_rounds)


def multivariate_predicates(syn: EncodedTable, n: int, *, n_cols: int,
                            rng: np.random.Generator, max_rounds: int = 400) -> Predicates:
    """Up to ``n`` distinct predicates isolating one synthetic row (see search_multivariate)."""
    return search_multivariate(syn, n, n_cols=n_cols, rng=rng, max_rounds=max_rounds).predicates


def _baseline_predicates(syn: EncodedTable, n: int, c: int, rng: np.random.Generator
                         ) -> Predicates:
    """Random predicates: each condition's value comes from an independent random row."""
    vals, is_num = _values(syn)
    cols = _random_cols(n, vals.shape[1], c, rng)
    rows = rng.integers(0, vals.shape[0], size=cols.shape)
    return _row_predicates(vals, is_num, rows, cols, rng)


@dataclass(frozen=True)
class SinglingOutResult:
    """Univariate and multivariate singling-out risks and which one is the headline.

    Attributes:
        univariate: Risk of the univariate attack.
        multivariate: Risk of the multivariate attack.
        n_cols: Conditions per multivariate predicate.
        headline: ``"univariate"`` or ``"multivariate"``.
        headline_reason: One line saying why that variant is the headline.
        columns: Columns the predicates used.
    """

    univariate: RiskResult
    multivariate: RiskResult
    n_cols: int
    headline: str = ""
    headline_reason: str = ""
    columns: tuple[str, ...] = ()

    @property
    def risk(self) -> RiskResult:
        """The headline risk."""
        if self.headline in ("univariate", "multivariate"):
            return self.univariate if self.headline == "univariate" else self.multivariate
        return choose_headline(self.univariate, self.multivariate)[0]

    @property
    def mode(self) -> str:
        """Which variant gives the headline risk."""
        return "univariate" if self.risk is self.univariate else "multivariate"

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict."""
        return {"risk": self.risk.to_json(), "mode": self.mode, "n_cols": self.n_cols,
                "headline_reason": self.headline_reason
                or choose_headline(self.univariate, self.multivariate)[1],
                "columns": list(self.columns),
                "univariate": self.univariate.to_json(),
                "multivariate": self.multivariate.to_json()}


def _control_factor(control: EncodedTable, preds: Predicates, n_real: int,
                    rng: np.random.Generator) -> float:
    """Anonymeter's rescaling of control successes from the holdout to the training size."""
    n = control.n_rows
    sizes, succ = [], []
    for size in np.linspace(min(1000, n), n, 10).astype(int):
        for _ in range(5):
            sub = control.take(rng.choice(n, size=int(size), replace=False))
            sizes.append(float(size))
            succ.append(float((count_matches(sub, preds) == 1).sum()))
    return fit_size_correction(np.asarray(sizes), np.asarray(succ), n, n_real)


def _risk(preds: Predicates, base: Predicates, real: EncodedTable,
          control: EncodedTable | None, what: str, opts: _Options,
          rng: np.random.Generator) -> RiskResult:
    if len(preds) == 0:
        zero = Interval(0.0, 0.0, opts.confidence)
        return RiskResult(value=0.0, ci=zero, attack_rate=0.0, attack_ci=zero,
                          baseline_rate=0.0, baseline_ci=zero,
                          control_rate=None if control is None else 0.0,
                          control_ci=None if control is None else zero, n_attacks=0,
                          n_control=0, warnings=(_NO_PREDICATE.format(what=what),),
                          estimator=opts.ci)
    ok = int((count_matches(real, preds) == 1).sum())
    b_ok = int((count_matches(real, base) == 1).sum())
    c_ok: float | None = None
    extra: list[str] = []
    if control is not None:
        c_ok = float((count_matches(control, preds) == 1).sum())
        if opts.size_correction and control.n_rows != real.n_rows and c_ok > 0:
            try:
                factor = _control_factor(control, preds, real.n_rows, rng)
                c_ok = min(float(len(preds)), c_ok * factor)
                extra.append(f"{what} control successes rescaled by {factor:.3f} from the "
                             "holdout size to the training size (Anonymeter's fitted model)")
            except ConfigError:
                extra.append(f"{what} control-size correction failed to fit; control "
                             "successes are not rescaled, so the comparison is biased")
    r = residual_risk(n_success=ok, n_attacks=len(preds), n_baseline_success=b_ok,
                      n_baseline=len(base), n_control_success=c_ok,
                      n_control=0 if control is None else len(preds),
                      confidence=opts.confidence, ci=opts.ci, what=f"{what} singling-out")
    return dataclasses.replace(r, warnings=r.warnings + tuple(extra)) if extra else r


@dataclass(frozen=True, kw_only=True)
class _Options:
    confidence: float
    ci: Estimator
    size_correction: bool


def _uni_warning(n: int, requested: int) -> str | None:
    if n >= requested:
        return None
    return (f"the synthetic data has only {n} univariate predicates that isolate one synthetic "
            f"row (values seen once, minima, maxima) of {requested} requested; this is all the "
            "data allows, not a search limit")


def singling_out_risk(real: EncodedTable, syn: EncodedTable, control: EncodedTable | None,
                      *, n_attacks: int, rng: np.random.Generator, n_cols: int = 3,
                      confidence: float = 0.95, columns: Sequence[str] | None = None,
                      max_rounds: int = 400, ci: Estimator = "conservative",
                      size_correction: bool = True,
                      min_predicates: int = MIN_HEADLINE) -> SinglingOutResult:
    """Univariate and multivariate singling-out risks and the headline between them.

    Args:
        real: Encoded training records.
        syn: Encoded synthetic records.
        control: Encoded held-out records, or None.
        n_attacks: Number of predicates per variant.
        rng: Randomness for predicate generation.
        n_cols: Conditions per multivariate predicate.
        confidence: Two-sided confidence level of the intervals.
        columns: Columns the predicates may use (default: all audited columns).
        max_rounds: Rounds of the multivariate search (2,048 candidates each).
        ci: Estimator (``"conservative"`` or Anonymeter's ``"wilson-centre"``).
        size_correction: Rescale control successes when holdout and training sizes differ.
        min_predicates: Fewest predicates a variant needs to be the headline.
    """
    if n_attacks < 1:
        raise ConfigError(f"n_attacks ({n_attacks}) must be >= 1")
    if columns is not None:
        if not columns:
            raise ConfigError("singling-out columns must not be empty")
        real, syn = real.select(columns), syn.select(columns)
        control = None if control is None else control.select(columns)
    opts = _Options(confidence=confidence, ci=ci, size_correction=size_correction)
    uni = univariate_predicates(syn)
    uni_single = uni.take(np.flatnonzero(count_matches(syn, uni) == 1))
    if len(uni_single) > n_attacks:
        uni_single = uni_single.take(rng.choice(len(uni_single), n_attacks, replace=False))
    uni_base = _baseline_predicates(syn, max(len(uni_single), 1), 1, rng)
    search = search_multivariate(syn, n_attacks, n_cols=n_cols, rng=rng, max_rounds=max_rounds)
    multi = search.predicates
    c = min(n_cols, len(real.columns))
    multi_base = _baseline_predicates(syn, max(len(multi), 1), c, rng)
    results = []
    for preds, base, what, note in (
            (uni_single, uni_base, "univariate", _uni_warning(len(uni_single), n_attacks)),
            (multi, multi_base, "multivariate", search.warning())):
        r = _risk(preds, base, real, control, what, opts, rng)
        results.append(dataclasses.replace(r, warnings=(*r.warnings, note)) if note else r)
    head, reason = choose_headline(results[0], results[1], min_predicates)
    return SinglingOutResult(univariate=results[0], multivariate=results[1], n_cols=c,
                             headline="univariate" if head is results[0] else "multivariate",
                             headline_reason=reason, columns=tuple(real.columns))
