"""Contribution bounding: at most k rows per person, chosen uniformly, in numpy and DuckDB."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dpsynth.backends.bounding import bound_contributions, encode_bounded
from dpsynth.backends.factory import open_backend
from dpsynth.errors import ConfigError, SchemaError
from dpsynth.schema import parse_schema

K = 2


def person_schema(persons: list[str], k: int = K) -> object:
    return parse_schema(
        {
            "privacy_unit": {"kind": "person", "column": "pid", "max_rows": k},
            "columns": [
                {"name": "pid", "kind": "identifier"},
                {"name": "who", "kind": "categorical", "categories": persons, "nullable": True},
                {"name": "label", "kind": "ordinal", "categories": list(range(10))},
            ],
        }
    )


def person_frame(rows_per_person: list[int], null_rows: int = 0) -> pd.DataFrame:
    pids = [f"p{i}" for i, r in enumerate(rows_per_person) for _ in range(r)] + [None] * null_rows
    labels = [j % 10 for r in rows_per_person for j in range(r)] + [0] * null_rows
    return pd.DataFrame({"pid": pids, "who": pids, "label": labels})


def test_mask_keeps_min_rows_k_per_person_and_all_null_ids() -> None:
    rng = np.random.default_rng(0)
    ids = pd.Series(["a"] * 5 + ["b"] * 1 + [None] * 3 + ["c"] * 2, dtype=object)
    keep = bound_contributions(ids, 2, rng)
    kept = ids[keep]
    assert kept.value_counts().to_dict() == {"a": 2, "b": 1, "c": 2}
    assert kept.isna().sum() == 3
    with pytest.raises(ConfigError, match="max_rows"):
        bound_contributions(ids, 0, rng)


@pytest.mark.parametrize("engine", ["numpy", "duckdb"])
def test_per_person_counts_are_min_rows_k(engine: str) -> None:
    sizes = [1, 2, 3, 7, 12, 2, 5]
    schema = person_schema([f"p{i}" for i in range(len(sizes))])
    frame = person_frame(sizes, null_rows=4)
    backend = open_backend(engine, frame, schema, seed=3)
    who, label = backend.count([("who",), ("label",)])
    assert who.tolist() == [min(s, K) for s in sizes] + [4]  # null ids: each is its own person
    assert label.sum() == who.sum()


def test_same_seed_same_counts_and_engines_agree_on_totals() -> None:
    sizes = list(np.random.default_rng(5).integers(1, 9, size=40))
    schema = person_schema([f"p{i}" for i in range(len(sizes))])
    frame = person_frame(sizes)
    for engine in ("numpy", "duckdb"):
        a = open_backend(engine, frame, schema, seed=11).count([("who", "label")])[0]
        b = open_backend(engine, frame, schema, seed=11).count([("who", "label")])[0]
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a.sum(axis=1), [*np.minimum(sizes, K), 0])


def _uniformity_pvalue(label_counts: np.ndarray) -> float:
    return float(stats.chisquare(label_counts).pvalue)


@pytest.mark.parametrize("engine", ["numpy", "duckdb"])
def test_kept_rows_are_a_uniform_choice(engine: str) -> None:
    # 600 people with 10 rows labelled 0..9 each; keeping 2 at random gives each label 120
    # expected. Keeping the first two rows (a biased rule) must be rejected by the same test.
    persons = 600
    frame = person_frame([10] * persons)
    schema = person_schema([f"p{i}" for i in range(persons)])
    labels = open_backend(engine, frame, schema, seed=7).count([("label",)])[0]
    assert labels.sum() == 2 * persons
    assert _uniformity_pvalue(labels) > 1e-3
    biased = np.bincount(frame.groupby("pid").head(2)["label"], minlength=10)
    assert _uniformity_pvalue(biased) < 1e-6


def test_encode_bounded_row_unit_is_plain_encoding_and_checks_column() -> None:
    schema = parse_schema({"columns": [{"name": "x", "kind": "boolean"}]})
    frame = pd.DataFrame({"x": ["true", "no", "1"]})
    assert encode_bounded(frame, schema, np.random.default_rng(0)).codes[:, 0].tolist() == [1, 0, 1]
    with pytest.raises(SchemaError, match="privacy unit column"):
        encode_bounded(person_frame([2]).drop(columns=["pid"]), person_schema(["p0"]), np.random.default_rng(0))
