"""MST (McKenna, Miklau, Sheldon 2021): 1-way marginals, a private maximum spanning tree of
2-way marginals chosen with the exponential mechanism, and a graphical model fitted to both.

The budget ``rho`` is split in thirds: all 1-way measurements, the ``d - 1`` noisy-max
selection steps, and the ``d - 1`` measurements of the selected edges.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from dpsynth.errors import ConfigError
from dpsynth.mechanisms.base import MarginalFit, sigma_for_rho
from dpsynth.mechanisms.compress import Compression, compress_rare_values
from dpsynth.mechanisms.plan import largest_cells, largest_pairs
from dpsynth.mechanisms.registry import Constraints, MechanismPlan, ModelSize
from dpsynth.pgm import Domain, estimate, estimate_total
from dpsynth.privacy.events import gumbel_scale_for_rho
from dpsynth.privacy.gate import PrivateData
from dpsynth.privacy.guarantee import PrivacyStatement, marginal_statement

if TYPE_CHECKING:  # pragma: no cover
    from dpsynth.privacy.randomness import MechanismKey
    from dpsynth.tabular.schema import Schema

__all__ = ["MSTConfig", "MSTMechanism", "fit_mst"]


@dataclass(frozen=True, kw_only=True)
class MSTConfig:
    """Options of MST.

    Attributes:
        split: Shares of ``rho`` for (1-way measurements, selection, 2-way measurements).
        iters: Mirror-descent iterations of the final estimate (at most).
        tol: The final estimate stops once the loss improved by less than this share over
            ten iterations. 1e-2 rather than the engine's 1e-3: on Adult (eps 0.3, 1, 3) and
            cps (eps 1), five paired re-fits of the same measurements each, the 3-way error
            was the same or lower (medians 0.2389 / 0.1927 / 0.1787 / 0.2897 against 0.2398 /
            0.1927 / 0.1786 / 0.2909) in half the iterations: fitting the noise further does
            not help.
        max_model_cells: Refuse a model larger than this many cells (public sizes only).
        compress: Merge each column's values whose noisy count is below
            ``compress_threshold * sigma`` into one cell before the 2-way steps (as in MST).
    """

    split: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)
    iters: int = 1000
    tol: float = 1e-2
    max_model_cells: int = 50_000_000
    compress: bool = True
    compress_threshold: float = 3.0

    def __post_init__(self) -> None:
        if len(self.split) != 3 or any(s <= 0 for s in self.split) or abs(sum(self.split) - 1) > 1e-9:
            raise ConfigError(f"split {self.split} must be three positive shares summing to 1")
        if self.iters < 1:
            raise ConfigError(f"iters ({self.iters}) must be >= 1")
        if not 0 <= self.tol < 1:
            raise ConfigError(f"tol ({self.tol}) must be in [0, 1)")


class _Components:
    """Union-find over attributes for Kruskal's algorithm."""

    def __init__(self, attrs: Sequence[str]) -> None:
        self.parent = {a: a for a in attrs}

    def find(self, a: str) -> str:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


