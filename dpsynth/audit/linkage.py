"""Linkability risk (WP29), after the attack/baseline/control design of Giomi et al. 2023.

Threat model: the attacker holds two datasets about the same people, one with column set A
and one with the disjoint column set B (by default the quasi-identifiers split in two), and
wants to know which records of the two belong to the same person. The synthetic data is the
bridge: for a target, the ``k`` nearest synthetic records on A and the ``k`` nearest on B are
looked up; the link succeeds when both halves point to the same synthetic record. Ties at
the k-th distance are all included (an exact copy of the target is always found), which
avoids results that depend on row order. The control runs the same attack on held-out
people; the baseline picks ``k`` random synthetic records for each half.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dpsynth.audit.distance import DEFAULT_BLOCK_ELEMENTS, EncodedTable, distance_blocks
from dpsynth.audit.risk import RiskResult, residual_risk
from dpsynth.errors import ConfigError

__all__ = ["count_links", "default_split", "linkability_risk"]


def default_split(quasi_identifiers: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split the quasi-identifiers into two halves (first half, second half, in order)."""
    qis = list(quasi_identifiers)
    if len(qis) < 2:
        raise ConfigError("linkability needs at least 2 quasi-identifiers to split into two "
                          f"column sets (got {len(qis)})")
    h = (len(qis) + 1) // 2
    return qis[:h], qis[h:]


def count_links(targets: EncodedTable, syn: EncodedTable, cols_a: Sequence[str],
                cols_b: Sequence[str], *, k: int = 1,
                block_elements: int = DEFAULT_BLOCK_ELEMENTS) -> int:
    """Number of targets whose A-neighbours and B-neighbours share a synthetic record."""
    if set(cols_a) & set(cols_b):
        raise ConfigError("the two linkability column sets must be disjoint")
    if not 1 <= k <= syn.n_rows:
        raise ConfigError(f"k ({k}) must lie in [1, number of synthetic records]")
    ta, tb = targets.select(cols_a), targets.select(cols_b)
    sa, sb = syn.select(cols_a), syn.select(cols_b)
    half = max(1, block_elements // 2)
    hits = 0
    for (_, da), (_, db) in zip(distance_blocks(ta, sa, block_elements=half),
                                distance_blocks(tb, sb, block_elements=half), strict=True):
        if k == 1:
            tau_a = da.min(axis=1, keepdims=True)
            tau_b = db.min(axis=1, keepdims=True)
        else:
            tau_a = np.partition(da, k - 1, axis=1)[:, k - 1:k]
            tau_b = np.partition(db, k - 1, axis=1)[:, k - 1:k]
        hits += int(((da <= tau_a) & (db <= tau_b)).any(axis=1).sum())
    return hits


def _baseline(n: int, n_syn: int, k: int, rng: np.random.Generator) -> int:
    hits = 0
    for _ in range(n):
        a = rng.choice(n_syn, size=k, replace=False)
        b = rng.choice(n_syn, size=k, replace=False)
        hits += int(np.intersect1d(a, b).size > 0)
    return hits


def linkability_risk(targets: EncodedTable, syn: EncodedTable,
                     control: EncodedTable | None, *, cols_a: Sequence[str],
                     cols_b: Sequence[str], rng: np.random.Generator, k: int = 1,
                     confidence: float = 0.95) -> RiskResult:
    """Linkability risk of training ``targets`` against held-out ``control`` records.

    Args:
        targets: Encoded training records attacked.
        syn: Encoded synthetic records.
        control: Encoded held-out records attacked the same way, or None.
        cols_a: Columns of the attacker's first dataset.
        cols_b: Columns of the attacker's second dataset (disjoint from ``cols_a``).
        rng: Randomness for the baseline.
        k: Neighbours looked up per half.
        confidence: Level of the Wilson intervals.
    """
    if targets.n_rows == 0:
        raise ConfigError("linkability needs at least one target record")
    ok = count_links(targets, syn, cols_a, cols_b, k=k)
    c_ok = None if control is None else count_links(control, syn, cols_a, cols_b, k=k)
    base = _baseline(targets.n_rows, syn.n_rows, k, rng)
    return residual_risk(n_success=ok, n_attacks=targets.n_rows, n_baseline_success=base,
                         n_baseline=targets.n_rows, n_control_success=c_ok,
                         n_control=0 if control is None else control.n_rows,
                         confidence=confidence, what="linkability")
