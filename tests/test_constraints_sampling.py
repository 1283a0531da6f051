"""Constraints between columns hold on every sampled row of models fitted with MST and AIM.

The table is a weather lookalike generated here with a fixed seed: wind speed ~ gamma and
gust = speed + gamma (so ``wind_gust >= wind_speed`` holds in the data), a departure and an
arrival time, and year/month/day/hour columns that are parts of ``time_hour``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from dpsynth import api
from dpsynth.mechanisms.aim import AIMConfig
from dpsynth.tabular.constraints import forbidden_pairs
from dpsynth.tabular.schema import parse_schema

ROWS = 100_000
SCHEMA = parse_schema({"columns": [
    {"name": "origin", "kind": "categorical", "categories": ["EWR", "JFK", "LGA"]},
    {"name": "wind_speed", "kind": "numeric", "bounds": [0, 40], "bins": 16},
    {"name": "wind_gust", "kind": "numeric", "bounds": [0, 60], "bins": 20, "nullable": True},
    {"name": "time_hour", "kind": "datetime", "bounds": ["2013-01-01T00:00:00Z", "2013-12-31T23:00:00Z"],
     "granularity": "hour", "bins": 24, "timezone": "America/New_York"},
    {"name": "dep", "kind": "datetime", "bounds": ["2013-01-01", "2013-12-31"], "granularity": "hour", "bins": 16},
    {"name": "arr", "kind": "datetime", "bounds": ["2013-01-01", "2014-01-02"], "granularity": "hour", "bins": 16},
], "constraints": [
    {"inequality": "wind_gust >= wind_speed"},
    {"inequality": "arr > dep"},
    {"derived": {"year": "year", "month": "month", "day": "day", "hour": "hour"}, "from": "time_hour"},
]})


def lookalike(n: int = 3000, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    speed = np.minimum(rng.gamma(2.0, 4.0, n), 40.0)
    gust = np.minimum(speed + rng.gamma(1.5, 3.0, n), 60.0)
    gust[rng.random(n) < 0.3] = np.nan  # gusts are often not reported
    t = pd.Timestamp("2013-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 364 * 24, n), unit="h")
    dep = pd.Timestamp("2013-01-01") + pd.to_timedelta(rng.integers(0, 364 * 24, n), unit="h")
    arr = dep + pd.to_timedelta(rng.integers(1, 20, n), unit="h")
    local = t.tz_convert("America/New_York")
    frame = pd.DataFrame({"origin": rng.choice(["EWR", "JFK", "LGA"], n), "wind_speed": speed,
                          "wind_gust": gust, "time_hour": t, "dep": dep, "arr": arr,
                          "year": local.year, "month": local.month, "day": local.day, "hour": local.hour})
    assert (frame["wind_gust"].dropna() >= frame["wind_speed"][frame["wind_gust"].notna()]).all()
    return frame


@pytest.fixture(scope="module", params=["mst", "aim"])
def fitted(request: pytest.FixtureRequest) -> tuple[str, api.Synthesizer]:
    options: dict[str, Any] = {}
    if request.param == "aim":
        options["aim"] = AIMConfig(max_rounds=12, round_iters=30, final_iters=150, degree=2)
    synth = api.fit(lookalike(), SCHEMA, mechanism=request.param, epsilon=1.0, delta=1e-9, **options)
    return request.param, synth


def violations(frame: pd.DataFrame) -> dict[str, int]:
    gust = frame["wind_gust"].notna()
    return {
        "gust<speed": int((frame.loc[gust, "wind_gust"] < frame.loc[gust, "wind_speed"]).sum()),
        "arr<=dep": int((frame["arr"] <= frame["dep"]).sum()),
        **{part: int((frame[part] != getattr(frame["time_hour"].dt, part)).sum())
           for part in ("year", "month", "day", "hour")},
    }


def test_model_puts_no_mass_on_forbidden_cells(fitted: tuple[str, api.Synthesizer]) -> None:
    _, synth = fitted
    assert synth.model is not None
    if synth.compression is not None:  # columns named by a constraint are never compressed
        assert not {"wind_gust", "wind_speed", "dep", "arr"} & set(synth.compression.maps)
    joint = synth.model.probability(("wind_gust", "wind_speed"))
    bad = forbidden_pairs(SCHEMA.column("wind_gust"), SCHEMA.column("wind_speed"), strict=False)
    assert float(np.asarray(joint)[:-1][bad].sum()) == 0.0  # the null row of gust is never forbidden


def test_zero_violations_on_a_hundred_thousand_rows(fitted: tuple[str, api.Synthesizer]) -> None:
    name, synth = fitted
    frame = synth.sample(ROWS, seed=11)
    assert len(frame) == ROWS
    assert violations(frame) == dict.fromkeys(["gust<speed", "arr<=dep", "year", "month", "day", "hour"], 0), name
    assert list(frame.columns) == ["origin", "wind_speed", "wind_gust", "time_hour", "year", "month", "day",
                                   "hour", "dep", "arr"]
    assert frame["wind_gust"].isna().any() and frame["wind_gust"].notna().mean() > 0.5
    # the repair keeps the data's shape: gust exceeds speed by a typical margin, not by zero
    gap = (frame["wind_gust"] - frame["wind_speed"]).dropna()
    assert float((gap == 0).mean()) < 0.01


def test_same_seed_same_rows(fitted: tuple[str, api.Synthesizer]) -> None:
    _, synth = fitted
    pd.testing.assert_frame_equal(synth.sample(2000, seed=3), synth.sample(2000, seed=3))


def test_range_conditions_and_inequalities_hold_together(fitted: tuple[str, api.Synthesizer]) -> None:
    """The repair never moves a conditioned value out of its range, even when the ranges cut
    the cells so that raising the gust to the speed would leave the gust's range."""
    _, synth = fitted
    frame = synth.sample(20_000, seed=5, conditions=["wind_speed>=21", "wind_gust<=24"])
    assert int((frame["wind_speed"] < 21).sum()) == 0
    assert int((frame["wind_gust"] > 24).sum()) == 0
    assert frame["wind_gust"].notna().all()
    assert int((frame["wind_gust"] < frame["wind_speed"]).sum()) == 0
