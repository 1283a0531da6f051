"""Atoms, boolean labels and null tokens give identical codes in every engine.

numpy (:func:`~dpsynth.tabular.encoding.encode`) is the reference; the arrow engine applies
``encode_column`` to dictionaries and lookup tables, DuckDB and Spark run the SQL built by
:mod:`dpsynth.backends.sqlexpr`. Each is checked on text (CSV) and typed sources.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dpsynth.backends.arrow import ArrowBackend
from dpsynth.backends.duckdb import DuckDBBackend
from dpsynth.backends.numpy import NumpyBackend
from dpsynth.tabular.encoding import encode, read_frame
from dpsynth.tabular.schema import parse_schema

SCHEMA = parse_schema({"columns": [
    {"name": "precip", "kind": "numeric", "bounds": [0, 2], "bins": 4, "atoms": [0], "nullable": True},
    {"name": "visib", "kind": "numeric", "bounds": [0, 10], "bins": 5, "atoms": [0.25, 10], "decimals": 2},
    {"name": "sentinel", "kind": "numeric", "dtype": "int", "bounds": [0, 10], "atoms": [-999, 99],
     "nullable": True, "null_token": "missing"},
    {"name": "wind", "kind": "numeric", "dtype": "int", "bounds": [0, 400], "bins": 8, "step": 10,
     "atoms": [-999, 0, 400]},
    {"name": "flag", "kind": "boolean", "true_label": "YES", "false_label": "NO", "nullable": True},
    {"name": "pet", "kind": "boolean", "true_label": "Sí", "false_label": "Nein"},
]})
NAMES = [c.name for c in SCHEMA.modelled]
CLIQUES = [(n,) for n in NAMES] + [("precip", "visib"), ("sentinel", "wind", "flag"), ("pet", "precip")]

_NUMS = ["0", "0.0", "-0", "0.5", "2", "2.5", "-1", "1e-300", "10", "10.0", "9.99", "12", "0.25", "0.250", "-999",
         "-999.0", "-999.4", "99", "98.6", "400", "401", "0.4", "-0.4", "inf", "junk", "missing", "", None]
_BOOLS = ["YES", "NO", " yes ", "no", "true", "0", "Sí", "Nein", "nein", "maybe", "", None]


def _text_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {name: list(rng.choice(np.array(_NUMS, dtype=object), n)) for name in NAMES[:4]}
    for name in NAMES[4:]:
        cols[name] = list(rng.choice(np.array(_BOOLS, dtype=object), n))
    return pd.DataFrame(cols, dtype=object)


def _typed_frame() -> pd.DataFrame:
    vals = [0.0, -0.0, 0.5, 2.0, -1.0, 10.0, 9.99, 12.0, 0.25, -999.0, -999.4, 99.0, 98.6, 400.0, 401.0, 0.4,
            -0.4, math.inf, -math.inf, math.nan]
    n = len(vals) * 3
    cyc = [vals[(i * 7) % len(vals)] for i in range(n)]
    return pd.DataFrame({
        "precip": pd.Series(cyc, dtype="float64"), "visib": pd.Series(cyc[::-1], dtype="float64"),
        "sentinel": pd.Series(cyc[1:] + cyc[:1], dtype="float64"), "wind": pd.Series(cyc[2:] + cyc[:2]),
        "flag": pd.Series([[True, False, None][i % 3] for i in range(n)], dtype="boolean"),
        "pet": pd.Series([i % 2 == 0 for i in range(n)], dtype=bool),
    })


def _same(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    for clique, g, w in zip(CLIQUES, got, want, strict=True):
        np.testing.assert_array_equal(g, w, err_msg=str(clique))


def test_the_reference_codes_of_atoms_labels_and_tokens() -> None:
    frame = pd.DataFrame({"precip": ["0", "0.0", "0.01", None], "visib": ["10", "10.5", "0.25", "0.26"],
                          "sentinel": ["-999", "-999.4", "missing", "3"], "wind": ["0", "-999", "400", "-5"],
                          "flag": ["YES", "NO", None, "yes"], "pet": ["Sí", "Nein", "Si", "nein"]})
    codes = encode(frame, SCHEMA).codes
    precip, visib, sentinel, wind = (SCHEMA.column(n) for n in NAMES[:4])
    assert precip.n_bins == 4 and precip.domain_size() == 6  # 4 bins, atom 0, null
    assert codes[:, 0].tolist() == [4, 4, 0, 5]
    assert codes[:, 1].tolist() == [6, 6, 5, 0]  # 10.5 is clamped onto the cap atom
    # -999.4 rounds to the sentinel; the null token is null; 3 is its own integer cell
    assert codes[:, 2].tolist() == [11, 11, 13, 3]
    assert codes[:, 3].tolist() == [9, 8, 10, 9]  # the sentinel keeps its own cell, -5 clamps onto 0
    assert codes[:, 4].tolist() == [1, 0, 2, 1]
    assert codes[:, 5].tolist() == [1, 0, 0, 0]  # "Si" is no spelling of true: the fallback code 0
    assert wind.labels()[-2:] == ["0", "400"] and sentinel.labels()[-3:] == ["-999", "99", "(null)"]
    assert visib.labels()[-2:] == ["0.25", "10"]


def test_duckdb_and_arrow_match_numpy_on_text_and_typed_sources(tmp_path: Path) -> None:
    text = _text_frame()
    path = tmp_path / "data.csv"
    text.to_csv(path, index=False)
    want = NumpyBackend(encode(read_frame(path, SCHEMA), SCHEMA)).count(CLIQUES)
    _same(DuckDBBackend(path, SCHEMA).count(CLIQUES), want)
    frame = text.replace({"": None})
    want = NumpyBackend(encode(frame, SCHEMA)).count(CLIQUES)
    _same(DuckDBBackend(frame, SCHEMA).count(CLIQUES), want)
    frame.to_parquet(tmp_path / "text.parquet")
    _same(ArrowBackend(tmp_path / "text.parquet", SCHEMA).count(CLIQUES), want)
    typed = _typed_frame()
    want = NumpyBackend(encode(typed, SCHEMA)).count(CLIQUES)
    assert want[0].sum() == len(typed)
    _same(DuckDBBackend(typed, SCHEMA).count(CLIQUES), want)
    _same(ArrowBackend(typed, SCHEMA).count(CLIQUES), want)
    ints = typed.assign(sentinel=typed["sentinel"].fillna(5).clip(-2000, 2000).astype("int64"))
    ints.to_parquet(tmp_path / "ints.parquet")  # an integer Parquet column: the arrow lookup table
    want = NumpyBackend(encode(ints, SCHEMA)).count(CLIQUES)
    _same(ArrowBackend(tmp_path / "ints.parquet", SCHEMA).count(CLIQUES), want)


@pytest.mark.spark
@pytest.mark.slow  # its own Spark session: about a minute of start-up on two cores
@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs java")
def test_spark_matches_numpy(tmp_path: Path) -> None:
    pytest.importorskip("pyspark")
    from dpsynth.backends.factory import open_backend
    from dpsynth.backends.spark import local_session

    session = local_session(cores=2, driver_memory="1g")
    try:
        path = tmp_path / "data.csv"
        _text_frame(120).to_csv(path, index=False)
        want = NumpyBackend(encode(read_frame(path, SCHEMA), SCHEMA)).count(CLIQUES)
        _same(open_backend("spark", path, SCHEMA, spark=session).count(CLIQUES), want)
        typed = _typed_frame()
        typed.to_parquet(tmp_path / "typed.parquet")
        want = NumpyBackend(encode(typed, SCHEMA)).count(CLIQUES)
        _same(open_backend("spark", str(tmp_path / "typed.parquet"), SCHEMA, spark=session).count(CLIQUES), want)
    finally:
        session.stop()
