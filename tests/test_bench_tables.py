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


def _raw_fixtures(directory: Path) -> None:
    """Small made-up raw tables with the registry tables' columns: every codebook value, edge
    values of every bin, and missing values where the codebook allows them."""
    rng = np.random.default_rng(0)
    n = 40
    pd.DataFrame({"data_id": "CPS1", "treat": 0, "age": rng.integers(16, 56, n), "educ": rng.integers(0, 19, n),
                  **{c: rng.integers(0, 2, n) for c in ("black", "hisp", "marr", "nodegree")},
                  **{c: rng.choice([0.0, 999.0, 1000.0, 24999.9, 30000.0], n) for c in ("re74", "re75", "re78")}}
                 ).to_csv(directory / "causaldata-cps_mixtape.csv", index=False)

    def pick(values: list[object]) -> list[object]:
        return [values[i % len(values)] for i in range(n)]

    pd.DataFrame({"age": pick([12.0, 18.0, None]), "gender": pick(["female", "male", None]),
                  "grade": pick(["9", "12", "other", None]), "hispanic": pick(["hispanic", "not"]),
                  "race": pick(["Asian", "White", None]), "height": pick([1.27, 1.40, 2.11, None]),
                  "weight": pick([29.9, 40.0, 180.0, None]), "helmet_12m": pick(["never", "did not ride", None]),
                  "text_while_driving_30d": pick(["0", "30", "did not drive"]),
                  "physically_active_7d": pick([0.0, 7.0, None]), "hours_tv_per_school_day": pick(["<1", "5+"]),
                  "strength_training_7d": pick([3.0, None]), "school_night_hours_sleep": pick(["<5", "10+", None])}
                 ).to_csv(directory / "openintro-yrbss.csv", index=False)
    pd.DataFrame({"month": pick(list(range(1, 13))), "hour": pick([1, 5, 6, 23]),
                  "carrier": pick(list(tables.CARRIERS)),
                  "origin": pick(["EWR", "JFK", "LGA"]), "dep_delay": pick([-43.0, 0.0, 15.0, 1301.0, None]),
                  "arr_delay": pick([-80.0, 15.0, 16.0, None]), "air_time": pick([20.0, 695.0, None]),
                  "distance": pick([17, 250, 4983]), "sched_arr_time": pick([1, 559, 600, 2359])}
                 ).to_csv(directory / "nycflights13-flights.csv", index=False)


def test_registry_codings_on_made_up_raw_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The coding of the three registry tables, without the registry: this runs everywhere."""
    _raw_fixtures(tmp_path)
    monkeypatch.setattr(tables, "BENCH_DATA", tmp_path)
    cps, cps_domain = tables.load("cps")
    assert cps_domain["re78"] == 10 and set(cps["re78"]) <= {0, 1, 2, 8, 9}  # 0 is its own bin
    raw = pd.read_csv(tmp_path / "causaldata-cps_mixtape.csv")
    assert (cps["age"] == raw["age"] - 16).all() and (cps["educ"] == raw["educ"]).all()  # one bin per value
    yrbss, y_domain = tables.load("yrbss")
    assert len(yrbss) == 40 - 13 and y_domain["gender"] == 2  # rows without a gender are dropped
    assert y_domain["height"] == 15 and yrbss["height"].max() == 14  # a missing height is the last code
    flights, f_domain = tables.load("flights")
    late = pd.read_csv(tmp_path / "nycflights13-flights.csv")["arr_delay"]
    assert flights["late"].tolist() == ((late > 15) | late.isna()).astype(int).tolist()
    assert flights["hour"].min() == 0 and f_domain["carrier"] == 16
    bad = pd.read_csv(tmp_path / "openintro-yrbss.csv")
    bad.loc[0, "race"] = "Martian"
    bad.to_csv(tmp_path / "openintro-yrbss.csv", index=False)
    with pytest.raises(ValueError, match="race: 1 values outside the written categories"):
        tables.load("yrbss")
