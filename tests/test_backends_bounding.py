"""Contribution bounding: at most k rows per person, by a keyed hash of the person's own rows.

The rule is the same in every engine (numpy, arrow, DuckDB here; Spark in
test_backends_spark.py): the key is the run's secret, never the user's seed, and which rows of
a person are kept depends on that person's rows and the key only.
"""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from dpsynth.backends.bounding import bound_contributions, encode_bounded
from dpsynth.backends.factory import open_backend
from dpsynth.errors import ConfigError, SchemaError
from dpsynth.privacy.randomness import MechanismKey
from dpsynth.tabular.schema import parse_schema

K = 2
KEY = MechanismKey.for_audit("bounding tests")


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
    ids = pd.Series(["a"] * 5 + ["b"] * 1 + [None] * 3 + ["c"] * 2, dtype=object)
    codes = np.arange(len(ids)).reshape(-1, 1)
    keep = bound_contributions(ids, codes, 2, KEY)
    kept = ids[keep]
    assert kept.value_counts().to_dict() == {"a": 2, "b": 1, "c": 2}
    assert kept.isna().sum() == 3
    with pytest.raises(ConfigError, match="max_rows"):
        bound_contributions(ids, codes, 0, KEY)
    with pytest.raises(ConfigError, match="shape"):
        bound_contributions(ids, codes[:3], 2, KEY)


def test_no_engine_takes_a_seed() -> None:
    # The user's seed is published in the manifest; it must have no path to bounding.
    assert "seed" not in inspect.signature(open_backend).parameters
    assert "key" in inspect.signature(open_backend).parameters


def test_fresh_keys_choose_different_rows_and_a_fixed_key_repeats() -> None:
    frame = person_frame([10] * 200)
    schema = person_schema([f"p{i}" for i in range(200)])
    a = open_backend("numpy", frame, schema).count([("label",)])[0]
    b = open_backend("numpy", frame, schema).count([("label",)])[0]
    assert a.sum() == b.sum() == 400 and not np.array_equal(a, b)
    c = open_backend("numpy", frame, schema, key=KEY).count([("label",)])[0]
    d = open_backend("numpy", frame, schema, key=KEY).count([("label",)])[0]
    np.testing.assert_array_equal(c, d)


@pytest.mark.parametrize("engine", ["numpy", "arrow", "duckdb"])
def test_per_person_counts_are_min_rows_k(engine: str) -> None:
    sizes = [1, 2, 3, 7, 12, 2, 5]
    schema = person_schema([f"p{i}" for i in range(len(sizes))])
    frame = person_frame(sizes, null_rows=4)
    backend = open_backend(engine, frame, schema, key=KEY)
    who, label = backend.count([("who",), ("label",)])
    assert who.tolist() == [min(s, K) for s in sizes] + [4]  # null ids: each is its own person
    assert label.sum() == who.sum()


@pytest.mark.parametrize("ids", ["text", "int", "int-with-nulls"])
def test_engines_keep_the_same_rows_for_the_same_key(ids: str) -> None:
    rng = np.random.default_rng(5)
    sizes = list(rng.integers(1, 9, size=40))
    schema = person_schema([f"p{i}" for i in range(len(sizes))])
    frame = person_frame(sizes, null_rows=3 if ids == "int-with-nulls" else 0)
    if ids != "text":
        frame["pid"] = frame["pid"].str[1:].astype(float if ids == "int-with-nulls" else int)
    frame = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    cliques = [("who", "label"), ("label",)]
    counts = {e: open_backend(e, frame, schema, key=KEY).count(cliques) for e in ("numpy", "arrow", "duckdb")}
    for engine in ("arrow", "duckdb"):
        for got, want in zip(counts[engine], counts["numpy"], strict=True):
            np.testing.assert_array_equal(got, want)
    # ... and the same rows in every counting pass: the 2-way table sums to the 1-way one.
    np.testing.assert_array_equal(counts["numpy"][0].sum(axis=0), counts["numpy"][1])


def _uniformity_pvalue(label_counts: np.ndarray) -> float:
    return float(stats.chisquare(label_counts).pvalue)


