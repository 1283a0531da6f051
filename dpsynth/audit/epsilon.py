"""Empirical privacy lower bounds from membership-attack outcomes.

Implements the game of docs/self-audits.md ("The game"): for a threshold test "member iff score >= t", the DP constraint
``FPR + e^eps * FNR >= 1 - delta`` (both directions) turns Clopper-Pearson upper bounds on the
error rates into a lower bound on epsilon that holds with probability >= 1 - alpha. The
threshold is chosen on one half of the trials and the bound is evaluated once on the other
half, so the threshold search does not invalidate the confidence level. A Gaussian-DP variant
gives a lower bound on mu.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats as sps
from scipy.special import betaincinv

from dpsynth.audit.stats import clopper_pearson_upper
from dpsynth.errors import ConfigError

__all__ = [
    "EpsilonBound",
    "empirical_epsilon",
    "epsilon_lower_bound",
    "gdp_mu_lower_bound",
]


@dataclass(frozen=True)
class EpsilonBound:
    """An empirical lower bound and how it was obtained.

    Attributes:
        epsilon: Lower bound on epsilon (>= 0) holding with probability >= 1 - alpha.
        mu: Lower bound on the Gaussian-DP mu (>= 0), same alpha; assumes a Gaussian
            trade-off curve.
        threshold: Score threshold chosen on the selection half.
        fp: False positives on the evaluation half.
        fn: False negatives on the evaluation half.
        n_nonmembers: Non-member trials on the evaluation half.
        n_members: Member trials on the evaluation half.
        alpha: Total failure probability of the bound.
        delta: The delta at which epsilon is bounded.
    """

    epsilon: float
    mu: float
    threshold: float
    fp: int
    fn: int
    n_nonmembers: int
    n_members: int
    alpha: float
    delta: float


def epsilon_lower_bound(fp: int, n0: int, fn: int, n1: int, *, alpha: float = 0.05,
                        delta: float = 0.0) -> float:
    """Clopper-Pearson lower bound on epsilon from error counts (docs/self-audits.md, "The game").

    Args:
        fp: False positives among ``n0`` non-member trials.
        n0: Non-member trials (b = 0).
        fn: False negatives among ``n1`` member trials.
        n1: Member trials (b = 1).
        alpha: Failure probability, split alpha/2 per error rate (union bound).
        delta: The delta of the (epsilon, delta) claim.

    Returns:
        ``max(0, ln((1-delta-FPR+)/FNR+), ln((1-delta-FNR+)/FPR+))``.
    """
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha ({alpha}) must lie in (0, 1)")
    if not 0.0 <= delta < 1.0:
        raise ConfigError(f"delta ({delta}) must lie in [0, 1)")
    fpr_hi = clopper_pearson_upper(fp, n0, alpha / 2.0)
    fnr_hi = clopper_pearson_upper(fn, n1, alpha / 2.0)
    best = 0.0
    for num, den in ((1.0 - delta - fpr_hi, fnr_hi), (1.0 - delta - fnr_hi, fpr_hi)):
        if num > 0.0 and den > 0.0:
            best = max(best, math.log(num / den))
    return best


def gdp_mu_lower_bound(fp: int, n0: int, fn: int, n1: int, *, alpha: float = 0.05) -> float:
    """Gaussian-DP lower bound ``mu = Phi^-1(1-FPR+) - Phi^-1(FNR+)``, both directions.

    One Bonferroni budget covers both directions: each of the four one-sided bounds uses
    alpha/4 (jax_privacy PR#270 is the cautionary tale of a shortcut here).
    """
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha ({alpha}) must lie in (0, 1)")
    gamma = alpha / 4.0
    fpr_hi = clopper_pearson_upper(fp, n0, gamma)
    fnr_hi = clopper_pearson_upper(fn, n1, gamma)
    best = 0.0
    for a, b in ((fpr_hi, fnr_hi), (fnr_hi, fpr_hi)):
        if a < 1.0 and b > 0.0:
            best = max(best, float(sps.norm.ppf(1.0 - a) - sps.norm.ppf(b)))
    return max(best, 0.0)


def _eps_lb_many(fp: NDArray[np.int64], n0: int, fn: NDArray[np.int64], n1: int,
                 alpha: float, delta: float) -> NDArray[np.float64]:
    """Vectorised :func:`epsilon_lower_bound` over many (fp, fn) pairs."""
    g = 1.0 - alpha / 2.0
    fpr_hi = np.where(fp >= n0, 1.0, betaincinv(fp + 1.0, np.maximum(n0 - fp, 1), g))
    fnr_hi = np.where(fn >= n1, 1.0, betaincinv(fn + 1.0, np.maximum(n1 - fn, 1), g))
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.log((1.0 - delta - fpr_hi) / fnr_hi)
        b = np.log((1.0 - delta - fnr_hi) / fpr_hi)
    a = np.where((1.0 - delta - fpr_hi > 0) & (fnr_hi > 0), a, 0.0)
    b = np.where((1.0 - delta - fnr_hi > 0) & (fpr_hi > 0), b, 0.0)
    return np.maximum(0.0, np.maximum(a, b))


def _errors(member: NDArray[np.float64], nonmember: NDArray[np.float64], t: float
            ) -> tuple[int, int]:
    return int(np.sum(nonmember >= t)), int(np.sum(member < t))


def empirical_epsilon(member_scores: NDArray[np.float64],
                      nonmember_scores: NDArray[np.float64], *, rng: np.random.Generator,
                      alpha: float = 0.05, delta: float = 0.0, n_candidates: int = 200
                      ) -> EpsilonBound:
    """Empirical epsilon lower bound with the threshold picked on a held-out half.

    The trials of each class are shuffled and split 50/50. On the first half, up to
    ``n_candidates`` quantile thresholds are scanned for the largest bound; the chosen
    threshold is then applied once to the second half, where the reported bound is computed.

    Args:
        member_scores: Attack scores of member trials (higher = "more likely a member").
        nonmember_scores: Attack scores of non-member trials.
        rng: Randomness for the split.
        alpha: Failure probability of the reported bound.
        delta: Delta of the claim being tested.
        n_candidates: Number of quantile thresholds scanned on the selection half.

    Returns:
        The bound on the evaluation half.
    """
    mem = np.asarray(member_scores, dtype=np.float64)
    non = np.asarray(nonmember_scores, dtype=np.float64)
    if mem.size < 4 or non.size < 4:
        raise ConfigError("empirical epsilon needs at least 4 member and 4 non-member trials")
    mem = mem[rng.permutation(mem.size)]
    non = non[rng.permutation(non.size)]
    m_sel, m_eval = mem[: mem.size // 2], mem[mem.size // 2:]
    n_sel, n_eval = non[: non.size // 2], non[non.size // 2:]
    pooled = np.concatenate([m_sel, n_sel])
    candidates = np.unique(np.quantile(pooled, np.linspace(0.0, 1.0, n_candidates)))
    candidates = np.unique(np.concatenate([candidates, np.nextafter(candidates, np.inf)]))
    fps = n_sel.size - np.searchsorted(np.sort(n_sel), candidates, side="left")
    fns = np.searchsorted(np.sort(m_sel), candidates, side="left")
    scores = _eps_lb_many(fps, n_sel.size, fns, m_sel.size, alpha, delta)
    best_t = float(candidates[int(np.argmax(scores))])
    fp, fn = _errors(m_eval, n_eval, best_t)
    eps = epsilon_lower_bound(fp, n_eval.size, fn, m_eval.size, alpha=alpha, delta=delta)
    mu = gdp_mu_lower_bound(fp, n_eval.size, fn, m_eval.size, alpha=alpha)
    return EpsilonBound(epsilon=eps, mu=mu, threshold=best_t, fp=fp, fn=fn,
                        n_nonmembers=int(n_eval.size), n_members=int(m_eval.size),
                        alpha=alpha, delta=delta)
