"""Shared cross-engine cases (schema, data strategies) and unit tests of the SQL builder."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import strategies as st

from dpsynth.backends.sql import DUCKDB, SPARK, WHITESPACE, grouping_id, scatter_counts, source_kind
from dpsynth.tabular.schema import parse_schema

CAT = "cat égorie (1)"
ORD = "ord.2, \"quoted\""
FLT = "num float"
INT = "int`col"
EDG = "edges;"
DAY = "when day"
HOUR = "when tz"
MON = "month"
FLAG = "flag!"
FLAG2 = "flag2"

SCHEMA = parse_schema(
    {
        "columns": [
            {"name": "pid", "kind": "identifier"},
            {"name": CAT, "kind": "categorical", "categories": ["é", "a b", "🙂", "שלום", 1, "x'y\\z"],
             "other": True, "nullable": True},
            {"name": ORD, "kind": "ordinal", "categories": ["lo", "mid", "hi"]},
            {"name": FLT, "kind": "numeric", "bounds": [0, 10], "bins": 4, "nullable": True},
            {"name": INT, "kind": "numeric", "dtype": "int", "bounds": [-3, 5]},
            {"name": EDG, "kind": "numeric", "dtype": "int", "bounds": [0, 100], "edges": [0, 1, 10, 100],
             "nullable": True},
            {"name": DAY, "kind": "datetime", "bounds": ["2000-01-01", "2020-12-31"], "bins": 7, "nullable": True},
            {"name": HOUR, "kind": "datetime", "bounds": ["2005-01-01T00:00:00+00:00", "2005-01-03T00:00:00+00:00"],
             "granularity": "hour", "bins": 10},
            {"name": MON, "kind": "datetime", "bounds": ["2001-01-01", "2002-12-31"], "granularity": "month",
             "bins": 5, "nullable": True},
            {"name": FLAG, "kind": "boolean", "nullable": True},
            {"name": FLAG2, "kind": "boolean"},
        ]
    }
)

NAMES = [c.name for c in SCHEMA.modelled]
CLIQUES = [(n,) for n in NAMES] + [(CAT, ORD), (FLT, INT), (DAY, FLAG), (HOUR, MON, EDG), (FLAG2, CAT)]

_CAT_TEXT = [
    "é",
    "e\u0301",
    " é ",
    "\u200bé",
    "a b",
    "a\u200d b",
    "\u2060🙂\ufeff",
    "a  b",
    "\u00a0a b\u3000",
    "🙂",
    "שלום",
    "1",
    "1.0",
    "x'y\\z",
    "other thing",
    "NA",
    "",
    None,
]
_ORD_TEXT = ["lo", "mid", "hi", "HI", " mid", "zzz", None]
_NUMS = [-1e9, -10.0, -3.5, -2.5, -0.5, 0.0, 0.5, 1.0, 1.5, 2.5, 4.5, 5.0, 5.5, 7.5, 9.5, 10.0, 10.25, 99.5,
         100.0, 150.0, math.inf, -math.inf, math.nan]
_NUM_TEXT = ["junk", "1_0", " 3 ", "1e1", "", "inf", "-Infinity", "nan", None]
_BOOL_TEXT = ["true", "True", " YES ", "0", "1", "t", "n", "F", "maybe", "", None]


def _stamp(draw: Any, lo: str, hi: str, tz: bool) -> str | None:
    a, b = pd.Timestamp(lo).value // 10**9, pd.Timestamp(hi).value // 10**9
    secs = draw(st.one_of(st.integers(a, b), st.sampled_from([a, b, a - 1, b + 1])))
    ts = pd.Timestamp(secs, unit="s")
    form = draw(st.integers(0, 4 if tz else 2))
    if form == 0:
        return ts.strftime("%Y-%m-%d")
    if form == 1:
        return ts.strftime("%Y-%m-%d %H:%M:%S")
    if form == 2:
        return ts.strftime("%Y-%m-%dT%H:%M:%S")
    if form == 3:
        return ts.strftime("%Y-%m-%dT%H:%M:%SZ")
    off = draw(st.sampled_from(["+02:00", "-05:30", "+00:00"]))
    return ts.strftime("%Y-%m-%dT%H:%M:%S") + off


def _maybe(draw: Any, make: Any, odd: str | None) -> str | None:
    pick = draw(st.integers(0, 5))
    return None if pick == 0 else odd if pick == 1 else make()


@st.composite
def text_rows(draw: Any) -> dict[str, Any]:
    """One row as CSV text (None for an empty cell)."""
    num = st.one_of(st.sampled_from(_NUMS).map(repr), st.sampled_from(_NUM_TEXT))
    return {
        "pid": draw(st.sampled_from(["p1", "p2", "p3", None])),
        CAT: draw(st.sampled_from(_CAT_TEXT)),
        ORD: draw(st.sampled_from(_ORD_TEXT)),
        FLT: draw(num),
        INT: draw(num),
        EDG: draw(num),
        DAY: _maybe(draw, lambda: _stamp(draw, "1995-01-01", "2025-01-01", True), "junk"),
        HOUR: _stamp(draw, "2004-12-31", "2005-01-04", True),
        MON: _maybe(draw, lambda: _stamp(draw, "2000-06-01", "2003-06-01", False), None),
        FLAG: draw(st.sampled_from(_BOOL_TEXT)),
        FLAG2: draw(st.sampled_from(_BOOL_TEXT)),
    }


def text_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A frame of text (object) columns in schema order."""
    return pd.DataFrame(rows, columns=["pid", *NAMES], dtype=object)


