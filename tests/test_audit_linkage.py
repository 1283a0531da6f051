"""Linkability: first-index tie-break headline, any-tie secondary, undefined when control ~ 1."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from dpsynth.audit.distance import EncodedTable, MixedEncoder
from dpsynth.audit.linkage import (
    count_links,
    count_tie_broken_links,
    linkability_attack,
    linkability_risk,
)
from dpsynth.errors import ConfigError


def _encode(*frames: pd.DataFrame) -> list[EncodedTable]:
    enc = MixedEncoder(frames[0], list(frames[1:]))
    return [enc.encode(f) for f in frames]


def test_tie_break_takes_the_first_tied_record_and_any_tie_takes_all() -> None:
    # Target (a=0, b=0). On A, synthetic rows 0 and 1 tie (a=0); on B, rows 1 and 2 tie.
    # First-index picks row 0 on A and row 1 on B: no link. Any-tie: row 1 is in both sets.
    targets = pd.DataFrame({"a": ["x"], "b": ["p"]})
    syn = pd.DataFrame({"a": ["x", "x", "y"], "b": ["q", "p", "p"]})
    t, s = _encode(targets, syn)
    assert count_tie_broken_links(t, s, ["a"], ["b"]) == 0
    assert count_links(t, s, ["a"], ["b"]) == 1
    # Two neighbours per half: A picks {0, 1}, B picks {1, 2}; they share row 1.
    assert count_tie_broken_links(t, s, ["a"], ["b"], n_neighbors=2) == 1


def test_unique_records_of_an_exact_copy_all_link() -> None:
    rng = np.random.default_rng(0)
    real = pd.DataFrame({"x": rng.permutation(300).astype(float),
                         "y": rng.permutation(300).astype(float)})
    r, s = _encode(real, real.sample(frac=1.0, random_state=1))
    assert count_tie_broken_links(r, s, ["x"], ["y"]) == 300


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_any_tie_is_never_below_tie_break(seed: int) -> None:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.choice(list("abc"), size=120) for c in "pqrs"})
    t, s = _encode(frame.iloc[:60], frame.iloc[60:])
    for k in (1, 3):
        assert count_links(t, s, ["p", "q"], ["r", "s"], k=k) >= \
            count_tie_broken_links(t, s, ["p", "q"], ["r", "s"], n_neighbors=k)


def test_control_near_one_makes_the_risk_undefined_not_one() -> None:
    # Every record is identical: everyone (member or not) is "linked" by any-tie.
    frame = pd.DataFrame({"a": ["x"] * 200, "b": ["y"] * 200})
    t, s, c = _encode(frame.iloc[:100], frame.iloc[100:], frame.iloc[:100].copy())
    res = linkability_attack(t, s, c, cols_a=["a"], cols_b=["b"],
                             rng=np.random.default_rng(0))
    for r in (res.risk, res.any_tie):  # first index is row 0 on both sides: links too
        assert r.undefined and math.isnan(r.value)
        assert r.undefined_reason is not None and "\n" not in r.undefined_reason
        assert r.undefined_reason.startswith("undefined")
    js = res.to_json()
    assert js["value"] is None and js["ci"] is None and js["undefined"] is True
    json.dumps(js)  # valid JSON: no NaN leaks out


def test_result_json_names_both_measures_and_settings() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400),
                          "c": rng.choice(list("uvw"), size=400)})
    t, s, c = _encode(frame.iloc[:100], frame.iloc[100:300], frame.iloc[300:])
    res = linkability_attack(t, s, c, cols_a=["a"], cols_b=["b", "c"], rng=rng,
                             n_neighbors=2, confidence=0.9, ci="wilson-centre")
    js = res.to_json()
    assert js["measure"] == "tie-break" and "first position" in str(js["meaning"])
    assert js["columns_a"] == ["a"] and js["columns_b"] == ["b", "c"]
    assert js["n_neighbors"] == 2 and js["confidence"] == 0.9
    assert js["estimator"] == "wilson-centre"
    any_tie = js["any_tie"]
    assert isinstance(any_tie, dict) and "upper bound" in any_tie["meaning"]
    # The old entry point keeps its any-tie meaning for existing callers; k is n_neighbors.
    old = linkability_risk(t, s, c, cols_a=["a"], cols_b=["b", "c"],
                           rng=np.random.default_rng(0), k=2, confidence=0.9,
                           ci="wilson-centre")
    assert old.attack_rate == res.any_tie.attack_rate


def test_column_sets_and_neighbours_are_validated() -> None:
    frame = pd.DataFrame({"a": ["x", "y"], "b": ["p", "q"]})
    t, s = _encode(frame, frame)
    with pytest.raises(ConfigError, match="disjoint"):
        count_tie_broken_links(t, s, ["a"], ["a", "b"])
    with pytest.raises(ConfigError, match="non-empty"):
        count_tie_broken_links(t, s, [], ["b"])
    with pytest.raises(ConfigError, match=r"n_neighbors \(3\)"):
        count_tie_broken_links(t, s, ["a"], ["b"], n_neighbors=3)
