"""The fast paths of the audit give the numbers of the plain computations they replace."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpsynth.audit import run_audit
from dpsynth.audit.distance import EncodedTable, MixedEncoder, distance_blocks, nearest_neighbors, top_outliers
from dpsynth.audit.targets import select_outlier_targets


def mixed(n: int, rng: np.random.Generator, *, nulls: bool = True) -> pd.DataFrame:
    df = pd.DataFrame({"x": rng.integers(0, 20, n).astype(float), "y": rng.normal(0, 1, n),
                       "a": rng.choice(list("abcd"), n), "b": rng.choice(list("uv"), n),
                       "c": rng.choice([f"k{i}" for i in range(30)], n)})
    if nulls:
        df.loc[rng.random(n) < 0.05, "x"] = np.nan
        df.loc[rng.random(n) < 0.05, "a"] = None
    return df


def plain_distances(q: EncodedTable, r: EncodedTable) -> np.ndarray:
    """The definition, one pair of columns at a time, in float64."""
    d = np.zeros((q.n_rows, r.n_rows))
    for j, s in enumerate(q.scales):
        a, b = q.num[:, j][:, None] / s, r.num[:, j][None, :] / s
        t = np.minimum(np.abs(a - b), 1.0)
        t = np.where(np.isnan(a) | np.isnan(b), 1.0, t)
        d += np.where(np.isnan(a) & np.isnan(b), 0.0, t)
    for j in range(q.cat.shape[1]):
        d += q.cat[:, j][:, None] != r.cat[:, j][None, :]
    return d / len(q.columns)


@pytest.mark.parametrize("block", [64, 1 << 21])
def test_blocks_equal_the_definition(block: int) -> None:
    rng = np.random.default_rng(0)
    real, syn = mixed(300, rng), mixed(500, rng)
    enc = MixedEncoder(real, [syn])
    q, r = enc.encode(real), enc.encode(syn)
    ref = plain_distances(q, r)
    got = np.vstack([d for _, d in distance_blocks(q, r, block_elements=block)])
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-15)
    idx, dist = nearest_neighbors(q, r, k=3)
    np.testing.assert_allclose(dist, np.sort(ref, axis=1)[:, :3], rtol=0, atol=1e-15)
    assert (ref[np.arange(300)[:, None], idx] <= ref.min(axis=1, keepdims=True) + 1).all()


@pytest.mark.parametrize(("n_rows", "n", "k", "sample"), [(400, 10, 5, 64), (400, 25, 3, 32),
                                                          (50, 10, 5, 2048), (3000, 10, 5, 256)])
def test_top_outliers_equal_the_full_ranking(n_rows: int, n: int, k: int, sample: int) -> None:
    rng = np.random.default_rng(n_rows + n)
    df = mixed(n_rows, rng)
    df.loc[:5, ["x", "y"]] = [[19.0, 6.0]] * 6  # a few far records, some tied
    t = MixedEncoder(df).encode(df)
    got = top_outliers(t, n, k=k, sample=sample, batch=37)
    np.testing.assert_array_equal(got, select_outlier_targets(t, n, k=k))


def test_exact_copy_counts_treat_nulls_and_signed_zero_as_equal() -> None:
    rng = np.random.default_rng(2)
    real, hold = mixed(200, rng), mixed(200, rng)
    real.loc[:9, "y"] = 0.0
    syn = pd.concat([real.iloc[:40], mixed(160, rng)], ignore_index=True)
    syn.loc[:9, "y"] = -0.0
    res = run_audit(real, syn, holdout=hold, quasi_identifiers=["a", "b"], secrets=["c"],
                    n_attacks=50, rng=np.random.default_rng(0)).to_json()
    keys = {tuple("null" if pd.isna(v) else v for v in row) for row in syn.itertuples(index=False)}
    expected = sum(tuple("null" if pd.isna(v) else (0.0 if v == 0 else v) for v in row) in keys
                   for row in real.itertuples(index=False))
    assert res["exact_copies"]["real_records_copied"] == expected >= 40
