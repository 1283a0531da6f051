"""Exact inference on a junction tree: calibration (sum-product) of log-potentials.

Potentials are kept in log space. Calibration exponentiates each clique once (shifted by its
maximum, so the largest entry is 1) and passes normalised messages in linear space, tracking
the log normaliser; this is the numerically safe equivalent of log-space belief propagation
at a fraction of the cost (one ``exp`` per cell per sweep, no ``log`` per message).

Potentials and beliefs are ``list``/``tuple``s of arrays aligned with ``tree.cliques``: the
engine's working representation (see :mod:`dpsynth.pgm.estimate`). Marginal queries over
calibrated beliefs live in :mod:`dpsynth.pgm.marginals`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dpsynth.arrays import FloatArray
from dpsynth.errors import ConfigError
from dpsynth.pgm.junction_tree import JunctionTree
from dpsynth.pgm.tableops import broadcast_into, sum_axes

__all__ = ["Beliefs", "Calibrator", "sum_axes"]



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


#: Table precisions calibration keeps (anything else is converted to float64).
_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))


def _shifted_exp(log_table: FloatArray, *, inplace: bool = False) -> tuple[FloatArray, float]:
    """``exp(log_table - max)`` and the max; raises if every entry is ``-inf``.

    The result is a new array, or ``log_table`` itself overwritten when ``inplace``.
    """
    peak = float(np.max(log_table))
    if not np.isfinite(peak):
        raise ConfigError("the model assigns zero probability to every record")
    out = np.subtract(log_table, peak, out=log_table if inplace else None)
    np.exp(out, out=out)
    return out, peak


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
                    in_parent=tuple(s if a in sep else 1 for a, s in zip(pcl, self.shapes[parent], strict=True)),
                    in_child=tuple(s if a in sep else 1 for a, s in zip(ccl, self.shapes[child], strict=True)),
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
        logs: list[FloatArray] = [t if t.dtype in _FLOATS else np.asarray(t, dtype=np.float64) for t in log_potentials]
        own = [False] * len(logs)  # whether logs[i] is our copy (updated in place)
        cur: list[FloatArray] = list(logs)
        up: dict[int, FloatArray] = {}
        child_mass: dict[int, float] = {}
        for edge in reversed(self.edges):
            # A table we already copied (it received messages) is exponentiated in place.
            lin, shift = _shifted_exp(logs[edge.child], inplace=own[edge.child])
            logs[edge.child] = lin  # the log table is not needed again: drop our copy
            cur[edge.child] = lin
            msg = sum_axes(lin, edge.up_axes)
            mass = float(np.sum(msg))
            msg = msg / mass
            log_z += shift + np.log(mass)
            up[edge.child] = msg
            child_mass[edge.child] = mass
            with np.errstate(divide="ignore"):
                log_msg = np.log(msg)
                parent = logs[edge.parent]
                logs[edge.parent] = broadcast_into(np.add, parent, log_msg, edge.in_parent,
                                                   out=parent if own[edge.parent] else None)
                own[edge.parent] = True
        lin, shift = _shifted_exp(logs[self.root], inplace=own[self.root])
        logs[self.root] = lin
        mass = float(np.sum(lin))
        log_z += shift + np.log(mass)
        probs: list[FloatArray] = list(cur)
        lin /= mass
        probs[self.root] = lin
        for edge in self.edges:
            belief = probs[edge.parent]
            sep = sum_axes(belief, edge.down_axes)
            msg = up[edge.child]
            with np.errstate(over="ignore", invalid="ignore"):
                ratio = np.divide(sep, msg, out=np.zeros_like(sep), where=msg > 0)
                # The child's new mass, without a pass over it: its table sums to msg * mass
                # over the separator, so scaling by ratio leaves mass * sum(sep where msg > 0).
                mass = child_mass[edge.child] * float(np.sum(sep, where=msg > 0))
                if mass > 0:  # a belief with no mass left (e.g. fully clamped away) stays zero
                    ratio /= mass
                out = cur[edge.child]  # our own exp() buffer: scale it in place
                broadcast_into(np.multiply, out, ratio, edge.in_child, out=out)
            probs[edge.child] = out
        return Beliefs(self.tree, tuple(probs), float(log_z))
