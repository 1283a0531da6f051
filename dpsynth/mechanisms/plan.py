"""Plan a fit from the public schema alone: noise scales, model size, memory, refusals.

Everything here is a function of public inputs (schema, mechanism, budget, options), so the
plan may be shared freely, and a fit that would be too large is refused before any private
data is read or any memory is allocated.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dpsynth.errors import ModelTooLargeError
from dpsynth.mechanisms.registry import ModelSize, get, resolve_config
from dpsynth.privacy.budget import budget_of, to_rho, zcdp_to_epsilon

if TYPE_CHECKING:
    from dpsynth.tabular.schema import Schema

__all__ = [
    "BYTES_PER_CELL",
    "BYTES_PER_COUNT",
    "MemoryEstimate",
    "Plan",
    "closure_cells",
    "estimate_memory",
    "largest_cells",
    "largest_pairs",
    "plan_fit",
]

#: Working memory per model cell: accelerated mirror descent keeps six model-sized float64
#: table sets (potentials, beliefs, gradient, the trial point and two momentum iterates).
BYTES_PER_CELL = 8 * 6
#: Memory per exact count held by the counting engine's and the gate's caches (int64).
BYTES_PER_COUNT = 8
#: Memory per encoded cell of private data: the int64 code plus encoding temporaries
#: (measured with tracemalloc on Adult: 15.6 bytes a cell).
BYTES_PER_CODE = 16
#: Memory per input cell when the data is read from CSV (the text frame; 92 bytes a cell on Adult).
BYTES_PER_TEXT_CELL = 96
#: Fixed working memory of a fit (junction-tree bookkeeping, small arrays): about 1 MiB.
BASE_BYTES = 1 << 20


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak working memory of a fit, from public facts only.

    The row count is private, so the estimate is a fixed part plus a part per input row; the
    caller multiplies by a row count it knows, or reads the per-million figures. ``expected``
    is the typical peak, ``bound`` the most the mechanism may use (AIM's model may grow to its
    cap; compression usually keeps it far smaller, by an amount only the data decides).

    Attributes:
        model_cells: Cells of the model a typical fit builds.
        model_cells_bound: Cells of the largest model the mechanism may build.
        count_cells: Exact counts the engine and the gate hold at once.
        fixed_bytes: Expected model buffers, count caches and fixed overhead.
        bound_bytes: The same with the largest model.
        per_row_bytes: Encoded codes, per input row.
        read_per_row_bytes: The text frame, per input row, when the data is read from CSV.
    """

    model_cells: int
    model_cells_bound: int
    count_cells: int
    fixed_bytes: int
    bound_bytes: int
    per_row_bytes: int
    read_per_row_bytes: int

    def total(self, rows: int, *, from_csv: bool = False, bound: bool = False) -> int:
        """Estimated peak for ``rows`` input rows."""
        per_row = self.per_row_bytes + (self.read_per_row_bytes if from_csv else 0)
        return (self.bound_bytes if bound else self.fixed_bytes) + rows * per_row

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (MiB, one decimal)."""
        mib = 2**20
        return {"model_cells": self.model_cells, "model_cells_bound": self.model_cells_bound,
                "count_cells": self.count_cells,
                "fixed_mib": round(self.fixed_bytes / mib, 1), "bound_mib": round(self.bound_bytes / mib, 1),
                "per_million_rows_mib": round(self.per_row_bytes * 1e6 / mib, 1),
                "csv_read_per_million_rows_mib": round(self.read_per_row_bytes * 1e6 / mib, 1)}


def closure_cells(domain: dict[str, int], degree: int) -> int:
    """Cells of every marginal of up to ``degree`` columns (AIM's candidate set)."""
    sizes = list(domain.values())
    total = 0
    for k in range(1, min(degree, len(sizes)) + 1):
        total += sum(math.prod(c) for c in itertools.combinations(sizes, k))
    return total


def largest_cells(domain: dict[str, int], degree: int, k: int) -> int:
    """Cells of the ``k`` largest ``degree``-way marginals."""
    sizes = sorted((math.prod(c) for c in itertools.combinations(domain.values(), min(degree, len(domain)))),
                   reverse=True)
    return sum(sizes[:k])


def largest_pairs(domain: dict[str, int], k: int) -> list[tuple[tuple[str, str], int]]:
    """The ``k`` largest 2-way marginals with their cells."""
    pairs = [((a, b), domain[a] * domain[b]) for a, b in itertools.combinations(domain, 2)]
    return sorted(pairs, key=lambda p: -p[1])[:k]


def _options(mechanism: str, options: object | None, aim: object | None, mst: object | None) -> object | None:
    """``options``, or the older per-mechanism keyword (``aim=``, ``mst=``) for its mechanism."""
    if options is not None:
        return options
    return {"aim": aim, "mst": mst}.get(mechanism)


def estimate_memory(schema: Schema, mechanism: str, *, aim: object | None = None,
                    mst: object | None = None, options: object | None = None) -> MemoryEstimate:
    """Peak working memory of fitting ``mechanism`` on data with ``schema`` (public inputs only).

    Model: cells (the mechanism's :meth:`~dpsynth.mechanisms.registry.Mechanism.size`) times
    :data:`BYTES_PER_CELL`. Counts: the exact marginals the engine and the gate hold, times
    :data:`BYTES_PER_COUNT`. Rows: :data:`BYTES_PER_CODE` per cell, and
    :data:`BYTES_PER_TEXT_CELL` more when the input is read from CSV.
    """
    mech = get(mechanism)
    size = mech.size(schema, resolve_config(mech, _options(mechanism, options, aim, mst)))
    return _memory(schema, size)


def _memory(schema: Schema, size: ModelSize) -> MemoryEstimate:
    d = len(schema.domain())
    count_bytes = size.count_cells * BYTES_PER_COUNT + BASE_BYTES
    return MemoryEstimate(int(size.model_cells), int(size.model_cells_bound), int(size.count_cells),
                          int(size.model_cells * BYTES_PER_CELL + count_bytes),
                          int(size.model_cells_bound * BYTES_PER_CELL + count_bytes),
                          int(max(d, 1) * BYTES_PER_CODE), int(max(d, 1) * BYTES_PER_TEXT_CELL))


@dataclass(frozen=True)
class Plan:
    """A fit plan (public)."""

    mechanism: str
    rho: float
    epsilon: float | None
    delta: float | None
    columns: int
    domain_cells: dict[str, int]
    max_model_cells: int
    memory_bytes: int
    measurements: list[dict[str, Any]]
    notes: list[str]
    memory: MemoryEstimate | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "mechanism": self.mechanism, "rho": self.rho, "epsilon": self.epsilon, "delta": self.delta,
            "columns": self.columns, "domain": self.domain_cells,
            "max_model_cells": self.max_model_cells,
            "memory_mib": round(self.memory_bytes / 2**20, 1),
            "memory": self.memory.to_json() if self.memory is not None else None,
            "measurements": self.measurements, "notes": self.notes,
        }


