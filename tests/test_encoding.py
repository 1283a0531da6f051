"""Schema-driven encoding: total on bad values, round trips, unicode, dates, validate."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dpsynth.errors import SchemaError
from dpsynth.tabular.encoding import decode, encode, encode_column, read_frame, validate_frame
from dpsynth.tabular.schema import parse_schema

SET = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def one(col: dict) -> object:
    return parse_schema({"columns": [col]}).columns[0]


def test_categorical_nulls_unseen_other_and_fallback() -> None:
    col = one({"name": "c", "kind": "categorical", "categories": ["a", "b"], "other": True, "nullable": True})
    codes, problems = encode_column(pd.Series(["a", "b", "zzz", None, np.nan]), col)
    assert codes.tolist() == [0, 1, 2, 3, 3]
    assert problems == {"undeclared_category": 1}
    strict = one({"name": "c", "kind": "categorical", "categories": ["a", "b"]})
    codes, problems = encode_column(pd.Series(["a", "zzz", None]), strict)
    assert codes.tolist() == [0, 0, 0]  # fallback: first category, never an exception
    assert problems == {"undeclared_category": 1, "null_in_non_nullable": 1}


def test_numeric_clamps_infinities_and_out_of_bounds() -> None:
    col = one({"name": "x", "kind": "numeric", "dtype": "float", "bounds": [0, 10], "bins": 5, "nullable": True})
    s = pd.Series([-5, 0, 1.99, 2, 9.999, 10, 1e308, np.inf, -np.inf, None, "abc"], dtype=object)
    codes, problems = encode_column(s, col)
    assert codes.tolist() == [0, 0, 0, 1, 4, 4, 4, 4, 0, 5, 5]
    assert problems["out_of_bounds"] == 4 and problems["unparseable"] == 1


def test_integer_per_value_cells_and_rounding() -> None:
    col = one({"name": "k", "kind": "numeric", "dtype": "int", "bounds": [1, 5]})
    codes, _ = encode_column(pd.Series(["1", "2", "3.4", "5", "7", "0"]), col)
    assert codes.tolist() == [0, 1, 2, 4, 4, 0]


def test_datetimes_naive_and_aware_are_consistent() -> None:
    col = one(
        {"name": "t", "kind": "datetime", "bounds": ["2020-01-01", "2020-12-31"], "granularity": "day", "bins": 366}
    )
    naive = pd.Series(["2020-03-01 10:00", "1900-01-01", "9999-12-31", None])
    aware = pd.Series(pd.to_datetime(["2020-03-01T10:00:00+00:00", None], utc=True))
    c1, p1 = encode_column(naive, col)
    c2, _ = encode_column(aware, col)
    assert c1[0] == c2[0] == 60  # 31 + 29 days into the leap year
    assert c1[1] == 0 and c1[2] == 365  # clamped, pre-1970 and year 9999 included
    assert p1["out_of_bounds"] == 2


def test_unicode_nfc_and_zero_width_match() -> None:
    cafe_nfc = unicodedata.normalize("NFC", "café")
    cafe_nfd = unicodedata.normalize("NFD", "café")
    col = one({"name": "名前 (x)", "kind": "categorical", "categories": [cafe_nfc, "עברית", "🙂"]})
    codes, problems = encode_column(pd.Series([cafe_nfd, "עב\u200bרית", "🙂"]), col)  # noqa: RUF001 (Hebrew is the point)
    assert codes.tolist() == [0, 1, 2] and problems == {}


def test_integral_floats_match_integer_categories() -> None:
    col = one({"name": "c", "kind": "categorical", "categories": [0, 1, 2]})
    codes, _ = encode_column(pd.Series([0, 1.0, "2"], dtype=object), col)
    assert codes.tolist() == [0, 1, 2]


def test_missing_schema_column_is_a_schema_error_naming_it() -> None:
    s = parse_schema({"columns": [{"name": "a b", "kind": "boolean"}]})
    with pytest.raises(SchemaError, match="a b"):
        encode(pd.DataFrame({"x": [1]}), s)


def test_empty_and_one_row_frames() -> None:
    s = parse_schema(
        {
            "columns": [
                {"name": "a", "kind": "boolean"},
                {"name": "n", "kind": "numeric", "dtype": "int", "bounds": [0, 3]},
            ]
        }
    )
    assert encode(pd.DataFrame({"a": [], "n": []}), s).codes.shape == (0, 2)
    t = encode(pd.DataFrame({"a": ["true"], "n": ["2"]}), s)
    assert t.codes.tolist() == [[1, 2]]
    assert decode(np.zeros((0, 2), dtype=np.int64), s, np.random.default_rng(0)).shape == (0, 2)


def test_input_frame_is_not_modified() -> None:
    s = parse_schema({"columns": [{"name": "x", "kind": "numeric", "dtype": "float", "bounds": [0, 1], "bins": 2}]})
    df = pd.DataFrame({"x": [0.5, 7.0, None]})
    before = df.copy()
    encode(df, s)
    pd.testing.assert_frame_equal(df, before)


def test_validate_counts_problems_without_values() -> None:
    s = parse_schema({"columns": [{"name": "c", "kind": "categorical", "categories": ["a"]}]})
    rep = validate_frame(pd.DataFrame({"c": ["a", "SECRET-VALUE", None]}), s)
    js = rep.to_json()
    assert js["confidential"] is True and js["problems"] == {"c": {"undeclared_category": 1, "null_in_non_nullable": 1}}
    assert "SECRET" not in repr(js)


def test_csv_reader_honours_missing_values_and_bom(tmp_path: Path) -> None:
    s = parse_schema(
        {
            "missing_values": ["?"],
            "columns": [{"name": "a", "kind": "categorical", "categories": ["x"], "nullable": True}],
        }
    )
    p = tmp_path / "d.csv"
    p.write_bytes("\ufeffa\nx\n?\n".encode())
    df = read_frame(p, s)
    assert list(df.columns) == ["a"]
    assert encode(df, s).codes[:, 0].tolist() == [0, 1]


# ---------------------------------------------------------------- property tests
@SET
@given(bounds=st.tuples(st.integers(-1000, 1000), st.integers(1, 2000)), bins=st.integers(1, 30),
       data=st.data())
def test_int_numeric_every_value_decodes_into_its_own_cell(
    bounds: tuple[int, int], bins: int, data: st.DataObject
) -> None:
    lo, width = bounds
    hi = lo + width
    col = {"name": "x y", "kind": "numeric", "dtype": "int", "bounds": [lo, hi], "bins": bins}
    s = parse_schema({"columns": [col]})
    values = data.draw(st.lists(st.integers(lo, hi), min_size=1, max_size=30))
    codes, problems = encode_column(pd.Series(values), s.columns[0])
    assert problems == {}
    out = decode(codes.reshape(-1, 1), s, np.random.default_rng(0))
    again, _ = encode_column(out["x y"], s.columns[0])
    assert again.tolist() == codes.tolist()
    assert out["x y"].dtype == np.int64 and out["x y"].between(lo, hi).all()


@SET
@given(lo=st.floats(-1e6, 1e6), width=st.floats(1e-3, 1e6), bins=st.integers(1, 50), data=st.data())
def test_float_numeric_round_trip(lo: float, width: float, bins: int, data: st.DataObject) -> None:
    hi = lo + width
    s = parse_schema(
        {
            "columns": [
                {"name": "f", "kind": "numeric", "dtype": "float", "bounds": [lo, hi], "bins": bins, "nullable": True}
            ]
        }
    )
    values = data.draw(st.lists(st.one_of(st.floats(lo, hi), st.none()), min_size=1, max_size=30))
    codes, _ = encode_column(pd.Series(values, dtype=object), s.columns[0])
    out = decode(codes.reshape(-1, 1), s, np.random.default_rng(1))
    again, _ = encode_column(out["f"], s.columns[0])
    assert again.tolist() == codes.tolist()


@SET
@given(
    cats=st.lists(
        st.text(min_size=1, max_size=8).filter(lambda t: t.strip() and "\x00" not in t),
        min_size=1,
        max_size=6,
        unique_by=lambda t: unicodedata.normalize("NFC", t).strip(),
    ),
    data=st.data(),
)
def test_categorical_round_trip_with_unicode(cats: list[str], data: st.DataObject) -> None:
    from dpsynth.tabular.schema import canonical_key

    keys = [canonical_key(c) for c in cats]
    if len(set(keys)) != len(keys) or not all(keys) or "Other" in keys:  # other_label must not be a category
        return
    s = parse_schema(
        {"columns": [{"name": "c!", "kind": "categorical", "categories": cats, "other": True, "nullable": True}]}
    )
    values = data.draw(st.lists(st.sampled_from([*cats, None]), min_size=1, max_size=20))
    codes, problems = encode_column(pd.Series(values, dtype=object), s.columns[0])
    assert problems == {}
    out = decode(codes.reshape(-1, 1), s, np.random.default_rng(2))
    again, _ = encode_column(out["c!"], s.columns[0])
    assert again.tolist() == codes.tolist()


@SET
@given(days=st.lists(st.integers(0, 3650), min_size=1, max_size=20), bins=st.integers(1, 40),
       tz=st.sampled_from([None, "Europe/Paris", "America/New_York"]))
def test_datetime_round_trip(days: list[int], bins: int, tz: str | None) -> None:
    lo = "2000-01-01T00:00:00" + ("+00:00" if tz else "")
    hi = "2009-12-31T00:00:00" + ("+00:00" if tz else "")
    s = parse_schema(
        {
            "columns": [
                {
                    "name": "t",
                    "kind": "datetime",
                    "bounds": [lo, hi],
                    "granularity": "day",
                    "bins": bins,
                    "timezone": tz,
                }
            ]
        }
    )
    ts = pd.Series(pd.Timestamp("2000-01-01") + pd.to_timedelta(days, unit="D"))
    codes, _ = encode_column(ts, s.columns[0])
    out = decode(codes.reshape(-1, 1), s, np.random.default_rng(3))
    again, _ = encode_column(out["t"], s.columns[0])
    assert again.tolist() == codes.tolist()
    if tz is None:
        assert (out["t"].dt.normalize() == out["t"]).all()  # day granularity


def test_boolean_and_identifier_tokens() -> None:
    s = parse_schema({"columns": [{"name": "id", "kind": "identifier", "output": "token"},
                                  {"name": "b", "kind": "boolean", "nullable": True}]})
    t = encode(pd.DataFrame({"id": ["SSN-1", "SSN-2", "SSN-3"], "b": ["yes", "0", None]}), s)
    assert t.codes[:, 0].tolist() == [1, 0, 2]
    out = decode(t.codes, s, np.random.default_rng(0))
    assert list(out.columns) == ["id", "b"]
    assert not out["id"].str.contains("SSN").any() and out["id"].str.len().eq(16).all()
