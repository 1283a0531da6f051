"""Statistical tests of dpsynth.privacy.noise (OpenDP samplers) with power: the tests accept the exact
discrete Gaussian and the exponential mechanism's softmax, and reject noise at the wrong scale.

OpenDP samples at roughly 20-50k cells/s here, so one sample per scale is drawn per module.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from scipy import stats

from dpsynth.errors import ConfigError
from dpsynth.privacy.noise import discrete_gaussian, gumbel_scale_for_rho, noisy_max

SIGMA = 3.0
N = 100_000  # main sample
N_WRONG = 10_000  # samples at a wrong scale (ample power: a 30% scale error is blatant)
N_MAX = 4_000  # noisy-max draws
ALPHA = 1e-3  # accept when p > ALPHA
REJECT = 1e-6  # a wrong scale must give p < REJECT

IntArray = npt.NDArray[np.int64]


def exact_pmf(sigma: float) -> tuple[IntArray, npt.NDArray[np.float64]]:
    """Discrete Gaussian pmf on a support wide enough that the rest has mass < 1e-100."""
    half = math.ceil(25 * sigma) + 5
    support = np.arange(-half, half + 1, dtype=np.int64)
    logw = -(support.astype(np.float64) ** 2) / (2 * sigma * sigma)
    w = np.exp(logw - logw.max())
    return support, w / w.sum()


def chi_square_p(sample: IntArray, sigma: float) -> float:
    """Chi-square goodness of fit of ``sample`` to the exact discrete Gaussian(sigma) pmf.

    Bins are the integers whose expected count is >= 5; the two tails are pooled into one
    bin each, so every bin has expected count >= 5.
    """
    support, pmf = exact_pmf(sigma)
    n = sample.size
    expected = pmf * n
    inner = np.flatnonzero(expected >= 5)
    lo, hi = support[inner[0]], support[inner[-1]]
    counts = np.bincount(np.clip(sample, lo - 1, hi + 1) - (lo - 1), minlength=int(hi - lo + 3))
    exp_bins = (
        np.concatenate(
            [
                [pmf[support < lo].sum()],
                pmf[(support >= lo) & (support <= hi)],
                [pmf[support > hi].sum()],
            ]
        )
        * n
    )
    return float(stats.chisquare(counts, exp_bins).pvalue)


@pytest.fixture(scope="module")
def sample() -> IntArray:
    return discrete_gaussian(np.zeros(N, dtype=np.int64), SIGMA)


@pytest.fixture(scope="module")
def wrong_scale_samples() -> dict[float, IntArray]:
    return {f: discrete_gaussian(np.zeros(N_WRONG, dtype=np.int64), SIGMA * f) for f in (0.7, 1.3)}


def test_outputs_are_integers_and_keep_shape(sample: IntArray) -> None:
    assert sample.dtype == np.int64 and sample.shape == (N,)
    counts = np.arange(24, dtype=np.int64).reshape(2, 3, 4) * 1000
    noisy = discrete_gaussian(counts, 0.5)
    assert noisy.dtype == np.int64 and noisy.shape == counts.shape
    assert np.all(np.abs(noisy - counts) < 20)  # centred on the counts
    assert discrete_gaussian(np.zeros(0, dtype=np.int64), 1.0).shape == (0,)
    with pytest.raises(ConfigError, match=r"sigma \(0\.0\)"):
        discrete_gaussian(counts, 0.0)


def test_mean_and_variance(sample: IntArray) -> None:
    support, pmf = exact_pmf(SIGMA)
    true_var = float(np.sum(pmf * support.astype(np.float64) ** 2))
    assert true_var == pytest.approx(SIGMA**2, rel=1e-6)  # discrete ~ continuous at sigma=3
    se = math.sqrt(true_var / N)
    assert abs(sample.mean()) < 4 * se
    assert sample.var() == pytest.approx(true_var, rel=0.02)


def test_chi_square_accepts_the_exact_pmf(sample: IntArray) -> None:
    assert chi_square_p(sample, SIGMA) > ALPHA


@pytest.mark.parametrize("factor", [0.7, 1.3])
def test_chi_square_rejects_the_wrong_scale(
    factor: float, wrong_scale_samples: dict[float, IntArray], sample: IntArray
) -> None:
    # noise drawn at factor * sigma must fail the test for sigma ...
    assert chi_square_p(wrong_scale_samples[factor], SIGMA) < REJECT
    # ... while passing the test for its own scale (so the rejection is about the scale)
    assert chi_square_p(wrong_scale_samples[factor], SIGMA * factor) > ALPHA
    # and the correct sample fails the test at the wrong scale
    assert chi_square_p(sample, SIGMA * factor) < REJECT


SCORES = np.array([0.0, 1.0, 2.0, 3.0, 0.5])


def softmax(scores: npt.NDArray[np.float64], scale: float) -> npt.NDArray[np.float64]:
    z = np.exp((scores - scores.max()) / scale)
    return np.asarray(z / z.sum(), dtype=np.float64)


@pytest.fixture(scope="module")
def max_counts() -> npt.NDArray[np.int64]:
    picks = [noisy_max(SCORES, 1.0) for _ in range(N_MAX)]
    return np.bincount(picks, minlength=SCORES.size)


def test_noisy_max_has_softmax_frequencies(max_counts: npt.NDArray[np.int64]) -> None:
    # Gumbel report-noisy-max == exponential mechanism: P(i) = softmax(score / scale)
    p = stats.chisquare(max_counts, softmax(SCORES, 1.0) * N_MAX).pvalue
    assert p > ALPHA


@pytest.mark.parametrize("factor", [0.7, 1.3])
def test_noisy_max_frequency_test_rejects_wrong_scale(
    factor: float, max_counts: npt.NDArray[np.int64]
) -> None:
    p = stats.chisquare(max_counts, softmax(SCORES, factor) * N_MAX).pvalue
    assert p < REJECT


def test_noisy_max_edges() -> None:
    assert noisy_max([5.0], 1.0) == 0
    assert all(noisy_max([0.0, 1000.0, 3.0], 1.0) == 1 for _ in range(20))
    with pytest.raises(ConfigError):
        noisy_max([], 1.0)
    with pytest.raises(ConfigError):
        noisy_max([1.0, math.nan], 1.0)
    assert gumbel_scale_for_rho(0.5, 1.0) == pytest.approx(1.0)
