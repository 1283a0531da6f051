"""Gower-like distance, nulls, chunking, odd column names, and outlier target selection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpsynth.audit.distance import MixedEncoder, distance_blocks, nearest_neighbors
from dpsynth.audit.targets import outlier_scores, select_outlier_targets
from dpsynth.errors import SchemaError


def test_distance_hand_values() -> None:
    a = pd.DataFrame({"weight (kg)": [50.0, np.nan, 70.0], "côté": ["L", None, "R"]})
    b = pd.DataFrame({"weight (kg)": [60.0, np.nan], "côté": ["L", None]})
    enc = MixedEncoder(a, [b], numeric_ranges={"weight (kg)": (40.0, 140.0)})
    d = next(distance_blocks(enc.encode(a), enc.encode(b)))[1]
    # row0 vs b0: |50-60|/100 = 0.1, L==L -> mean 0.05; row0 vs b1: null vs value 1, L vs null 1
    assert d[0] == pytest.approx([0.05, 1.0])
    # row1 (nulls) vs b1 (nulls): nulls equal nulls
    assert d[1] == pytest.approx([1.0, 0.0])
    assert d[2] == pytest.approx([0.5 * (0.1 + 1.0), 1.0])


def test_numeric_distance_is_capped_and_robust_scale_used() -> None:
    a = pd.DataFrame({"x": np.arange(101, dtype=float)})
    enc = MixedEncoder(a)
    assert enc.scales[0] == pytest.approx(98.0)  # q99 - q1 of 0..100
    far = pd.DataFrame({"x": [1e6]})
    d = next(distance_blocks(enc.encode(far), enc.encode(a.iloc[:1])))[1]
    assert d[0, 0] == 1.0


def test_chunked_search_equals_full_search() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a b": rng.normal(size=300), "c(d)": rng.integers(0, 5, 300).astype(str)})
    enc = MixedEncoder(df)
    t = enc.encode(df)
    i1, d1 = nearest_neighbors(t.take(np.arange(50)), t, k=3)
    i2, d2 = nearest_neighbors(t.take(np.arange(50)), t, k=3, block_elements=301)
    assert np.array_equal(i1, i2) and np.allclose(d1, d2)
    assert np.array_equal(i1[:, 0], np.arange(50))  # self is nearest at distance 0
    assert np.all(np.diff(d1, axis=1) >= 0)


def test_bad_columns_raise_without_values() -> None:
    real = pd.DataFrame({"age": [1, 2, 3], "city": ["a", "b", "c"]})
    with pytest.raises(SchemaError, match="'city' is missing"):
        MixedEncoder(real, [real[["age"]]])
    enc = MixedEncoder(real)
    bad = pd.DataFrame({"age": ["SECRET-VALUE", 2, 3], "city": ["a", "b", "c"]})
    with pytest.raises(SchemaError) as err:
        enc.encode(bad, name="synthetic")
    assert "SECRET-VALUE" not in str(err.value) and "'age'" in str(err.value)


def test_planted_outliers_are_selected() -> None:
    rng = np.random.default_rng(7)
    n = 990
    body = pd.DataFrame({
        "age": rng.normal(40, 5, n).round(),
        "income": rng.normal(50_000, 5_000, n).round(),
        "job": rng.choice(["a", "b", "c"], n),
        "sex": rng.choice(["F", "M"], n),
    })
    outliers = pd.DataFrame({
        "age": rng.uniform(85, 100, 10).round(),
        "income": rng.uniform(150_000, 250_000, 10).round(),
        "job": ["rare-job"] * 10,
        "sex": rng.choice(["F", "M"], 10),
    })
    df = pd.concat([body, outliers], ignore_index=True).sample(frac=1.0, random_state=3)
    planted = set(np.flatnonzero(df["job"].to_numpy() == "rare-job"))
    enc = MixedEncoder(df, numeric_ranges={"age": (0, 100), "income": (0, 300_000)})
    top = select_outlier_targets(enc.encode(df.reset_index(drop=True)), 10, k=5)
    assert len(planted & set(top.tolist())) >= 8
    scores = outlier_scores(enc.encode(df.reset_index(drop=True)), k=5)
    assert scores.shape == (1000,)
