"""Membership-inference attacks on a synthetic release and how their scores are summarised.

Three attacks, each with its threat model stated in the result:

* ``distance``: score = minus the distance from a record to its nearest synthetic record
  (the "closest distance" attack of TAPAS / DCR). Members are training records, non-members
  held-out records.
* ``domias``: the density-ratio attack of van Breugel et al. (AISTATS 2023): score =
  log p_synthetic(x) - log p_reference(x), both densities estimated by a Gaussian kernel on
  the Gower-like distance; the reference is held-out data disjoint from the evaluated
  non-members. It flags records where the generator puts more mass than the population.
* ``shadow``: TAPAS-style shadow modelling. The auditor supplies the generator as
  ``fit_sample(train, rng) -> synthetic``; it is trained many times on auxiliary data with
  and without a target record, and a classifier learns to tell the two from features of the
  synthetic output.

Each attack reports the ROC AUC with a DeLong interval, TPR at FPR 0.1% and 1%, and the
empirical epsilon lower bound of :mod:`dpsynth.audit.epsilon`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.special import logsumexp

from dpsynth.audit.distance import EncodedTable, MixedEncoder, distance_blocks, nearest_neighbors
from dpsynth.audit.epsilon import EpsilonBound, empirical_epsilon
from dpsynth.audit.stats import Interval, delong_auc_ci, roc_auc, roc_curve, tpr_at_fpr
from dpsynth.errors import ConfigError, require

__all__ = [
    "FitSample",
    "MembershipAttackResult",
    "distance_mia",
    "domias_mia",
    "score_attack",
    "shadow_model_mia",
]

FitSample = Callable[[pd.DataFrame, np.random.Generator], pd.DataFrame]


@dataclass(frozen=True)
class MembershipAttackResult:
    """Summary of one membership attack.

    Attributes:
        name: Attack name.
        threat_model: What the attacker knows and does.
        auc: ROC AUC (0.5 = guessing).
        auc_ci: DeLong interval at level ``1 - alpha``.
        tpr_at_fpr_001: TPR at FPR <= 0.1%.
        tpr_at_fpr_01: TPR at FPR <= 1%.
        epsilon: Empirical epsilon (and GDP mu) lower bound.
        n_members: Member trials.
        n_nonmembers: Non-member trials.
        roc_fpr: Down-sampled ROC curve, false-positive rates.
        roc_tpr: Down-sampled ROC curve, true-positive rates.
    """

    name: str
    threat_model: str
    auc: float
    auc_ci: Interval
    tpr_at_fpr_001: float
    tpr_at_fpr_01: float
    epsilon: EpsilonBound
    n_members: int
    n_nonmembers: int
    roc_fpr: tuple[float, ...]
    roc_tpr: tuple[float, ...]

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict (the ROC curve is omitted)."""
        return {
            "auc": self.auc, "auc_ci": self.auc_ci.as_list(),
            "auc_ci_confidence": self.auc_ci.confidence,
            "tpr_at_fpr_0.001": self.tpr_at_fpr_001, "tpr_at_fpr_0.01": self.tpr_at_fpr_01,
            "epsilon_lower_bound": self.epsilon.epsilon, "gdp_mu_lower_bound": self.epsilon.mu,
            "epsilon_alpha": self.epsilon.alpha, "epsilon_delta": self.epsilon.delta,
            "n_members": self.n_members, "n_nonmembers": self.n_nonmembers,
            "threat_model": self.threat_model,
        }


