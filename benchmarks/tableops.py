"""Clique-table reductions and broadcasts: dpsynth.pgm.tableops against plain numpy.

The shapes are cliques of AIM's model on coded Adult at epsilon = 3 (after compression). For
each, every 1- to 3-attribute marginal is computed with ``einsum`` (what the engine used
before) and with ``tableops.sum_axes``, and each such marginal is added back into the clique
with numpy broadcasting and with ``tableops.broadcast_into``. Prints the total time per shape
(best of three, milliseconds) and the ratio. Run: ``python benchmarks/tableops.py``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import numpy as np

from dpsynth.pgm.tableops import _subscripts, broadcast_into, sum_axes

SHAPES = [
    (25, 8, 15, 6, 2, 25, 2),  # age, workclass, occupation, relationship, sex, hours, income
    (16, 25, 8, 15, 6, 2, 2),  # education, age, workclass, occupation, relationship, sex, income
    (25, 8, 7, 15, 6, 2, 2),  # age, workclass, marital, occupation, relationship, sex, income
    (8, 7, 15, 6, 5, 2, 2),  # workclass, marital, occupation, relationship, race, sex, income
    (16, 16, 15, 6, 2, 2),  # education, education-num, occupation, relationship, sex, income
]


def _best(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def row(shape: tuple[int, ...], rng: np.random.Generator) -> str:
    """One table row: every 1- to 3-attribute split of a random table of ``shape``."""
    table = rng.random(shape)
    cases = []
    for keep in [k for r in (1, 2, 3) for k in itertools.combinations(range(len(shape)), r)]:
        axes = tuple(i for i in range(len(shape)) if i not in keep)
        in_shape = tuple(s if i in keep else 1 for i, s in enumerate(shape))
        cases.append((axes, in_shape, np.sum(table, axis=axes)))
    sub = [_subscripts(len(shape), axes) for axes, _, _ in cases]
    t_einsum = _best(lambda: [np.einsum(s, table) for s in sub])
    t_ours = _best(lambda: [sum_axes(table, axes) for axes, _, _ in cases])
    out = table.copy()

    def numpy_add() -> None:
        for _, in_shape, small in cases:
            out.__iadd__(small.reshape(in_shape))

    def ours_add() -> None:
        for _, in_shape, small in cases:
            broadcast_into(np.add, out, small, in_shape, out=out)

    t_np, t_bc = _best(numpy_add), _best(ours_add)
    return (f"| {' × '.join(map(str, shape))} | {table.size:,} | {len(cases)} | {t_einsum * 1e3:.0f} | "
            f"{t_ours * 1e3:.0f} | {t_einsum / t_ours:.1f}× | {t_np * 1e3:.0f} | {t_bc * 1e3:.0f} | "
            f"{t_np / t_bc:.1f}× |")


def main() -> None:
    rng = np.random.default_rng(0)
    print("| clique shape | cells | splits | einsum ms | sum_axes ms | ratio | numpy += ms "
          "| broadcast_into ms | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for shape in SHAPES:
        print(row(shape, rng))


if __name__ == "__main__":
    main()
