"""Quality metrics: exact values on tiny tables, and power (they must tell good from bad)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpsynth.evaluation import quality
from dpsynth.tabular.encoding import encode
from dpsynth.tabular.schema import parse_schema

SCHEMA = parse_schema({"columns": [
    {"name": "a", "kind": "categorical", "categories": ["x", "y"], "role": "quasi_identifier"},
    {"name": "b", "kind": "categorical", "categories": ["u", "v"], "role": "sensitive"},
    {"name": "n", "kind": "numeric", "dtype": "int", "bounds": [0, 9]},
]})


def _frame(a: list[str], b: list[str], n: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"a": a, "b": b, "n": n})


def test_workload_error_exact() -> None:
    real = encode(_frame(["x", "x", "y", "y"], ["u", "v", "u", "v"], [0, 1, 2, 3]), SCHEMA)
    syn = encode(_frame(["x", "x", "x", "x"], ["u", "v", "u", "v"], [0, 1, 2, 3]), SCHEMA)
    err = quality.workload_error(real, syn)
    # 1-way: a differs by L1 1.0, b and n identical -> mean 1/3
    assert err["1"] == pytest.approx(1 / 3)
    assert quality.workload_error(real, real) == {"1": 0.0, "2": 0.0, "3": 0.0}
    assert err["2"] == pytest.approx((1.0 + 1.0 + 0.0) / 3)


def test_column_shapes_and_pair_trends_exact() -> None:
    rdf = _frame(["x", "x", "y", "y"], ["u", "v", "u", "v"], [0, 1, 2, 3])
    sdf = _frame(["x", "x", "x", "y"], ["u", "v", "u", "v"], [0, 1, 2, 9])
    r, s = encode(rdf, SCHEMA), encode(sdf, SCHEMA)
    shapes = quality.column_shapes(rdf, sdf, r, s, SCHEMA)
    assert shapes["a"] == {"metric": "TVComplement", "score": pytest.approx(0.75)}
    assert shapes["n"]["metric"] == "KSComplement" and shapes["n"]["score"] == pytest.approx(0.75)
    pairs = {tuple(p["columns"]): p for p in quality.column_pair_trends(rdf, sdf, r, s, SCHEMA)}
    assert pairs[("a", "b")]["metric"] == "ContingencySimilarity"
    assert pairs[("a", "b")]["score"] == pytest.approx(0.75)


def _population(n: int, rng: np.random.Generator, *, linked: bool) -> pd.DataFrame:
    a = rng.integers(0, 2, n)
    b = np.where(rng.random(n) < 0.9, a, 1 - a) if linked else rng.integers(0, 2, n)
    num = np.where(a == 1, rng.integers(5, 10, n), rng.integers(0, 5, n))
    return _frame(list(np.array(["x", "y"])[a]), list(np.array(["u", "v"])[b]), list(num))


def test_tstr_auc_and_pmse_have_power() -> None:
    rng = np.random.default_rng(1)
    real = encode(_population(1500, rng, linked=True), SCHEMA)
    good = encode(_population(1500, rng, linked=True), SCHEMA)
    bad = encode(_population(1500, rng, linked=False), SCHEMA)
    auc_good = quality.tstr_auc(good, real, SCHEMA, "b")["auc_tstr"]
    auc_bad = quality.tstr_auc(bad, real, SCHEMA, "b")["auc_tstr"]
    assert auc_good > 0.85 and auc_bad < 0.6
    assert quality.pmse(real, good, SCHEMA)["score"] > 0.9
    assert quality.pmse(real, bad, SCHEMA)["score"] < quality.pmse(real, good, SCHEMA)["score"] - 0.1
    with pytest.raises(Exception, match="binary"):
        quality.tstr_auc(good, real, SCHEMA, "n")


def test_subgroup_rates_exact() -> None:
    real = encode(_frame(["x", "x", "y", "y"], ["u", "v", "v", "v"], [0] * 4), SCHEMA)
    syn = encode(_frame(["x", "x", "y", "y"], ["u", "u", "v", "u"], [0] * 4), SCHEMA)
    (sg,) = quality.subgroup_rates(real, syn, SCHEMA)
    assert sg["sensitive"] == "b" and sg["by"] == "a" and sg["outcome"] == "v"
    x, y = sg["groups"]
    assert (x["real_rate"], x["synthetic_rate"]) == (0.5, 0.0)
    assert (y["real_rate"], y["synthetic_rate"], y["difference"]) == (1.0, 0.5, -0.5)
