"""Spelling facts round trip: encode then decode writes the source's spelling, format and precision.

Per kind: boolean labels, null tokens, datetime formats (with ``Z``, dates, US dates), numeric
decimals, steps and integer grids, and atoms. The CSV and Parquet writers keep them.
"""

from __future__ import annotations

import io
import math
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from lookalikes import pets_like, weather_like

from dpsynth.tabular.decoding import decode, value_grid
from dpsynth.tabular.draft import draft_schema
from dpsynth.tabular.encoding import encode
from dpsynth.tabular.io import write_frame
from dpsynth.tabular.schema import Schema, Source, dump_schema, load_schema, parse_schema


def _one(col: dict[str, object]) -> Schema:
    return parse_schema({"columns": [{"name": "x", **col}]})


def _round_trip(schema: Schema, values: list[object], seed: int = 0) -> tuple[pd.Series, np.ndarray]:
    codes = encode(pd.DataFrame({"x": pd.Series(values, dtype=object)}), schema).codes
    out = decode(codes, schema, np.random.default_rng(seed))
    again = encode(out, schema).codes
    np.testing.assert_array_equal(again, codes)  # the written values encode to the same cells
    return out["x"], codes[:, 0]


@pytest.mark.parametrize(("yes", "no"), [("YES", "NO"), ("Yes", "No"), ("true", "false"), ("1", "0"), ("Sí", "Nein")])
def test_booleans_keep_their_spelling_and_null_token(yes: str, no: str) -> None:
    schema = _one({"kind": "boolean", "true_label": yes, "false_label": no, "nullable": True, "null_token": "NA"})
    out, codes = _round_trip(schema, [yes, no, "NA", None, yes])
    assert out.tolist() == [yes, no, "NA", "NA", yes] and codes.tolist() == [1, 0, 2, 2, 1]


def test_boolean_spelling_facts_are_checked() -> None:
    with pytest.raises(Exception, match="both true_label and false_label"):
        _one({"kind": "boolean", "true_label": "Y"})
    with pytest.raises(Exception, match="distinct"):
        _one({"kind": "boolean", "true_label": "Y", "false_label": "y"})
    schema = _one({"kind": "boolean"})  # no labels: typed booleans as before
    assert decode(np.array([[1], [0]]), schema, np.random.default_rng(0))["x"].dtype == bool


@pytest.mark.parametrize(("fmt", "granularity", "values"), [
    ("%Y-%m-%dT%H:%M:%SZ", "second", ["2017-10-11T22:41:40Z", "2017-10-12T00:00:01Z"]),
    ("%Y-%m-%d", "day", ["2018-03-14", "2018-03-20"]),
    ("%m/%d/%Y", "day", ["03/14/2018", "03/20/2018"]),
    ("%Y-%m-%d %H:%M", "minute", ["2018-03-14 09:05", "2018-03-20 23:59"]),
])
def test_datetimes_are_written_in_the_source_format(fmt: str, granularity: str, values: list[str]) -> None:
    lo = pd.Timestamp(datetime.strptime(values[0], fmt)).floor("D")
    hi = pd.Timestamp(datetime.strptime(values[1], fmt)).ceil("D")
    n_units = int((hi - lo) / pd.Timedelta(1, {"second": "s", "minute": "min", "day": "D"}[granularity])) + 1
    schema = _one({"kind": "datetime", "bounds": [lo.isoformat(), hi.isoformat()], "granularity": granularity,
                   "bins": min(n_units, 100_000), "format": fmt, "nullable": True, "null_token": ""})
    out, _ = _round_trip(schema, [*values, None])
    assert out.tolist()[-1] == ""
    if n_units <= 100_000:  # one bin per unit: the values come back exactly
        assert out.tolist()[:2] == values
    for text in out.tolist()[:2]:
        assert datetime.strptime(text, fmt).strftime(fmt) == text


