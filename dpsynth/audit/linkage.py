"""Linkability risk (WP29), after the attack/baseline/control design of Giomi et al. 2023.

Threat model: the attacker holds two datasets about the same people, one with column set A
and one with the disjoint column set B (``cols_a``, ``cols_b``; by default the
quasi-identifiers split in two), and wants to know which records of the two belong to the
same person. The synthetic data is the bridge: for a target, the ``n_neighbors`` nearest
synthetic records on A and the ``n_neighbors`` nearest on B are looked up; the link succeeds
when both lists share a synthetic record. Two measures, each against its own control:

* **tie-break** (the headline, as Anonymeter): among equally near synthetic records the
  first by position is taken, so each half names exactly ``n_neighbors`` records. This is
  what a real attacker who must commit to one candidate achieves.
* **any-tie** (conservative secondary): every synthetic record tied at the
  ``n_neighbors``-th distance counts, so a link succeeds when *some* tied pair of candidates
  agrees. With categorical columns tie sets are large and the control often succeeds too;
  it is an upper bound on what an attacker could get by luck in tie-breaking, and it is
  often *undefined* (control success near 1, see :mod:`dpsynth.audit.risk`).

The baseline picks ``n_neighbors`` random synthetic records for each half.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dpsynth.audit.distance import DEFAULT_BLOCK_ELEMENTS, EncodedTable, distance_blocks
from dpsynth.audit.risk import Estimator, RiskResult, residual_risk
from dpsynth.errors import ConfigError

__all__ = [
    "ANY_TIE_MEANING",
    "TIE_BREAK_MEANING",
    "LinkabilityResult",
    "count_links",
    "count_tie_broken_links",
    "default_split",
    "linkability_attack",
    "linkability_risk",
]

TIE_BREAK_MEANING = ("headline: each half of a target picks its nearest synthetic records, "
                     "ties broken by first position (as Anonymeter); a link succeeds when the "
                     "two picks share a record")
ANY_TIE_MEANING = ("conservative secondary: a link succeeds when any synthetic record tied at "
                   "the nearest distance on A is also tied at the nearest distance on B; an "
                   "upper bound that counts lucky tie-breaking, often undefined with "
                   "categorical columns")


def default_split(quasi_identifiers: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split the quasi-identifiers into two halves (first half, second half, in order)."""
    qis = list(quasi_identifiers)
    if len(qis) < 2:
        raise ConfigError("linkability needs at least 2 quasi-identifiers to split into two "
                          f"column sets (got {len(qis)})")
    h = (len(qis) + 1) // 2
    return qis[:h], qis[h:]


def _check(syn: EncodedTable, cols_a: Sequence[str], cols_b: Sequence[str], k: int) -> None:
    if not cols_a or not cols_b:
        raise ConfigError("both linkability column sets (cols_a, cols_b) must be non-empty")
    if set(cols_a) & set(cols_b):
        raise ConfigError("the two linkability column sets (cols_a, cols_b) must be disjoint")
    if not 1 <= k <= syn.n_rows:
        raise ConfigError(f"n_neighbors ({k}) must lie in [1, number of synthetic records "
                          f"({syn.n_rows})]")


def _first_k(d: NDArray[np.float64], k: int) -> NDArray[np.intp]:
    if k == 1:
        return np.asarray(np.argmin(d, axis=1)[:, None], dtype=np.intp)
    return np.asarray(np.argsort(d, axis=1, kind="stable")[:, :k], dtype=np.intp)


def _within_kth(d: NDArray[np.float64], k: int) -> NDArray[np.bool_]:
    if k == 1:
        tau = d.min(axis=1, keepdims=True)
    else:
        tau = np.partition(d, k - 1, axis=1)[:, k - 1:k]
    return np.asarray(d <= tau)


