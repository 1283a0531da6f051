"""Sampling conditions (dpsynth/conditions.py): parsing, resolution on the schema, exact ranges.

Unit tests on the Adult schema and a small dated schema, then fitted models: 10,000 rows drawn
under range conditions on integers, floats and dates (naive and time-zoned) all satisfy them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpsynth import api
from dpsynth.conditions import (
    Range,
    enforce_windows,
    parse_condition,
    resolve_conditions,
)
from dpsynth.errors import ConfigError, DPSynthError
from dpsynth.tabular.encoding import decode
from dpsynth.tabular.schema import load_schema, parse_schema
from tests.paths import ADULT_SCHEMA

ADULT = load_schema(ADULT_SCHEMA)
RACES = ["White", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other", "Black"]
DATED = parse_schema({"columns": [
    {"name": "date", "kind": "datetime", "bounds": ["2017-01-01", "2017-12-31"], "granularity": "day",
     "bins": 12},
    {"name": "stamp", "kind": "datetime", "bounds": ["2017-01-01T00:00:00Z", "2017-12-31T23:59:59Z"],
     "granularity": "minute", "bins": 24, "timezone": "America/New_York"},
    {"name": "x", "kind": "numeric", "dtype": "float", "bounds": [0, 10], "bins": 5},
    {"name": "n", "kind": "numeric", "dtype": "int", "bounds": [0, 999], "bins": 10, "nullable": True},
    {"name": "g", "kind": "categorical", "categories": ["a", "b", "c, d"]},
    {"name": "flag", "kind": "boolean"},
]})


@pytest.mark.parametrize(("text", "column", "values", "rng"), [
    ("age>=40", "age", (), Range(low="40")),
    ("age > 40", "age", (), Range(low="40", low_inclusive=False)),
    ("age<30", "age", (), Range(high="30", high_inclusive=False)),
    ("age<=30", "age", (), Range(high="30")),
    ("age=30..40", "age", (), Range(low="30", high="40")),
    ("age=40..", "age", (), Range(low="40")),
    ("date=2017-05..2017-06", "date", (), Range(low="2017-05", high="2017-06")),
    ("income-per-year=>50K", "income-per-year", (">50K",), None),  # '=' first: the value is '>50K'
    ("race=Black,White", "race", ("Black,White",), None),
])
def test_parse_forms(text: str, column: str, values: tuple[str, ...], rng: Range | None) -> None:
    c = parse_condition(text)
    assert (c.column, c.values, c.range) == (column, values, rng)


@pytest.mark.parametrize("text", ["age", "=3", "age>=", "age=.."])
def test_malformed_conditions_are_usage_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="condition"):
        parse_condition(text)


def test_numeric_ranges_map_to_the_bins_they_meet() -> None:
    edges = [17, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 100]
    r = resolve_conditions(["age>=42"], ADULT)
    assert r.evidence["age"] == [edges.index(40), *range(edges.index(45), len(edges) - 1)]
    assert resolve_conditions(["age<30"], ADULT).evidence["age"] == [0, 1, 2]
    assert resolve_conditions(["age=30..40"], ADULT).evidence["age"] == [3, 4, 5]  # 40 is in [40, 45)
    assert resolve_conditions(["age>=40", "age<42"], ADULT).evidence["age"] == [5]  # all must hold
    (iv,) = resolve_conditions(["age>40"], ADULT).windows["age"]
    assert (iv.lo, iv.hi) == (41, np.inf)  # an integer column: > 40 is >= 41


def test_sets_equality_and_a_category_holding_a_comma() -> None:
    assert resolve_conditions(["race=Black,White"], ADULT).evidence == {"race": [0, 4]}
    assert resolve_conditions({"race": ["Black", "Other"]}, ADULT).evidence == {"race": [3, 4]}
    assert resolve_conditions({"income-per-year": ">50K"}, ADULT).evidence == {"income-per-year": [1]}
    assert resolve_conditions(["g=c, d"], DATED).evidence == {"g": [2]}  # matched whole first
    assert resolve_conditions(["g=a,b"], DATED).evidence == {"g": [0, 1]}
    assert resolve_conditions(["flag=yes"], DATED).evidence == {"flag": [1]}


def test_unknown_category_lists_the_allowed_values_and_suggests_one() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_conditions(["race=black"], ADULT)
    msg = str(info.value)
    assert "did you mean 'Black'?" in msg and "not in the column's public domain" in msg
    assert all(repr(r) in msg for r in RACES) and "'race'" in msg
    with pytest.raises(ConfigError, match="did you mean 'Amer-Indian-Eskimo'"):
        resolve_conditions(["race=Amer-Indian-Eskimos"], ADULT)
    with pytest.raises(ConfigError) as info:
        resolve_conditions(["race=Martian"], ADULT)
    assert "did you mean" not in str(info.value)


def test_other_resolution_errors_name_column_and_constraint() -> None:
    with pytest.raises(ConfigError, match="ranges apply to numeric and datetime columns"):
        resolve_conditions(["race>=B"], ADULT)
    with pytest.raises(ConfigError, match="'forty' is not a number"):
        resolve_conditions(["age>=forty"], ADULT)
    with pytest.raises(ConfigError, match="leave no value"):
        resolve_conditions(["age>=60", "age<50"], ADULT)
    with pytest.raises(ConfigError, match="leave no value"):
        resolve_conditions(["age>100"], ADULT)
    with pytest.raises(ConfigError, match="is not a date"):
        resolve_conditions(["date>=May"], DATED)
    with pytest.raises(DPSynthError, match="'nope'"):
        resolve_conditions(["nope=1"], ADULT)


def test_dates_written_as_periods_cover_the_whole_period() -> None:
    day = np.datetime64("2017-05-01", "D").astype(np.int64)
    (iv,) = resolve_conditions(["date=2017-05..2017-06"], DATED).windows["date"]
    assert (iv.lo, iv.hi) == (day, np.datetime64("2017-06-30", "D").astype(np.int64))
    (iv,) = resolve_conditions(["date<2017-05"], DATED).windows["date"]
    assert iv.hi == day - 1
    (iv,) = resolve_conditions(["date>2017-05"], DATED).windows["date"]
    assert iv.lo == np.datetime64("2017-06-01", "D").astype(np.int64)
    (iv,) = resolve_conditions(["date=2017-05-03"], DATED).windows["date"]
    assert iv.lo == iv.hi == day + 2
    # a zoned column reads the condition in its own time zone (as the output shows it)
    (iv,) = resolve_conditions(["stamp>=2017-05"], DATED).windows["stamp"]
    start = pd.Timestamp("2017-05-01", tz="America/New_York").tz_convert("UTC").tz_localize(None)
    assert iv.lo == np.datetime64(start.to_datetime64(), "m").astype(np.int64)


def test_enforce_redraws_boundary_values_inside_the_range() -> None:
    schema = parse_schema({"columns": [{"name": "v", "kind": "numeric", "dtype": "int", "bounds": [0, 99],
                                        "bins": 1}]})
    resolved = resolve_conditions(["v=40..42"], schema)
    assert resolved.evidence == {"v": [0]}
    codes = np.zeros((5000, 1), dtype=np.int64)
    rng = np.random.default_rng(0)
    frame = decode(codes, schema, rng)
    assert (~frame["v"].between(40, 42)).sum() > 4000
    out = enforce_windows(frame, codes, resolved, schema, lambda block: decode(block, schema, rng), rng)
    assert out["v"].between(40, 42).all()
    shares = out["v"].value_counts(normalize=True)
    assert set(shares.index) == {40, 41, 42} and shares.min() > 0.28  # uniform on the part inside


@pytest.fixture(scope="module")
def dated_model() -> api.Synthesizer:  # type: ignore[name-defined]
    rng = np.random.default_rng(5)
    n = 3000
    dates = pd.Timestamp("2017-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    stamps = pd.Timestamp("2017-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 525_000, n), unit="min")
    df = pd.DataFrame({"date": dates, "stamp": stamps, "x": rng.uniform(0, 10, n),
                       "n": rng.integers(0, 1000, n).astype(float), "g": rng.choice(["a", "b", "c, d"], n),
                       "flag": rng.random(n) < 0.3})
    df.loc[df.index[:200], "n"] = np.nan
    return api.fit(df, DATED, mechanism="mst", epsilon=2.0, delta=1e-9)


def test_every_sampled_row_satisfies_the_range_conditions(dated_model) -> None:  # type: ignore[no-untyped-def]
    conds = ["date=2017-05-10..2017-06", "stamp<2017-03-15T12:00", "x>2.5", "x<=7.25", "n>=333", "n<=650",
             "g=a,c, d", "flag=true"]
    out = dated_model.sample(10_000, conditions=conds, seed=3)
    assert len(out) == 10_000
    assert out["date"].between(pd.Timestamp("2017-05-10"), pd.Timestamp("2017-06-30")).all()
    assert out["date"].dt.date.nunique() > 40  # boundary bins are drawn inside, not clamped to an edge
    ny = out["stamp"].dt.tz_convert("America/New_York")
    assert (ny < pd.Timestamp("2017-03-15 12:00", tz="America/New_York")).all()
    assert ((out["x"] > 2.5) & (out["x"] <= 7.25)).all()
    assert out["n"].notna().all() and out["n"].between(333, 650).all()
    assert out["g"].isin(["a", "c, d"]).all() and out["flag"].all()


def test_point_conditions_decode_to_the_exact_value(dated_model) -> None:  # type: ignore[no-untyped-def]
    out = dated_model.sample(2000, conditions={"x": 2.5, "n": [100, 900]}, seed=1)
    assert (out["x"] == 2.5).all()
    assert set(out["n"].unique()) <= {100, 900} and out["n"].nunique() == 2
    ranged = dated_model.sample(2000, conditions={"x": Range(low=9.5), "date": Range(high="2017-01")},
                                seed=1)
    assert (ranged["x"] >= 9.5).all() and (ranged["date"] < pd.Timestamp("2017-02-01")).all()


def test_same_seed_same_conditional_rows(dated_model) -> None:  # type: ignore[no-untyped-def]
    a = dated_model.sample(500, conditions=["n>=500"], seed=9)
    b = dated_model.sample(500, conditions=["n>=500"], seed=9)
    pd.testing.assert_frame_equal(a, b)


def test_atoms_are_exact_values_and_booleans_accept_their_source_labels() -> None:
    schema = parse_schema({"name": "w", "columns": [
        {"name": "precip", "kind": "numeric", "dtype": "float", "bounds": [0, 2], "bins": 4, "atoms": [0]},
        {"name": "freezing", "kind": "boolean", "true_label": "YES", "false_label": "NO"}]})
    col = schema.column("precip")
    atom = col.n_bins  # atom codes follow the bins
    assert resolve_conditions(["precip=0"], schema).evidence["precip"] == [0, atom]  # the atom, and bin [0, 0.5)
    assert atom not in resolve_conditions(["precip>=0.5"], schema).evidence["precip"]
    assert atom not in resolve_conditions(["precip>0"], schema).evidence["precip"]
    assert resolve_conditions(["freezing=YES"], schema).evidence["freezing"] == [1]
    assert resolve_conditions(["freezing=no"], schema).evidence["freezing"] == [0]
    with pytest.raises(ConfigError, match="YES"):
        resolve_conditions(["freezing=maybe"], schema)