def test_a_format_is_read_in_the_columns_time_zone() -> None:
    schema = _one({"kind": "datetime", "bounds": ["2020-01-01", "2020-12-31"], "granularity": "hour",
                   "bins": 8784, "timezone": "America/New_York", "format": "%Y-%m-%d %H:%M"})
    out, _ = _round_trip(schema, ["2020-07-01 08:00", "2020-01-02 23:00"])
    assert out.tolist() == ["2020-07-01 08:00", "2020-01-02 23:00"]  # wall time in, wall time out


@settings(max_examples=60, deadline=None)
@given(decimals=st.integers(0, 4), bins=st.integers(1, 40), hi=st.sampled_from([1.0, 7.5, 100.0, 2500.0]),
       seed=st.integers(0, 2**16))
def test_floats_have_at_most_the_declared_decimals(decimals: int, bins: int, hi: float, seed: int) -> None:
    assume(hi * 10**decimals / bins >= 2)  # each bin holds a grid point besides the atom
    schema = _one({"kind": "numeric", "bounds": [0, hi], "bins": bins, "decimals": decimals, "atoms": [0]})
    col = schema.column("x")
    codes = np.random.default_rng(seed).integers(0, col.n_values, (300, 1))
    out = decode(codes, schema, np.random.default_rng(seed))["x"].to_numpy(dtype=np.float64)
    assert np.all(np.round(out, decimals) == out)
    assert np.all((out == 0) == (codes[:, 0] == col.n_bins))  # only the atom's cell writes the atom
    assert np.all((out >= 0) & (out <= hi))


def test_a_float_without_decimals_gets_no_long_digits() -> None:
    schema = _one({"kind": "numeric", "bounds": [0, 1], "bins": 32})
    assert value_grid(schema.column("x")) == (0.0, 1e-05, 5)  # a thousandth of a bin (1/32), to a power of ten
    out, _ = _round_trip(schema, [0.123456789, 0.5, 0.987654321])
    assert all(len(repr(v).partition(".")[2]) <= 5 for v in out)


def test_steps_and_integer_grids() -> None:
    schema = _one({"kind": "numeric", "dtype": "int", "bounds": [0, 400], "bins": 32, "step": 10, "nullable": True,
                   "null_token": "NA"})
    values = [0, 10, 350, 360, "NA", None, 400]
    out, _ = _round_trip(schema, values)
    assert out.tolist()[4:6] == ["NA", "NA"]
    codes = np.random.default_rng(1).integers(0, 32, (2000, 1))
    dec = decode(codes, schema, np.random.default_rng(1))["x"].to_numpy(dtype=np.int64)
    assert np.all(dec % 10 == 0) and len(np.unique(dec)) == 41  # every grid point 0..400 is reachable
    half = _one({"kind": "numeric", "bounds": [1, 5], "bins": 3, "step": 0.5})
    dec = decode(np.arange(300).reshape(-1, 1) % 3, half, np.random.default_rng(2))["x"]
    assert set(dec) == {1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0}


def test_decimals_zero_writes_integers_and_uniform_grid_draws() -> None:
    schema = _one({"kind": "numeric", "bounds": [0, 20], "bins": 2, "decimals": 0})
    dec = decode(np.zeros((5000, 1), dtype=np.int64), schema, np.random.default_rng(3))["x"]
    assert dec.dtype == np.int64 and set(dec) == set(range(10))
    counts = np.bincount(dec, minlength=10)
    assert counts.min() > 400 and counts.max() < 600  # uniform over the ten points (sd ~ 21)


def test_atoms_decode_exactly_and_bins_skip_them() -> None:
    schema = _one({"kind": "numeric", "dtype": "int", "bounds": [0, 100], "bins": 4, "atoms": [-999, 0, 100],
                   "nullable": True})
    col = schema.column("x")
    assert (col.n_bins, col.n_values, col.domain_size()) == (4, 7, 8)
    assert col.labels() == ["[0, 25)", "[25, 50)", "[50, 75)", "[75, 100]", "-999", "0", "100", "(null)"]
    out, codes = _round_trip(schema, [-999, 0, 100, 5, 99, None, -5, 150])
    assert codes.tolist() == [4, 5, 6, 0, 3, 7, 5, 6]  # out of bounds clamps onto an atom at the bound
    assert out.tolist()[:3] == [-999, 0, 100]
    dec = decode(np.array([[0], [3]] * 500), schema, np.random.default_rng(4))["x"]
    assert not set(dec) & {0, 100}


