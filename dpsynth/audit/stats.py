"""Confidence intervals and ROC statistics used by the audit attacks.

Wilson and Clopper-Pearson intervals for success rates, the Wilson score centre with its
symmetric error and its propagation through the residual-risk formula (the estimator of
Anonymeter, Giomi et al. 2023), the rank-based ROC AUC with a DeLong
(or bootstrap) confidence interval, and the true-positive rate at a fixed false-positive rate.
Everything here is plain arithmetic on attack outcomes; nothing reads data directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats as sps

from dpsynth.errors import ConfigError

__all__ = [
    "Interval",
    "RateEstimate",
    "bootstrap_auc_ci",
    "clopper_pearson_interval",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "delong_auc_ci",
    "fit_size_correction",
    "residual_rate",
    "roc_auc",
    "roc_curve",
    "singling_out_probability_integral",
    "tpr_at_fpr",
    "wilson_centre",
    "wilson_interval",
]


@dataclass(frozen=True)
class Interval:
    """A closed interval ``[lo, hi]`` at a stated confidence level."""

    lo: float
    hi: float
    confidence: float

    def as_list(self) -> list[float]:
        """The interval as ``[lo, hi]`` for JSON output."""
        return [float(self.lo), float(self.hi)]


def _check_counts(k: int, n: int) -> None:
    if n <= 0:
        raise ConfigError(f"number of trials ({n}) must be > 0")
    if k < 0 or k > n:
        raise ConfigError(f"number of successes ({k}) must lie in [0, {n}]")


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence ({confidence}) must lie in (0, 1)")


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> Interval:
    """Two-sided Wilson score interval for a binomial proportion.

    Args:
        k: Number of successes.
        n: Number of trials (> 0).
        confidence: Two-sided confidence level.

    Returns:
        The Wilson interval, clipped to ``[0, 1]``.
    """
    _check_counts(k, n)
    _check_confidence(confidence)
    z = float(sps.norm.ppf(1.0 - (1.0 - confidence) / 2.0))
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
    return Interval(max(0.0, centre - half), min(1.0, centre + half), confidence)


@dataclass(frozen=True)
class RateEstimate:
    """A rate as a point estimate with a symmetric error at a confidence level.

    Attributes:
        value: Point estimate (not clipped: a residual rate can be negative).
        error: Half-width of the interval around ``value``.
        confidence: Two-sided confidence level of ``error``.
    """

    value: float
    error: float
    confidence: float

    def interval(self) -> Interval:
        """``value -+ error`` clipped to ``[0, 1]``."""
        return Interval(min(max(self.value - self.error, 0.0), 1.0),
                        min(max(self.value + self.error, 0.0), 1.0), self.confidence)


def wilson_centre(k: float, n: int, confidence: float = 0.95) -> RateEstimate:
    """Centre of the Wilson score interval as the point estimate, its half-width as the error.

    ``k`` may be fractional (a success count rescaled by a size correction).
    """
    if n <= 0:
        raise ConfigError(f"number of trials ({n}) must be > 0")
    if not 0.0 <= k <= n:
        raise ConfigError(f"number of successes ({k}) must lie in [0, {n}]")
    _check_confidence(confidence)
    z = float(sps.norm.ppf(1.0 - (1.0 - confidence) / 2.0))
    denom = n + z * z
    value = (k + z * z / 2.0) / denom
    error = z / denom * math.sqrt(k * (n - k) / n + z * z / 4.0)
    return RateEstimate(value, error, confidence)


def residual_rate(attack: RateEstimate, control: RateEstimate) -> RateEstimate:
    """``(attack - control) / (1 - control)`` with first-order (delta-method) error propagation.

    The error is ``sqrt((e_a * dR/da)^2 + (e_c * dR/dc)^2)`` with ``dR/da = 1 / (1 - c)`` and
    ``dR/dc = (a - 1) / (1 - c)^2``, the propagation Anonymeter uses.

    Raises:
        ConfigError: the control rate is 1 (the residual is undefined).
    """
    if control.value >= 1.0:
        raise ConfigError("the control rate (1.0) must be < 1 for a residual rate")
    room = 1.0 - control.value
    value = (attack.value - control.value) / room
    d_attack = 1.0 / room
    d_control = (attack.value - 1.0) / (room * room)
    error = math.hypot(attack.error * d_attack, control.error * d_control)
    return RateEstimate(value, error, attack.confidence)


def clopper_pearson_upper(k: int, n: int, gamma: float) -> float:
    """One-sided Clopper-Pearson upper bound ``Beta^-1(1-gamma; k+1, n-k)`` (1 if k = n)."""
    _check_counts(k, n)
    if k == n:
        return 1.0
    return float(sps.beta.ppf(1.0 - gamma, k + 1, n - k))


def clopper_pearson_lower(k: int, n: int, gamma: float) -> float:
    """One-sided Clopper-Pearson lower bound ``Beta^-1(gamma; k, n-k+1)`` (0 if k = 0)."""
    _check_counts(k, n)
    if k == 0:
        return 0.0
    return float(sps.beta.ppf(gamma, k, n - k + 1))


def clopper_pearson_interval(k: int, n: int, confidence: float = 0.95) -> Interval:
    """Two-sided exact (Clopper-Pearson) interval, ``(1-confidence)/2`` in each tail."""
    _check_confidence(confidence)
    gamma = (1.0 - confidence) / 2.0
    return Interval(clopper_pearson_lower(k, n, gamma), clopper_pearson_upper(k, n, gamma),
                    confidence)


def _split(scores: NDArray[np.float64], labels: NDArray[np.bool_]
           ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ConfigError("scores and labels must be 1-d arrays of the same length")
    if not np.all(np.isfinite(s)):
        raise ConfigError("attack scores must be finite")
    pos, neg = s[y], s[~y]
    if pos.size == 0 or neg.size == 0:
        raise ConfigError("ROC AUC needs at least one member and one non-member score")
    return pos, neg


def roc_auc(scores: NDArray[np.float64], labels: NDArray[np.bool_]) -> float:
    """ROC AUC as the Mann-Whitney probability P(member score > non-member score), ties 1/2."""
    pos, neg = _split(scores, labels)
    ranks = sps.rankdata(np.concatenate([pos, neg]))
    r_pos = float(ranks[: pos.size].sum())
    return (r_pos - pos.size * (pos.size + 1) / 2.0) / (pos.size * neg.size)


def delong_auc_ci(scores: NDArray[np.float64], labels: NDArray[np.bool_],
                  confidence: float = 0.95) -> Interval:
    """DeLong et al. (1988) normal-approximation interval for the ROC AUC, clipped to [0, 1].

    The variance uses the structural components computed with mid-ranks (Sun & Xu 2014), so
    ties are handled. A degenerate variance (perfect separation) gives a one-point interval.
    """
    _check_confidence(confidence)
    pos, neg = _split(scores, labels)
    m, n = pos.size, neg.size
    all_ranks = sps.rankdata(np.concatenate([pos, neg]))
    pos_ranks = sps.rankdata(pos)
    neg_ranks = sps.rankdata(neg)
    auc = (float(all_ranks[:m].sum()) - m * (m + 1) / 2.0) / (m * n)
    v10 = (all_ranks[:m] - pos_ranks) / n          # per member: share of non-members below
    v01 = 1.0 - (all_ranks[m:] - neg_ranks) / m    # per non-member: share of members above
    s10 = float(np.var(v10, ddof=1)) if m > 1 else 0.0
    s01 = float(np.var(v01, ddof=1)) if n > 1 else 0.0
    se = math.sqrt(max(s10 / m + s01 / n, 0.0))
    z = float(sps.norm.ppf(1.0 - (1.0 - confidence) / 2.0))
    return Interval(max(0.0, auc - z * se), min(1.0, auc + z * se), confidence)


def bootstrap_auc_ci(scores: NDArray[np.float64], labels: NDArray[np.bool_], *,
                     rng: np.random.Generator, n_boot: int = 1000,
                     confidence: float = 0.95) -> Interval:
    """Percentile bootstrap interval for the ROC AUC, resampling within each class."""
    _check_confidence(confidence)
    pos, neg = _split(scores, labels)
    values = np.empty(n_boot)
    y = np.concatenate([np.ones(pos.size, bool), np.zeros(neg.size, bool)])
    for b in range(n_boot):
        p = rng.choice(pos, size=pos.size, replace=True)
        q = rng.choice(neg, size=neg.size, replace=True)
        values[b] = roc_auc(np.concatenate([p, q]), y)
    tail = (1.0 - confidence) / 2.0
    return Interval(float(np.quantile(values, tail)), float(np.quantile(values, 1.0 - tail)),
                    confidence)


def roc_curve(scores: NDArray[np.float64], labels: NDArray[np.bool_]
              ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """False- and true-positive rates for the rule "member iff score >= t", over all t.

    Returns:
        ``(fpr, tpr)`` arrays starting at (0, 0) and ending at (1, 1), one point per distinct
        score.
    """
    pos, neg = _split(scores, labels)
    thresholds = np.unique(np.concatenate([pos, neg]))[::-1]
    pos_sorted, neg_sorted = np.sort(pos), np.sort(neg)
    tp = pos.size - np.searchsorted(pos_sorted, thresholds, side="left")
    fp = neg.size - np.searchsorted(neg_sorted, thresholds, side="left")
    fpr = np.concatenate([[0.0], fp / neg.size])
    tpr = np.concatenate([[0.0], tp / pos.size])
    return fpr, tpr


def tpr_at_fpr(scores: NDArray[np.float64], labels: NDArray[np.bool_], fpr_target: float
               ) -> float:
    """Largest TPR over thresholds whose empirical FPR is <= ``fpr_target``."""
    fpr, tpr = roc_curve(scores, labels)
    ok = fpr <= fpr_target + 1e-12
    return float(tpr[ok].max())


def singling_out_probability_integral(n: float, w_max: float) -> float:
    """Integral over query weights ``w`` in ``[0, w_max]`` of ``n w (1 - w)^(n-1)``.

    ``n w (1 - w)^(n-1)`` is the chance that a query matching a random record with
    probability ``w`` isolates exactly one of ``n`` records (Cohen & Nissim 2020).
    """
    return float((1.0 - (n * w_max + 1.0) * (1.0 - w_max) ** n) / (n + 1.0))


def fit_size_correction(sizes: NDArray[np.float64], successes: NDArray[np.float64],
                        n_from: float, n_to: float) -> float:
    """Factor that rescales a singling-out success count from table size ``n_from`` to ``n_to``.

    Fits ``norm * singling_out_probability_integral(n, w_eff)`` to the successes measured on
    subsamples of sizes ``sizes`` (Anonymeter's control-size correction) and returns
    ``model(n_to) / model(n_from)``.

    Raises:
        ConfigError: the fit fails or the model is degenerate at ``n_from``.
    """
    from scipy.optimize import curve_fit

    def model(x: NDArray[np.float64], w_eff: float, norm: float) -> NDArray[np.float64]:
        return np.asarray(norm * ((1.0 - (x * w_eff + 1.0) * (1.0 - w_eff) ** x) / (x + 1.0)))

    w0 = 1.0 / float(np.max(sizes))
    p0 = (w0, 1.0 / singling_out_probability_integral(float(np.max(sizes)), w0))
    try:
        popt, _ = curve_fit(model, np.asarray(sizes, np.float64),
                            np.asarray(successes, np.float64), p0=p0,
                            bounds=(0.0, (1.0, np.inf)))
    except (RuntimeError, ValueError) as exc:
        raise ConfigError("the singling-out size-correction fit did not converge") from exc
    at_from = float(model(np.asarray([n_from]), *popt)[0])
    if not at_from > 0.0:
        raise ConfigError("the singling-out size-correction model is 0 at the control size")
    return float(model(np.asarray([n_to]), *popt)[0]) / at_from
