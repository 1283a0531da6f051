"""How sampled children are linked to sampled persons (post-processing of fitted models).

- :func:`matched`: rows of the child model alone, each handed to a person with the same
  parent columns in proportion to the persons' child counts;
- :func:`reweighted`: persons resampled with raked weights, so that each group of equal
  parent columns keeps its size while its child rows match the child model's share.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from dpsynth.synthesizer import Synthesizer

__all__ = ["MAX_TILT", "matched", "reweighted"]

#: The most a reweighting tilt may move a group's mean child count (a factor either way): the
#: child model's share of a small group is noisy, and an unbounded tilt can push every weight
#: to the persons with the most children.
MAX_TILT = 1.5


def _apportion(rows: int, weights: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """``rows`` split over members in proportion to ``weights`` (systematic rounding), each at
    most ``cap``; the result may sum to less than ``rows`` when the caps bind."""
    share = rows * weights / weights.sum()
    base = np.floor(share).astype(np.int64)
    frac = share - base
    left = rows - int(base.sum())
    if left > 0:
        ticks = (rng.random() + np.arange(left)) / left * frac.sum()
        base += np.bincount(np.searchsorted(np.cumsum(frac), ticks, side="right").clip(max=len(base) - 1),
                            minlength=len(base))
    return np.asarray(np.minimum(base, cap), dtype=np.int64)


def matched(synth: Synthesizer, parent_columns: tuple[str, ...], counts: np.ndarray, given: np.ndarray,
             cap: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the child model alone, each handed to a person with the same parent columns."""
    block = synth.sample_codes(int(counts.sum()), rng)
    pos = {c.name: j for j, c in enumerate(synth.schema.modelled)}
    own = block[:, [pos[c] for c in parent_columns]]
    _, inverse = np.unique(np.concatenate([given, own]), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    group_of_person, group_of_row = inverse[:len(given)], inverse[len(given):]
    owners = np.full(len(block), -1, dtype=np.int64)
    order = np.argsort(group_of_person, kind="stable")
    bounds = np.searchsorted(group_of_person[order], np.arange(inverse.max() + 2))
    for g in np.unique(group_of_row):
        members = order[bounds[g]:bounds[g + 1]]
        if not len(members):
            continue
        rows = np.flatnonzero(group_of_row == g)
        weights = counts[members].astype(np.float64)
        take = _apportion(len(rows), weights if weights.sum() > 0 else np.ones(len(members)), cap, rng)
        owners[rows[:int(take.sum())]] = np.repeat(members, take)
    kept = owners >= 0
    return owners[kept], block[kept]


def _tilt(counts: np.ndarray, mean: float, base: np.ndarray | None = None) -> np.ndarray:
    """Weights ``base * exp(lam * counts)`` (normalised) whose weighted mean of ``counts`` is
    ``mean`` (clipped to the counts' range); ``lam`` by bisection."""
    base = np.full(len(counts), 1.0) if base is None else base / base.max()
    lo_n, hi_n = float(counts.min()), float(counts.max())
    if hi_n == lo_n:
        return np.asarray(base / base.sum(), dtype=np.float64)
    target = min(max(mean, lo_n), hi_n)
    scaled = (counts - lo_n) / (hi_n - lo_n)
    lo, hi = -60.0, 60.0
    for _ in range(60):
        lam = (lo + hi) / 2
        w = base * np.exp(lam * (scaled - scaled.max()))
        if lo_n + (hi_n - lo_n) * float((w * scaled).sum() / w.sum()) < target:
            lo = lam
        else:
            hi = lam
    w = base * np.exp(lam * (scaled - scaled.max()))
    return np.asarray(w / w.sum(), dtype=np.float64)


def _targets(child: Synthesizer, parent_columns: tuple[str, ...], given: np.ndarray, total: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each person's group of equal parent columns, and each group's child rows among ``total``
    rows drawn from the child model alone (the child model's share of the group)."""
    pos = {c.name: j for j, c in enumerate(child.schema.modelled)}
    drawn = child.sample_codes(total, rng)[:, [pos[c] for c in parent_columns]]
    combos, inverse = np.unique(np.concatenate([given, drawn]), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    return inverse[:len(given)], np.bincount(inverse[len(given):], minlength=len(combos))


def reweighted(synths: Mapping[str, Synthesizer], links: Mapping[str, tuple[str, ...]], codes: np.ndarray,
                counts: Mapping[str, np.ndarray], columns: list[str], rng: np.random.Generator,
                sweeps: int = 4) -> np.ndarray:
    """Indices of resampled persons. Person weights are raked, ``sweeps`` times over every
    child table and every group of equal parent columns, so that each group keeps its size and
    its mean child count makes its child rows the share the child model gives it (an
    exponential tilt per group and child); then the persons are drawn systematically."""
    n = len(codes)
    groups = []
    for child, pcols in links.items():
        total = int(counts[child].sum())
        if total:
            group, wanted = _targets(synths[child], pcols, codes[:, [columns.index(c) for c in pcols]], total, rng)
            order = np.argsort(group, kind="stable")
            cuts = np.searchsorted(group[order], np.arange(len(wanted) + 1))
            members = [order[cuts[g]:cuts[g + 1]] for g in range(len(wanted)) if cuts[g + 1] > cuts[g]]
            groups.append((counts[child].astype(np.float64), [(m, wanted[group[m[0]]]) for m in members]))
    if not groups or n == 0:
        return np.arange(n)
    log_w = np.zeros(n)
    for _ in range(sweeps):
        for child_counts, parts in groups:
            for m, want in parts:
                base = np.exp(log_w[m] - log_w[m].max())
                own = float((base * child_counts[m]).sum() / base.sum())
                target = min(max(want / len(m), own / MAX_TILT), own * MAX_TILT) if own > 0 else want / len(m)
                w = _tilt(child_counts[m], target, base)
                log_w[m] = np.log(np.maximum(w * len(m), 1e-300))
    p = np.exp(log_w - log_w.max())
    ticks = (rng.random() + np.arange(n)) / n
    return np.asarray(np.searchsorted(np.cumsum(p / p.sum()), ticks).clip(max=n - 1), dtype=np.int64)
