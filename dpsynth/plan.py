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

from dpsynth.budget import ZCDP, ApproxDP, epsilon_to_rho, zcdp_to_epsilon
from dpsynth.errors import ConfigError, ModelTooLargeError
from dpsynth.mechanisms.aim import AIMConfig
from dpsynth.mechanisms.base import sigma_for_rho
from dpsynth.mechanisms.mst import MSTConfig
from dpsynth.schema import Schema

__all__ = ["Plan", "plan_fit", "BYTES_PER_CELL"]

#: Working memory per model cell: potentials, beliefs, gradient and a line-search copy.
BYTES_PER_CELL = 8 * 5


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

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "mechanism": self.mechanism, "rho": self.rho, "epsilon": self.epsilon, "delta": self.delta,
            "columns": self.columns, "domain": self.domain_cells,
            "max_model_cells": self.max_model_cells,
            "memory_mib": round(self.memory_bytes / 2**20, 1),
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
    memory = int(cells * BYTES_PER_CELL)
    if memory > memory_cap_bytes:
        raise ModelTooLargeError(
            f"the model would need about {memory / 2**30:.1f} GiB (cap {memory_cap_bytes / 2**30:.1f} GiB); "
            f"the largest column is {biggest!r} with {domain[biggest]} codes")
    return Plan(mechanism, budget_rho, eps if budget_rho > 0 else 0.0, delta, d, domain, int(cells),
                memory, meas, notes)
