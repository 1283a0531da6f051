"""Plan a fit from the public schema alone: noise scales, model size, memory, refusals.

Everything here is a function of public inputs (schema, mechanism, budget, options), so the
plan may be shared freely, and a fit that would be too large is refused before any private
data is read or any memory is allocated.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dpsynth.errors import ConfigError, ModelTooLargeError
from dpsynth.mechanisms.registry import ModelSize, get, resolve_config
from dpsynth.privacy.budget import budget_of, to_rho, zcdp_to_epsilon

if TYPE_CHECKING:
    from dpsynth.tabular.schema import Schema

__all__ = [
    "BYTES_PER_CELL",
    "BYTES_PER_COUNT",
    "DEFAULT_MEMORY_FRACTION",
    "FALLBACK_MEMORY",
    "MemoryEstimate",
    "Plan",
    "closure_cells",
    "default_max_memory",
    "estimate_memory",
    "largest_cells",
    "largest_pairs",
    "machine_memory",
    "parse_memory",
    "plan_fit",
    "within_memory",
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
#: Share of the machine's total memory (``MemTotal`` of /proc/meminfo, or ``os.sysconf``) a fit
#: may use when no ``max_memory`` is given: half, leaving room for the data, the interpreter
#: and everything else on the machine.
DEFAULT_MEMORY_FRACTION = 0.5
#: The default budget when the machine's memory cannot be read: 2 GiB.
FALLBACK_MEMORY = 2 * 2**30

_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


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
                "fixed_mib": round(self.fixed_bytes / mib, 1), "expected_mib": round(self.fixed_bytes / mib, 1),
                "bound_mib": round(self.bound_bytes / mib, 1),
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


def machine_memory() -> int | None:
    """Total memory of the machine in bytes (/proc/meminfo, else ``os.sysconf``), or ``None``."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages, page = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return int(pages * page) if pages > 0 and page > 0 else None


def default_max_memory() -> int:
    """:data:`DEFAULT_MEMORY_FRACTION` of :func:`machine_memory`, or :data:`FALLBACK_MEMORY`."""
    total = machine_memory()
    return int(total * DEFAULT_MEMORY_FRACTION) if total else FALLBACK_MEMORY


def parse_memory(value: str | int) -> int:
    """Bytes of a memory size: an int, or text such as ``512M``, ``2G``, ``1.5GiB``, ``800MB``.

    Units are binary (K = 1024 bytes); a bare number is bytes.

    Raises:
        ConfigError: Not a positive size.
    """
    if isinstance(value, bool):
        raise ConfigError(f"max_memory ({value!r}) must be a size such as 512M or 2G")
    if isinstance(value, int):
        size = value
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", str(value), re.IGNORECASE)
        if match is None:
            raise ConfigError(f"max_memory ({value!r}) must be a size such as 512M or 2G")
        size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if size <= 0:
        raise ConfigError(f"max_memory ({value!r}) must be > 0")
    return size


def _budget(max_memory: str | int | None) -> int:
    return default_max_memory() if max_memory is None else parse_memory(max_memory)


def _mib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def within_memory(schema: Schema, mechanism: str, config: object | None,
                  max_memory: str | int | None) -> Any:
    """The mechanism's config with its model-size cap derived from the memory budget.

    For a mechanism whose model grows adaptively (AIM: ``refuse_on_bound`` is False and its
    config has ``max_model_cells``), the cap becomes the smaller of its own and the cells
    that fit in ``max_memory`` after the count caches and fixed overhead:
    ``(max_memory - count_cells * BYTES_PER_COUNT - BASE_BYTES) // BYTES_PER_CELL``. Other
    configs are returned as they are (:func:`plan_fit` refuses them if over the budget).
    Public inputs only: the row count never enters the cap.
    """
    mech = get(mechanism)
    config = resolve_config(mech, config)
    if config is None or not dataclasses.is_dataclass(config) or not hasattr(config, "max_model_cells"):
        return config
    size = mech.size(schema, config)
    if size.refuse_on_bound:
        return config
    room = (_budget(max_memory) - size.count_cells * BYTES_PER_COUNT - BASE_BYTES) // BYTES_PER_CELL
    cells = max(0, min(int(config.max_model_cells), int(room)))
    return dataclasses.replace(config, max_model_cells=cells)  # type: ignore[type-var]


@dataclass(frozen=True)
class Plan:
    """A fit plan (public).

    ``max_model_cells`` is the model cap the fit will use (for AIM, derived from
    ``max_memory`` by :func:`within_memory`); ``memory_bytes`` the estimate the plan was
    checked against (the bound for fixed-size models, the expected peak for AIM, whose bound is
    the cap); ``max_memory`` the budget in bytes.
    """

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
    max_memory: int | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        mib = 2**20
        return {
            "mechanism": self.mechanism, "rho": self.rho, "epsilon": self.epsilon, "delta": self.delta,
            "columns": self.columns, "domain": self.domain_cells,
            "max_model_cells": self.max_model_cells,
            "memory_mib": round(self.memory_bytes / mib, 1),
            "max_memory_mib": round(self.max_memory / mib, 1) if self.max_memory is not None else None,
            "memory": self.memory.to_json() if self.memory is not None else None,
            "measurements": self.measurements, "notes": self.notes,
        }


