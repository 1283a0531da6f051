"""Weighted expansion of rare cells (AIM): split by clipped noisy 1-way counts plus sigma, public."""

from __future__ import annotations

import numpy as np

from dpsynth.mechanisms.compress import Compression
from dpsynth.privacy.measure import Measurement


def _comp() -> Compression:
    ones = [Measurement(("a",), np.array([100, 9, -3, 50, 2]), 5.0),
            Measurement(("b",), np.array([40, 40]), 5.0)]
    return Compression.from_one_way(ones, {"a": 5, "b": 2}, threshold=3.0, weighted=True)


def test_weights_follow_clipped_noisy_counts_plus_sigma() -> None:
    c = _comp()
    assert c.maps["a"].tolist() == [0, 2, 2, 1, 2] and "b" not in c.weights
    expected = np.array([14.0, 5.0, 7.0]) / 26.0  # values 1, 2 (count -3 clipped), 4; sigma 5
    np.testing.assert_allclose(c.weights["a"][[1, 2, 4]], expected)
    np.testing.assert_allclose(c.weights["a"][[0, 3]], 1.0)
    probs = np.array([0.5, 0.3, 0.2])
    out = c.expand_probability("a", probs)
    np.testing.assert_allclose(out, [0.5, 0.2 * expected[0], 0.2 * expected[1], 0.3, 0.2 * expected[2]])
    assert abs(out.sum() - 1.0) < 1e-12


def test_expand_draws_rare_values_in_proportion_and_honours_allowed_values() -> None:
    c = _comp()
    codes = np.array([[2, 0]] * 40_000)
    out = c.expand(codes, ["a", "b"], np.random.default_rng(0))
    share = np.bincount(out[:, 0], minlength=5)[[1, 2, 4]] / 40_000
    np.testing.assert_allclose(share, [14 / 26, 5 / 26, 7 / 26], atol=0.01)
    only = c.expand(codes[:500], ["a", "b"], np.random.default_rng(1), {"a": [2, 4]})
    assert set(np.unique(only[:, 0])) <= {2, 4}
    assert 0.52 < np.mean(only[:, 0] == 4) < 0.65  # 7 against 5


def test_weights_survive_the_json_round_trip_and_old_files_expand_uniformly() -> None:
    c = _comp()
    back = Compression.from_json(c.to_json())
    np.testing.assert_array_equal(back.weights["a"], c.weights["a"])
    old = {k: v for k, v in c.to_json().items() if k != "weights"}
    assert Compression.from_json(old).weights == {}
