"""Junction trees: triangulate the attribute graph, find maximal cliques, link them in a tree.

Everything here works from public domain sizes only, so model size is known (and capped)
before any potential is allocated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from dpsynth.errors import ConfigError, ModelTooLargeError
from dpsynth.pgm.domain import Domain
from dpsynth.pgm.elimination import TreeSizer, eliminate

__all__ = [
    "JunctionTree",
    "TreeSizer",
    "build_junction_tree",
    "elimination_cliques",
    "hypothetical_model_size",
    "junction_tree_size",
]

Clique = tuple[str, ...]


@dataclass(frozen=True, eq=False)
class JunctionTree:
    """A tree of maximal cliques with the running-intersection property.

    Attributes:
        domain: The model's domain; every attribute is in some clique.
        cliques: Maximal cliques, each with attributes in domain order.
        edges: Tree edges as pairs of clique indices (a spanning tree; components are joined
            through empty separators).
    """

    domain: Domain
    cliques: tuple[Clique, ...]
    edges: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if len(self.edges) != max(len(self.cliques) - 1, 0):
            raise ConfigError(
                f"a junction tree over {len(self.cliques)} cliques needs "
                f"{max(len(self.cliques) - 1, 0)} edges, got {len(self.edges)}"
            )

    @cached_property
    def neighbours(self) -> tuple[tuple[int, ...], ...]:
        """Adjacency lists of the tree."""
        adj: list[list[int]] = [[] for _ in self.cliques]
        for a, b in self.edges:
            adj[a].append(b)
            adj[b].append(a)
        return tuple(tuple(sorted(n)) for n in adj)

    @cached_property
    def order(self) -> tuple[int, ...]:
        """Breadth-first order from clique 0 (parents before children)."""
        seen = [False] * len(self.cliques)
        out: list[int] = []
        for start in range(len(self.cliques)):
            if seen[start]:
                continue
            seen[start] = True
            queue = [start]
            while queue:
                node = queue.pop(0)
                out.append(node)
                for nxt in self.neighbours[node]:
                    if not seen[nxt]:
                        seen[nxt] = True
                        queue.append(nxt)
        return tuple(out)

    @cached_property
    def parent(self) -> tuple[int, ...]:
        """Parent of each clique in the rooted tree (``-1`` for the root)."""
        par = [-1] * len(self.cliques)
        placed = set()
        for node in self.order:
            for nxt in self.neighbours[node]:
                if nxt in placed:
                    par[node] = nxt
            placed.add(node)
        return tuple(par)

    def separator(self, a: int, b: int) -> Clique:
        """Attributes shared by cliques ``a`` and ``b``, in domain order."""
        other = set(self.cliques[b])
        return tuple(x for x in self.cliques[a] if x in other)

    def size(self) -> int:
        """Total number of cells of all clique tables."""
        return sum(self.domain.size(c) for c in self.cliques)

    def home(self, attrs: Iterable[str]) -> int | None:
        """Index of the smallest clique containing ``attrs``, or ``None``."""
        wanted = set(attrs)
        best: int | None = None
        for i, clique in enumerate(self.cliques):
            if wanted <= set(clique) and (
                best is None or self.domain.size(clique) < self.domain.size(self.cliques[best])
            ):
                best = i
        return best

    def steiner(self, nodes: Iterable[int]) -> set[int]:
        """The smallest subtree containing ``nodes`` (repeatedly prune other leaves)."""
        keep = set(nodes)
        alive = set(range(len(self.cliques)))
        degree = {i: len(self.neighbours[i]) for i in alive}
        leaves = [i for i in alive if degree[i] <= 1 and i not in keep]
        while leaves:
            leaf = leaves.pop()
            if leaf not in alive:
                continue
            alive.discard(leaf)
            for nxt in self.neighbours[leaf]:
                if nxt in alive:
                    degree[nxt] -= 1
                    if degree[nxt] <= 1 and nxt not in keep:
                        leaves.append(nxt)
        return alive


def elimination_cliques(
    domain: Domain, cliques: Iterable[Iterable[str]], *, max_cells: int | None = None
) -> list[Clique]:
    """Maximal cliques of a triangulation by greedy min-weight elimination.

    The next attribute eliminated is the one whose elimination clique (itself and its current
    neighbours) has the fewest cells; ties go to the fewest fill-in edges, then domain order.
    Runs on bitset graphs (:mod:`dpsynth.pgm.elimination`).

    Args:
        domain: The public domain.
        cliques: Sets of attributes that must end up together in some clique.
        max_cells: Optional cap on the total cells of the resulting tree.

    Returns:
        The maximal cliques, each in domain order.

    Raises:
        ModelTooLargeError: A single elimination clique already exceeds ``max_cells``.
    """
    return eliminate(domain, cliques, max_cells=max_cells)


def junction_tree_size(domain: Domain, cliques: Iterable[Iterable[str]]) -> int:
    """Total cells of the junction tree that ``build_junction_tree`` would build (no allocation)."""
    return sum(domain.size(c) for c in elimination_cliques(domain, cliques))


def hypothetical_model_size(domain: Domain, cliques: Iterable[Iterable[str]]) -> float:
    """Memory of that junction tree's float64 potentials, in MiB (as in Private-PGM)."""
    return junction_tree_size(domain, cliques) * 8 / 2**20


def build_junction_tree(
    domain: Domain,
    cliques: Sequence[Iterable[str]],
    *,
    max_cells: int | None = None,
) -> JunctionTree:
    """Build the junction tree of a set of cliques over ``domain``.

    Every domain attribute is included (unmeasured ones as singleton cliques); disconnected
    parts are joined through empty separators so the result is one tree.

    Args:
        domain: The public domain.
        cliques: The measured cliques (and constraint scopes) that must be covered.
        max_cells: Optional cap on the total number of cells of all clique tables.

    Raises:
        ModelTooLargeError: The tree would have more than ``max_cells`` cells; the message
            names the attributes of the largest clique. Raised before allocating anything.
    """
    maximal = elimination_cliques(domain, cliques, max_cells=max_cells)
    total = sum(domain.size(c) for c in maximal)
    if max_cells is not None and total > max_cells:
        biggest = max(maximal, key=domain.size)
        raise ModelTooLargeError(
            f"junction tree has {total} cells, more than max_cells={max_cells}; largest clique "
            f"{list(biggest)} has {domain.size(biggest)} cells"
        )
    maximal.sort(key=lambda c: (-domain.size(c), [domain.attrs.index(a) for a in c]))
    if len(maximal) == 1:
        return JunctionTree(domain, tuple(maximal), ())
    import networkx as nx  # only a new tree needs it (sampling a saved model does not)

    graph = nx.Graph()
    graph.add_nodes_from(range(len(maximal)))
    sets = [set(c) for c in maximal]
    for i in range(len(maximal)):
        for j in range(i + 1, len(maximal)):
            graph.add_edge(i, j, weight=len(sets[i] & sets[j]))
    tree = nx.maximum_spanning_tree(graph, weight="weight", algorithm="kruskal")
    edges = tuple(sorted((min(a, b), max(a, b)) for a, b in tree.edges()))
    return JunctionTree(domain, tuple(maximal), edges)
