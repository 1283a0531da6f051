"""DuckDB backend: identical counts to the numpy reference on hostile data, one pass, spill."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_backends_cases import (
    CAT,
    CLIQUES,
    FLAG,
    NAMES,
    ORD,
    SCHEMA,
    fixed_typed_frame,
    text_frame,
    text_rows,
    typed_frames,
    write_csv,
)

from dpsynth.backends.duckdb import DuckDBBackend
from dpsynth.backends.factory import open_backend
from dpsynth.backends.numpy import NumpyBackend
from dpsynth.errors import ConfigError, PrivateAccessError, SchemaError
from dpsynth.tabular.encoding import encode, read_frame
from dpsynth.tabular.schema import parse_schema

duckdb = pytest.importorskip("duckdb")


def _reference(frame: pd.DataFrame) -> list[np.ndarray]:
    return NumpyBackend(encode(frame, SCHEMA)).count(CLIQUES)


def _assert_same(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    for clique, g, w in zip(CLIQUES, got, want, strict=True):
        assert g.dtype == np.int64 and g.shape == w.shape, clique
        np.testing.assert_array_equal(g, w, err_msg=str(clique))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(text_rows(), min_size=1, max_size=25))
def test_csv_counts_match_numpy(rows: list[dict[str, Any]], tmp_path: Path) -> None:
    path = write_csv(text_frame(rows), tmp_path / "data.csv")
    want = NumpyBackend(encode(read_frame(path, SCHEMA), SCHEMA)).count(CLIQUES)
    backend = DuckDBBackend(path, SCHEMA)
    _assert_same(backend.count(CLIQUES), want)
    backend.close()


@settings(max_examples=12, deadline=None)
@given(rows=st.lists(text_rows(), min_size=1, max_size=25))
def test_text_frame_counts_match_numpy(rows: list[dict[str, Any]]) -> None:
    frame = text_frame(rows)
    with_nulls = frame.replace({"": None})  # CSV reading would make these null; a frame keeps them
    backend = DuckDBBackend(with_nulls, SCHEMA)
    _assert_same(backend.count(CLIQUES), _reference(with_nulls))


@settings(max_examples=20, deadline=None)
@given(frame=typed_frames())
def test_typed_frame_counts_match_numpy(frame: pd.DataFrame) -> None:
    backend = DuckDBBackend(frame, SCHEMA)
    _assert_same(backend.count(CLIQUES), _reference(frame))


def test_parquet_glob_and_relation_sources(tmp_path: Path) -> None:
    rows = [
        {"pid": 1, CAT: "é", ORD: "hi", FLAG: True},
        {"pid": 2, CAT: "e\u0301", ORD: "zzz", FLAG: None},
        {"pid": 3, CAT: None, ORD: None, FLAG: False},
    ]
    data = pd.DataFrame(rows)
    small = parse_schema({"columns": [c.model_dump() for c in SCHEMA.columns if c.name in data.columns]})
    data.iloc[:2].to_parquet(tmp_path / "part-0.parquet")
    data.iloc[2:].to_parquet(tmp_path / "part-1.parquet")
    want = NumpyBackend(encode(data, small)).count([(CAT, ORD, FLAG)])[0]
    glob = DuckDBBackend(str(tmp_path / "part-*.parquet"), small).count([(CAT, ORD, FLAG)])[0]
    np.testing.assert_array_equal(glob, want)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'Asia/Tokyo'")
    rel = con.from_df(data)
    np.testing.assert_array_equal(DuckDBBackend(rel, small).count([(CAT, ORD, FLAG)])[0], want)
    assert con.execute("SELECT current_setting('TimeZone')").fetchall()[0][0] == "Asia/Tokyo"


def test_bom_and_spaced_header(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffa b, flag\nx, yes\ny,NA\n".encode())
    schema = parse_schema(
        {"columns": [{"name": "a b", "kind": "categorical", "categories": ["x", "y"]},
                     {"name": "flag", "kind": "boolean", "nullable": True}]}
    )
    counts = DuckDBBackend(path, schema).count([("a b", "flag")])[0]
    np.testing.assert_array_equal(
        counts, NumpyBackend(encode(read_frame(path, schema), schema)).count([("a b", "flag")])[0]
    )
    assert counts.tolist() == [[0, 1, 0], [0, 0, 1]]


@pytest.fixture
def typed() -> pd.DataFrame:
    return fixed_typed_frame()


def test_one_pass_cache_order_and_errors(monkeypatch: pytest.MonkeyPatch, typed: pd.DataFrame) -> None:
    frame = pd.DataFrame({n: [] for n in ["pid", *NAMES]})
    rows = typed
    backend = DuckDBBackend(rows, SCHEMA)
    queries: list[str] = []
    real = backend._stream
    monkeypatch.setattr(backend, "_stream", lambda sql: queries.append(sql) or real(sql))
    pairs = list(itertools.combinations(NAMES, 2))
    got = backend.count(pairs)
    assert len(queries) == 1 and "GROUP BY __k" in queries[0]  # one pre-aggregating pass
    assert backend._maps[CAT] is not None  # text columns go through a value map
    again = backend.count([(b, a) for a, b in pairs])
    assert len(queries) == 1  # answered from the cache, transposed
    for g, a in zip(got, again, strict=True):
        np.testing.assert_array_equal(g.T, a)
    with pytest.raises(ConfigError, match="not in the encoded table"):
        backend.count([("nope",)])
    with pytest.raises(ConfigError, match="repeats"):
        backend.count([(CAT, CAT)])
    backend.close()
    with pytest.raises(PrivateAccessError):
        backend.count([(CAT,)])
    with pytest.raises(SchemaError, match="lacks"):
        DuckDBBackend(frame.drop(columns=[CAT]), SCHEMA)
    empty = DuckDBBackend(frame.astype(object), SCHEMA).count([(CAT, ORD)])[0]
    assert empty.shape == (8, 3) and empty.sum() == 0


def test_spills_under_a_small_memory_limit(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 200_000
    frame = pd.DataFrame({"a": rng.integers(0, 100, n), "b": rng.integers(0, 100, n), "c": rng.integers(0, 50, n)})
    schema = parse_schema(
        {"columns": [{"name": k, "kind": "numeric", "dtype": "int", "bounds": [0, 99], "bins": 100} for k in "abc"]}
    )
    frame.to_parquet(tmp_path / "big.parquet")
    backend = DuckDBBackend(
        tmp_path / "big.parquet", schema, memory_limit="64MB", temp_directory=str(tmp_path / "spill"), threads=1
    )
    got = backend.count([("a", "b"), ("a", "c"), ("b", "c")])
    want = NumpyBackend(encode(frame, schema)).count([("a", "b"), ("a", "c"), ("b", "c")])
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_factory_engines_agree(typed: pd.DataFrame) -> None:
    frame = typed
    a = open_backend("numpy", frame, SCHEMA).count(CLIQUES)
    b = open_backend("duckdb", frame, SCHEMA, memory_limit="1GB").count(CLIQUES)
    _assert_same(b, a)
    with pytest.raises(ConfigError, match="must be one of"):
        open_backend("polars", frame, SCHEMA)
    with pytest.raises(ConfigError, match="takes no options"):
        open_backend("numpy", frame, SCHEMA, memory_limit="1GB")


def test_person_bounding_over_parquet_text_keys_stays_in_memory(tmp_path: Path) -> None:
    """Parquet stores text keys dictionary-encoded per row group; DuckDB's window over such a key
    ran out of memory (here in half a second, against a 100 MB limit) until the key was copied
    out of the dictionary."""
    from dpsynth.privacy.randomness import MechanismKey

    rng = np.random.default_rng(2)
    n = 300_000
    frame = pd.DataFrame({"pid": [f"p{i}" for i in np.sort(rng.integers(0, 6_000, n))],
                          "a": rng.integers(0, 6, n).astype(str), "b": rng.integers(0, 16, n)})
    frame.to_parquet(tmp_path / "rows.parquet", index=False, row_group_size=122_880)
    schema = parse_schema({"columns": [
        {"name": "pid", "kind": "identifier"},
        {"name": "a", "kind": "categorical", "categories": [str(i) for i in range(6)]},
        {"name": "b", "kind": "numeric", "dtype": "int", "bounds": [0, 15], "bins": 16}],
        "privacy_unit": {"kind": "person", "column": "pid", "max_rows": 40}})
    key = MechanismKey.fresh()
    backend = DuckDBBackend(tmp_path / "rows.parquet", schema, key=key, memory_limit="100MB",
                            temp_directory=str(tmp_path / "spill"), threads=1)
    got = backend.count([("a", "b")])[0]
    reference = open_backend("numpy", frame, schema, key=key)
    want = reference.count([("a", "b")])[0]
    np.testing.assert_array_equal(got, want)
    assert got.sum() < n - 50_000  # heavy persons were cut to 40 rows
    # later passes scan the bounded rows stored by the first one, and count the same
    assert backend._bounded is not None
    for g, w in zip(backend.count([("a",), ("b",)]), reference.count([("a",), ("b",)]), strict=True):
        np.testing.assert_array_equal(g, w)


def test_many_marginals_of_a_wide_person_table_fit_in_memory() -> None:
    """A key space over 62 bits counts through GROUPING SETS; DuckDB reserves memory per set, and
    AIM's 800 candidate marginals of a 2,000-row table once exceeded 2 GB. Sets go 60 at a time."""
    from dpsynth.privacy.randomness import MechanismKey

    rng = np.random.default_rng(3)
    n, width = 2_000, 16
    frame = pd.DataFrame({f"x{j}": rng.integers(0, 32, n) for j in range(width)})
    frame.insert(0, "pid", [f"p{i}" for i in rng.integers(0, 500, n)])
    schema = parse_schema({"columns": [{"name": "pid", "kind": "identifier"}, *(
        {"name": f"x{j}", "kind": "numeric", "dtype": "int", "bounds": [0, 31], "bins": 32} for j in range(width))],
        "privacy_unit": {"kind": "person", "column": "pid", "max_rows": 3}})
    cliques = list(itertools.combinations([f"x{j}" for j in range(width)], 3))[:400]
    key = MechanismKey.fresh()
    backend = DuckDBBackend(frame, schema, key=key, memory_limit="300MB", threads=1)
    got = backend.count(cliques)
    want = open_backend("numpy", frame, schema, key=key).count(cliques)
    for clique, g, w in zip(cliques, got, want, strict=True):
        np.testing.assert_array_equal(g, w, err_msg=str(clique))


def test_spills_go_to_a_private_folder_not_the_working_directory(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckDB's default spill folder is ``.tmp`` in the working directory; private rows go to an
    owner-only folder of their own instead, removed when the backend closes."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"a": rng.integers(0, 100, 300_000), "b": rng.integers(0, 100, 300_000)})
    schema = parse_schema({"columns": [{"name": k, "kind": "numeric", "dtype": "int", "bounds": [0, 99], "bins": 100}
                                       for k in "ab"]})
    backend = DuckDBBackend(frame, schema, memory_limit="32MB", threads=1)
    spill = Path(backend._con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0])
    assert spill.name.startswith("dpsynth-spill-") and spill.stat().st_mode & 0o077 == 0
    assert backend.count([("a", "b")])[0].sum() == 300_000
    backend.close()
    assert not spill.exists() and not (tmp_path / ".tmp").exists()
