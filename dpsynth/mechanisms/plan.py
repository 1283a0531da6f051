"""Plan a fit from the public schema alone: noise scales, model size, memory, refusals.

Everything here is a function of public inputs (schema, mechanism, budget, options), so the
plan may be shared freely, and a fit that would be too large is refused before any private
data is read or any memory is allocated.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from dpsynth.errors import ConfigError, ModelTooLargeError
from dpsynth.mechanisms.aim import AIMConfig
from dpsynth.mechanisms.base import sigma_for_rho
from dpsynth.mechanisms.mst import MSTConfig
from dpsynth.privacy.budget import ZCDP, ApproxDP, epsilon_to_rho, zcdp_to_epsilon
from dpsynth.tabular.schema import Schema

__all__ = ["BYTES_PER_CELL", "BYTES_PER_COUNT", "MemoryEstimate", "Plan", "estimate_memory", "plan_fit"]

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


def _closure_cells(domain: dict[str, int], degree: int) -> int:
    """Cells of every marginal of up to ``degree`` columns (AIM's candidate set)."""
    sizes = list(domain.values())
    total = 0
    for k in range(1, min(degree, len(sizes)) + 1):
        total += sum(math.prod(c) for c in itertools.combinations(sizes, k))
    return total


def _largest(domain: dict[str, int], degree: int, k: int) -> int:
    """Cells of the ``k`` largest ``degree``-way marginals."""
    sizes = sorted((math.prod(c) for c in itertools.combinations(domain.values(), min(degree, len(domain)))),
                   reverse=True)
    return sum(sizes[:k])


def estimate_memory(schema: Schema, mechanism: str, *, aim: AIMConfig | None = None,
                    mst: MSTConfig | None = None) -> MemoryEstimate:
    """Peak working memory of fitting ``mechanism`` on data with ``schema`` (public inputs only).

    Model: cells times :data:`BYTES_PER_CELL` — MST's tree of the largest pairs; for AIM
    typically about one clique per column of the largest ``degree``-way marginals, at most its
    cap or the full domain. Counts: the exact marginals the engine and the gate hold (all pairs
    for MST, the workload's downward closure for AIM; a raw and a compressed copy when
    compression is on, plus MST's model answers). Rows: :data:`BYTES_PER_CODE` per cell, and
    :data:`BYTES_PER_TEXT_CELL` more when the input is read from CSV.
    """
    domain = schema.domain()
    d = len(domain)
    full = math.prod(domain.values()) if domain else 0
    one_way = sum(domain.values())
    pairs = sum(a * b for a, b in itertools.combinations(domain.values(), 2))
    if mechanism in ("schema_only", "independent", "dpvae", "dpgan"):
        model = bound = counts = one_way
    elif mechanism == "mst":
        cfg = mst or MSTConfig()
        top = _largest(domain, 2, d - 1) if d > 1 else 0
        model = bound = min(top + one_way, cfg.max_model_cells, full)
        counts = one_way + pairs * (3 if cfg.compress else 2)
    elif mechanism == "aim":
        acfg = aim or AIMConfig()
        bound = min(acfg.max_model_cells, full)
        model = min(bound, _largest(domain, acfg.degree, d) + one_way)
        counts = one_way + min(_closure_cells(domain, acfg.degree), 1 << 24) + (
            _closure_cells(domain, acfg.degree) if acfg.compress else 0)
    else:
        raise ConfigError(f"mechanism {mechanism!r} is not known")
    count_bytes = counts * BYTES_PER_COUNT + BASE_BYTES
    return MemoryEstimate(int(model), int(bound), int(counts), int(model * BYTES_PER_CELL + count_bytes),
                          int(bound * BYTES_PER_CELL + count_bytes), int(max(d, 1) * BYTES_PER_CODE),
                          int(max(d, 1) * BYTES_PER_TEXT_CELL))


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


def _largest_pairs(domain: dict[str, int], k: int) -> list[tuple[tuple[str, str], int]]:
    pairs = [((a, b), domain[a] * domain[b]) for a, b in itertools.combinations(domain, 2)]
    return sorted(pairs, key=lambda p: -p[1])[:k]


def plan_fit(
    schema: Schema,
    *,
    mechanism: str,
    epsilon: float | None = None,
    delta: float = 1e-9,
    rho: float | None = None,
    memory_cap_bytes: int = 4 * 2**30,
    aim: AIMConfig | None = None,
    mst: MSTConfig | None = None,
) -> Plan:
    """Plan a fit; raise :class:`ModelTooLargeError` (naming columns) if it cannot fit.

    Args:
        schema: The public schema.
        mechanism: Mechanism name.
        epsilon: Budget in (epsilon, delta); or ``rho``.
        delta: The guarantee's delta.
        rho: Budget in zCDP.
        memory_cap_bytes: Refuse plans whose model would need more working memory.
    """
    if (epsilon is None) == (rho is None) and mechanism != "schema_only":
        raise ConfigError("give exactly one of epsilon or rho")
    budget_rho = 0.0
    if rho is not None:
        budget_rho = ZCDP(rho).rho
    elif epsilon is not None:
        ApproxDP(epsilon, delta)
        budget_rho = epsilon_to_rho(epsilon, delta)
    eps = zcdp_to_epsilon(budget_rho, delta) if budget_rho > 0 else 0.0
    domain = schema.domain()
    d = len(domain)
    sens = float(schema.privacy_unit.sensitivity_rows)
    notes: list[str] = []
    meas: list[dict[str, Any]] = []
    biggest = max(domain, key=lambda c: domain[c])
    if mechanism == "schema_only":
        cells = max(domain.values())
        notes.append("reads no private data; spends nothing")
    elif mechanism == "independent":
        cells = sum(domain.values())
        meas.append({"what": "every 1-way marginal", "count": d,
                     "sigma": sigma_for_rho(budget_rho, count=d, sensitivity=sens)})
    elif mechanism == "mst":
        mcfg = mst or MSTConfig()
        r1, _, r2 = (budget_rho * s for s in mcfg.split)
        meas.append({"what": "every 1-way marginal", "count": d, "sigma": sigma_for_rho(r1, count=d, sensitivity=sens)})
        if d > 1:
            meas.append({"what": "2-way marginals of the spanning tree", "count": d - 1,
                         "sigma": sigma_for_rho(r2, count=d - 1, sensitivity=sens)})
        top = _largest_pairs(domain, max(d - 1, 1))
        cells = sum(c for _, c in top) if d > 1 else sum(domain.values())
        if top and top[0][1] * BYTES_PER_CELL > memory_cap_bytes:
            (a, b), c = top[0]
            raise ModelTooLargeError(
                f"columns {a!r} x {b!r} make a {c:,}-cell marginal, over the memory cap; "
                "coarsen their bins or categories")
        cells = min(cells, mcfg.max_model_cells)
    elif mechanism == "aim":
        cfg = aim or AIMConfig()
        rounds = cfg.max_rounds or 16 * d
        sigma0 = sigma_for_rho(cfg.alpha * budget_rho / rounds, sensitivity=sens)
        meas.append({"what": "every 1-way marginal", "count": d, "sigma": sigma0})
        meas.append({"what": f"adaptively chosen marginals (up to {cfg.degree}-way)", "count": f"<= {rounds}",
                     "sigma": f"starts at {sigma0:.4g}, halves when a round stops helping"})
        cells = cfg.max_model_cells
        for combo in itertools.combinations(sorted(domain, key=lambda c: -domain[c]), min(cfg.degree, d)):
            size = math.prod(domain[c] for c in combo)
            if size > cfg.max_model_cells:
                notes.append(f"the {cfg.degree}-way marginal over {list(combo)} ({size:,} cells) exceeds "
                             "the model cap; AIM will skip it")
            break
    elif mechanism in ("dpvae", "dpgan"):
        cells = sum(domain.values())
        notes.append("DP-SGD training; noise multiplier calibrated from the training share of the budget")
    else:
        raise ConfigError(f"mechanism {mechanism!r} is not known")
    estimate = estimate_memory(schema, mechanism, aim=aim, mst=mst)
    memory = estimate.bound_bytes if mechanism != "aim" else estimate.fixed_bytes
    if memory > memory_cap_bytes:
        raise ModelTooLargeError(
            f"the model would need about {memory / 2**30:.1f} GiB (cap {memory_cap_bytes / 2**30:.1f} GiB); "
            f"the largest column is {biggest!r} with {domain[biggest]} codes")
    return Plan(mechanism, budget_rho, eps if budget_rho > 0 else 0.0, delta, d, domain, int(cells),
                memory, meas, notes, estimate)
