"""The memory budget (``max_memory``): parsing, the machine default, AIM's model cap derived from
it, refusals of fixed-size models before any read, and a release's peak RSS under it."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import dpsynth
from dpsynth.errors import ConfigError, ModelTooLargeError
from dpsynth.mechanisms.aim import AIMConfig
from dpsynth.mechanisms.plan import (
    BASE_BYTES,
    BYTES_PER_CELL,
    BYTES_PER_COUNT,
    FALLBACK_MEMORY,
    default_max_memory,
    estimate_memory,
    machine_memory,
    parse_memory,
    plan_fit,
    within_memory,
)
from dpsynth.tabular.schema import Schema, load_schema

DATA = Path(__file__).parent / "data"
SMALL = ["relationship", "marital-status", "sex", "income>50K", "race", "workclass", "education", "occupation"]
WIDE = ["age", "fnlwgt", "capital-gain", "capital-loss", "hours-per-week", "native-country"]
FAST = AIMConfig(max_rounds=12, round_iters=30, final_iters=100)


def _schema(tmp_path: Path, cols: list[str]) -> tuple[Path, Schema]:
    dom = json.loads((DATA / "adult-coded-domain.json").read_text())
    path = tmp_path / "domain.json"
    path.write_text(json.dumps({c: dom[c] for c in cols}))
    return path, load_schema(path)


def _frame(cols: list[str], rows: int = 3000) -> pd.DataFrame:
    return pd.read_csv(DATA / "adult-coded.csv", nrows=rows)[cols]


def _budget_for(schema: Schema, cells: int) -> int:
    """A max_memory that leaves exactly ``cells`` model cells for AIM after its count caches."""
    est = estimate_memory(schema, "aim", options=FAST)
    return est.count_cells * BYTES_PER_COUNT + BASE_BYTES + cells * BYTES_PER_CELL


@pytest.mark.parametrize(("text", "size"), [("512M", 512 * 2**20), ("2G", 2 * 2**30), ("1.5GiB", 3 * 2**29),
                                            ("800MB", 800 * 2**20), ("64k", 65536), ("4096", 4096), (123, 123)])
def test_parse_memory_reads_binary_units(text: str | int, size: int) -> None:
    assert parse_memory(text) == size


@pytest.mark.parametrize("bad", ["", "lots", "-1G", "0", "2X", True])
def test_parse_memory_refuses_what_is_not_a_size(bad: object) -> None:
    with pytest.raises(ConfigError, match="max_memory"):
        parse_memory(bad)  # type: ignore[arg-type]


def test_default_is_half_the_machine_or_the_fallback() -> None:
    total = machine_memory()
    assert default_max_memory() == (total // 2 if total else FALLBACK_MEMORY)
    assert default_max_memory() > 0


def test_aim_cap_is_derived_from_the_budget_and_reported(tmp_path: Path) -> None:
    _, schema = _schema(tmp_path, WIDE)
    budget = _budget_for(schema, 8000)
    assert within_memory(schema, "aim", FAST, budget).max_model_cells == 8000
    assert within_memory(schema, "aim", FAST, "64G").max_model_cells == FAST.max_model_cells  # own cap wins
    plan = plan_fit(schema, mechanism="aim", epsilon=1.0, max_memory=budget)
    out = plan.to_json()
    assert plan.max_model_cells == 8000 and plan.max_memory == budget
    assert out["max_memory_mib"] == round(budget / 2**20, 1)
    assert out["memory"]["bound_mib"] <= out["max_memory_mib"]
    assert 0 < out["memory"]["expected_mib"] <= out["memory"]["bound_mib"]
    with pytest.raises(ModelTooLargeError, match=r"max_memory .*1-way model alone needs"):
        plan_fit(schema, mechanism="aim", epsilon=1.0, max_memory=_budget_for(schema, 10))


@pytest.mark.parametrize("mechanism", ["mst", "independent"])
def test_fixed_size_models_over_the_budget_are_refused_before_any_read(tmp_path: Path, mechanism: str) -> None:
    _, schema = _schema(tmp_path, WIDE)
    with pytest.raises(ModelTooLargeError, match=r"over max_memory 1 MiB") as err:
        # The data path does not exist: the refusal comes before the data is opened.
        dpsynth.fit(tmp_path / "missing.csv", schema, mechanism=mechanism, epsilon=1.0, max_memory="1M")
    assert "MiB" in str(err.value)
    assert plan_fit(schema, mechanism=mechanism, epsilon=1.0, max_memory="256M").max_memory == 256 * 2**20


def test_a_small_budget_makes_aim_pick_smaller_cliques(tmp_path: Path) -> None:
    _, schema = _schema(tmp_path, SMALL)
    dom = schema.domain()
    df = _frame(SMALL)
    cap_cells = 150
    small = dpsynth.fit(df, schema, mechanism="aim", epsilon=10.0, options=FAST,
                        max_memory=_budget_for(schema, cap_cells))
    large = dpsynth.fit(df, schema, mechanism="aim", epsilon=10.0, options=FAST)
    size = {c: math.prod(dom[a] for a in c) for c in small.selected + large.selected}
    assert small.params["max_model_cells"] == cap_cells
    assert all(size[c] <= cap_cells for c in small.selected)
    assert max(size[c] for c in small.selected) < max(size[c] for c in large.selected)


_PEAK = """
import json, resource, sys
import pandas as pd
import dpsynth
from dpsynth.mechanisms.aim import AIMConfig
mech, cap, data, schema, out = sys.argv[1:6]
df = pd.read_csv(data)
opts = AIMConfig(max_rounds=12, round_iters=30, final_iters=100) if mech == "aim" else None
dpsynth.release(df, schema, mechanism=mech, epsilon=3.0, rows=len(df), seed=1, out=out, options=opts,
                max_memory=int(cap) if cap != "-" else None)
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))
"""


def _peak(tmp_path: Path, mech: str, cap: str, data: Path, schema: Path, name: str) -> int:
    script = tmp_path / "peak.py"
    script.write_text(_PEAK)
    done = subprocess.run([sys.executable, str(script), mech, cap, str(data), str(schema), str(tmp_path / name)],
                          capture_output=True, text=True, check=True, timeout=300)
    return int(done.stdout.strip().splitlines()[-1])


def test_release_peak_rss_stays_under_the_budget_plus_the_baseline(tmp_path: Path) -> None:
    schema_path, schema = _schema(tmp_path, WIDE)
    data = tmp_path / "data.csv"
    _frame(WIDE).to_csv(data, index=False)
    cap = _budget_for(schema, 8000)
    # Baseline: the same process importing dpsynth, reading the data and writing a bundle of the
    # same size, with the 1-way-only mechanism (same imports, OpenDP loaded; a 202-cell model).
    baseline = _peak(tmp_path, "independent", "-", data, schema_path, "base")
    peak = _peak(tmp_path, "aim", str(cap), data, schema_path, "aim")
    assert peak <= baseline + cap, (peak, baseline, cap)
