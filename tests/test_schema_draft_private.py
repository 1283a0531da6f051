"""``schema draft`` copies no single record's value: coarse bounds, nullability not read off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dpsynth.cli import main
from dpsynth.tabular.schema import DatetimeColumn, NumericColumn, dump_schema, load_schema
from dpsynth.tabular.schema_io import datetime_grid_bounds, draft_schema, grid_bounds

PLANT_FLOAT = 987654.321
PLANT_INT = 7345
PLANT_DAY = "2087-06-17"
PLANT_TIME = "13:45:12"


def _frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Ordinary columns (with repeats, so nothing looks like an identifier) plus planted extremes."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2015-01-01", periods=60, freq="13D").strftime("%Y-%m-%d")
    df = pd.DataFrame({
        "income": [f"{v:.1f}" for v in rng.integers(200, 900, n) * 10.5],
        "visits": [str(v) for v in rng.integers(1, 40, n)],
        "admitted": [str(days[i]) for i in rng.integers(0, len(days), n)],
        "stamp": pd.Series(pd.to_datetime(days)[rng.integers(0, len(days), n)]),
        "colour": rng.choice(["red", "blue", "green"], n),
    })
    df.loc[7, "income"] = repr(PLANT_FLOAT)
    df.loc[11, "visits"] = str(PLANT_INT)
    df.loc[13, "admitted"] = f"{PLANT_DAY} {PLANT_TIME}"
    df.loc[17, "stamp"] = pd.Timestamp(f"{PLANT_DAY} {PLANT_TIME}")
    return df


def _spellings() -> list[str]:
    return [repr(PLANT_FLOAT), "987654", "987,654", "9.87654", str(PLANT_INT), "7345.0", PLANT_DAY, "2087-06",
            PLANT_TIME, "20870617"]


def _assert_no_plant(text: str) -> None:
    for spelling in _spellings():
        assert spelling not in text, spelling


def test_planted_extremes_never_reach_the_yaml() -> None:
    df = _frame()
    schema, notes = draft_schema(df)
    kinds = {c.name: c.kind for c in schema.columns}
    assert kinds == {"income": "numeric", "visits": "numeric", "admitted": "datetime", "stamp": "datetime",
                     "colour": "categorical"}
    _assert_no_plant(dump_schema(schema))
    _assert_no_plant("\n".join(notes))
    assert schema.column("income").bounds == (0.0, 1_000_000.0)
    visits = schema.column("visits")
    assert visits.dtype == "int" and visits.bounds == (0.0, 8000.0) and visits.bins == 32
    for name in ("admitted", "stamp"):  # span >= two years: whole years
        assert schema.column(name).bounds == ("2015-01-01T00:00:00", "2088-01-01T00:00:00")


def test_bounds_contain_all_data_and_nothing_is_read_as_not_null() -> None:
    df = _frame()
    schema, _ = draft_schema(df)
    for name in ("income", "visits"):
        col = schema.column(name)
        assert isinstance(col, NumericColumn)
        vals = pd.to_numeric(df[name])
        assert col.bounds[0] <= vals.min() and vals.max() <= col.bounds[1]
    for name in ("admitted", "stamp"):
        col = schema.column(name)
        assert isinstance(col, DatetimeColumn)
        ts = pd.to_datetime(df[name], format="mixed")
        lo, hi = (pd.Timestamp(b) for b in col.bounds)
        assert lo <= ts.min() and ts.max() <= hi
    assert df.notna().all().all()  # no column holds a null ...
    assert all(c.nullable for c in schema.columns)  # ... yet every drafted column is nullable


def test_small_integer_ranges_keep_one_cell_per_integer_and_ints_stay_ints() -> None:
    df = pd.DataFrame({"age": [str(20 + i % 57) for i in range(300)]})
    schema, _ = draft_schema(df)
    age = schema.column("age")
    assert age.dtype == "int" and age.bounds == (20.0, 80.0) and age.per_integer
    text = dump_schema(schema)
    assert "- 20\n" in text and "- 80\n" in text and "20.0" not in text


def test_identifiers_stay_not_nullable() -> None:
    df = pd.DataFrame({"email": [f"u{i}@example.org" for i in range(50)], "k": ["a", "b"] * 25})
    schema, _ = draft_schema(df)
    assert schema.column("email").kind == "identifier" and not schema.column("email").nullable
    assert schema.column("k").nullable


def test_cli_draft_writes_no_planted_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, out = tmp_path / "data.csv", tmp_path / "draft.yaml"
    _frame().drop(columns=["stamp"]).to_csv(data, index=False)
    assert main(["schema", "draft", str(data), "-o", str(out)]) == 0
    _, err = capsys.readouterr()
    _assert_no_plant(out.read_text(encoding="utf-8"))
    _assert_no_plant(err)
    schema = load_schema(out)
    assert schema.column("income").bounds == (0.0, 1_000_000.0) and schema.column("income").nullable


def test_datetime_bounds_use_months_under_two_years() -> None:
    lo, hi = datetime_grid_bounds(pd.Timestamp("2020-03-17 08:00"), pd.Timestamp("2021-12-30"))
    assert (lo, hi) == (pd.Timestamp("2020-03-01"), pd.Timestamp("2022-01-01"))
    lo, hi = datetime_grid_bounds(pd.Timestamp("2020-03-17"), pd.Timestamp("2022-03-20"))
    assert (lo, hi) == (pd.Timestamp("2020-01-01"), pd.Timestamp("2023-01-01"))
    lo, hi = datetime_grid_bounds(pd.Timestamp("2020-05-05", tz="UTC"), pd.Timestamp("2020-05-05", tz="UTC"))
    assert (lo.isoformat(), hi.isoformat()) == ("2020-05-01T00:00:00+00:00", "2020-06-01T00:00:00+00:00")


@pytest.mark.parametrize(("lo", "hi", "want"), [
    (3.0, PLANT_FLOAT, (0, 1_000_000)), (-PLANT_FLOAT, 5.0, (-1_000_000, 100_000)), (20.0, 79.0, (20, 80)),
    (0.3, 0.9, (0, 1)), (5.0, 5.0, (5, 6)), (100.0, 100.0, (100, 200)), (-0.5, 0.5, (-1, 1)),
])
def test_grid_bounds_examples(lo: float, hi: float, want: tuple[int, int]) -> None:
    assert grid_bounds(lo, hi) == want


@settings(max_examples=300, deadline=None)
@given(st.floats(-1e12, 1e12), st.floats(-1e12, 1e12))
def test_grid_bounds_contain_the_data_on_a_power_of_ten_grid(a: float, b: float) -> None:
    lo, hi = min(a, b), max(a, b)
    g_lo, g_hi = grid_bounds(lo, hi)
    assert g_lo <= lo and hi <= g_hi and g_lo < g_hi
    step = 1  # the largest power of ten <= max(|lo|, |hi|, 1), without log10 rounding
    while step * 10 <= max(abs(lo), abs(hi), 1.0):
        step *= 10
    assert g_lo % step == 0 and g_hi % step == 0
    assert g_hi - g_lo <= (hi - lo) + 2 * step + step * (lo == hi)
