"""Arrow backend: identical counts to the numpy engine on hostile Parquet data, any batching."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_backends_bounding import person_frame, person_schema
from test_backends_cases import (
    CAT,
    CLIQUES,
    EDG,
    INT,
    NAMES,
    ORD,
    SCHEMA,
    fixed_typed_frame,
    text_frame,
    text_rows,
    typed_frames,
)

import dpsynth.backends.arrow as arrow_mod
from dpsynth.backends.arrow import ArrowBackend
from dpsynth.backends.factory import open_backend
from dpsynth.backends.frames import normalise_frame
from dpsynth.backends.numpy import NumpyBackend
from dpsynth.errors import ConfigError, PrivateAccessError, SchemaError
from dpsynth.privacy.randomness import MechanismKey
from dpsynth.tabular.encoding import encode
from dpsynth.tabular.schema import parse_schema

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def _reference(frame: pd.DataFrame, schema: Any = SCHEMA, cliques: Any = CLIQUES) -> list[np.ndarray]:
    return NumpyBackend(encode(frame, schema)).count(cliques)


def _assert_same(got: list[np.ndarray], want: list[np.ndarray], cliques: Any = CLIQUES) -> None:
    for clique, g, w in zip(cliques, got, want, strict=True):
        assert g.dtype == np.int64 and g.shape == w.shape, clique
        np.testing.assert_array_equal(g, w, err_msg=str(clique))


def _write_parts(frame: pd.DataFrame, folder: Path, parts: int, row_group: int) -> Path:
    """``frame`` as ``parts`` Parquet files with small row groups (each its own dictionaries)."""
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    step = max(1, -(-len(frame) // parts))
    for i, start in enumerate(range(0, max(len(frame), 1), step)):
        pq.write_table(table.slice(start, step), folder / f"part-{i}.parquet", row_group_size=row_group)
    return folder


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(text_rows(), min_size=1, max_size=40), batch=st.integers(1, 7), threads=st.integers(1, 3))
def test_text_parquet_counts_match_numpy(
    rows: list[dict[str, Any]], batch: int, threads: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    frame = text_frame(rows).replace({"": None})
    folder = _write_parts(frame, tmp_path_factory.mktemp("text"), parts=3, row_group=5)
    want = _reference(pd.read_parquet(folder))
    backend = ArrowBackend(folder, SCHEMA, threads=threads, batch_rows=batch)
    _assert_same(backend.count(CLIQUES), want)
    backend.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=typed_frames(), batch=st.integers(1, 9))
def test_typed_sources_match_numpy(frame: pd.DataFrame, batch: int, tmp_path_factory: pytest.TempPathFactory) -> None:
    # A frame source: the same counts as the numpy engine on the frame itself.
    _assert_same(ArrowBackend(frame, SCHEMA, threads=2, batch_rows=batch).count(CLIQUES), _reference(frame))
    # A Parquet source: the same counts as the numpy engine on the file pandas reads back.
    path = tmp_path_factory.mktemp("typed") / "typed.parquet"
    pq.write_table(pa.Table.from_pandas(normalise_frame(frame), preserve_index=False), path, row_group_size=4)
    _assert_same(ArrowBackend(path, SCHEMA, batch_rows=batch).count(CLIQUES), _reference(pd.read_parquet(path)))


def test_integer_lookup_tables_clamp_and_keep_nulls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    values = [-(2**62), -4, -3, 0, 2, 5, 6, 99, 100, 101, 2**62, None]
    frame = pd.DataFrame({
        INT: pd.array(values, dtype="Int64"),
        EDG: pd.array([v if v is None else max(min(v, 2**31 - 1), -(2**31)) for v in values], dtype="Int32"),
    })
    schema = parse_schema({"columns": [c.model_dump() for c in SCHEMA.columns if c.name in (INT, EDG)]})
    cliques = [(INT,), (EDG,), (INT, EDG)]
    path = tmp_path / "ints.parquet"
    frame.to_parquet(path)
    want = _reference(pd.read_parquet(path), schema, cliques)
    backend = ArrowBackend(path, schema)
    assert set(backend._luts) == {0, 1}  # both integer columns use a lookup table
    _assert_same(backend.count(cliques), want, cliques)
    monkeypatch.setattr(arrow_mod, "LUT_LIMIT", 4)  # too wide: dictionaries instead
    wide = ArrowBackend(path, schema)
    assert not wide._luts
    _assert_same(wide.count(cliques), want, cliques)


def test_person_bounding_chooses_the_numpy_rows() -> None:
    sizes = list(np.random.default_rng(2).integers(1, 9, size=30))
    schema = person_schema([f"p{i}" for i in range(len(sizes))], k=3)
    frame = person_frame(sizes, null_rows=5).sample(frac=1.0, random_state=1).reset_index(drop=True)
    cliques = [("who",), ("label",), ("who", "label")]
    for label in ("a", "b"):
        key = MechanismKey.for_audit(label)
        want = open_backend("numpy", frame, schema, key=key).count(cliques)
        got = open_backend("arrow", frame, schema, key=key, threads=2, batch_rows=11).count(cliques)
        _assert_same(got, want, cliques)
    who = got[0]
    assert who.tolist() == [min(s, 3) for s in sizes] + [5]


def test_one_pass_cache_order_sources_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    typed = fixed_typed_frame()
    backend = ArrowBackend(pa.Table.from_pandas(normalise_frame(typed), preserve_index=False), SCHEMA)
    calls: list[int] = []
    real = backend._compute
    monkeypatch.setattr(backend, "_compute", lambda keys: calls.append(len(keys)) or real(keys))
    pairs = list(itertools.combinations(NAMES, 2))
    got = backend.count(pairs)
    assert calls == [len(pairs)]  # one pass for every pair
    again = backend.count([(b, a) for a, b in pairs])
    assert calls == [len(pairs)]  # answered from the cache, transposed
    for g, a in zip(got, again, strict=True):
        np.testing.assert_array_equal(g.T, a)
    _assert_same(got, _reference(typed, cliques=pairs), pairs)
    with pytest.raises(ConfigError, match="not in the encoded table"):
        backend.count([("nope",)])
    backend.close()
    with pytest.raises(PrivateAccessError):
        backend.count([(CAT,)])
    with pytest.raises(SchemaError, match=r"lacks schema columns \[.cat"):
        ArrowBackend(typed.drop(columns=[CAT]), SCHEMA)
    csv = tmp_path / "data.csv"
    csv.write_text("a\n1\n")
    with pytest.raises(ConfigError, match="duckdb for CSV"):
        ArrowBackend(csv, SCHEMA)
    with pytest.raises(ConfigError, match="does not exist"):
        ArrowBackend(tmp_path / "missing.parquet", SCHEMA)
    with pytest.raises(ConfigError, match="no Parquet files"):
        ArrowBackend(str(tmp_path / "none-*.parquet"), SCHEMA)
    with pytest.raises(TypeError):
        open_backend("arrow", typed, SCHEMA, memory_limit="1GB")
    empty = pd.DataFrame({n: pd.Series([], dtype=object) for n in ["pid", *NAMES]})
    counts = ArrowBackend(empty, SCHEMA).count([(CAT, ORD)])[0]
    assert counts.shape == (8, 3) and counts.sum() == 0


def test_glob_source_and_the_input_is_untouched(tmp_path: Path) -> None:
    typed = normalise_frame(fixed_typed_frame(90))
    _write_parts(typed, tmp_path / "parts", parts=4, row_group=7)
    before = {p.name: p.read_bytes() for p in (tmp_path / "parts").iterdir()}
    got = ArrowBackend(str(tmp_path / "parts" / "part-*.parquet"), SCHEMA, threads=2).count(CLIQUES)
    _assert_same(got, _reference(pd.read_parquet(tmp_path / "parts")))
    assert {p.name: p.read_bytes() for p in (tmp_path / "parts").iterdir()} == before


def test_files_with_different_types_do_not_share_codes(tmp_path: Path) -> None:
    # 1 == True == 1.0 in Python: remembered codes are keyed by the Arrow type as well.
    schema = parse_schema({"columns": [c.model_dump() for c in SCHEMA.columns if c.name == CAT]})
    parts = [pd.DataFrame({CAT: pd.Series(v)}) for v in ([1, 2, 1], [True, False, True], [1.0, 2.5, None])]
    for i, part in enumerate(parts):
        part.to_parquet(tmp_path / f"part-{i}.parquet")
    want = sum(_reference(p, schema, [(CAT,)])[0] for p in parts)
    got = ArrowBackend(tmp_path, schema, threads=1).count([(CAT,)])[0]
    np.testing.assert_array_equal(got, want)