@st.composite
def typed_frames(draw: Any) -> pd.DataFrame:
    """A typed frame: floats with inf/NaN, naive and tz-aware datetimes, nullable booleans."""
    n = draw(st.integers(1, 30))
    nums = st.lists(st.sampled_from(_NUMS), min_size=n, max_size=n)
    stamps = st.lists(st.one_of(st.none(), st.integers(-400, 400)), min_size=n, max_size=n)
    day0 = pd.Timestamp("2010-06-15")
    days = [None if d is None else day0 + pd.Timedelta(days=d * 20) for d in draw(stamps)]
    hours = [pd.Timestamp("2005-01-02", tz="Asia/Kolkata") + pd.Timedelta(hours=h or 0) / 7 for h in draw(stamps)]
    mons = [None if d is None else pd.Timestamp("2002-01-01") + pd.Timedelta(days=d * 2) for d in draw(stamps)]
    cats = draw(st.lists(st.sampled_from([*_CAT_TEXT, 1, 1.0, 2]), min_size=n, max_size=n))
    bools = draw(st.lists(st.sampled_from([True, False, None]), min_size=n, max_size=n))
    return pd.DataFrame(
        {
            "pid": pd.Series(draw(st.lists(st.sampled_from([1, 2, 3]), min_size=n, max_size=n)), dtype="int64"),
            CAT: pd.Series(cats, dtype=object),
            ORD: pd.Series(draw(st.lists(st.sampled_from(_ORD_TEXT), min_size=n, max_size=n)), dtype=object),
            FLT: pd.Series(draw(nums), dtype="float64"),
            INT: pd.Series(draw(nums), dtype="float64"),
            EDG: pd.Series([repr(v) for v in draw(nums)], dtype=object),
            DAY: pd.Series(pd.to_datetime(days)),
            HOUR: pd.Series(pd.DatetimeIndex(hours)),
            MON: pd.Series(pd.to_datetime(mons)),
            FLAG: pd.Series(bools, dtype="boolean"),
            FLAG2: pd.Series([b is True for b in bools], dtype=bool),
        }
    )


def fixed_typed_frame(n: int = 60) -> pd.DataFrame:
    """A deterministic typed frame cycling through every hostile value."""
    def cyc(vals):
        return [vals[i % len(vals)] for i in range(n)]
    day0 = pd.Timestamp("2010-06-15")
    return pd.DataFrame(
        {
            "pid": pd.Series(cyc([1, 2, 3, 4, 5, 6, 7]), dtype="int64"),
            CAT: pd.Series(cyc([*_CAT_TEXT, 1, 1.0, 2]), dtype=object),
            ORD: pd.Series(cyc(_ORD_TEXT), dtype=object),
            FLT: pd.Series(cyc(_NUMS), dtype="float64"),
            INT: pd.Series(cyc(_NUMS[::-1]), dtype="float64"),
            EDG: pd.Series(cyc([repr(v) for v in _NUMS] + _NUM_TEXT), dtype=object),
            DAY: pd.Series(
                pd.to_datetime(cyc([None, *(day0 + pd.Timedelta(days=40 * d) for d in range(-150, 150, 7))]))
            ),
            HOUR: pd.Series(
                pd.DatetimeIndex(
                    cyc(
                        [
                            pd.Timestamp("2005-01-02", tz="Asia/Kolkata") + pd.Timedelta(minutes=97 * h)
                            for h in range(-40, 40)
                        ]
                    )
                )
            ),
            MON: pd.Series(
                pd.to_datetime(
                    cyc([None, *(pd.Timestamp("2001-11-30") + pd.Timedelta(days=d) for d in range(0, 600, 13))])
                )
            ),
            FLAG: pd.Series(cyc([True, False, None, True]), dtype="boolean"),
            FLAG2: pd.Series(cyc([True, False, False]), dtype=bool),
        }
    )


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write text rows as UTF-8 CSV with a byte-order mark (None -> empty cell)."""
    frame.to_csv(path, index=False, encoding="utf-8-sig")
    return path


def test_source_kinds() -> None:
    assert source_kind("VARCHAR") == source_kind("string") == "text"
    assert source_kind("BIGINT") == source_kind("UINTEGER") == source_kind("int") == "int"
    assert source_kind("DECIMAL(10,2)") == source_kind("double") == "float"
    assert source_kind("TIMESTAMP WITH TIME ZONE") == source_kind("timestamp_ntz") == "timestamp"
    assert source_kind("DATE") == "date"
    assert source_kind("BOOLEAN") == "bool"
    assert source_kind("BLOB") == "other"


def test_literals_and_identifiers_are_escaped() -> None:
    assert DUCKDB.string("x'y\\z") == "'x''y\\z'"
    assert SPARK.string("x'y\\z") == "'x\\'y\\\\z'"
    assert DUCKDB.ident('a"b') == '"a""b"'
    assert SPARK.ident("a`b") == "`a``b`"
    assert all(c.isspace() for c in WHITESPACE) and " " in WHITESPACE and "\u3000" in WHITESPACE


def test_grouping_id_layout_and_scatter() -> None:
    cols = ["c0", "c1", "c2"]
    assert grouping_id(cols, ("c0", "c1", "c2")) == 0
    assert grouping_id(cols, ("c0",)) == 0b011
    assert grouping_id(cols, ("c2",)) == 0b110
    gid = np.array([0b011, 0b011, 0b110], dtype=np.int64)
    codes = {"c0": np.array([0, 1, -1]), "c1": np.array([-1, -1, -1]), "c2": np.array([-1, -1, 2])}
    n = np.array([5, 7, 3], dtype=np.int64)
    a, b = scatter_counts(gid, codes, n, cols, [("c0",), ("c2",)], [(2,), (4,)])
    assert a.tolist() == [5, 7] and b.tolist() == [0, 0, 3, 0]