def _check_memory(schema: Schema, size: ModelSize, cap: int) -> tuple[MemoryEstimate, int]:
    """The estimate and the figure checked against ``cap``; refuse (naming the cap) if over."""
    domain = schema.domain()
    if size.largest is not None and size.largest[1] * BYTES_PER_CELL > cap:
        cols, cells = size.largest
        raise ModelTooLargeError(
            f"columns {' x '.join(repr(c) for c in cols)} make a {cells:,}-cell marginal "
            f"({_mib(cells * BYTES_PER_CELL)}), over max_memory {_mib(cap)}; coarsen their bins or "
            "categories, or raise --max-memory")
    estimate = _memory(schema, size)
    one_way = sum(domain.values())
    if size.model_cells_bound < min(one_way, math.prod(domain.values())):
        raise ModelTooLargeError(
            f"max_memory {_mib(cap)} leaves room for {size.model_cells_bound:,} model cells after the "
            f"count caches ({_mib(size.count_cells * BYTES_PER_COUNT)}); the 1-way model alone needs "
            f"{one_way:,} cells; raise --max-memory")
    memory = estimate.bound_bytes if size.refuse_on_bound else estimate.fixed_bytes
    if memory > cap:
        biggest = max(domain, key=lambda c: domain[c])
        raise ModelTooLargeError(
            f"the model would need about {_mib(memory)} (expected {_mib(estimate.fixed_bytes)}, bound "
            f"{_mib(estimate.bound_bytes)}), over max_memory {_mib(cap)}; the largest column is "
            f"{biggest!r} with {domain[biggest]} codes")
    return estimate, memory


def plan_fit(
    schema: Schema,
    *,
    mechanism: str,
    epsilon: float | None = None,
    delta: float = 1e-9,
    rho: float | None = None,
    max_memory: str | int | None = None,
    memory_cap_bytes: int | None = None,
    rows: int | None = None,
    aim: object | None = None,
    mst: object | None = None,
    options: object | None = None,
) -> Plan:
    """Plan a fit; raise :class:`ModelTooLargeError` (naming columns) if it cannot fit.

    The measurements, notes and sizes come from the registered mechanism's ``plan`` and
    ``size`` (:mod:`dpsynth.mechanisms.registry`), the same functions its fit uses. For the
    DP-SGD generators, the plan also checks DP-SGD's noise-to-signal ratio
    (:func:`dpsynth.neural.limits.check_dpsgd`) when a row count is known (``rows``, or the
    options' ``n_estimate``), and refuses a weak fit.

    Args:
        schema: The public schema.
        mechanism: A registered mechanism name.
        epsilon: Budget in (epsilon, delta); or ``rho``.
        delta: The guarantee's delta.
        rho: Budget in zCDP.
        max_memory: Memory budget of the fit's working memory (bytes, or text such as ``512M``,
            ``2G``); default :func:`default_max_memory`. AIM's model cap is derived from it
            (:func:`within_memory`); other mechanisms are refused if their model is over it.
        memory_cap_bytes: Older spelling of ``max_memory`` (bytes).
        rows: A declared row count (public), for the DP-SGD check.
        aim: AIM options (older spelling of ``options`` for ``aim``).
        mst: MST options (older spelling of ``options`` for ``mst``).
        options: The mechanism's options (an instance of its ``config_type``).
    """
    mech = get(mechanism)
    cap = _budget(max_memory if max_memory is not None else memory_cap_bytes)
    config = within_memory(schema, mechanism, _options(mechanism, options, aim, mst), cap)
    budget_rho = 0.0
    if mech.reads_data or epsilon is not None or rho is not None:
        budget_rho = to_rho(budget_of(epsilon=epsilon, delta=delta, rho=rho))
    eps = zcdp_to_epsilon(budget_rho, delta) if budget_rho > 0 else 0.0
    domain = schema.domain()
    steps = mech.plan(schema, budget_rho, config)
    size = mech.size(schema, config)
    estimate, memory = _check_memory(schema, size, cap)
    notes = list(steps.notes)
    if mech.needs_approx_dp and budget_rho > 0:
        from dpsynth.neural.limits import check_dpsgd

        notes.extend(check_dpsgd(schema, config, epsilon=epsilon if epsilon is not None else eps,
                                 delta=delta, rows=rows))
    return Plan(mechanism, budget_rho, eps if budget_rho > 0 else 0.0, delta, len(domain), domain,
                int(size.plan_cells), memory, list(steps.measurements), notes, estimate, cap)
