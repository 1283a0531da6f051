"""The benchmark tables' written-down coding (benchmarks/tables.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import tables


def test_bins_are_half_open_clip_outside_and_code_missing_last() -> None:
    codes, size = tables._bins(pd.Series([-5.0, 0.0, 9.99, 10.0, 1e9, np.nan], name="x"), [0, 10, 20, tables.INF])
    assert size == 4 and codes.tolist() == [0, 0, 0, 1, 2, 3]
    with pytest.raises(ValueError, match="x: missing values"):
        tables._bins(pd.Series([np.nan], name="x"), [0, 1], missing=False)


def test_categories_follow_the_written_order_and_refuse_unlisted_values() -> None:
    codes, size = tables._categories(pd.Series(["b", None, "a"], name="c"), ["a", "b"])
    assert size == 3 and codes.tolist() == [1, 2, 0]
    with pytest.raises(ValueError, match="c: 1 values outside"):
        tables._categories(pd.Series(["a", "z"], name="c"), ["a", "b"])


def test_adult_is_the_coded_file_and_every_target_is_a_domain_column() -> None:
    frame, domain = tables.load("adult")
    assert frame.shape == (48842, 15) and domain["income>50K"] == 2
    assert all(t.target for t in tables.TABLES.values())


@pytest.mark.parametrize("name", ["cps", "yrbss", "flights"])
def test_registry_tables_code_inside_their_domains(name: str) -> None:
    if not (tables.BENCH_DATA / "causaldata-cps_mixtape.csv").exists():
        pytest.skip("the registry tables are exported on the benchmark's first run (benchmarks/tables.py)")
    frame, domain = tables.load(name)  # load() itself checks every code against the domain
    target = tables.TABLES[name].target
    assert domain[target] == 2 and set(frame[target].unique()) == {0, 1}
    assert {"cps": 15992, "yrbss": 13571, "flights": 336776}[name] == len(frame)
