"""Exact marginal queries on calibrated beliefs: within one clique, or across the tree.

A query inside one clique sums that clique's belief. A query spanning several cliques is
answered exactly over the smallest covering subtree, by greedy variable elimination or, when
that would build tables larger than the model, by upward messages along the subtree.
:class:`MarginalCache` memoises queries against one set of beliefs.
"""

from __future__ import annotations

from math import prod

import numpy as np

from dpsynth.arrays import FloatArray
from dpsynth.pgm.inference import Beliefs
from dpsynth.pgm.junction_tree import JunctionTree

__all__ = ["MarginalCache", "marginal_of"]

_SMALL = 1 << 21  # cells of a table too small to matter for memory (16 MiB of float64)


def _einsum(
    factors: list[tuple[tuple[str, ...], FloatArray]],
    out_attrs: tuple[str, ...],
    *,
    min_operands: int = 2,
) -> FloatArray:
    """One ``einsum`` of ``factors`` onto ``out_attrs`` (path-optimised from ``min_operands``)."""
    letters: dict[str, int] = {}
    operands: list[object] = []
    for attrs, table in factors:
        operands.append(table)
        operands.append([letters.setdefault(a, len(letters)) for a in attrs])
    operands.append([letters[a] for a in out_attrs])
    # A path-optimised einsum calls BLAS (tensordot/matmul), whose threads spin-wait after
    # every call: worth it only when the contraction is large.
    work = prod(t.size for _, t in factors)
    optimize = len(factors) >= min_operands and work > _SMALL
    result = np.einsum(*operands, optimize=optimize)  # type: ignore[call-overload]
    return np.asarray(result, dtype=np.float64)


def _contract(
    factors: list[tuple[tuple[str, ...], FloatArray]], out_attrs: tuple[str, ...]
) -> FloatArray:
    """The product of ``factors`` summed onto ``out_attrs`` (axes in that order).

    Factors are folded into the first one at a time, each time the one that gives the
    smallest partial product, and a partial product keeps only the attributes still needed
    (by the output or a factor not yet folded in), so every step is one two-operand
    ``einsum`` of modest size.
    """
    if len(factors) == 1 and factors[0][0] == out_attrs:
        return factors[0][1]
    sizes = {a: n for attrs, table in factors for a, n in zip(attrs, table.shape, strict=True)}
    acc, rest = factors[0], list(factors[1:])
    while rest:
        options = []
        for k, (attrs, _) in enumerate(rest):
            later = set(out_attrs).union(*(set(f[0]) for j, f in enumerate(rest) if j != k))
            options.append(tuple(dict.fromkeys(a for a in acc[0] + attrs if a in later)))
        best = min(range(len(rest)), key=lambda k: prod(sizes[a] for a in options[k]))
        acc = (options[best], _einsum([acc, rest.pop(best)], options[best]))
    return _einsum([acc], out_attrs) if acc[0] != out_attrs else acc[1]


def _eliminate(
    factors: list[tuple[tuple[str, ...], FloatArray]] | list[tuple[str, ...]],
    target: tuple[str, ...],
    sizes: dict[str, int],
) -> tuple[list[str], int]:
    """Greedy variable-elimination order (cheapest elimination first) and its peak table size.

    Works on attribute tuples only (tables, if given, are ignored), so a plan can be judged
    before anything is computed.
    """
    scopes = [set(f[0]) if isinstance(f[0], tuple) else set(f) for f in factors]
    keep = set(target)
    order: list[str] = []
    peak = prod(sizes[a] for a in keep)
    while True:
        spare = set().union(*scopes) - keep
        if not spare:
            return order, peak
        best_var, best_cost = "", -1
        for var in sorted(spare):
            cost = prod(sizes[a] for a in set().union(*(sc for sc in scopes if var in sc)))
            if best_cost < 0 or cost < best_cost:
                best_var, best_cost = var, cost
        merged = set().union(*(sc for sc in scopes if best_var in sc)) - {best_var}
        scopes = [sc for sc in scopes if best_var not in sc] + [merged]
        order.append(best_var)
        peak = max(peak, prod(sizes[a] for a in merged))


