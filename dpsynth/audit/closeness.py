"""The closer-to-real share: are synthetic records nearer the training records than fresh ones?

For each synthetic record the distance to its nearest training record is compared with the
distance to its nearest holdout record; a tie counts one half. If the generator saw only the
population, training and holdout records are exchangeable with respect to the synthetic
data, so the share is 0.5 in expectation whatever the table; copies and lightly edited copies
of training records push it up (docs/auditing.md, "Calibration", has the ranges on five real
tables).

**The interval is a permutation interval.** Under that exchangeability, relabelling the pooled
training and holdout records at random leaves the share's distribution unchanged, and the
share's variance is exactly the average, over synthetic data sets, of its variance over such
relabellings. So the standard error comes from ``n_permutations`` random relabellings of the
pool (each one cheap: every synthetic record's ``k`` nearest pooled records are found once).
A binomial interval on the synthetic records would be wrong both ways: too narrow on tables
with many duplicate records, whose outcomes move together, and too wide where ties (which
score exactly one half) are common.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.stats as sps

from dpsynth.audit.distance import EncodedTable, nearest_neighbors

__all__ = ["N_CLOSENESS", "closer_to_real"]

#: Synthetic records compared (all of them up to this many).
N_CLOSENESS = 5000
#: Training and holdout records kept (each; equal numbers keep the share unbiased).
MAX_REFERENCE = 10000
#: Random relabellings behind the standard error.
N_PERMUTATIONS = 200
#: Share of synthetic records, nearest to the pool, behind the near share.
NEAR_SHARE = 0.25
#: Pooled neighbours kept per synthetic record for the relabellings.
K_POOL = 32


def _shares(d: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Share of rows whose nearest "real"-labelled neighbour beats the nearest other one.

    ``d``: (n, k) sorted distances to the pooled neighbours; ``labels``: (p, n, k) booleans,
    True for neighbours labelled real in each of ``p`` relabellings. A label absent from the
    ``k`` neighbours is taken to be just beyond the ``k``-th distance.
    """
    far = np.nextafter(d[:, -1], np.inf)[None, :]
    rows = np.arange(d.shape[0])[None, :]

    def first(mask: np.ndarray) -> np.ndarray:
        pos = np.argmax(mask, axis=2)
        return np.asarray(np.where(mask.any(axis=2), d[rows, pos], far))

    d_real, d_hold = first(labels), first(~labels)
    return np.asarray(((d_real < d_hold) + 0.5 * (d_real == d_hold)).mean(axis=1))


def _interval(share: float, se: float, confidence: float) -> list[float]:
    z = float(sps.norm.ppf(0.5 + confidence / 2))
    return [max(0.0, share - z * se), min(1.0, share + z * se)]


def closer_to_real(r: EncodedTable, s: EncodedTable, h: EncodedTable, *, rng: np.random.Generator,
                   max_rows: int = N_CLOSENESS, confidence: float = 0.95,
                   n_permutations: int = N_PERMUTATIONS, max_reference: int = MAX_REFERENCE,
                   near_share: float = NEAR_SHARE) -> dict[str, Any]:
    """Share of synthetic records nearer to a real record than to any holdout record.

    All synthetic records are used, or ``max_rows`` drawn at random. The real and holdout sets
    are first subsampled to one size (the smaller one's, at most ``max_reference``): a larger
    reference set is nearer on average, which would bias the share. Intervals are the share
    plus or minus ``z`` permutation standard errors (module docstring).

    Two shares are returned: over all synthetic records, and over the ``near_share`` of them
    nearest to the pooled real and holdout records (``closer_to_real_near_*``). Which records
    are near does not depend on which pooled record is real, so the near share has the same
    null expectation of one half, but it looks where copies are: a copied or lightly edited
    record sits next to its source, while an honest record near the pool is as likely to
    sit next to a holdout record.
    """
    n = min(max_rows, s.n_rows)
    q = s.take(np.sort(rng.choice(s.n_rows, size=n, replace=False))) if n < s.n_rows else s
    m = min(r.n_rows, h.n_rows, max_reference)  # equal sizes: a larger set is nearer on average
    if r.n_rows > m:
        r = r.take(np.sort(rng.choice(r.n_rows, size=m, replace=False)))
    if h.n_rows > m:
        h = h.take(np.sort(rng.choice(h.n_rows, size=m, replace=False)))
    d_real, d_hold = nearest_neighbors(q, r, k=1)[1][:, 0], nearest_neighbors(q, h, k=1)[1][:, 0]
    score = (d_real < d_hold) + 0.5 * (d_real == d_hold)
    pooled = np.minimum(d_real, d_hold)  # distance to the pool: the same under any relabelling
    near = pooled <= np.quantile(pooled, near_share)
    share, near_value = float(score.mean()), float(score[near].mean())
    se = near_se = 0.0
    if n_permutations > 1:
        pool = EncodedTable(np.vstack([r.num, h.num]), np.vstack([r.cat, h.cat]), r.num_columns,
                            r.cat_columns, r.scales)
        idx, d = nearest_neighbors(q, pool, k=min(K_POOL, 2 * m), rng=rng)
        sims, near_sims = [], []
        for start in range(0, n_permutations, 25):  # bounded memory: 25 x n x k booleans at a time
            p = min(25, n_permutations - start)
            is_real = (np.argsort(rng.random((p, 2 * m)), axis=1) < m)[:, idx]
            sims.append(_shares(d, is_real))
            near_sims.append(_shares(d[near], is_real[:, near]))
        se = float(np.std(np.concatenate(sims), ddof=1))
        near_se = float(np.std(np.concatenate(near_sims), ddof=1))
    return {"closer_to_real_share": share, "closer_to_real_ci": _interval(share, se, confidence),
            "closer_to_real_se": se, "closer_to_real_rows": n, "closer_to_real_reference_rows": m,
            "closer_to_real_ties": float(np.mean(d_real == d_hold)),
            "closer_to_real_near_share": near_value,
            "closer_to_real_near_ci": _interval(near_value, near_se, confidence),
            "closer_to_real_near_se": near_se, "closer_to_real_near_rows": int(near.sum())}