def _link_counts(targets: EncodedTable, syn: EncodedTable, cols_a: Sequence[str],
                 cols_b: Sequence[str], k: int, block_elements: int) -> tuple[int, int]:
    """(tie-broken links, any-tie links) in one pass over the distance blocks."""
    _check(syn, cols_a, cols_b, k)
    ta, tb = targets.select(cols_a), targets.select(cols_b)
    sa, sb = syn.select(cols_a), syn.select(cols_b)
    half = max(1, block_elements // 2)
    broken = anytie = 0
    for (_, da), (_, db) in zip(distance_blocks(ta, sa, block_elements=half),
                                distance_blocks(tb, sb, block_elements=half), strict=True):
        ia, ib = _first_k(da, k), _first_k(db, k)
        broken += int((ia[:, :, None] == ib[:, None, :]).any(axis=(1, 2)).sum())
        anytie += int((_within_kth(da, k) & _within_kth(db, k)).any(axis=1).sum())
    return broken, anytie


def count_links(targets: EncodedTable, syn: EncodedTable, cols_a: Sequence[str],
                cols_b: Sequence[str], *, k: int = 1,
                block_elements: int = DEFAULT_BLOCK_ELEMENTS) -> int:
    """Targets whose A- and B-neighbour sets, ties at the k-th distance included, intersect."""
    return _link_counts(targets, syn, cols_a, cols_b, k, block_elements)[1]


def count_tie_broken_links(targets: EncodedTable, syn: EncodedTable, cols_a: Sequence[str],
                           cols_b: Sequence[str], *, n_neighbors: int = 1,
                           block_elements: int = DEFAULT_BLOCK_ELEMENTS) -> int:
    """Targets whose first-by-position ``n_neighbors`` A- and B-neighbours share a record."""
    return _link_counts(targets, syn, cols_a, cols_b, n_neighbors, block_elements)[0]


def _baseline(n: int, n_syn: int, k: int, rng: np.random.Generator) -> int:
    hits = 0
    for _ in range(n):
        a = rng.choice(n_syn, size=k, replace=False)
        b = rng.choice(n_syn, size=k, replace=False)
        hits += int(np.intersect1d(a, b).size > 0)
    return hits


@dataclass(frozen=True)
class LinkabilityResult:
    """Both linkability measures; ``risk`` (the tie-break measure) is the headline.

    Attributes:
        risk: Tie-broken linkability (headline, comparable with Anonymeter).
        any_tie: Any-tie linkability (conservative secondary).
        cols_a: The attacker's first column set.
        cols_b: The attacker's second column set.
        n_neighbors: Neighbours looked up per half.
    """

    risk: RiskResult
    any_tie: RiskResult
    cols_a: tuple[str, ...]
    cols_b: tuple[str, ...]
    n_neighbors: int

    def to_json(self) -> dict[str, object]:
        """The headline's JSON plus ``measure``, ``any_tie`` and the attack's settings."""
        return {**self.risk.to_json(), "measure": "tie-break", "meaning": TIE_BREAK_MEANING,
                "any_tie": {**self.any_tie.to_json(), "meaning": ANY_TIE_MEANING},
                "columns_a": list(self.cols_a), "columns_b": list(self.cols_b),
                "n_neighbors": self.n_neighbors}


def linkability_attack(targets: EncodedTable, syn: EncodedTable,
                       control: EncodedTable | None, *, cols_a: Sequence[str],
                       cols_b: Sequence[str], rng: np.random.Generator, n_neighbors: int = 1,
                       confidence: float = 0.95, ci: Estimator = "conservative",
                       block_elements: int = DEFAULT_BLOCK_ELEMENTS) -> LinkabilityResult:
    """Tie-broken (headline) and any-tie linkability of ``targets`` against ``control``.

    Args:
        targets: Encoded training records attacked.
        syn: Encoded synthetic records.
        control: Encoded held-out records attacked the same way, or None.
        cols_a: Columns of the attacker's first dataset.
        cols_b: Columns of the attacker's second dataset (disjoint from ``cols_a``).
        rng: Randomness for the baseline.
        n_neighbors: Neighbours looked up per half.
        confidence: Two-sided confidence level of the intervals.
        ci: Estimator (``"conservative"`` or Anonymeter's ``"wilson-centre"``).
        block_elements: Memory bound of one distance block.
    """
    if targets.n_rows == 0:
        raise ConfigError("linkability needs at least one target record")
    k = n_neighbors
    ok, ok_any = _link_counts(targets, syn, cols_a, cols_b, k, block_elements)
    c_ok: tuple[int, int] | None = None
    if control is not None and control.n_rows:
        c_ok = _link_counts(control, syn, cols_a, cols_b, k, block_elements)
    base = _baseline(targets.n_rows, syn.n_rows, k, rng)
    n_c = 0 if control is None else control.n_rows
    risks = [residual_risk(n_success=hit, n_attacks=targets.n_rows, n_baseline_success=base,
                           n_baseline=targets.n_rows,
                           n_control_success=None if c_ok is None else c_ok[i],
                           n_control=n_c, confidence=confidence, ci=ci, what=what)
             for i, (hit, what) in enumerate(((ok, "linkability"),
                                              (ok_any, "any-tie linkability")))]
    return LinkabilityResult(risk=risks[0], any_tie=risks[1], cols_a=tuple(cols_a),
                             cols_b=tuple(cols_b), n_neighbors=k)


def linkability_risk(targets: EncodedTable, syn: EncodedTable,
                     control: EncodedTable | None, *, cols_a: Sequence[str],
                     cols_b: Sequence[str], rng: np.random.Generator, k: int = 1,
                     confidence: float = 0.95, n_neighbors: int | None = None,
                     ci: Estimator = "conservative") -> RiskResult:
    """The any-tie (conservative secondary) linkability risk, as this function always returned.

    Kept with its old meaning for existing callers; new code calls
    :func:`linkability_attack`, whose ``risk`` is the tie-broken headline. ``k`` is the
    former name of ``n_neighbors``; ``n_neighbors`` wins when both are given.
    """
    return linkability_attack(targets, syn, control, cols_a=cols_a, cols_b=cols_b, rng=rng,
                              n_neighbors=k if n_neighbors is None else n_neighbors,
                              confidence=confidence, ci=ci).any_tie