def plan_fit(
    schema: Schema,
    *,
    mechanism: str,
    epsilon: float | None = None,
    delta: float = 1e-9,
    rho: float | None = None,
    memory_cap_bytes: int = 4 * 2**30,
    aim: object | None = None,
    mst: object | None = None,
    options: object | None = None,
) -> Plan:
    """Plan a fit; raise :class:`ModelTooLargeError` (naming columns) if it cannot fit.

    The measurements, notes and sizes come from the registered mechanism's ``plan`` and
    ``size`` (:mod:`dpsynth.mechanisms.registry`), the same functions its fit uses.

    Args:
        schema: The public schema.
        mechanism: A registered mechanism name.
        epsilon: Budget in (epsilon, delta); or ``rho``.
        delta: The guarantee's delta.
        rho: Budget in zCDP.
        memory_cap_bytes: Refuse plans whose model would need more working memory.
        aim: AIM options (older spelling of ``options`` for ``aim``).
        mst: MST options (older spelling of ``options`` for ``mst``).
        options: The mechanism's options (an instance of its ``config_type``).
    """
    mech = get(mechanism)
    config = resolve_config(mech, _options(mechanism, options, aim, mst))
    budget_rho = 0.0
    if mech.reads_data or epsilon is not None or rho is not None:
        budget_rho = to_rho(budget_of(epsilon=epsilon, delta=delta, rho=rho))
    eps = zcdp_to_epsilon(budget_rho, delta) if budget_rho > 0 else 0.0
    domain = schema.domain()
    steps = mech.plan(schema, budget_rho, config)
    size = mech.size(schema, config)
    if size.largest is not None and size.largest[1] * BYTES_PER_CELL > memory_cap_bytes:
        cols, cells = size.largest
        raise ModelTooLargeError(
            f"columns {' x '.join(repr(c) for c in cols)} make a {cells:,}-cell marginal, over the "
            "memory cap; coarsen their bins or categories")
    estimate = _memory(schema, size)
    memory = estimate.bound_bytes if size.refuse_on_bound else estimate.fixed_bytes
    if memory > memory_cap_bytes:
        biggest = max(domain, key=lambda c: domain[c])
        raise ModelTooLargeError(
            f"the model would need about {memory / 2**30:.1f} GiB (cap {memory_cap_bytes / 2**30:.1f} GiB); "
            f"the largest column is {biggest!r} with {domain[biggest]} codes")
    return Plan(mechanism, budget_rho, eps if budget_rho > 0 else 0.0, delta, len(domain), domain,
                int(size.plan_cells), memory, list(steps.measurements), list(steps.notes), estimate)
