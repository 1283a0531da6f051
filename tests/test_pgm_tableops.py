"""The clique-table reductions and broadcasts of :mod:`dpsynth.pgm.tableops` against numpy.

Every split of every axis set is compared with ``np.sum`` / numpy broadcasting, on random
shapes with the size thresholds lowered (so every plan runs on small tables) and on a real
high-ε clique shape with the library's thresholds (so the plans run where they are meant to).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dpsynth.pgm import tableops
from dpsynth.pgm.tableops import broadcast_into, sum_axes

# A 7-attribute clique of AIM's model on Adult at epsilon = 3 (1.8M cells): the shape whose
# alternating short axes made einsum and numpy's broadcasting slow.
ADULT_CLIQUE = (25, 8, 15, 6, 2, 25, 2)


@pytest.fixture
def small_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plans on tables of any size (rows of 16 cells, short runs of up to 3)."""
    monkeypatch.setattr(tableops, "_SMALL", 0)
    monkeypatch.setattr(tableops, "_ROW", 16)
    monkeypatch.setattr(tableops, "_SHORT", 3)
    for cached in (tableops._runs, tableops._broadcast_plan, tableops._slice_plan):
        cached.cache_clear()
    yield
    for cached in (tableops._runs, tableops._broadcast_plan, tableops._slice_plan):
        cached.cache_clear()


def _splits(ndim: int) -> list[tuple[int, ...]]:
    return [k for r in range(ndim + 1) for k in itertools.combinations(range(ndim), r)]


@pytest.mark.usefixtures("small_thresholds")
def test_every_reduction_and_broadcast_matches_numpy_on_random_shapes() -> None:
    rng = np.random.default_rng(7)
    planned = {"sum": 0, "copy": 0, "slices": 0}
    for _ in range(60):
        shape = tuple(int(s) for s in rng.integers(1, 6, int(rng.integers(1, 7))))
        big = rng.random(shape)
        for keep in _splits(len(shape)):
            axes = tuple(i for i in range(len(shape)) if i not in keep)
            got = sum_axes(big, axes)
            assert got.shape == tuple(shape[i] for i in keep)
            np.testing.assert_allclose(got, np.sum(big, axis=axes), rtol=1e-12, atol=1e-12)
            in_shape = tuple(s if i in keep else 1 for i, s in enumerate(shape))
            small = rng.random(in_shape)
            planned["sum"] += tableops._runs(shape, axes) is not None
            planned["copy"] += tableops._broadcast_plan(shape, in_shape) is not None
            planned["slices"] += tableops._slice_plan(shape, in_shape) is not None
            for ufunc in (np.add, np.multiply):
                expected = ufunc(big, small)
                np.testing.assert_allclose(broadcast_into(ufunc, big, small, in_shape), expected, rtol=1e-14)
                inplace = big.copy()
                assert broadcast_into(ufunc, inplace, small, in_shape, out=inplace) is inplace
                np.testing.assert_allclose(inplace, expected, rtol=1e-14)
    assert min(planned.values()) > 50, planned  # every kind of plan ran, many times


def test_the_plans_run_on_a_real_high_epsilon_clique_and_match_numpy() -> None:
    rng = np.random.default_rng(8)
    big = rng.random(ADULT_CLIQUE)
    used = 0
    for keep in [k for k in _splits(len(ADULT_CLIQUE)) if 1 <= len(k) <= 3]:
        axes = tuple(i for i in range(len(ADULT_CLIQUE)) if i not in keep)
        np.testing.assert_allclose(sum_axes(big, axes), np.sum(big, axis=axes), rtol=1e-11)
        in_shape = tuple(s if i in keep else 1 for i, s in enumerate(ADULT_CLIQUE))
        small = rng.random(in_shape)
        out = big.copy()
        broadcast_into(np.add, out, small, in_shape, out=out)
        np.testing.assert_allclose(out, big + small, rtol=1e-14)
        used += tableops._runs(ADULT_CLIQUE, axes) is not None
    assert used > 20  # the peeling path, not einsum, answered most of these


def test_a_non_contiguous_target_is_written_correctly() -> None:
    """A strided table cannot be reshaped into a view: numpy's own broadcast is used."""
    rng = np.random.default_rng(9)
    base = rng.random((64, 8, 2, 16, 2))
    strided = base[:, :, :, ::2, :]  # not C-contiguous
    assert not strided.flags.c_contiguous
    small = rng.random((1, 8, 1, 1, 2))
    expected = strided + small
    broadcast_into(np.add, strided, small, small.shape, out=strided)
    np.testing.assert_allclose(base[:, :, :, ::2, :], expected)


def test_the_same_call_sums_in_the_same_order() -> None:
    """The plan depends on shape and axes only: repeated calls agree to the last bit."""
    big = np.random.default_rng(10).random(ADULT_CLIQUE)
    for axes in [(0, 1, 2, 4, 6), (1, 2, 3, 4, 6), (0, 1, 2, 3, 4, 5)]:
        first = sum_axes(big, axes)
        np.testing.assert_array_equal(first, sum_axes(big, axes))
