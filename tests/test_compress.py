"""MST's domain compression: a public map from noisy 1-way counts, exact aggregation, expansion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpsynth import api
from dpsynth.errors import ConfigError
from dpsynth.mechanisms.compress import Compression
from dpsynth.privacy.measure import Measurement
from dpsynth.tabular.schema import parse_schema


def comp() -> Compression:
    ones = [Measurement(("a",), np.array([100, 2, -3, 50, 1]), 5.0),
            Measurement(("b",), np.array([40, 40]), 5.0)]
    return Compression.from_one_way(ones, {"a": 5, "b": 2}, threshold=3.0)


def test_rare_values_merge_into_one_last_cell() -> None:
    c = comp()
    assert c.maps["a"].tolist() == [0, 2, 2, 1, 2] and "b" not in c.maps
    assert c.domain() == {"a": 3, "b": 2}


def test_compressed_counts_are_exact_sums() -> None:
    counts = np.arange(10).reshape(5, 2)
    out = comp().compress_counts(("a", "b"), counts)
    assert out.tolist() == [[0, 1], [6, 7], [2 + 4 + 8, 3 + 5 + 9]]
    assert out.sum() == counts.sum()


def test_expand_is_uniform_inside_the_rare_cell_and_honours_allowed_values() -> None:
    c = comp()
    codes = np.array([[2, 0]] * 30000)
    out = c.expand(codes, ["a", "b"], np.random.default_rng(0))
    share = np.bincount(out[:, 0], minlength=5)[[1, 2, 4]] / 30000
    assert np.allclose(share, 1 / 3, atol=0.02)
    only = c.expand(codes[:50], ["a", "b"], np.random.default_rng(0), {"a": [4]})
    assert (only[:, 0] == 4).all()


def test_a_rare_category_can_still_be_conditioned_on() -> None:
    s = parse_schema({"columns": [
        {"name": "c", "kind": "categorical", "categories": ["big", "mid", "r1", "r2", "r3"]},
        {"name": "d", "kind": "boolean"}]})
    df = pd.DataFrame({"c": ["big"] * 1500 + ["mid"] * 1400 + ["r1"] * 2 + ["r2"] * 1,
                       "d": ["true", "false"] * 1451 + ["true"]})
    synth = api.fit(df, s, mechanism="mst", epsilon=0.5, delta=1e-9)
    assert synth.compression is not None and "c" in synth.compression.maps
    out = synth.sample(200, conditions={"c": "r2"}, seed=1)
    assert (out["c"] == "r2").all()
    with pytest.raises(ConfigError, match="not in the column's public domain"):
        synth.sample(10, conditions={"c": "nope"})