def score_attack(name: str, member_scores: NDArray[np.float64],
                 nonmember_scores: NDArray[np.float64], *, rng: np.random.Generator,
                 alpha: float = 1e-3, delta: float = 0.0, threat_model: str = ""
                 ) -> MembershipAttackResult:
    """Summarise attack scores (higher = more likely a member)."""
    mem = np.asarray(member_scores, dtype=np.float64)
    non = np.asarray(nonmember_scores, dtype=np.float64)
    scores = np.concatenate([mem, non])
    labels = np.concatenate([np.ones(mem.size, bool), np.zeros(non.size, bool)])
    fpr, tpr = roc_curve(scores, labels)
    keep = np.unique(np.linspace(0, fpr.size - 1, min(fpr.size, 200)).astype(int))
    return MembershipAttackResult(
        name=name, threat_model=threat_model, auc=roc_auc(scores, labels),
        auc_ci=delong_auc_ci(scores, labels, confidence=1.0 - alpha),
        tpr_at_fpr_001=tpr_at_fpr(scores, labels, 0.001),
        tpr_at_fpr_01=tpr_at_fpr(scores, labels, 0.01),
        epsilon=empirical_epsilon(mem, non, rng=rng, alpha=alpha, delta=delta),
        n_members=int(mem.size), n_nonmembers=int(non.size),
        roc_fpr=tuple(float(x) for x in fpr[keep]), roc_tpr=tuple(float(x) for x in tpr[keep]))


def distance_mia(members: EncodedTable, nonmembers: EncodedTable, syn: EncodedTable, *,
                 rng: np.random.Generator, alpha: float = 1e-3) -> MembershipAttackResult:
    """Closest-distance attack: members are expected to sit closer to the synthetic data."""
    _, d_mem = nearest_neighbors(members, syn, k=1)
    _, d_non = nearest_neighbors(nonmembers, syn, k=1)
    return score_attack("distance", -d_mem[:, 0], -d_non[:, 0], rng=rng, alpha=alpha,
                        threat_model="attacker holds the synthetic data and full records of "
                        "candidates; guesses 'member' when a synthetic record is close")


def _log_density(query: EncodedTable, ref: EncodedTable, h: float) -> NDArray[np.float64]:
    out = np.empty(query.n_rows, dtype=np.float64)
    for start, d in distance_blocks(query, ref):
        out[start:start + d.shape[0]] = logsumexp(-0.5 * (d / h) ** 2, axis=1)
    return np.asarray(out - np.log(ref.n_rows), dtype=np.float64)


def domias_mia(members: EncodedTable, nonmembers: EncodedTable, syn: EncodedTable,
               reference: EncodedTable, *, rng: np.random.Generator, alpha: float = 1e-3,
               bandwidth: float | None = None) -> MembershipAttackResult:
    """DOMIAS density-ratio attack with a Gaussian kernel on the Gower-like distance.

    Args:
        members: Training records tested.
        nonmembers: Held-out records tested (disjoint from ``reference``).
        syn: Synthetic records.
        reference: Held-out records standing for the population density.
        rng: Randomness for the epsilon split.
        alpha: Failure probability of the intervals and bound.
        bandwidth: Kernel bandwidth in distance units; default half the median distance from
            a reference record to its nearest synthetic record, at least a quarter column.
    """
    if reference.n_rows < 2:
        raise ConfigError("DOMIAS needs at least 2 reference records")
    p = len(syn.columns)
    if bandwidth is None:
        _, d = nearest_neighbors(reference, syn, k=1)
        bandwidth = max(0.5 * float(np.median(d)), 0.25 / p)
    if bandwidth <= 0:
        raise ConfigError(f"bandwidth ({bandwidth}) must be > 0")

    def score(t: EncodedTable) -> NDArray[np.float64]:
        return _log_density(t, syn, bandwidth) - _log_density(t, reference, bandwidth)

    return score_attack("domias", score(members), score(nonmembers), rng=rng, alpha=alpha,
                        threat_model="attacker holds the synthetic data and a reference "
                        "sample of the population; guesses 'member' where the synthetic "
                        "density exceeds the population density")


