"""``verify``'s CSV = Parquet check: the two data files of a bundle hold the same rows.

Cells are compared as the release writes them; a cell that differs as text must still denote
the same value (a number within the precision its text shows, the same boolean, the same
time at the text's resolution). Failures name the column and never a value.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_release_support import SMALL_COLUMNS, write_inputs

from dpsynth.bundle.verify import _check_data_agree, _same_cell, verify_bundle

CANARY = "987654321"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import dpsynth

    tmp = tmp_path_factory.mktemp("agree")
    data, schema = write_inputs(tmp, 300, SMALL_COLUMNS)
    dpsynth.release(str(data), str(schema), mechanism="independent", epsilon=1.0, delta=1e-6, seed=2,
                    out=tmp / "bundle")
    return tmp / "bundle"


def _copy(bundle: Path, tmp_path: Path) -> Path:
    shutil.copytree(bundle, tmp_path / "b")
    return tmp_path / "b"


def _agree(directory: Path) -> list[str]:
    fail: list[str] = []
    _check_data_agree(directory, fail)
    return fail


def test_a_fresh_bundle_agrees(bundle: Path) -> None:
    assert _agree(bundle) == []
    assert verify_bundle(bundle).ok


def test_an_edited_csv_cell_is_caught_by_column_without_its_value(bundle: Path, tmp_path: Path) -> None:
    b = _copy(bundle, tmp_path)
    frame = pd.read_csv(b / "synthetic.csv", dtype=str, keep_default_na=False)
    frame.loc[5, "age"] = CANARY
    frame.loc[7, "sex"] = "Female" if frame.loc[7, "sex"] == "Male" else "Male"
    frame.to_csv(b / "synthetic.csv", index=False, lineterminator="\n")
    fail = _agree(b)
    assert fail == [f"synthetic.csv and synthetic.parquet differ in column 'age' (1 of {len(frame)} rows)",
                    f"synthetic.csv and synthetic.parquet differ in column 'sex' (1 of {len(frame)} rows)"]
    result = verify_bundle(b)
    assert not result.ok and all(CANARY not in f for f in result.failures)


def test_edited_parquet_rows_are_caught(bundle: Path, tmp_path: Path) -> None:
    b = _copy(bundle, tmp_path)
    table = pq.read_table(b / "synthetic.parquet")
    pq.write_table(table.slice(0, table.num_rows - 1), b / "synthetic.parquet")
    assert _agree(b) == [f"synthetic.csv holds {table.num_rows} rows, synthetic.parquet {table.num_rows - 1}"]
    shuffled = table.take(np.roll(np.arange(table.num_rows), 1))  # same multiset of rows, other order
    pq.write_table(shuffled, b / "synthetic.parquet")
    assert any("differ in column" in f for f in _agree(b))


def test_columns_must_match_by_name_and_order(bundle: Path, tmp_path: Path) -> None:
    b = _copy(bundle, tmp_path)
    text = (b / "synthetic.csv").read_text(encoding="utf-8")
    (b / "synthetic.csv").write_text(text.replace("age,", "AGE,", 1), encoding="utf-8")
    (fail,) = _agree(b)
    assert "only in the CSV: ['AGE']" in fail and "only in the Parquet: ['age']" in fail


def test_unreadable_files_fail_cleanly(bundle: Path, tmp_path: Path) -> None:
    b = _copy(bundle, tmp_path)
    (b / "synthetic.parquet").write_bytes(b"PAR1 not really")
    assert _agree(b) == ["synthetic.parquet cannot be read as Parquet"]


def test_the_writer_and_the_check_agree_on_every_column_kind(tmp_path: Path) -> None:
    """CSV and Parquet bytes from the release writer, for the dtypes decoding produces."""
    from dpsynth.bundle.write import _data_bytes

    rng = np.random.default_rng(0)
    n = 200
    ints_with_nulls = [None if i % 7 == 0 else int(v) for i, v in enumerate(rng.integers(0, 9, n))]
    frame = pd.DataFrame({
        "f": rng.normal(size=n) * 1e3,
        "f_nan": np.where(np.arange(n) % 5 == 0, np.nan, rng.uniform(size=n)),
        "i": rng.integers(-5, 5, n),
        "cat_int_nulls": pd.Series(ints_with_nulls, dtype=object),
        "mixed": pd.Series([1 if i % 3 else "other" for i in range(n)], dtype=object),
        "b": rng.uniform(size=n) < 0.5,
        "t": pd.to_datetime(1.5e9 + rng.integers(0, 10**8, n), unit="s", utc=True),
        "d": pd.to_datetime(1.5e9 + rng.integers(0, 10**8, n), unit="s").normalize(),
        "s": pd.Series([["=1+1", "-3", "@x", "plain", None][i % 5] for i in range(n)], dtype=object),
    })
    csv_text, parquet = _data_bytes(frame, {"release_id": "x"})
    (tmp_path / "synthetic.csv").write_text(csv_text, encoding="utf-8")
    (tmp_path / "synthetic.parquet").write_bytes(parquet)
    assert _agree(tmp_path) == []
    table = pq.read_table(tmp_path / "synthetic.parquet")
    f = table.column("f").to_numpy().copy()
    f[3] += 1.0
    pq.write_table(table.set_column(0, "f", pa.array(f)), tmp_path / "synthetic.parquet")
    assert _agree(tmp_path) == [f"synthetic.csv and synthetic.parquet differ in column 'f' (1 of {n} rows)"]


@pytest.mark.parametrize(("a", "b", "same"), [
    ("3", "3.0", True),             # integer text, float value
    ("3", "3.4", True),             # written to whole units: within half a unit
    ("3", "3.6", False),
    ("1.2", "1.25", True),          # written to one decimal
    ("1.2", "1.26", False),
    ("1e3", "1000.4", True),
    ("-0.0", "0", True),
    ("YES", "True", True),          # a source spelling of booleans against the Parquet bool
    ("no", "False", True),
    ("yes", "False", False),
    ("2017-10-11T22:41:40Z", "2017-10-11 22:41:40.300000+00:00", True),
    ("2017-10-11T22:41:40Z", "2017-10-11 22:41:42+00:00", False),
    ("2017-10-11", "2017-10-11 13:00:00", True),
    ("2017-10-11", "2017-10-13", False),
    ("10th", "11th", False),        # categories that a lax date parser would read as days
    ("Male", "Female", False),
    ("", "0", False),               # null against a value
    ("nan", "0", False),
])
def test_cell_equality_is_tolerant_only_to_rendering(a: str, b: str, same: bool) -> None:
    assert _same_cell(a, b) is same
    assert _same_cell(b, a) is same


def test_verify_runs_the_check(bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    import dpsynth.bundle.verify as verify_module

    monkeypatch.setattr(verify_module, "_check_data_agree", lambda path, fail: seen.append(path))
    verify_bundle(bundle)
    assert seen == [bundle]