@pytest.mark.parametrize("atoms", [[1, 1], [2, 1], [math.inf]])
def test_atoms_are_checked(atoms: list[float]) -> None:
    with pytest.raises(Exception, match="atoms must be finite, distinct and in increasing order"):
        _one({"kind": "numeric", "bounds": [0, 10], "bins": 2, "atoms": atoms})


def test_atom_and_step_rules() -> None:
    with pytest.raises(Exception, match="already has its own cell"):
        _one({"kind": "numeric", "dtype": "int", "bounds": [0, 10], "atoms": [3]})
    with pytest.raises(Exception, match="must be integers"):
        _one({"kind": "numeric", "dtype": "int", "bounds": [0, 100], "bins": 4, "atoms": [0.5]})
    with pytest.raises(Exception, match="decimals apply to float"):
        _one({"kind": "numeric", "dtype": "int", "bounds": [0, 100], "bins": 4, "decimals": 1})
    ok = _one({"kind": "numeric", "dtype": "int", "bounds": [0, 10], "atoms": [-999]})
    assert ok.column("x").domain_size() == 12


def test_unset_facts_stay_out_of_the_dict_and_set_ones_survive_yaml(tmp_path: Path) -> None:
    plain = _one({"kind": "numeric", "bounds": [0, 1], "bins": 2})
    assert not {"atoms", "step", "decimals", "null_token"} & set(plain.to_dict()["columns"][0])
    rich = _one({"kind": "numeric", "bounds": [0, 1], "bins": 2, "atoms": [0, 1], "decimals": 2, "step": 0.25,
                 "null_token": "NA"})
    dump_schema(rich, tmp_path / "s.yaml")
    assert load_schema(tmp_path / "s.yaml") == rich


def _frame_text(df: pd.DataFrame, suffix: str, tmp_path: Path) -> pd.DataFrame:
    path = write_frame(df, tmp_path / f"out{suffix}", public=False)
    if suffix == ".csv":
        return pd.read_csv(io.StringIO(path.read_text()), dtype=str, keep_default_na=False)
    return pd.read_parquet(path)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_drafted_lookalikes_are_written_in_their_source_spelling(suffix: str, tmp_path: Path) -> None:
    real = weather_like(1500)
    schema, _ = draft_schema(real)
    facts = {c.name: c.sources for c in schema.columns}
    assert facts["precip"] == {"decimals": Source.private_inferred, "atoms": Source.private_inferred}
    assert facts["wind_dir"]["step"] == facts["time_hour"]["format"] == Source.private_inferred
    assert facts["freezing"]["true_label"] == Source.private_inferred
    codes = encode(real, schema).codes
    out = _frame_text(decode(codes, schema, np.random.default_rng(5)), suffix, tmp_path)
    assert set(out["freezing"]) == {"YES", "NO"}
    assert out["time_hour"].str.fullmatch(r"201[34]-\d\d-\d\dT\d\d:00:00Z").all()
    wind = out["wind_dir"].astype(str)
    assert set(wind[wind != "NA"].astype(int) % 10) == {0} and (wind == "NA").any()
    for name in ("precip", "visib", "temp", "wind_speed"):
        text = out[name].astype(str)
        assert text.str.fullmatch(r"-?\d+(\.\d{1,2})?").all(), name
    assert (out["precip"].astype(float) == 0).mean() == pytest.approx((real["precip"] == "0").mean(), abs=1e-9)
    pets = pets_like(800)
    schema, _ = draft_schema(pets)
    out = _frame_text(decode(encode(pets, schema).codes, schema, np.random.default_rng(6)), suffix, tmp_path)
    assert set(out["neutered"]) == set(out["microchipped"]) == {"Yes", "No"}
    assert out["license_issue_date"].str.fullmatch(r"201[5-9]-\d\d-\d\d").all()
    assert out["age_years"].astype(str).str.fullmatch(r"\d+(\.\d)?").all()
