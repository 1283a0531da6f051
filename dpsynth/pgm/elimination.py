"""Greedy min-weight elimination on bitset graphs: the junction tree's cliques and sizes, fast.

Attributes are numbered in domain order and a neighbourhood is one Python ``int`` bitmask, so
one elimination step costs a few integer operations per attribute. :class:`TreeSizer`
memoises junction-tree sizes by graph, which is what AIM's size filter needs: most of its
candidates leave the attribute graph unchanged or map to a graph already seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from dpsynth.errors import ModelTooLargeError
from dpsynth.pgm.domain import Domain

__all__ = ["TreeSizer", "eliminate"]


def _bits(mask: int) -> list[int]:
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


class _TooBig(Exception):
    def __init__(self, mask: int, cells: int) -> None:
        super().__init__(mask, cells)
        self.mask, self.cells = mask, cells


class _Cells:
    """Memoised number of cells of an attribute set given as a bitmask."""

    def __init__(self, shape: Sequence[int]) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.memo: dict[int, int] = {}

    def __call__(self, mask: int) -> int:
        cells = self.memo.get(mask)
        if cells is None:
            cells = 1
            for i in _bits(mask):
                cells *= self.shape[i]
            self.memo[mask] = cells
        return cells


def _adjacency(domain: Domain, cliques: Iterable[Iterable[str]]) -> list[int]:
    index = {a: i for i, a in enumerate(domain.attrs)}
    adj = [0] * len(domain.attrs)
    for clique in cliques:
        members = tuple(clique)
        domain.check(members)
        mask = 0
        for a in members:
            mask |= 1 << index[a]
        for a in members:
            i = index[a]
            adj[i] |= mask & ~(1 << i)
    return adj


def _eliminate_masks(adj: list[int], cells: _Cells, max_cells: int | None) -> list[int]:
    """Maximal elimination cliques as bitmasks (formation order, no duplicates).

    Same rule as the reference: eliminate the attribute with the fewest cells in its
    elimination clique, ties to the fewest fill-in edges, then to the lowest index.
    """
    adj = list(adj)
    weight = [cells(m | (1 << v)) for v, m in enumerate(adj)]
    alive = list(range(len(adj)))
    formed: list[int] = []
    while alive:
        best_w = min(weight[v] for v in alive)
        tied = [v for v in alive if weight[v] == best_w]  # ascending index
        pick = tied[0]
        if len(tied) > 1:
            best_fill = -1
            for v in tied:  # the first minimum wins, i.e. the lowest index
                nb = adj[v]
                if nb & (nb - 1) == 0:  # at most one neighbour: no fill-in, nothing beats it
                    pick = v
                    break
                fill = sum((nb & ~adj[x]).bit_count() for x in _bits(nb)) - nb.bit_count()
                if best_fill < 0 or fill < best_fill:
                    best_fill, pick = fill, v
                    if fill == 0:
                        break
        bit = 1 << pick
        nbrs = adj[pick]
        clique = nbrs | bit
        if max_cells is not None and best_w > max_cells:
            raise _TooBig(clique, best_w)
        formed.append(clique)
        alive.remove(pick)
        for x in _bits(nbrs):
            adj[x] = (adj[x] | nbrs) & ~(bit | (1 << x))
            weight[x] = cells(adj[x] | (1 << x))
        adj[pick] = 0
    # An elimination clique contains its own (eliminated) attribute, so it can only be a
    # subset of an earlier one: keep those not contained in any earlier clique.
    out: list[int] = []
    for k, c in enumerate(formed):
        if not any(c & formed[j] == c for j in range(k)):
            out.append(c)
    return out


def eliminate(
    domain: Domain, cliques: Iterable[Iterable[str]], *, max_cells: int | None = None
) -> list[tuple[str, ...]]:
    """Maximal cliques of the greedy min-weight triangulation, each in domain order.

    Raises:
        ModelTooLargeError: A single elimination clique exceeds ``max_cells``; the message
            names its attributes.
    """
    adj = _adjacency(domain, cliques)
    try:
        masks = _eliminate_masks(adj, _Cells(domain.shape), max_cells)
    except _TooBig as big:
        names = [domain.attrs[i] for i in _bits(big.mask)]
        raise ModelTooLargeError(
            f"model clique {names} has {big.cells} cells, more than max_cells={max_cells}"
        ) from None
    return [tuple(domain.attrs[i] for i in _bits(m)) for m in masks]


class TreeSizer:
    """Junction-tree sizes (total cells) over one domain, memoised by attribute graph.

    ``sizer.size(cliques)`` equals ``junction_tree_size(domain, cliques)``.
    """

    def __init__(self, domain: Domain) -> None:
        self.domain = domain
        self.index = {a: i for i, a in enumerate(domain.attrs)}
        self._cells = _Cells(domain.shape)
        self._memo: dict[tuple[int, ...], int] = {}

    def _size_of_graph(self, adj: list[int]) -> int:
        key = tuple(adj)
        size = self._memo.get(key)
        if size is None:
            size = sum(self._cells(m) for m in _eliminate_masks(adj, self._cells, None))
            self._memo[key] = size
        return size

    def size(self, cliques: Iterable[Iterable[str]]) -> int:
        """Total cells of the junction tree built from ``cliques``."""
        return self._size_of_graph(_adjacency(self.domain, cliques))

    def sizes(
        self, base: Iterable[Iterable[str]], candidates: Sequence[Iterable[str]]
    ) -> list[int]:
        """``size(list(base) + [c])`` for every candidate ``c`` (one graph build for ``base``)."""
        adj = _adjacency(self.domain, base)
        out = []
        for cand in candidates:
            members = tuple(cand)
            self.domain.check(members)
            mask = 0
            for a in members:
                mask |= 1 << self.index[a]
            grown = list(adj)
            for a in members:
                i = self.index[a]
                grown[i] |= mask & ~(1 << i)
            out.append(self._size_of_graph(grown))
        return out
