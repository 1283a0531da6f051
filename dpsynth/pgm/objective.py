"""The estimation loss: Private-PGM's weighted L2 distance to noisy marginals, and its gradient.

The loss is ``sum_m weight_m / sigma_m * ||total * mu_m(p) - y_m||^2``, where ``mu_m(p)`` is
the model's probability table over measurement ``m``'s attributes. Each measurement is placed
on the junction-tree clique that contains it (its *home*), so the loss and its gradient need
only the calibrated clique tables.

Working representation: clique tables are plain arrays in a ``list`` aligned with
``tree.cliques`` (the same vocabulary as :class:`dpsynth.pgm.inference.Calibrator` and the
optimizers), not :class:`~dpsynth.pgm.factor.Factor` objects: the hot loop indexes by clique
position and never needs attribute names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dpsynth.arrays import FloatArray
from dpsynth.pgm.junction_tree import JunctionTree
from dpsynth.pgm.measurement import Measurement
from dpsynth.pgm.tableops import broadcast_into, sum_axes

__all__ = ["MeasurementTerm", "Objective", "inner", "measurement_terms"]

_FLOAT64 = np.dtype(np.float64)


@dataclass(frozen=True, eq=False)
class MeasurementTerm:
    """One measurement placed on its home clique of the junction tree (weights and axes precomputed)."""

    home: int  # index of the tree clique holding the measurement
    axes: tuple[int, ...]  # axes of the home clique summed out
    in_home: tuple[int, ...]  # broadcast shape of the measurement inside the home clique
    y: FloatArray  # noisy counts, axes in domain order
    coef: float  # weight / sigma


def inner(a: FloatArray, b: FloatArray) -> float:
    """``sum(a * b)`` without BLAS: on these small tables a threaded ``vdot`` costs far more
    CPU in its worker threads' spin-wait than the arithmetic itself."""
    return float(np.sum(np.multiply(a, b)))


def measurement_terms(tree: JunctionTree, measurements: Sequence[Measurement]) -> list[MeasurementTerm]:
    """Place each measurement on its home clique of ``tree`` (which must contain its clique).

    The noisy counts are transposed into domain order, the order of the clique tables' axes.
    """
    domain = tree.domain
    out = []
    for m in measurements:
        canon = domain.canonical(m.clique)
        home = tree.home(canon)
        assert home is not None  # the tree was built from these cliques
        clique = tree.cliques[home]
        shape = domain.project(clique).shape
        perm = tuple(m.clique.index(a) for a in canon)
        out.append(
            MeasurementTerm(
                home=home,
                axes=tuple(i for i, a in enumerate(clique) if a not in canon),
                in_home=tuple(s if a in canon else 1 for a, s in zip(clique, shape, strict=True)),
                y=np.ascontiguousarray(np.transpose(m.values, perm), dtype=np.float64),
                coef=m.weight / m.sigma,
            )
        )
    return out


class Objective:
    """Loss and gradient of all measurements given calibrated beliefs.

    Measurements are grouped by (home clique, attributes). A group whose attributes lie
    inside another group of the same clique is answered from that group's (small) marginal
    and sends its gradient through it, so each clique table is reduced and broadcast once per
    outermost group instead of once per measurement.
    """

    def __init__(self, tree: JunctionTree, terms: list[MeasurementTerm], total: float,
                 dtype: np.dtype[Any] = _FLOAT64) -> None:
        self.terms = terms
        self.total = total
        self.dtype = dtype  # of the clique-sized gradients (the tables' precision)
        # The noisy counts in that precision: a pass that mixes float32 and float64 arrays is
        # cast element by element, slower than either.
        self.ys = [t.y if t.y.dtype == dtype else t.y.astype(dtype) for t in terms]
        self.shapes = [tuple(tree.domain.project(c).shape) for c in tree.cliques]
        keys: list[tuple[int, tuple[int, ...]]] = []  # (home, kept axes of the home clique)
        index: dict[tuple[int, tuple[int, ...]], int] = {}
        self.group_of: list[int] = []
        for t in terms:
            kept = tuple(i for i in range(len(self.shapes[t.home])) if i not in t.axes)
            key = (t.home, kept)
            if key not in index:
                index[key] = len(keys)
                keys.append(key)
            self.group_of.append(index[key])
        self.homes = [home for home, _ in keys]
        # Parent group: the smallest strict superset in the same clique (or -1: the clique).
        self.parent: list[int] = []
        self.axes: list[tuple[int, ...]] = []  # axes of the parent (or clique) summed out
        self.in_parent: list[tuple[int, ...]] = []  # broadcast shape inside the parent
        for home, kept in keys:
            best, best_size = -1, 0
            for j, (h2, k2) in enumerate(keys):
                if h2 == home and set(kept) < set(k2):
                    size = int(np.prod([self.shapes[home][i] for i in k2]))
                    if best < 0 or size < best_size:
                        best, best_size = j, size
            outer = keys[best][1] if best >= 0 else tuple(range(len(self.shapes[home])))
            self.parent.append(best)
            self.axes.append(tuple(p for p, i in enumerate(outer) if i not in kept))
            self.in_parent.append(tuple(self.shapes[home][i] if i in kept else 1 for i in outer))
        # Parents before children (a parent keeps strictly more axes).
        self.order = sorted(range(len(keys)), key=lambda g: -len(keys[g][1]))

    def marginals(self, tables: Sequence[FloatArray]) -> list[FloatArray]:
        """Each term's probability table, from the clique ``tables`` (one per tree clique)."""
        groups: list[FloatArray] = [np.empty(0)] * len(self.homes)
        for g in self.order:
            par = self.parent[g]
            source = tables[self.homes[g]] if par < 0 else groups[par]
            axes = self.axes[g]
            groups[g] = sum_axes(source, axes)
        return [groups[g] for g in self.group_of]

    def loss(self, mus: list[FloatArray]) -> float:
        """The weighted squared error of the terms' tables ``mus`` (from :meth:`marginals`)."""
        total = 0.0
        for t, y, mu in zip(self.terms, self.ys, mus, strict=True):
            r = self.total * mu - y
            total += t.coef * inner(r, r)
        return total

    def gradient(self, mus: list[FloatArray]) -> tuple[list[FloatArray], list[FloatArray]]:
        """Per-clique gradients (w.r.t. probabilities) and per-term gradients."""
        acc: list[FloatArray | None] = [None] * len(self.homes)
        per_term = []
        for t, y, g_idx, mu in zip(self.terms, self.ys, self.group_of, mus, strict=True):
            g = (2.0 * self.total * t.coef) * (self.total * mu - y)
            per_term.append(g)
            prev = acc[g_idx]
            acc[g_idx] = g.copy() if prev is None else prev + g
        grads = [np.zeros(s, dtype=self.dtype) for s in self.shapes]
        for g_idx in reversed(self.order):  # children first (every group has a term)
            part = acc[g_idx]
            assert part is not None
            par = self.parent[g_idx]
            target = grads[self.homes[g_idx]] if par < 0 else acc[par]
            assert target is not None
            broadcast_into(np.add, target, part, self.in_parent[g_idx], out=target)
        return grads, per_term
