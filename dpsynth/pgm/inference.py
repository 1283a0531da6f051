"""Exact inference on a junction tree: calibration (sum-product) and marginal queries.

Potentials are kept in log space. Calibration exponentiates each clique once (shifted by its
maximum, so the largest entry is 1) and passes normalised messages in linear space, tracking
the log normaliser; this is the numerically safe equivalent of log-space belief propagation
at a fraction of the cost (one ``exp`` per cell per sweep, no ``log`` per message).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import prod

import numpy as np
import numpy.typing as npt

from dpsynth.errors import ConfigError
from dpsynth.pgm.junction_tree import JunctionTree

__all__ = ["Beliefs", "Calibrator", "marginal_of"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Beliefs:
    """Calibrated clique marginals of a junction tree.

    Attributes:
        tree: The junction tree.
        probs: Probability table of each clique (sums to 1), aligned with ``tree.cliques``.
        log_partition: Log of the total unnormalised mass of the potentials.
    """

    tree: JunctionTree
    probs: tuple[FloatArray, ...]
    log_partition: float


@dataclass(frozen=True, eq=False)
class _Edge:
    child: int
    parent: int
    up_axes: tuple[int, ...]  # axes of the child summed out for its message to the parent
    down_axes: tuple[int, ...]  # axes of the parent summed out for the reverse message
    in_parent: tuple[int, ...]  # broadcast shape of a separator table inside the parent
    in_child: tuple[int, ...]  # broadcast shape of a separator table inside the child


def _shifted_exp(log_table: FloatArray) -> tuple[FloatArray, float]:
    """``exp(log_table - max)`` and the max; raises if every entry is ``-inf``."""
    peak = float(np.max(log_table))
    if not np.isfinite(peak):
        raise ConfigError("the model assigns zero probability to every record")
    return np.exp(log_table - peak), peak


class Calibrator:
    """A precompiled message schedule for one junction tree (reuse it across iterations)."""

    def __init__(self, tree: JunctionTree) -> None:
        self.tree = tree
        self.shapes = tuple(tuple(tree.domain.project(c).shape) for c in tree.cliques)
        edges = []
        for child in tree.order[1:]:
            parent = tree.parent[child]
            sep = set(tree.separator(child, parent))
            ccl, pcl = tree.cliques[child], tree.cliques[parent]
            edges.append(
                _Edge(
                    child=child,
                    parent=parent,
                    up_axes=tuple(i for i, a in enumerate(ccl) if a not in sep),
                    down_axes=tuple(i for i, a in enumerate(pcl) if a not in sep),
                    in_parent=tuple(s if a in sep else 1 for a, s in zip(pcl, self.shapes[parent])),
                    in_child=tuple(s if a in sep else 1 for a, s in zip(ccl, self.shapes[child])),
                )
            )
        self.edges = tuple(edges)
        self.root = tree.order[0] if tree.order else 0

    def calibrate(self, log_potentials: Sequence[FloatArray]) -> Beliefs:
        """Run one upward and one downward sweep.

        Args:
            log_potentials: Log-potential table of each clique (``-inf`` = structural zero).

        Raises:
            ConfigError: The potentials give zero mass to everything (e.g. contradictory
                constraints or evidence).
        """
        log_z = 0.0
        logs: list[FloatArray] = [np.asarray(t, dtype=np.float64) for t in log_potentials]
        cur: list[FloatArray] = list(logs)
        up: dict[int, FloatArray] = {}
        for edge in reversed(self.edges):
            lin, shift = _shifted_exp(logs[edge.child])
            cur[edge.child] = lin
            msg = np.add.reduce(lin, axis=edge.up_axes) if edge.up_axes else lin
            mass = float(np.sum(msg))
            msg = msg / mass
            log_z += shift + np.log(mass)
            up[edge.child] = msg
            with np.errstate(divide="ignore"):
                logs[edge.parent] = logs[edge.parent] + np.log(msg).reshape(edge.in_parent)
        lin, shift = _shifted_exp(logs[self.root])
        mass = float(np.sum(lin))
        log_z += shift + np.log(mass)
        probs: list[FloatArray] = list(cur)
        probs[self.root] = lin / mass
        for edge in self.edges:
            belief = probs[edge.parent]
            sep = np.add.reduce(belief, axis=edge.down_axes) if edge.down_axes else belief
            msg = up[edge.child]
            with np.errstate(over="ignore", invalid="ignore"):
                ratio = np.divide(sep, msg, out=np.zeros_like(sep), where=msg > 0)
                out = cur[edge.child] * ratio.reshape(edge.in_child)
            probs[edge.child] = out / np.sum(out)
        return Beliefs(self.tree, tuple(probs), float(log_z))


class _Query:
    """Variable elimination over a list of (attrs, table) factors."""

    def __init__(self, sizes: dict[str, int]) -> None:
        self.sizes = sizes

    def run(
        self, factors: list[tuple[tuple[str, ...], FloatArray]], target: tuple[str, ...]
    ) -> FloatArray:
        keep = set(target)
        while True:
            present = {a for attrs, _ in factors for a in attrs}
            spare = present - keep
            if not spare:
                break
            best_var, best_cost = "", -1
            for var in sorted(spare):
                scope = {a for attrs, _ in factors if var in attrs for a in attrs}
                cost = prod(self.sizes[a] for a in scope)
                if best_cost < 0 or cost < best_cost:
                    best_var, best_cost = var, cost
            touching = [f for f in factors if best_var in f[0]]
            factors = [f for f in factors if best_var not in f[0]]
            factors.append(self._contract(touching, drop=best_var))
        return self._contract(factors, drop=None, order=target)[1]

    @staticmethod
    def _contract(
        factors: list[tuple[tuple[str, ...], FloatArray]],
        *,
        drop: str | None,
        order: tuple[str, ...] | None = None,
    ) -> tuple[tuple[str, ...], FloatArray]:
        letters: dict[str, int] = {}
        operands: list[object] = []
        for attrs, table in factors:
            operands.append(table)
            operands.append([letters.setdefault(a, len(letters)) for a in attrs])
        out_attrs = order if order is not None else tuple(a for a in letters if a != drop)
        operands.append([letters[a] for a in out_attrs])
        result = np.einsum(*operands, optimize=len(factors) > 2)  # type: ignore[call-overload]
        return out_attrs, np.asarray(result, dtype=np.float64)


def marginal_of(beliefs: Beliefs, attrs: tuple[str, ...]) -> FloatArray:
    """The probability table over ``attrs`` (in that axis order) under calibrated beliefs.

    If one clique holds all of ``attrs`` its belief is summed; otherwise the smallest subtree
    covering them is turned into conditional tables and the other attributes are eliminated
    exactly (greedy min-size order).
    """
    tree = beliefs.tree
    tree.domain.check(attrs)
    canon = tree.domain.canonical(attrs)
    home = tree.home(canon)
    if home is not None:
        clique = tree.cliques[home]
        axes = tuple(i for i, a in enumerate(clique) if a not in canon)
        table = np.add.reduce(beliefs.probs[home], axis=axes) if axes else beliefs.probs[home]
        perm = tuple(canon.index(a) for a in attrs)
        return np.asarray(np.transpose(table, perm), dtype=np.float64)
    anchors = {tree.home((a,)) for a in canon}
    nodes = tree.steiner(i for i in anchors if i is not None)
    position = {node: k for k, node in enumerate(tree.order)}
    top = min(nodes, key=position.__getitem__)
    factors: list[tuple[tuple[str, ...], FloatArray]] = [(tree.cliques[top], beliefs.probs[top])]
    for node in nodes:
        if node == top:
            continue
        parent = tree.parent[node]
        clique = tree.cliques[node]
        sep = set(tree.separator(node, parent))
        table = beliefs.probs[node]
        axes = tuple(i for i, a in enumerate(clique) if a not in sep)
        sep_table = np.add.reduce(table, axis=axes, keepdims=True) if axes else table
        cond = np.divide(table, sep_table, out=np.zeros_like(table), where=sep_table > 0)
        factors.append((clique, cond))
    return _Query(tree.domain.to_dict()).run(factors, tuple(attrs))


class MarginalCache:
    """Memoised marginal queries against one set of beliefs (for ``project_many``)."""

    def __init__(self, beliefs: Beliefs) -> None:
        self.beliefs = beliefs
        self._cache: dict[tuple[str, ...], FloatArray] = {}

    def get(self, attrs: tuple[str, ...]) -> FloatArray:
        """The probability table over ``attrs`` in that order."""
        canon = self.beliefs.tree.domain.canonical(attrs)
        table = self._cache.get(canon)
        if table is None:
            table = marginal_of(self.beliefs, canon)
            self._cache[canon] = table
        perm = tuple(canon.index(a) for a in attrs)
        return np.asarray(np.transpose(table, perm))

    @property
    def size(self) -> int:
        """Number of cached tables."""
        return len(self._cache)
