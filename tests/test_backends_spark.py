"""Spark backend: the same count tensors as numpy (and DuckDB) on hostile data, and bounding.

One module-scoped ``local[2]`` session serves every test; Spark actions cost seconds, so the
cases are few and batched (many rows per hypothesis-free example, all cliques in one job).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_backends_bounding import person_frame, person_schema
from test_backends_cases import (
    CAT,
    CLIQUES,
    SCHEMA,
    fixed_typed_frame,
    text_frame,
    text_rows,
    write_csv,
)

from dpsynth.backends.factory import open_backend
from dpsynth.backends.numpy import NumpyBackend
from dpsynth.errors import ConfigError, PrivateAccessError
from dpsynth.privacy.randomness import MechanismKey
from dpsynth.tabular.encoding import encode, read_frame

pytestmark = [
    pytest.mark.spark,
    pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs java"),
]
pytest.importorskip("pyspark")


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from dpsynth.backends.spark import local_session

    session = local_session(cores=2, driver_memory="1g")
    yield session
    session.stop()


def _same(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    for clique, g, w in zip(CLIQUES, got, want, strict=True):
        assert g.dtype == np.int64 and g.shape == w.shape, clique
        np.testing.assert_array_equal(g, w, err_msg=str(clique))


@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck), phases=[Phase.generate])
@given(rows=st.lists(text_rows(), min_size=30, max_size=60))
def test_csv_counts_match_numpy_and_duckdb(
    spark: Any, tmp_path_factory: pytest.TempPathFactory, rows: list[dict[str, Any]]
) -> None:
    path = write_csv(text_frame(rows), tmp_path_factory.mktemp("csv") / "data.csv")
    want = NumpyBackend(encode(read_frame(path, SCHEMA), SCHEMA)).count(CLIQUES)
    backend = open_backend("spark", path, SCHEMA, spark=spark)
    _same(backend.count(CLIQUES), want)
    _same(open_backend("duckdb", path, SCHEMA).count(CLIQUES), want)
    backend.close()
    with pytest.raises(PrivateAccessError):
        backend.count(CLIQUES)


def test_typed_parquet_and_dataframe_sources(spark: Any, tmp_path: Path) -> None:
    frame = fixed_typed_frame(90)
    frame[CAT] = frame[CAT].map(lambda v: v if v is None or isinstance(v, str) else repr(v))  # Parquet: one type
    frame.to_parquet(tmp_path / "typed.parquet")
    want = NumpyBackend(encode(frame, SCHEMA)).count(CLIQUES)
    backend = open_backend("spark", str(tmp_path / "typed.parquet"), SCHEMA, spark=spark)
    _same(backend.count(CLIQUES), want)
    again = backend.count([tuple(reversed(c)) for c in CLIQUES])  # cached, transposed
    for a, w in zip(again, want, strict=True):
        np.testing.assert_array_equal(a, w.transpose(list(reversed(range(w.ndim)))))
    with pytest.raises(ConfigError, match="not in the encoded table"):
        backend.count([("nope",)])
    sdf = spark.read.parquet(str(tmp_path / "typed.parquet"))
    sdf.createOrReplaceTempView("typed_table")
    _same(open_backend("spark", "typed_table", SCHEMA, spark=spark).count(CLIQUES), want)


def test_bounding_per_person_and_uniform(spark: Any) -> None:
    from scipy import stats

    sizes = [1, 3, 12] + [10] * 300
    schema = person_schema([f"p{i}" for i in range(len(sizes))])
    frame = person_frame(sizes, null_rows=4)
    sdf = spark.createDataFrame(frame.astype({"label": "int64"}))
    who, label = open_backend("spark", sdf, schema, spark=spark, key=MechanismKey.for_audit("spark")).count(
        [("who",), ("label",)]
    )
    assert who.tolist() == [min(s, 2) for s in sizes] + [4]  # null ids: each its own person
    # Expected label counts under a uniform choice of 2 rows per person (labels are j % 10).
    expected = np.full(10, 300 * 2 / 10)
    expected[0] += 1 + 4  # the one-row person and the null-id rows
    expected[:3] += 2 / 3
    expected += np.array([2, 2, 1, 1, 1, 1, 1, 1, 1, 1]) * 2 / 12
    assert label.sum() == who.sum()
    assert stats.chisquare(label, expected * label.sum() / expected.sum()).pvalue > 1e-3
    first_two = np.bincount(frame.groupby("pid", dropna=False).head(2)["label"], minlength=10)
    assert stats.chisquare(first_two, expected * first_two.sum() / expected.sum()).pvalue < 1e-6
    # One bounding rule for every engine: the same key keeps the same rows as numpy.
    pair = open_backend("spark", sdf, schema, spark=spark, key=MechanismKey.for_audit("spark")).count(
        [("who", "label")]
    )[0]
    want = open_backend("numpy", frame, schema, key=MechanismKey.for_audit("spark")).count([("who", "label")])[0]
    np.testing.assert_array_equal(pair, want)
