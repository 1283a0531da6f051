"""Bitset elimination and the memoised TreeSizer agree with the original dict-of-sets code."""

from __future__ import annotations

import itertools
import random
from math import prod

import pytest

from dpsynth.errors import ModelTooLargeError
from dpsynth.pgm import Domain, TreeSizer, junction_tree_size
from dpsynth.pgm.junction_tree import elimination_cliques


def _reference(domain: Domain, cliques: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """The original implementation (sets of names), kept verbatim as the oracle."""
    adj: dict[str, set[str]] = {a: set() for a in domain.attrs}
    for clique in cliques:
        for a in clique:
            adj[a].update(b for b in clique if b != a)
    sizes = domain.to_dict()
    rank = {a: i for i, a in enumerate(domain.attrs)}
    formed: list[frozenset[str]] = []
    while adj:
        best: tuple[int, int, int] | None = None
        pick = ""
        for var, nbrs in adj.items():
            weight = sizes[var] * prod(sizes[n] for n in nbrs)
            nb = list(nbrs)
            fill = sum(1 for i, x in enumerate(nb) for y in nb[i + 1 :] if y not in adj[x])
            key = (weight, fill, rank[var])
            if best is None or key < best:
                best, pick = key, var
        formed.append(frozenset(adj[pick] | {pick}))
        nbrs = adj.pop(pick)
        for x in nbrs:
            adj[x].discard(pick)
            adj[x].update(n for n in nbrs if n != x)
    maximal = [c for c in formed if not any(c < other for other in formed)]
    return [tuple(a for a in domain.attrs if a in c) for c in dict.fromkeys(maximal)]


def _random_case(rng: random.Random) -> tuple[Domain, list[tuple[str, ...]]]:
    d = rng.randint(1, 14)
    # Few distinct sizes so that weight ties (and the fill / index tie-breaks) are common.
    domain = Domain.from_dict({f"v{i}": rng.choice([1, 2, 2, 3, 4, 8, 16, 41]) for i in range(d)})
    cliques = [
        tuple(rng.sample(domain.attrs, rng.randint(1, min(3, d))))
        for _ in range(rng.randint(0, 2 * d))
    ]
    return domain, cliques


def test_bitset_elimination_equals_reference_on_random_cliques() -> None:
    rng = random.Random(7)
    for _ in range(600):
        domain, cliques = _random_case(rng)
        expected = _reference(domain, cliques)
        assert elimination_cliques(domain, cliques) == expected
        assert junction_tree_size(domain, cliques) == sum(domain.size(c) for c in expected)


def test_tree_sizer_equals_junction_tree_size_for_aim_style_candidates() -> None:
    rng = random.Random(3)
    for _ in range(8):
        domain, base = _random_case(rng)
        cands = [c for k in (1, 2, 3) for c in itertools.combinations(domain.attrs, k)]
        sizer = TreeSizer(domain)
        got = sizer.sizes(base, cands)
        want = [sum(domain.size(c) for c in _reference(domain, [*base, c])) for c in cands]
        assert got == want
        assert sizer.size(base) == junction_tree_size(domain, base)
        assert sizer.sizes(base, cands) == want  # memoised answers are the same


def test_cap_message_names_the_clique_in_domain_order() -> None:
    d = Domain.from_dict({"z": 100, "a": 100, "m": 100})
    with pytest.raises(ModelTooLargeError, match=r"\['z', 'a', 'm'\] has 1000000 cells"):
        elimination_cliques(d, [("m", "a", "z")], max_cells=999_999)
