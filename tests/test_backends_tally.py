"""Union plans, packed keys and the SQL engines' fallbacks (no value map, key too wide)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_backends_cases import CLIQUES, NAMES, SCHEMA, fixed_typed_frame, write_csv

import dpsynth.backends.sql as sqlmod
from dpsynth.backends.duckdb import DuckDBBackend
from dpsynth.backends.numpy import NumpyBackend
from dpsynth.backends.tally import MAX_KEY, UnionPlan, plan_unions, strides
from dpsynth.errors import DPSynthError
from dpsynth.tabular.encoding import encode, read_frame
from dpsynth.tabular.schema import parse_schema


def _direct(codes: np.ndarray, weights: np.ndarray, s: tuple[int, ...], sizes: list[int]) -> np.ndarray:
    shape = tuple(sizes[c] for c in s)
    flat = np.ravel_multi_index(tuple(codes[:, c] for c in s), shape)
    return np.bincount(flat, weights=weights, minlength=int(np.prod(shape))).reshape(shape).astype(np.int64)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 9), min_size=1, max_size=7),
    cap=st.sampled_from([1, 8, 64, 4096]),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_union_plan_matches_direct_counts(sizes: list[int], cap: int, seed: int, data: st.DataObject) -> None:
    k = len(sizes)
    sets = data.draw(
        st.lists(
            st.permutations(range(k)).flatmap(lambda p: st.integers(1, k).map(lambda m: tuple(p[:m]))),
            min_size=1,
            max_size=12,
        )
    )
    rng = np.random.default_rng(seed)
    codes = np.stack([rng.integers(0, s, 300) for s in sizes], axis=1)
    weights = rng.integers(1, 4, 300)
    plan = UnionPlan(sizes, sets, cap=cap)
    for s in sets:  # every set sits in a union; unions respect the cap unless a set alone exceeds it
        assert any(set(s) <= set(u) for u in plan.unions)
    for j, u in enumerate(plan.unions):
        assert plan.cells(j) <= cap or any(set(u) == set(s) for s in sets)
    flat, counts = [], []
    for j in range(len(plan.unions)):
        idx = sum(codes[:, c] * m for c, m in plan.flat_terms(j))
        uniq, inv = np.unique(idx, return_inverse=True)
        flat.append(uniq)
        counts.append(np.bincount(inv.ravel(), weights=weights).astype(np.int64))
    for s, got in zip(sets, plan.assemble(flat, counts), strict=True):
        np.testing.assert_array_equal(got, _direct(codes, weights, s, sizes))


def test_plan_groups_all_pairs_into_few_unions() -> None:
    sizes = [14, 9, 11, 16, 16, 7, 15, 6, 5, 2, 10, 7, 14, 42, 2]  # Adult's domain
    unions = plan_unions(list(itertools.combinations(range(15), 2)), sizes, 1 << 18)
    assert len(unions) < 25
    assert all(np.prod([sizes[c] for c in u]) <= 1 << 18 for u in unions)


def test_strides_and_key_limit() -> None:
    assert strides([3, 4, 5]) == [20, 5, 1]
    assert strides([2] * 62) is not None and strides([2] * 63) is None
    assert MAX_KEY == 1 << 62
    plan = UnionPlan([3, 4], [(0, 1)])
    with pytest.raises(DPSynthError, match="outside"):
        plan.assemble([np.array([12])], [np.array([1])])


def test_columns_above_the_map_limit_are_encoded_row_by_row(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = fixed_typed_frame()
    want = NumpyBackend(encode(frame, SCHEMA)).count(CLIQUES)
    monkeypatch.setattr(sqlmod, "MAP_LIMIT", 2)
    backend = DuckDBBackend(frame, SCHEMA)
    got = backend.count(CLIQUES)
    assert all(m is None for m in backend._maps.values())  # every map was over the limit and dropped
    assert backend._con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchall()[0][0] == 0
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_key_wider_than_62_bits_uses_grouping_sets_on_codes() -> None:
    names = [f"c{i}" for i in range(9)]
    schema = parse_schema(
        {"columns": [{"name": n, "kind": "categorical", "categories": list(range(200))} for n in names]}
    )
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({n: rng.integers(0, 220, 500) for n in names})  # some values undeclared
    assert strides([200] * 9) is None
    cliques = [*list(itertools.combinations(names, 2))[:10], (names[0],)]
    got = DuckDBBackend(frame, schema).count(cliques)
    want = NumpyBackend(encode(frame, schema)).count(cliques)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_driver_and_engine_union_counting_agree() -> None:
    frame = fixed_typed_frame(300)
    pairs = list(itertools.combinations(NAMES, 2))
    driver = DuckDBBackend(frame, SCHEMA)
    engine = DuckDBBackend(frame, SCHEMA)
    engine._union_keys_in_driver = False
    for a, b in zip(driver.count(pairs), engine.count(pairs), strict=True):
        np.testing.assert_array_equal(a, b)


def test_more_than_sixty_unions_are_counted_in_several_queries(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = fixed_typed_frame(200)
    triples = list(itertools.combinations(NAMES, 3))
    want = NumpyBackend(encode(frame, SCHEMA)).count(triples)
    backend = DuckDBBackend(frame, SCHEMA)
    backend._union_keys_in_driver = False  # the engine-side path (Spark's, and DuckDB relations')
    queries: list[str] = []
    real = backend._query
    monkeypatch.setattr(backend, "_query", lambda sql: queries.append(sql) or real(sql))
    monkeypatch.setattr(sqlmod, "UnionPlan", lambda sizes, sets: UnionPlan(sizes, sets, cap=1))  # one union per set
    got = backend.count(triples)
    assert len(triples) > 60 and len(queries) == -(-len(triples) // 60)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_csv_maps_come_from_one_scan_and_are_dropped(tmp_path: Path) -> None:
    frame = fixed_typed_frame(120)
    path = write_csv(frame, tmp_path / "data.csv")
    schema_frame = read_frame(path, SCHEMA)
    want = NumpyBackend(encode(schema_frame, SCHEMA)).count(CLIQUES)
    backend = DuckDBBackend(path, SCHEMA)
    got = backend.count(CLIQUES)
    assert backend._one_scan_maps and backend._extra_maps  # one stacked scan served every text column
    assert sum(m is not None for m in backend._maps.values()) > 1
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    tables = backend._con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchall()[0][0]
    assert tables == len(backend._extra_maps) + sum(m is not None for m in backend._maps.values())
    backend._close_maps()
    assert backend._con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchall()[0][0] == 0
