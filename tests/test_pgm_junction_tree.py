"""Junction trees: coverage, running intersection, sizes from public shapes, the size cap."""

from __future__ import annotations

import itertools

import pytest

from dpsynth.errors import ModelTooLargeError
from dpsynth.pgm import Domain, build_junction_tree, hypothetical_model_size, junction_tree_size


def _running_intersection(tree) -> bool:  # type: ignore[no-untyped-def]
    for attr in tree.domain.attrs:
        holders = [i for i, c in enumerate(tree.cliques) if attr in c]
        if len(tree.steiner(holders)) != len(holders):
            return False
    return True


@pytest.mark.parametrize(
    "cliques",
    [
        [("a", "b"), ("b", "c"), ("c", "d")],
        [("a", "b"), ("b", "c"), ("a", "c")],
        [("a", "b"), ("b", "c"), ("c", "d"), ("d", "a")],
        [("a", "b"), ("c", "d")],
        [("a",)],
        [],
    ],
)
def test_tree_covers_everything(cliques: list[tuple[str, ...]]) -> None:
    d = Domain.from_dict({"a": 2, "b": 3, "c": 4, "d": 5, "e": 2})
    tree = build_junction_tree(d, cliques)
    for c in cliques:
        assert any(set(c) <= set(k) for k in tree.cliques)
    assert set(itertools.chain(*tree.cliques)) == set(d.attrs)
    assert len(tree.edges) == len(tree.cliques) - 1
    assert _running_intersection(tree)
    assert junction_tree_size(d, cliques) == sum(d.size(c) for c in tree.cliques) == tree.size()
    assert hypothetical_model_size(d, cliques) == pytest.approx(tree.size() * 8 / 2**20)


def test_four_cycle_is_triangulated() -> None:
    d = Domain.from_dict({"a": 2, "b": 3, "c": 4, "d": 5})
    tree = build_junction_tree(d, [("a", "b"), ("b", "c"), ("c", "d"), ("d", "a")])
    assert max(len(c) for c in tree.cliques) == 3
    assert len(tree.cliques) == 2


def test_size_cap_raises_before_allocating_and_names_attributes() -> None:
    d = Domain.from_dict({f"x{i}": 1000 for i in range(6)})
    cliques = [tuple(f"x{i}" for i in range(6))]
    assert junction_tree_size(d, cliques) == 1000**6  # computed, never allocated
    with pytest.raises(ModelTooLargeError, match="x0") as err:
        build_junction_tree(d, cliques, max_cells=10**6)
    assert "max_cells=1000000" in str(err.value)
    with pytest.raises(ModelTooLargeError, match="x1"):
        build_junction_tree(d, [("x0", "x1"), ("x2", "x3")], max_cells=1_500_000)
