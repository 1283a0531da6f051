"""Attribute inference: per-value risks, value labels, estimator option, undefined ranking."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dpsynth.audit.distance import MixedEncoder
from dpsynth.audit.inference import InferenceResult, inference_risk
from dpsynth.audit.risk import residual_risk


def _tables(seed: int) -> tuple[MixedEncoder, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n = 600
    frame = pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(size=n),
                          "s": rng.choice(["common", "rare"], p=[0.9, 0.1], size=n)})
    real, hold = frame.iloc[:300].reset_index(drop=True), frame.iloc[300:].reset_index(drop=True)
    syn = real.copy()
    # the release leaks the rare value only: every "common" secret is scrambled
    common = syn["s"] == "common"
    syn.loc[common, "x"] = rng.normal(size=int(common.sum()))
    return MixedEncoder(real, [syn, hold]), real, syn, hold


def test_rare_value_leak_shows_in_its_per_value_risk() -> None:
    enc, real, syn, hold = _tables(0)
    r, s, h = enc.encode(real), enc.encode(syn), enc.encode(hold)
    res = inference_risk(r, s, h, secrets=["s"], rng=np.random.default_rng(1),
                         value_labels={"s": enc.categories("s")})
    per = res.per_value["s"]
    assert set(per) == {"common", "rare"}
    assert per["rare"].n_attacks == int((real["s"] == "rare").sum())
    # the rare value's copies sit next to their targets: its risk is high, well above
    # the column's, whose majority value is guessed about as well on held-out people
    assert per["rare"].ci.lo > 0.5
    assert per["rare"].value > res.per_secret["s"].value + 0.2
    js = res.to_json()
    json.dumps(js)
    assert set(js["per_value"]["s"]) == {"common", "rare"}  # type: ignore[index]


def test_without_labels_codes_name_the_values_and_numeric_secrets_have_none() -> None:
    enc, real, syn, hold = _tables(2)
    r, s, h = enc.encode(real), enc.encode(syn), enc.encode(hold)
    res = inference_risk(r, s, h, secrets=["s", "y"], rng=np.random.default_rng(3),
                         ci="wilson-centre", confidence=0.9)
    assert set(res.per_value) == {"s"}
    assert set(res.per_value["s"]) <= {"0", "1"}
    assert res.per_secret["y"].estimator == "wilson-centre"
    assert res.per_secret["y"].ci.confidence == 0.9


def _risk(ok: int, c_ok: int) -> object:
    return residual_risk(n_success=ok, n_attacks=100, n_baseline_success=0, n_baseline=100,
                         n_control_success=c_ok, n_control=100)


def test_undefined_secrets_rank_last_for_the_headline() -> None:
    undefined, low = _risk(100, 99), _risk(30, 25)
    res = InferenceResult({"a": undefined, "b": low})  # type: ignore[dict-item]
    assert res.worst_secret == "b"
    only = InferenceResult({"a": undefined})  # type: ignore[dict-item]
    assert only.risk.undefined and only.to_json()["risk"]["value"] is None  # type: ignore[index]


def test_categories_name_codes_in_order() -> None:
    enc = MixedEncoder(pd.DataFrame({"c": ["b", "a", "b"]}))
    assert enc.categories("c") == ("b", "a")
    with pytest.raises(Exception, match="not a categorical"):
        enc.categories("nope")