def _run_elimination(
    factors: list[tuple[tuple[str, ...], FloatArray]], target: tuple[str, ...], order: list[str]
) -> FloatArray:
    """Eliminate ``order`` from ``factors``, then contract what is left onto ``target``."""
    for var in order:
        touching = [f for f in factors if var in f[0]]
        factors = [f for f in factors if var not in f[0]]
        out = tuple(dict.fromkeys(a for f in touching for a in f[0] if a != var))
        factors.append((out, _einsum(touching, out, min_operands=3)))
    return _einsum(factors, target, min_operands=3)


def _conditional(beliefs: Beliefs, node: int) -> FloatArray:
    """``P(clique | separator with the parent)`` of one non-root clique."""
    tree = beliefs.tree
    clique = tree.cliques[node]
    sep = set(tree.separator(node, tree.parent[node]))
    table = beliefs.probs[node]
    axes = tuple(i for i, a in enumerate(clique) if a not in sep)
    sep_table = np.add.reduce(table, axis=axes, keepdims=True) if axes else table
    return np.divide(table, sep_table, out=np.zeros_like(table), where=sep_table > 0)


def _subtree_tables(
    beliefs: Beliefs,
    nodes: list[int],
    top: int,
    wanted: set[str],
    store: dict[tuple[int, bool, tuple[str, ...]], FloatArray],
) -> dict[int, tuple[tuple[str, ...], FloatArray]]:
    """The covering subtree's tables: the top clique's joint, the others' conditionals.

    Every attribute that only one table holds and the query does not want is summed out of
    it. Tables are memoised in ``store`` by (clique, is top, kept attributes).
    """
    tree = beliefs.tree
    holders: dict[str, int] = {}
    for node in nodes:
        for a in tree.cliques[node]:
            holders[a] = holders.get(a, 0) + 1
    tables: dict[int, tuple[tuple[str, ...], FloatArray]] = {}
    for node in nodes:
        clique = tree.cliques[node]
        kept = tuple(a for a in clique if a in wanted or holders[a] > 1)
        is_top = node == top  # the top clique enters as a joint, the others as conditionals
        table = store.get((node, is_top, kept))
        if table is None:
            full = store.get((node, is_top, clique))
            if full is None:
                full = beliefs.probs[node] if is_top else _conditional(beliefs, node)
                store[(node, is_top, clique)] = full
            axes = tuple(i for i, a in enumerate(clique) if a not in kept)
            table = np.add.reduce(full, axis=axes) if axes else full
            store[(node, is_top, kept)] = table
        tables[node] = (kept, table)
    return tables


