"""Summing a clique table over some of its axes, and broadcasting a small table into it, fast
on the large tables of a high-ε model.

Every mirror-descent iteration reduces each clique table to its measurements' marginals and
to the separators of its messages, so on a model of millions of cells these reductions are
most of the time. ``einsum`` is fastest when the kept and summed axes form at most three
runs (it reads the table once), but on a table whose kept axes alternate with short summed
ones, e.g. keeping ``relationship`` and ``hours`` of a 7-attribute clique of 1.8M cells, its
inner loop runs over the short axes and it reads about 1.3 GB/s (11 ms), ten times slower.

:func:`sum_axes` merges adjacent axes of the same kind (a free reshape of a C-contiguous table)
and, while more than three runs remain, peels one summed run off with a contiguous
``np.add.reduce``: a leading run first (rows of at least :data:`_ROW` cells, regrouped when the
kept tail is short), else a trailing one, else the inner one. Each peel shrinks the table by
the run's size, so the remaining ``einsum`` works on a small table. On the clique shapes of
Adult at ε = 3 this was 2.2-8.9 times faster over all 1- to 3-way reductions in one run of
``benchmarks/tableops.py`` (``benchmarks/results/tableops.md``).
The plan depends on the shape and axes only, so the same call always sums in the same order.

The reverse, :func:`broadcast_into` (``big op= small`` broadcast along the axes ``small``
lacks: a gradient added into its clique, a message multiplied into a belief), has the same
weakness: numpy's inner loop runs over the last axis, often a binary one, and is 10-20 times
slower than a plain pass. It copies ``small`` out along the shortest suffix of axes that gives
rows of at least :data:`_ROW` cells, as long as that copy stays under 1/:data:`_COPY_SHARE` of
the big table (a copy is itself a broadcast), so the loop runs over long rows.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from dpsynth.arrays import FloatArray

__all__ = ["broadcast_into", "sum_axes"]

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: Tables below this many cells go straight to ``einsum`` (planning costs more than it saves).
_SMALL = 4096
#: Shortest row ``np.add.reduce`` adds at full speed when it sums a leading run.
_ROW = 256
#: A trailing summed run shorter than this is summed slice by slice.
_SHORT = 8
#: ``broadcast_into`` copies ``small`` out to at most this share (1/n) of the big table.
_COPY_SHARE = 16


@lru_cache(maxsize=4096)
def _subscripts(ndim: int, axes: tuple[int, ...]) -> str:
    kept = "".join(_LETTERS[i] for i in range(ndim) if i not in axes)
    return f"{_LETTERS[:ndim]}->{kept}"


def _merge(shape: tuple[int, ...], summed: tuple[bool, ...]) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """Adjacent axes of the same kind merged (size-1 axes dropped)."""
    sizes: list[int] = []
    kinds: list[bool] = []
    for size, kind in zip(shape, summed, strict=True):
        if size == 1:
            continue
        if kinds and kinds[-1] == kind:
            sizes[-1] *= size
        else:
            sizes.append(size)
            kinds.append(kind)
    return tuple(sizes), tuple(kinds)


@lru_cache(maxsize=8192)
def _runs(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[bool, ...]] | None:
    """The merged runs of ``shape`` when peeling pays, else ``None`` (``einsum`` reads once)."""
    sizes, kinds = _merge(shape, tuple(i in axes for i in range(len(shape))))
    if len(kinds) > 3 or kinds == (True, False):
        return sizes, kinds
    return None


def _kept(x: FloatArray) -> type[np.floating[Any]]:
    """The result type of a reduction: float32 tables stay float32 (a float32 model's passes
    must not mix precisions, which makes numpy cast element by element), all else float64."""
    return np.float32 if x.dtype == np.float32 else np.float64


def _sum_leading(x: FloatArray) -> FloatArray:
    """``x`` summed over its first axis, adding rows of at least :data:`_ROW` cells."""
    n = x.shape[0]
    width = x.size // max(n, 1)
    if width >= _ROW or n < 4:
        return np.asarray(np.add.reduce(x, axis=0), dtype=_kept(x))
    group = max(1, _ROW // width)  # rows added side by side: (n / group, group * width)
    whole = (n // group) * group
    flat = x.reshape(n, width)
    out = np.add.reduce(flat[:whole].reshape(n // group, group * width), axis=0).reshape(group, width).sum(axis=0)
    if whole < n:
        out += np.add.reduce(flat[whole:], axis=0)
    return np.asarray(out, dtype=_kept(x)).reshape(x.shape[1:])


def _sum_trailing(x: FloatArray) -> FloatArray:
    """``x`` summed over its last axis."""
    size = x.shape[-1]
    if size >= _SHORT:
        return np.asarray(np.add.reduce(x, axis=-1), dtype=_kept(x))
    out = x[..., 0].copy()
    for j in range(1, size):
        out += x[..., j]
    return out


def _peel(table: FloatArray, sizes: tuple[int, ...], kinds: tuple[bool, ...]) -> FloatArray:
    x = table.reshape(sizes)
    while len(kinds) > 3 or kinds == (True, False):
        if kinds[0]:
            x, kinds = _sum_leading(x), kinds[1:]
        elif kinds[-1]:
            x, kinds = _sum_trailing(x), kinds[:-1]
        else:
            i = kinds.index(True)
            x, kinds = np.add.reduce(x, axis=i), kinds[:i] + kinds[i + 1:]
        shape, kinds = _merge(x.shape, kinds)
        x = x.reshape(shape)
    if True in kinds:
        x = np.einsum(_subscripts(x.ndim, tuple(i for i, k in enumerate(kinds) if k)), x)
    return x


def sum_axes(table: FloatArray, axes: tuple[int, ...]) -> FloatArray:
    """``table`` summed over ``axes`` (no keepdims)."""
    if not axes:
        return table
    if axes == (0,) or table.ndim > len(_LETTERS):
        return np.asarray(np.add.reduce(table, axis=axes), dtype=_kept(table))
    runs = None if table.size < _SMALL else _runs(table.shape, axes)
    if runs is None:
        return np.asarray(np.einsum(_subscripts(table.ndim, axes), table), dtype=_kept(table))
    kept = tuple(s for i, s in enumerate(table.shape) if i not in axes)
    return np.ascontiguousarray(_peel(table, *runs), dtype=_kept(table)).reshape(kept)


@lru_cache(maxsize=8192)
def _broadcast_plan(shape: tuple[int, ...], in_shape: tuple[int, ...],
                    ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None:
    """Views for :func:`broadcast_into`, or ``None`` when numpy's own loop is fast already.

    Returns the big table's merged shape, ``small``'s merged shape, the shape ``small`` is
    copied out to (its own axes outside the suffix, the whole suffix) and that copy's shape
    as seen by the big table's view (the suffix flattened into one axis).
    """
    sizes, varies = _merge(shape, tuple(s != 1 for s in in_shape))
    if not sizes or sizes[-1] >= _ROW:
        return None
    own = tuple(s if v else 1 for s, v in zip(sizes, varies, strict=True))
    limit = math.prod(sizes) // _COPY_SHARE
    inner, cut = sizes[-1], len(sizes) - 1
    while cut > 0 and inner < _ROW and math.prod(own[:cut - 1]) * sizes[cut - 1] * inner <= limit:
        cut -= 1
        inner *= sizes[cut]
    if inner < _SHORT * sizes[-1] and inner < _ROW:  # rows barely longer: numpy's loop is as good
        return None
    copied = own[:cut] + sizes[cut:]
    return (*sizes[:cut], inner), own, copied, (*own[:cut], inner)


@lru_cache(maxsize=8192)
def _slice_plan(shape: tuple[int, ...], in_shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """Merged shapes of the big and small tables when ``small`` varies along a short last run
    and is broadcast along the run before it (the copy would be as large as the big table):
    :func:`broadcast_into` then works slice by slice of that last run."""
    sizes, varies = _merge(shape, tuple(s != 1 for s in in_shape))
    if len(sizes) < 2 or not varies[-1] or varies[-2] or sizes[-1] > _SHORT:
        return None
    return sizes, tuple(s if v else 1 for s, v in zip(sizes, varies, strict=True))


def broadcast_into(ufunc: np.ufunc, big: FloatArray, small: FloatArray, in_shape: tuple[int, ...],
                   out: FloatArray | None = None) -> FloatArray:
    """``ufunc(big, small.reshape(in_shape))`` written to ``out`` (``big`` itself for an
    in-place update; a new array when ``None``). ``big`` must be C-contiguous."""
    target = np.empty_like(big) if out is None else out
    contiguous = big.flags.c_contiguous and target.flags.c_contiguous
    plan = _broadcast_plan(big.shape, in_shape) if big.size >= _SMALL and contiguous else None
    if plan is None:
        sliced = _slice_plan(big.shape, in_shape) if big.size >= _SMALL and contiguous else None
        if sliced is None:
            ufunc(big, small.reshape(in_shape), out=target)
        else:
            sizes, own = sliced
            b, t, part = big.reshape(sizes), target.reshape(sizes), small.reshape(own)
            for k in range(sizes[-1]):  # rows along the broadcast run instead of the short one
                ufunc(b[..., k], part[..., k], out=t[..., k])
        return target
    view, own, copied, seen = plan
    wide = np.ascontiguousarray(np.broadcast_to(small.reshape(own), copied)).reshape(seen)
    ufunc(big.reshape(view), wide, out=target.reshape(view))
    return target