@pytest.mark.parametrize("engine", ["numpy", "duckdb"])
def test_kept_rows_are_a_uniform_choice(engine: str) -> None:
    # 600 people with 10 rows labelled 0..9 each; keeping 2 at random gives each label 120
    # expected. Keeping the first two rows (a biased rule) must be rejected by the same test.
    persons = 600
    frame = person_frame([10] * persons)
    schema = person_schema([f"p{i}" for i in range(persons)])
    labels = open_backend(engine, frame, schema, key=KEY).count([("label",)])[0]
    assert labels.sum() == 2 * persons
    assert _uniformity_pvalue(labels) > 1e-3
    biased = np.bincount(frame.groupby("pid").head(2)["label"], minlength=10)
    assert _uniformity_pvalue(biased) < 1e-6


def test_encode_bounded_row_unit_is_plain_encoding_and_checks_column() -> None:
    schema = parse_schema({"columns": [{"name": "x", "kind": "boolean"}]})
    frame = pd.DataFrame({"x": ["true", "no", "1"]})
    assert encode_bounded(frame, schema, KEY).codes[:, 0].tolist() == [1, 0, 1]
    with pytest.raises(SchemaError, match="privacy unit column"):
        encode_bounded(person_frame([2]).drop(columns=["pid"]), person_schema(["p0"]), KEY)


# --- the neighbouring-dataset property, and a planted copy of the old bug it must reject ---

def _old_seeded_mask(ids: pd.Series, k: int, seed: int) -> np.ndarray:
    """The bounding the red team broke: a permutation of all n rows from the published seed."""
    groups, _ = pd.factorize(ids, use_na_sentinel=True)
    perm = np.random.default_rng(seed).permutation(len(groups))
    shuffled = groups[perm]
    rank = pd.Series(shuffled).groupby(shuffled).cumcount().to_numpy()
    keep = np.empty(len(groups), dtype=bool)
    keep[perm] = (rank < k) | (shuffled < 0)
    return keep


def _marginals(codes: np.ndarray, keep: np.ndarray, sizes: tuple[int, int]) -> list[np.ndarray]:
    kept = codes[keep]
    one = [np.bincount(kept[:, j], minlength=sizes[j]) for j in range(2)]
    two = np.bincount(np.ravel_multi_index((kept[:, 0], kept[:, 1]), sizes), minlength=sizes[0] * sizes[1])
    return [*one, two]


def _max_move(rows: list[tuple[int, int, int]], extra: list[tuple[int, int]], pos: list[int], k: int,
              mask: object) -> int:
    """Largest L1 change of any marginal when one new person's rows are spliced in at ``pos``."""
    sizes = (4, 5)
    base = pd.DataFrame(rows, columns=["pid", "a", "b"])
    new = base.copy()
    for (a, b), p in sorted(zip(extra, pos, strict=True), key=lambda t: -t[1]):
        top, bottom = new.iloc[:p], new.iloc[p:]
        new = pd.concat([top, pd.DataFrame([(10_000, a, b)], columns=new.columns), bottom], ignore_index=True)
    moves = []
    before = _marginals(base[["a", "b"]].to_numpy(), mask(base, k), sizes)  # type: ignore[operator]
    after = _marginals(new[["a", "b"]].to_numpy(), mask(new, k), sizes)  # type: ignore[operator]
    for x, y in zip(before, after, strict=True):
        moves.append(int(np.abs(x - y).sum()))
    return max(moves)


def _keyed(frame: pd.DataFrame, k: int) -> np.ndarray:
    return bound_contributions(frame["pid"], frame[["a", "b"]].to_numpy(), k, KEY)


person_rows = st.lists(st.tuples(st.integers(0, 30), st.integers(0, 3), st.integers(0, 4)), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(rows=person_rows, extra=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 4)), min_size=1, max_size=4),
       data=st.data(), k=st.integers(1, 3))
def test_adding_a_person_anywhere_moves_each_marginal_by_at_most_k(
    rows: list[tuple[int, int, int]], extra: list[tuple[int, int]], data: st.DataObject, k: int
) -> None:
    pos = [data.draw(st.integers(0, len(rows))) for _ in extra]  # first, middle, last, interleaved
    assert _max_move(rows, extra, pos, k, _keyed) <= k


def test_the_property_rejects_the_old_seeded_bounding() -> None:
    # 2,000 persons x 5 rows, max_rows 1 (the red team's setting): one person added first
    # shifts the permutation of everyone else's rows.
    rng = np.random.default_rng(0)
    rows = [(p, int(rng.integers(4)), int(rng.integers(5))) for p in range(2000) for _ in range(5)]
    moved = _max_move(rows, [(1, 1)], [0], 1, lambda f, k: _old_seeded_mask(f["pid"], k, seed=0))
    assert moved > 10
    assert _max_move(rows, [(1, 1)], [0], 1, _keyed) <= 1