def fit_mst(
    data: PrivateData,
    *,
    rho: float,
    constraints: Constraints = (),
    config: MSTConfig = MSTConfig(),
) -> MarginalFit:
    """Run MST through the private-data gate ``data``, spending exactly ``rho``.

    Args:
        data: The private-data gate (charged before every measurement and selection; its
            sensitivity is the rows one unit of privacy can contribute).
        rho: zCDP budget to spend.
        constraints: Forbidden value combinations (codes), enforced by the model.
        config: MST options.
    """
    if not rho > 0:
        raise ConfigError(f"rho ({rho}) must be > 0")
    sensitivity = data.sensitivity
    domain = Domain.from_dict(data.domain)
    attrs = list(domain.attrs)
    d = len(attrs)
    r1, r_sel, r2 = (rho * s for s in config.split) if d > 1 else (rho, 0.0, 0.0)
    sigma1 = sigma_for_rho(r1, count=d, sensitivity=sensitivity)
    ones = data.measure([(a,) for a in attrs], sigma=sigma1, label="mst 1-way")
    total = estimate_total(ones)
    comp: Compression | None = None
    ones_model = list(ones)
    if config.compress and d > 1:  # post-processing of the noisy 1-way marginals
        comp, sizes, ones_model = compress_rare_values(ones, data.domain, threshold=config.compress_threshold,
                                                       constraints=constraints)
        domain = Domain.from_dict(sizes)
    selected: list[tuple[str, ...]] = []
    twos = []
    if d > 1:
        base = estimate(domain, ones_model, total=total, iters=50, constraints=constraints,
                        start="measurements")
        pairs = list(itertools.combinations(attrs, 2))
        transform = comp.compress_counts if comp is not None else None
        answers: dict[tuple[str, ...], npt.NDArray[np.float64]] = {p: base.marginal(p) for p in pairs}  # public

        def l1_error(pair: tuple[str, ...], exact: npt.NDArray[np.int64]) -> float:
            return float(np.abs(exact - answers[pair]).sum())

        scale = gumbel_scale_for_rho(r_sel / (d - 1), sensitivity)
        comps = _Components(attrs)
        for _ in range(d - 1):
            cands = [p for p in pairs if comps.find(p[0]) != comps.find(p[1])]
            pick = data.select(cands, l1_error, scale=scale, label="mst select edge",
                               transform=transform, count_also=pairs)
            selected.append(pick)
            comps.union(*pick)
        sigma2 = sigma_for_rho(r2, count=d - 1, sensitivity=sensitivity)
        twos = data.measure(selected, sigma=sigma2, label="mst 2-way", transform=transform)
    model_measurements = ones_model + twos
    total = estimate_total(model_measurements)
    model = estimate(domain, model_measurements, total=total, iters=config.iters, tol=config.tol,
                     constraints=constraints, max_cells=config.max_model_cells, start="measurements")
    params = {"split": list(config.split), "iters": config.iters, "tol": config.tol, "sigma_1way": sigma1,
              "compressed_columns": sorted(comp.maps) if comp is not None else []}
    return MarginalFit("mst", domain, tuple(ones + twos), tuple(selected), model, total, params, comp)


class MSTMechanism:
    """MST in the mechanism registry (:mod:`dpsynth.mechanisms.registry`)."""

    name = "mst"
    reads_data = True
    needs_approx_dp = False

    @property
    def config_type(self) -> type[MSTConfig]:
        """MST's options."""
        return MSTConfig

    def plan(self, schema: Schema, rho: float, config: MSTConfig) -> MechanismPlan:
        """1-way and spanning-tree 2-way noise scales (selection takes the middle share)."""
        d = len(schema.domain())
        sens = float(schema.privacy_unit.sensitivity_rows)
        r1, _, r2 = (rho * s for s in config.split) if d > 1 else (rho, 0.0, 0.0)
        meas: list[dict[str, Any]] = [{"what": "every 1-way marginal", "count": d,
                                       "sigma": sigma_for_rho(r1, count=d, sensitivity=sens)}]
        if d > 1:
            meas.append({"what": "2-way marginals of the spanning tree", "count": d - 1,
                         "sigma": sigma_for_rho(r2, count=d - 1, sensitivity=sens)})
        return MechanismPlan(meas, [])

    def size(self, schema: Schema, config: MSTConfig) -> ModelSize:
        """A tree of the largest pairs; all pairs' counts (raw and compressed) are cached."""
        domain = schema.domain()
        d = len(domain)
        full = math.prod(domain.values()) if domain else 0
        one_way = sum(domain.values())
        pairs = sum(a * b for a, b in itertools.combinations(domain.values(), 2))
        top = largest_cells(domain, 2, d - 1) if d > 1 else 0
        model = min(top + one_way, config.max_model_cells, full)
        counts = one_way + pairs * (3 if config.compress else 2)
        tree = largest_pairs(domain, max(d - 1, 1))
        plan_cells = min(sum(c for _, c in tree) if d > 1 else one_way, config.max_model_cells)
        return ModelSize(model, model, counts, plan_cells, largest=tree[0] if tree else None)

    def fit(self, gate: PrivateData | None, schema: Schema, *, rho: float, config: MSTConfig,
            key: MechanismKey, constraints: Constraints, delta: float) -> MarginalFit:
        """:func:`fit_mst`."""
        assert gate is not None
        return fit_mst(gate, rho=rho, constraints=constraints, config=config)

    def statement(self, result: MarginalFit) -> PrivacyStatement:
        """The marginal-based statement."""
        return marginal_statement(self.name)
