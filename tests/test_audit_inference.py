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


def test_numeric_guesses_are_judged_relative_to_the_guess_by_default() -> None:
    from dpsynth.audit.inference import correct_guesses

    truth = np.array([500.0, 500.0, 0.0, -104.0, 50.0, np.nan, 7.0])
    guess = np.array([510.0, 600.0, 0.0, -100.0, -100.0, np.nan, np.nan])
    rel = correct_guesses(truth, guess, numeric=True, scale=1000.0, tolerance=0.05)
    assert rel.tolist() == [True, False, True, True, False, True, False]  # a negative guess is no wildcard
    by_scale = correct_guesses(truth, guess, numeric=True, scale=1000.0, tolerance=0.05, match="scale")
    assert by_scale.tolist() == [True, False, True, True, False, True, False]
    assert correct_guesses(np.array([500.0]), np.array([545.0]), numeric=True, scale=1000.0,
                           tolerance=0.05, match="scale").tolist() == [True]
    assert correct_guesses(np.array([500.0]), np.array([545.0]), numeric=True, scale=1000.0,
                           tolerance=0.05).tolist() == [False]
    with pytest.raises(Exception, match="numeric_match"):
        inference_risk(*_skewed(0)[1:4], secrets=["wage"], rng=np.random.default_rng(0),
                       numeric_match="nearby")  # type: ignore[arg-type]


def _skewed(seed: int) -> tuple[MixedEncoder, object, object, object, pd.DataFrame]:
    """A wage that is log-normal given education: most wages sit in 5% of the range."""
    rng = np.random.default_rng(seed)
    n = 3000
    edu = rng.integers(8, 19, n)
    frame = pd.DataFrame({"education": edu, "region": rng.choice(list("abcd"), n),
                          "age": rng.integers(18, 80, n), "hours": rng.integers(10, 60, n),
                          "wage": np.round(np.exp(4.5 + 0.08 * edu + rng.normal(0, 0.6, n)), 2)})
    train, hold, fresh = frame.iloc[:1000], frame.iloc[1000:2000], frame.iloc[2000:]
    enc = MixedEncoder(train, [hold, fresh], numeric_ranges={"wage": (0.0, 20000.0), "education": (0, 20),
                                                            "age": (18, 80), "hours": (10, 60)})
    return enc, enc.encode(train), enc.encode(fresh), enc.encode(hold), train


def test_a_skewed_numeric_secret_is_defined_and_low_for_fresh_rows_and_high_for_a_copy() -> None:
    enc, r, fresh, h, train = _skewed(4)
    # the range rule: every guess is "right", the control too, so the risk is undefined
    scale = inference_risk(r, fresh, h, secrets=["wage"], rng=np.random.default_rng(0),
                           numeric_match="scale").per_secret["wage"]
    assert scale.undefined
    rel = inference_risk(r, fresh, h, secrets=["wage"], rng=np.random.default_rng(0)).per_secret["wage"]
    assert not rel.undefined and rel.control_rate < 0.3
    assert rel.ci.hi < 0.15  # fresh rows leak nothing about these people
    copy = inference_risk(r, enc.encode(train), h, secrets=["wage"],
                          rng=np.random.default_rng(0)).per_secret["wage"]
    assert copy.ci.lo > 0.5  # a copy gives each target's own wage back