def marginal_of(
    beliefs: Beliefs,
    attrs: tuple[str, ...],
    *,
    memo: dict[tuple[int, bool, tuple[str, ...]], FloatArray] | None = None,
) -> FloatArray:
    """The probability table over ``attrs`` (in that axis order) under calibrated beliefs.

    If one clique holds all of ``attrs`` its belief is summed; otherwise the smallest subtree
    covering them is turned into conditional tables (the top one a joint), every attribute
    that only one of them holds (and the query does not want) is summed out of it, and the
    rest is eliminated exactly: by greedy variable elimination when its tables stay within
    the largest clique, else leaves first by upward messages along the subtree.

    Args:
        beliefs: Calibrated beliefs.
        attrs: The query attributes.
        memo: Optional store shared across queries on the same ``beliefs`` (reduced
            conditional tables keyed by clique and kept attributes).
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
    store = {} if memo is None else memo
    anchors = {tree.home((a,)) for a in canon}
    nodes = sorted(tree.steiner(i for i in anchors if i is not None))
    position = {node: k for k, node in enumerate(tree.order)}
    top = min(nodes, key=position.__getitem__)
    wanted = set(canon)
    tables = _subtree_tables(beliefs, nodes, top, wanted, store)
    # Greedy variable elimination is usually fastest, but its intermediate tables can grow far
    # beyond the model (a product of many separators). Use it only when its plan stays within
    # the largest clique, the answer or 16 MiB; otherwise contract the subtree by upward
    # messages (bounded by one clique times the query).
    sizes = tree.domain.to_dict()
    order, peak = _eliminate(list(tables.values()), tuple(attrs), sizes)
    bound = max(max(tree.domain.size(c) for c in tree.cliques), tree.domain.size(canon), _SMALL)
    if peak <= bound:
        return _run_elimination(list(tables.values()), tuple(attrs), order)
    return _upward(tree, tables, top, position, wanted, tuple(attrs))


def _upward(
    tree: JunctionTree,
    tables: dict[int, tuple[tuple[str, ...], FloatArray]],
    top: int,
    position: dict[int, int],
    wanted: set[str],
    target: tuple[str, ...],
) -> FloatArray:
    """Contract a subtree's tables onto ``target`` by upward messages, children first.

    A clique's table times its children's messages is summed onto its separator with the
    parent plus the query attributes seen so far. An attribute summed out there occurs
    nowhere above (running intersection), so every intermediate stays within one clique and
    the query attributes below it, however the query spreads over the tree.
    """
    messages: dict[int, list[tuple[tuple[str, ...], FloatArray]]] = {}
    for node in sorted(tables, key=position.__getitem__, reverse=True):
        factors = [tables[node], *messages.pop(node, [])]
        if node == top:
            return _contract(factors, target)
        parent = tree.parent[node]
        keep = set(tree.separator(node, parent)) | wanted
        out = tuple(dict.fromkeys(a for attrs, _ in factors for a in attrs if a in keep))
        messages.setdefault(parent, []).append((out, _contract(factors, out)))
    raise AssertionError("the subtree has no top clique")  # unreachable: top is in tables


class MarginalCache:
    """Memoised marginal queries against one set of beliefs (for ``project_many``)."""

    def __init__(self, beliefs: Beliefs) -> None:
        self.beliefs = beliefs
        self._cache: dict[tuple[str, ...], FloatArray] = {}
        self._memo: dict[tuple[int, bool, tuple[str, ...]], FloatArray] = {}

    def _compute(self, canon: tuple[str, ...]) -> FloatArray:
        tree = self.beliefs.tree
        if tree.home(canon) is None:
            # A cached superset (e.g. a 3-way table for a 2-way query) is the cheapest source.
            # Look for supersets with one more attribute (what a downward-closed workload has).
            domain = tree.domain
            wanted = set(canon)
            best: tuple[str, ...] | None = None
            for extra in domain.attrs:
                if extra in wanted:
                    continue
                key = tuple(a for a in domain.attrs if a in wanted or a == extra)
                table = self._cache.get(key)
                if table is not None and (best is None or table.size < self._cache[best].size):
                    best = key
            if best is not None:
                axes = (best.index(next(a for a in best if a not in wanted)),)
                return np.asarray(np.add.reduce(self._cache[best], axis=axes), dtype=np.float64)
        return marginal_of(self.beliefs, canon, memo=self._memo)

    def get(self, attrs: tuple[str, ...]) -> FloatArray:
        """The probability table over ``attrs`` in that order."""
        canon = self.beliefs.tree.domain.canonical(attrs)
        table = self._cache.get(canon)
        if table is None:
            table = self._compute(canon)
            self._cache[canon] = table
        perm = tuple(canon.index(a) for a in attrs)
        return np.asarray(np.transpose(table, perm))

    def prefetch(self, cliques: list[tuple[str, ...]]) -> None:
        """Compute the tables of ``cliques``, largest first, so smaller ones reuse them."""
        domain = self.beliefs.tree.domain
        canon = {domain.canonical(c) for c in cliques}
        for key in sorted(canon, key=lambda c: (-len(c), [domain.attrs.index(a) for a in c])):
            if key not in self._cache:
                self._cache[key] = self._compute(key)

    @property
    def size(self) -> int:
        """Number of cached tables."""
        return len(self._cache)
