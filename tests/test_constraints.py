"""Constraints between columns: parsing and validation, the forbidden-cell computation on
edge cases, the decode-time repair and derived columns, and the schema YAML round trip."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from dpsynth.api import schema_constraints
from dpsynth.errors import SchemaError
from dpsynth.tabular.constraint_repair import apply_constraints
from dpsynth.tabular.constraints import (
    Derivation,
    Inequality,
    code_intervals,
    derivations,
    forbidden_pairs,
    inequalities,
    inequality_assignments,
)
from dpsynth.tabular.decoding import decode
from dpsynth.tabular.schema import NumericColumn, Schema, dump_schema, parse_schema


def num(name: str, bounds: tuple[float, float], **kw: Any) -> dict[str, Any]:
    return {"name": name, "kind": "numeric", "bounds": list(bounds), **kw}


def dt(name: str, bounds: tuple[str, str], **kw: Any) -> dict[str, Any]:
    return {"name": name, "kind": "datetime", "bounds": list(bounds), **kw}


WEATHER: dict[str, Any] = {"columns": [
    num("wind_speed", (0, 40), bins=16),
    num("wind_gust", (0, 60), bins=12, nullable=True),
    dt("time_hour", ("2013-01-01T00:00:00Z", "2013-12-31T23:00:00Z"), granularity="hour",
       timezone="America/New_York", bins=24),
    dt("start", ("2013-01-01", "2013-12-31"), granularity="day", bins=12),
    dt("end", ("2013-01-01", "2014-06-30"), granularity="day", bins=18),
    {"name": "origin", "kind": "categorical", "categories": ["EWR", "JFK", "LGA"]},
], "constraints": [
    {"origin": "EWR"},
    {"inequality": "wind_gust >= wind_speed"},
    {"inequality": "start < end"},
    {"derived": {"year": "year", "month": "month", "day": "day", "hour": "hour"}, "from": "time_hour"},
]}


def schema_with(*constraints: dict[str, Any], columns: list[dict[str, Any]] | None = None) -> Schema:
    return parse_schema({"columns": columns or WEATHER["columns"], "constraints": list(constraints)})


# --- parsing and validation ---------------------------------------------------------------

def test_parses_inequalities_in_all_four_spellings() -> None:
    s = schema_with({"inequality": "wind_gust >= wind_speed"}, {"inequality": "wind_speed<wind_gust"},
                    {"inequality": "end > start"}, {"inequality": " start <= end "})
    assert inequalities(s) == [
        Inequality("wind_gust", "wind_speed", False, "wind_gust >= wind_speed"),
        Inequality("wind_gust", "wind_speed", True, "wind_speed<wind_gust"),
        Inequality("end", "start", True, "end > start"),
        Inequality("end", "start", False, " start <= end "),
    ]


def test_derived_spellings_mapping_list_and_parts() -> None:
    s = schema_with({"derived": {"yr": "year", "hh": "hour"}, "from": "time_hour"},
                    {"derived": ["month", "day"], "from": "time_hour"},
                    {"derived": ["wd"], "parts": ["weekday"], "from": "start"})
    assert derivations(s) == [Derivation("time_hour", (("yr", "year"), ("hh", "hour"))),
                              Derivation("time_hour", (("month", "month"), ("day", "day"))),
                              Derivation("start", (("wd", "weekday"),))]
    assert [c.name for c in s.modelled] == [c["name"] for c in WEATHER["columns"]]  # nothing added


@pytest.mark.parametrize(("entry", "message"), [
    ({"inequality": "wind_gust >= nope"}, "constraint 0 (inequality 'wind_gust >= nope'): column 'nope' is not in "
     "the schema"),
    ({"inequality": "origin >= wind_speed"}, "column 'origin' is of kind 'categorical'; an inequality compares "
     "two numeric or two datetime"),
    ({"inequality": "end >= wind_speed"}, "kind mismatch: column 'end' is datetime and column 'wind_speed' is numeric"),
    ({"inequality": "end >= time_hour"}, "columns 'end' and 'time_hour' must both have time zones or neither"),
    ({"inequality": "wind_gust >= wind_gust"}, "compares column 'wind_gust' with itself"),
    ({"inequality": "wind_gust = wind_speed"}, "must compare two columns with one of >=, >, <=, <"),
    ({"inequality": "a >= b >= c"}, "must compare two columns"),
    ({"inequality": 3}, "inequality must be text"),
    ({"inequality": "end >= start", "note": "x"}, "takes only the key 'inequality'"),
    ({"derived": ["hour"], "from": "wind_speed"}, "column 'wind_speed' is of kind 'numeric'; derived parts need a "
     "datetime column"),
    ({"derived": ["hour"], "from": "nope"}, "column 'nope' is not in the schema"),
    ({"derived": ["hour"], "from": "start"}, "derived column 'hour': part 'hour' is finer than the granularity "
     "'day' of column 'start'"),
    ({"derived": {"origin": "year"}, "from": "start"}, "derived column 'origin' is also declared as a schema column"),
    ({"derived": {"x": "fortnight"}, "from": "start"}, "part 'fortnight' is not one of"),
    ({"derived": ["year", "month"], "parts": ["year"], "from": "start"}, "one part per derived column"),
    ({"derived": ["year"]}, "derived columns need 'from: <datetime column>'"),
    ({"derived": ["year"], "from": "start", "unit": "x"}, "takes the keys derived, from and parts"),
])
def test_invalid_constraints_name_the_constraint_and_column(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(SchemaError) as err:
        schema_with(entry)
    assert message in str(err.value)


def test_cross_constraint_errors() -> None:
    with pytest.raises(SchemaError, match="derived column 'year' is derived twice"):
        schema_with({"derived": ["year"], "from": "start"}, {"derived": ["year"], "from": "end"})
    with pytest.raises(SchemaError, match="column 'year' is derived; an inequality compares modelled columns"):
        schema_with({"derived": ["year"], "from": "start"}, {"inequality": "year >= wind_speed"})
    with pytest.raises(SchemaError, match=r"cycle through columns \['end', 'start'\]"):
        schema_with({"inequality": "end >= start"}, {"inequality": "end <= start"})


def test_an_inequality_too_large_for_one_model_table_is_refused() -> None:
    cols = [num("a", (0, 1), bins=100_000), num("b", (0, 1), bins=50)]
    with pytest.raises(SchemaError, match=r"columns 'a' \(100000 cells\) and 'b' \(50 cells\) make 5,000,000 "
                       r"cell pairs, more than the 4,000,000 the model can hold as one table; declare fewer bins"):
        schema_with({"inequality": "a >= b"}, columns=cols)
    assert inequality_assignments(schema_with({"inequality": "a >= b"}, columns=[cols[0], num("b", (0, 1), bins=40)]))


def test_a_column_named_like_a_keyword_keeps_forbidden_combinations() -> None:
    cols = [{"name": "inequality", "kind": "categorical", "categories": ["a", "b"]},
            {"name": "x", "kind": "boolean"}]
    s = schema_with({"inequality": "a", "x": True}, columns=cols)
    assert inequalities(s) == [] and schema_constraints(s) == [{"inequality": 0, "x": 1}]


def test_error_messages_carry_no_data_values() -> None:
    """Messages are built from schema text only; a value-like entry is reported by its key."""
    with pytest.raises(SchemaError) as err:
        schema_with({"derived": {"secret_col": "weekday"}, "from": "origin"})
    assert "origin" in str(err.value) and "EWR" not in str(err.value)


# --- forbidden cells ------------------------------------------------------------------------

def col(**kw: Any) -> NumericColumn:
    return NumericColumn(name=kw.pop("name", "c"), **kw)


def test_equal_bins_forbid_exactly_the_cells_below_the_diagonal() -> None:
    a = col(bounds=(0, 10), bins=5)
    bad = forbidden_pairs(a, a, strict=False)
    assert np.array_equal(bad, np.triu(np.ones((5, 5), dtype=bool), k=1))  # greater cell i < lesser cell j
    assert np.array_equal(forbidden_pairs(a, a, strict=True), bad)  # the diagonal stays open for floats


def test_ties_at_edges_integers_and_closed_last_bin() -> None:
    ints = col(bounds=(0, 4), dtype="int")  # one cell per integer 0..4
    assert np.array_equal(forbidden_pairs(ints, ints, strict=False), np.triu(np.ones((5, 5), dtype=bool), k=1))
    assert np.array_equal(forbidden_pairs(ints, ints, strict=True), np.triu(np.ones((5, 5), dtype=bool), k=0))
    low = col(bounds=(0, 10), bins=2)       # [0,5) [5,10]
    high = col(bounds=(10, 20), bins=2)     # [10,15) [15,20]
    # low >= high: only low's closed last bin (which holds 10) meets high's first bin (from 10)
    assert forbidden_pairs(low, high, strict=False).tolist() == [[True, True], [False, True]]
    assert forbidden_pairs(low, high, strict=True).all()  # 10 > 10 is impossible
    assert not forbidden_pairs(high, low, strict=True).any()  # disjoint the other way: nothing forbidden


def test_disjoint_ranges_forbid_everything() -> None:
    below, above = col(bounds=(0, 1), bins=3), col(bounds=(2, 3), bins=4)
    assert forbidden_pairs(below, above, strict=False).all()
    assert forbidden_pairs(below, above, strict=False).shape == (3, 4)


def test_different_bin_widths_match_a_brute_force_check() -> None:
    g = col(bounds=(0, 30), edges=[0, 1, 2.5, 7, 30])
    lo = col(bounds=(0, 20), bins=8, dtype="int")
    gmin, gsup, gclosed = code_intervals(g)
    lmin, lsup, _ = code_intervals(lo)
    expected = np.zeros((4, 8), dtype=bool)
    for i in range(4):
        xs = np.linspace(gmin[i], gsup[i], 2001)[:-1 if not gclosed[i] else None]
        for j in range(8):
            ys = np.arange(lmin[j], lsup[j] + 1)
            expected[i, j] = not (xs[:, None] >= ys[None, :]).any()
    assert np.array_equal(forbidden_pairs(g, lo, strict=False), expected)
    assert lmin.tolist()[:3] == [0, 3, 5] and lsup.tolist()[:3] == [2, 4, 7]  # 2.5-wide integer bins


def test_datetime_cells_are_whole_units() -> None:
    s = schema_with()
    start, end = s.column("start"), s.column("end")
    lo, sup, closed = code_intervals(start)
    assert not closed.any() and (sup[:-1] == lo[1:]).all()  # contiguous half-open bins
    bad = forbidden_pairs(end, start, strict=False)
    assert bad.shape == (end.n_values, start.n_values)
    assert not bad[-1].any() and bad[0, 1:].all()


def test_assignments_feed_the_model_as_forbidden_combinations() -> None:
    s = parse_schema(WEATHER)
    assign = inequality_assignments(s)
    assert all(set(a) in ({"wind_gust", "wind_speed"}, {"end", "start"}) for a in assign)
    full = schema_constraints(s)
    assert full[0] == {"origin": 0} and full[1:] == assign
    gust_rows = [a for a in assign if "wind_gust" in a]
    bad = forbidden_pairs(s.column("wind_gust"), s.column("wind_speed"), strict=False)
    assert sum(len(a["wind_speed"]) for a in gust_rows) == int(bad.sum())  # type: ignore[arg-type]


# --- decode-time repair and derived columns -------------------------------------------------

def test_repair_and_derived_columns_on_random_codes() -> None:
    """Even codes that ignore the structural zeros come out satisfying every inequality."""
    s = parse_schema(WEATHER)
    rng = np.random.default_rng(3)
    codes = np.column_stack([rng.integers(0, n, 20_000) for n in s.domain().values()])
    frame = apply_constraints(decode(codes, s, rng), codes, s, rng)
    assert int((frame["wind_gust"] < frame["wind_speed"]).sum()) == 0
    assert int((frame["end"] <= frame["start"]).sum()) == 0
    assert frame["wind_gust"].isna().sum() > 0  # nulls are left alone
    assert list(frame.columns[2:7]) == ["time_hour", "year", "month", "day", "hour"]
    t = frame["time_hour"]
    for part in ("year", "month", "day", "hour"):
        assert (frame[part] == getattr(t.dt, part)).all() and frame[part].dtype == np.int64


def test_repair_only_redraws_inside_the_cells_when_the_model_is_consistent() -> None:
    s = schema_with({"inequality": "wind_gust >= wind_speed"})
    rng = np.random.default_rng(0)
    n = 20_000
    speed = rng.integers(0, 16, n)
    gust = np.minimum(11, (speed * 2.5 // 5).astype(np.int64) + rng.integers(0, 2, n))  # a feasible cell
    bad = forbidden_pairs(s.column("wind_gust"), s.column("wind_speed"), strict=False)
    assert not bad[gust, speed].any()
    codes = np.zeros((n, len(s.modelled)), dtype=np.int64)
    codes[:, 0], codes[:, 1] = speed, gust
    frame = apply_constraints(decode(codes, s, rng), codes, s, rng)
    edges_g, edges_s = s.column("wind_gust").bin_edges(), s.column("wind_speed").bin_edges()
    assert (frame["wind_gust"] >= frame["wind_speed"]).all()
    assert ((frame["wind_gust"] >= edges_g[gust]) & (frame["wind_gust"] < edges_g[gust + 1])).all()
    assert ((frame["wind_speed"] >= edges_s[speed]) & (frame["wind_speed"] < edges_s[speed + 1])).all()


def test_strict_integer_and_datetime_clamps() -> None:
    cols = [num("lo", (0, 100), dtype="int", bins=4), num("hi", (0, 100), dtype="int", bins=4),
            dt("a", ("2020-01-01T00:00:00Z", "2020-12-31T00:00:00Z"), granularity="hour", bins=3),
            dt("b", ("2020-01-01T00:00:00Z", "2020-12-31T00:00:00Z"), granularity="day", bins=3, nullable=True)]
    s = schema_with({"inequality": "hi > lo"}, {"inequality": "b > a"},
                    {"derived": {"d": "date", "w": "weekday", "q": "quarter"}, "from": "b"}, columns=cols)
    rng = np.random.default_rng(1)
    codes = np.column_stack([rng.integers(0, n, 5000) for n in s.domain().values()])
    frame = apply_constraints(decode(codes, s, rng), codes, s, rng)
    assert (frame["hi"] > frame["lo"]).all() and frame["hi"].dtype == np.int64
    both = frame["b"].notna()
    assert (frame.loc[both, "b"] > frame.loc[both, "a"]).all()
    assert (frame.loc[both, "b"].dt.floor("D") == frame.loc[both, "b"]).all()  # still whole days
    assert frame["w"].dtype == "Int64" and frame["w"].isna().sum() == (~both).sum()
    assert (frame.loc[both, "d"] == frame.loc[both, "b"].dt.strftime("%Y-%m-%d")).all()
    assert frame.loc[~both, "d"].isna().all()


def test_no_constraints_leaves_the_frame_and_the_randomness_alone() -> None:
    s = schema_with()
    rng = np.random.default_rng(5)
    codes = np.column_stack([rng.integers(0, n, 100) for n in s.domain().values()])
    frame = decode(codes, s, np.random.default_rng(9))
    before = frame.copy()
    state = rng.bit_generator.state
    assert apply_constraints(frame, codes, s, rng).equals(before)
    assert rng.bit_generator.state == state


# --- round trip -------------------------------------------------------------------------------

def test_schema_yaml_round_trip_keeps_every_constraint_spelling() -> None:
    s = parse_schema(WEATHER)
    text = dump_schema(s)
    again = parse_schema(yaml.safe_load(text))
    assert again == s and again.sha256() == s.sha256()
    assert yaml.safe_load(text)["constraints"] == WEATHER["constraints"]


def test_input_with_derived_columns_is_accepted() -> None:
    from dpsynth.tabular.encoding import encode

    s = parse_schema(WEATHER)
    t = pd.date_range("2013-02-01", periods=50, freq="h", tz="UTC")
    df = pd.DataFrame({"wind_speed": np.linspace(0, 30, 50), "wind_gust": np.linspace(1, 40, 50),
                       "time_hour": t, "start": "2013-03-01", "end": "2013-04-01", "origin": "JFK",
                       "year": t.year, "month": t.month, "day": t.day, "hour": t.hour})
    table = encode(df, s)
    assert table.columns == tuple(c.name for c in s.modelled)  # derived columns are not modelled


class _AtMost:
    """A window ``x <= hi`` in the shape :mod:`dpsynth.conditions` resolves ranges to."""

    def __init__(self, hi: float) -> None:
        self.hi = hi

    def holds(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x <= self.hi)


def test_windows_are_kept_by_every_stage_including_the_clamp() -> None:
    cols = [num("lo", (0, 10), bins=2), num("hi", (0, 10), bins=2)]  # cells [0,5) and [5,10]
    s = schema_with({"inequality": "hi >= lo"}, columns=cols)
    n = 2000
    codes = np.ones((n, 2), dtype=np.int64)  # both in [5, 10]
    frame = pd.DataFrame({"lo": np.full(n, 9.0), "hi": np.full(n, 5.0)})  # hi is at its window's edge
    out = apply_constraints(frame, codes, s, np.random.default_rng(0), windows={"hi": [_AtMost(5.0)]})
    assert (out["hi"] <= 5.0).all() and (out["hi"] >= out["lo"]).all()
    assert (out["lo"] == 5.0).all()  # only lowering lo to hi's value keeps hi in its window
    strict = schema_with({"inequality": "hi > lo"}, columns=[num("lo", (0, 10), dtype="int", bins=2),
                                                             num("hi", (0, 10), dtype="int", bins=2)])
    frame = pd.DataFrame({"lo": np.full(n, 9), "hi": np.full(n, 5)})
    out = apply_constraints(frame, codes, strict, np.random.default_rng(0), windows={"hi": [_AtMost(5.0)]})
    assert (out["hi"] == 5).all() and (out["lo"] == 4).all()  # the greatest integer below 5


def test_repaired_values_stay_on_the_declared_grid_and_atoms_forbid_their_cells() -> None:
    cols = [num("speed", (0, 40), bins=16, decimals=1, atoms=[0]),
            num("gust", (0, 60), bins=20, step=0.5, atoms=[0]),
            num("dir", (0, 360), dtype="int", bins=12, step=10),
            num("dir2", (0, 360), dtype="int", bins=12, step=10)]
    s = schema_with({"inequality": "gust >= speed"}, {"inequality": "dir2 > dir"}, columns=cols)
    wind = forbidden_pairs(s.column("gust"), s.column("speed"), strict=False)
    assert wind.shape == (21, 17)  # 20 bins + the atom, 16 bins + the atom
    assert np.flatnonzero(~wind[-1]).tolist() == [0, 16]  # a gust of exactly 0 only with speed in [0, 2.5) or 0
    assert not wind[:, -1].any()  # a speed of exactly 0 goes with any gust
    rng = np.random.default_rng(0)
    codes = np.column_stack([rng.integers(0, n, 50_000) for n in s.domain().values()])
    turn = forbidden_pairs(s.column("dir2"), s.column("dir"), strict=True)
    codes = codes[~wind[codes[:, 1], codes[:, 0]] & ~turn[codes[:, 3], codes[:, 2]]]
    frame = apply_constraints(decode(codes, s, rng), codes, s, rng)
    assert int((frame["gust"] < frame["speed"]).sum()) == 0 and int((frame["dir2"] <= frame["dir"]).sum()) == 0
    assert np.allclose(frame["gust"] * 2, np.round(frame["gust"] * 2))
    assert np.allclose(frame["speed"], np.round(frame["speed"], 1))
    assert (frame["dir"] % 10 == 0).all() and (frame["dir2"] % 10 == 0).all()
    assert (frame.loc[codes[:, 1] == 20, "gust"] == 0).all()  # the atom's cell decodes to the atom