def _shadow_features(target: pd.DataFrame, synth: pd.DataFrame,
                     ranges: Mapping[str, tuple[float, float]]) -> NDArray[np.float64]:
    enc = MixedEncoder(target, [synth], numeric_ranges=ranges)
    t, s = enc.encode(target, name="target"), enc.encode(synth, name="shadow synthetic")
    k = min(5, s.n_rows)
    _, d = nearest_neighbors(t, s, k=k)
    full = next(distance_blocks(t, s))[1][0]
    p = len(enc.columns)
    return np.array([d[0, 0], d[0].mean(), float(np.mean(full <= 0.5 / p)),
                     float(np.mean(full == 0.0))])


def shadow_model_mia(fit_sample: FitSample, auxiliary: pd.DataFrame, target: pd.DataFrame,
                     *, rng: np.random.Generator, n_shadow: int = 100, train_size: int = 200,
                     numeric_ranges: Mapping[str, tuple[float, float]] | None = None,
                     alpha: float = 1e-3) -> MembershipAttackResult:
    """TAPAS-style shadow-model attack on one target record.

    Each shadow run draws ``train_size - 1`` records from ``auxiliary``, adds ``target`` to
    half of the runs, calls ``fit_sample`` and featurises the output relative to the target
    (nearest distance, mean distance to 5 nearest, share of close and of identical synthetic
    records). A logistic regression is fitted on the first half of the runs and scores the
    second half, where AUC, TPR and the epsilon bound are measured.

    Args:
        fit_sample: The generator under audit: ``(training frame, rng) -> synthetic frame``.
        auxiliary: Population records the attacker can use (must not contain the target).
        target: One-row frame holding the target record.
        rng: Randomness for sampling, the generator and the split.
        n_shadow: Number of generator runs (>= 16, even).
        train_size: Rows per training set.
        numeric_ranges: Public numeric ranges; default the robust range of ``auxiliary``.
        alpha: Failure probability of the intervals and bound.
    """
    if len(target) != 1:
        raise ConfigError(f"target must be a one-row frame (got {len(target)} rows)")
    if n_shadow < 16 or n_shadow % 2:
        raise ConfigError(f"n_shadow ({n_shadow}) must be an even number >= 16")
    if not 2 <= train_size <= len(auxiliary) + 1:
        raise ConfigError(f"train_size ({train_size}) must lie in [2, len(auxiliary) + 1]")
    lm = require("sklearn.linear_model", "audit")
    ranges = dict(numeric_ranges or {})
    base = MixedEncoder(auxiliary)
    for c, scale in zip(base.num_columns, base.scales, strict=True):
        ranges.setdefault(c, (0.0, float(scale)))
    labels = np.arange(n_shadow) % 2 == 1
    rng.shuffle(labels)
    feats = np.empty((n_shadow, 4))
    for i in range(n_shadow):
        rows = rng.choice(len(auxiliary), size=train_size - 1, replace=False)
        train = auxiliary.iloc[rows]
        if labels[i]:
            train = pd.concat([train, target], ignore_index=True)
        else:
            extra = auxiliary.iloc[rng.choice(np.setdiff1d(np.arange(len(auxiliary)), rows),
                                              size=1)] if len(auxiliary) >= train_size else \
                auxiliary.iloc[:0]
            train = pd.concat([train, extra], ignore_index=True)
        synth = fit_sample(train.reset_index(drop=True), rng)
        feats[i] = _shadow_features(target, synth, ranges)
    half = n_shadow // 2
    mean, std = feats[:half].mean(axis=0), feats[:half].std(axis=0) + 1e-9
    z = (feats - mean) / std
    clf = lm.LogisticRegression(C=1.0)  # type: ignore[attr-defined]
    y_fit = labels[:half]
    if y_fit.all() or not y_fit.any():
        raise ConfigError("shadow training half holds a single class; raise n_shadow")
    clf.fit(z[:half], y_fit)
    s = np.asarray(clf.decision_function(z[half:]), dtype=np.float64)
    y = labels[half:]
    return score_attack("shadow", s[y], s[~y], rng=rng, alpha=alpha,
                        threat_model="attacker knows the generator, a population sample and "
                        "the target's full record; trains a classifier on shadow runs")
