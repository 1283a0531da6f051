"""AIM (McKenna, Mullins, Sheldon, Miklau 2022): workload-adaptive marginal selection.

AIM measures every 1-way marginal, then in rounds picks the candidate marginal that the
current model answers worst (exponential mechanism, score bias-corrected for the noise it
would get), measures it, and re-estimates the model (warm-started). When a round's
measurement barely changes the model, it halves the noise and doubles the selection budget
(annealing). A candidate is only eligible if the model stays within a size cap that grows
with the share of the budget spent; the cap uses public domain sizes only. The last round
spends exactly what remains.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from dpsynth.errors import ConfigError
from dpsynth.mechanisms.base import MarginalFit, sigma_for_rho
from dpsynth.mechanisms.compress import Compression, compress_rare_values
from dpsynth.mechanisms.plan import closure_cells, largest_cells
from dpsynth.mechanisms.registry import Constraints, MechanismPlan, ModelSize
from dpsynth.pgm import Domain, TreeSizer, WarmStart, estimate, estimate_total
from dpsynth.privacy.events import gumbel_scale_for_rho
from dpsynth.privacy.gate import CountTransform, PrivateData
from dpsynth.privacy.guarantee import PrivacyStatement, marginal_statement
from dpsynth.privacy.measure import Measurement

if TYPE_CHECKING:  # pragma: no cover
    from dpsynth.privacy.randomness import MechanismKey
    from dpsynth.tabular.schema import Schema

__all__ = ["AIMConfig", "AIMMechanism", "AIMStart", "aim_start", "default_workload", "fit_aim"]

Clique = tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class AIMConfig:
    """Options of AIM.

    Attributes:
        workload: ``(clique, weight)`` pairs; default all 3-way marginals, weight 1.
        degree: Marginal size of the default workload.
        max_rounds: Upper bound ``T`` used to set the initial noise (default ``16 * d``).
        alpha: Share of each round's budget for measurement (the rest is selection).
        max_model_cells: Model size cap in cells. The default, 2M cells (16 MB of float64),
            is a fifth of the AIM paper's 80 MB: on Adult at eps = 3 it gave the same 3-way
            error in paired runs at a third of the time (docs/benchmarks.md).
        round_iters: Mirror-descent iterations after each round (warm-started), at most.
        round_tol: A round's refit stops once the loss improved by less than this share over
            ten iterations.
        final_iters: Iterations of the final estimate, at most.
        final_tol: The same for the final estimate.
        precision: Floating-point type of the clique tables while a refit descends
            (:func:`dpsynth.pgm.estimate`); the model keeps float64 potentials. float32 by
            default: paired runs on four tables gave the same errors in less time.
        compress: Merge each column's values whose noisy 1-way count is below
            ``compress_threshold * sigma`` into one cell before the rounds (as in MST; the
            AIM paper recommends it for large domains). Post-processing of the 1-way
            measurements, so it costs nothing.
        compress_threshold: See ``compress``. 2 rather than MST's 3: on Adult at eps = 1 it
            lowered the 3-way error in 9 of 10 paired runs (median 0.138 against 0.142).
        compress_max_share: Cap of the rare threshold as a share of the estimated row count
            (AIM's 1-way noise is large at small budgets; without the cap, real categories
            would be merged).
    """

    workload: tuple[tuple[Clique, float], ...] | None = None
    degree: int = 3
    max_rounds: int | None = None
    alpha: float = 0.9
    max_model_cells: int = 2_000_000
    round_iters: int = 100
    round_tol: float = 1e-3
    final_iters: int = 1000
    final_tol: float = 1e-3
    precision: Literal["float64", "float32"] = "float32"
    compress: bool = True
    compress_threshold: float = 2.0
    compress_max_share: float = 0.01

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ConfigError(f"alpha ({self.alpha}) must be in (0, 1)")
        if self.degree < 1:
            raise ConfigError(f"degree ({self.degree}) must be >= 1")
        for name in ("round_tol", "final_tol"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} ({getattr(self, name)}) must be in [0, 1)")
        if self.max_rounds is not None and self.max_rounds < 1:
            raise ConfigError(f"max_rounds ({self.max_rounds}) must be >= 1")


def default_workload(attrs: Sequence[str], degree: int) -> tuple[tuple[Clique, float], ...]:
    """All ``degree``-way marginals (or the full set if there are fewer columns), weight 1."""
    k = min(degree, len(attrs))
    return tuple((c, 1.0) for c in itertools.combinations(attrs, k))


def _candidates(workload: Sequence[tuple[Clique, float]]) -> dict[Clique, float]:
    """Downward closure of the workload, each weighted by its overlap with the workload."""
    closure: set[Clique] = set()
    for cl, _ in workload:
        for r in range(1, len(cl) + 1):
            closure.update(itertools.combinations(cl, r))
    return {c: sum(w * len(set(c) & set(cl)) for cl, w in workload) for c in sorted(closure)}


@dataclass(frozen=True)
class AIMStart:
    """AIM's opening noise scales, from public inputs only (shared by fit and plan).

    Attributes:
        rounds: The round bound ``T`` that sets the initial noise.
        sigma: Noise scale of the 1-way marginals (and of the first round).
        eps_rho: zCDP cost of one selection step.
        ones_cost: zCDP cost of all 1-way marginals.
        tiny: The budget cannot pay for the 1-way marginals at the round scale: they take
            the whole budget, and no round runs.
    """

    rounds: int
    sigma: float
    eps_rho: float
    ones_cost: float
    tiny: bool


def aim_start(rho: float, d: int, *, sensitivity: float, config: AIMConfig) -> AIMStart:
    """The opening noise scales of AIM on ``d`` columns with budget ``rho``."""
    rounds = config.max_rounds or 16 * d
    sigma = sigma_for_rho(config.alpha * rho / rounds, sensitivity=sensitivity) if rounds else 1.0
    eps_rho = (1 - config.alpha) * rho / rounds  # selection cost per round (zCDP)
    ones_cost = d * sensitivity**2 / (2 * sigma**2)
    tiny = ones_cost > rho
    if tiny:  # tiny budgets: give the 1-way marginals the whole budget
        sigma = sigma_for_rho(rho, count=d, sensitivity=sensitivity)
        ones_cost = rho
    return AIMStart(rounds, sigma, eps_rho, ones_cost, tiny)


@dataclass(eq=False)
class _Run:
    """AIM's working state between rounds (internal, mutable, never leaves :func:`fit_aim`)."""

    data: PrivateData
    config: AIMConfig
    constraints: Sequence[dict[str, int | Sequence[int]]]
    domain: Domain
    cands: dict[Clique, float]
    transform: CountTransform | None
    model: Any
    measurements: list[Measurement]
    measured: list[Clique]
    sigma: float
    eps_rho: float
    used: float
    total: float
    selected: list[Clique] = dataclasses.field(default_factory=list)

    def refit(self, iters: int, tol: float) -> None:
        """Re-estimate from the measurements, warm-started from the current model.

        Only the old model's potentials are needed, and only to seed the new fit: they are
        handed over without its beliefs and query caches, and no reference is kept, so
        nothing of the old model stays alive (model-sized) while the new one is fitted.
        """
        warm = WarmStart(dataclasses.replace(self.model))
        self.model = None
        self.model = estimate(self.domain, self.measurements, total=self.total, iters=iters, tol=tol,
                              precision=self.config.precision, warm_start=warm, constraints=self.constraints,
                              max_cells=self.config.max_model_cells)


def _check_workload(domain: Domain, config: AIMConfig) -> tuple[tuple[Clique, float], ...]:
    workload = config.workload or default_workload(list(domain.attrs), config.degree)
    for cl, w in workload:
        domain.check(cl)
        if w <= 0:
            raise ConfigError(f"workload weight of {cl} must be > 0")
    return workload


def _compression(ones: Sequence[Measurement], data: PrivateData, config: AIMConfig, sigma: float,
                 constraints: Sequence[dict[str, int | Sequence[int]]],
                 ) -> tuple[Compression | None, dict[str, int], list[Measurement]]:
    """Post-processing of the noisy 1-way marginals: merge rare values (see :func:`compress_rare_values`)."""
    if not config.compress or len(ones) <= 1:
        return None, dict(data.domain), list(ones)
    # AIM's first measurements are much noisier than its later ones: cap the rare threshold at
    # a share of the estimated rows so that small budgets do not merge real categories.
    threshold = min(config.compress_threshold, config.compress_max_share * estimate_total(ones) / sigma)
    return compress_rare_values(ones, data.domain, threshold=threshold, constraints=constraints, weighted=True)


def _select(run: _Run, cand_list: list[Clique], sizer: TreeSizer, rho: float, max_weight: float,
            sensitivity: float, n_round: int) -> tuple[Clique, float]:
    """One charged noisy-max step among the eligible candidates; the pick and the bias used."""
    limit = run.config.max_model_cells * min(1.0, run.used / rho)
    eligible = [c for c, size in zip(cand_list, sizer.sizes(run.measured, cand_list), strict=True)
                if size <= limit]
    if not eligible:
        eligible = [c for c in cand_list if len(c) == 1]
    bias = math.sqrt(2 / math.pi) * run.sigma
    answers = dict(zip(eligible, run.model.project_many(eligible), strict=True))  # shared subtables
    domain, cands = run.domain, run.cands

    def score(c: Clique, exact: npt.NDArray[np.int64]) -> float:
        return cands[c] * (float(np.abs(exact - answers[c].values).sum()) - bias * domain.size(c))

    scale = gumbel_scale_for_rho(run.eps_rho, sensitivity * max_weight)
    pick = run.data.select(eligible, score, scale=scale, weight=max_weight,
                           label=f"aim select round {n_round}", transform=run.transform,
                           count_also=cand_list)
    return pick, bias


def _rounds(run: _Run, rho: float, max_weight: float) -> int:
    """AIM's select-measure-estimate rounds until ``rho`` is spent; the number of rounds."""
    sensitivity = run.data.sensitivity
    cand_list = list(run.cands)
    sizer = TreeSizer(run.domain)  # junction_tree_size(domain, cliques), memoised by graph
    n_rounds = 0
    while rho - run.used > 1e-12 * rho:
        remaining = rho - run.used
        meas_cost = sensitivity**2 / (2 * run.sigma**2)
        if remaining < 2 * (meas_cost + run.eps_rho):  # last round: spend exactly what is left
            run.sigma = sigma_for_rho(run.config.alpha * remaining, sensitivity=sensitivity)
            run.eps_rho = remaining - sensitivity**2 / (2 * run.sigma**2)
            meas_cost = remaining - run.eps_rho
        run.used += meas_cost + run.eps_rho
        pick, bias = _select(run, cand_list, sizer, rho, max_weight, sensitivity, n_rounds + 1)
        before = run.model.marginal(pick)
        run.measurements += run.data.measure([pick], sigma=run.sigma, label=f"aim round {n_rounds + 1}",
                                             transform=run.transform)
        run.selected.append(pick)
        run.measured.append(pick)
        n_rounds += 1
        run.total = estimate_total(run.measurements)
        run.refit(run.config.round_iters, run.config.round_tol)
        after = run.model.marginal(pick)
        if float(np.abs(after - before).sum()) <= bias * run.domain.size(pick):
            run.sigma /= 2
            run.eps_rho *= 4
    return n_rounds


def fit_aim(
    data: PrivateData,
    *,
    rho: float,
    constraints: Sequence[dict[str, int | Sequence[int]]] = (),
    config: AIMConfig = AIMConfig(),
) -> MarginalFit:
    """Run AIM through the private-data gate ``data``, spending exactly ``rho``."""
    if not rho > 0:
        raise ConfigError(f"rho ({rho}) must be > 0")
    domain = Domain.from_dict(data.domain)
    attrs = list(domain.attrs)
    workload = _check_workload(domain, config)
    cands = _candidates(workload)
    start = aim_start(rho, len(attrs), sensitivity=data.sensitivity, config=config)
    ones: list[Measurement] = data.measure([(a,) for a in attrs], sigma=start.sigma, label="aim 1-way")
    comp, sizes, measurements = _compression(ones, data, config, start.sigma, constraints)
    domain = Domain.from_dict(sizes)
    total = estimate_total(measurements)
    model = estimate(domain, measurements, total=total, iters=config.round_iters, tol=config.round_tol,
                     constraints=constraints, max_cells=config.max_model_cells, start="measurements")
    run = _Run(data, config, constraints, domain, cands, comp.compress_counts if comp is not None else None,
               model, measurements, [(a,) for a in attrs], start.sigma, start.eps_rho, start.ones_cost, total)
    del model
    n_rounds = _rounds(run, rho, max(cands.values()))
    run.refit(config.final_iters, config.final_tol)
    transcript = tuple(ones) + tuple(run.measurements[len(ones):])  # 1-way in the original domain
    return MarginalFit("aim", run.domain, transcript, tuple(run.selected), run.model, run.total,
                       {"rounds": n_rounds, "max_rounds": start.rounds, "alpha": config.alpha,
                        "degree": config.degree, "workload_size": len(workload),
                        "max_model_cells": config.max_model_cells,
                        "compressed_columns": sorted(comp.maps) if comp is not None else []},
                       comp)


class AIMMechanism:
    """AIM in the mechanism registry (:mod:`dpsynth.mechanisms.registry`)."""

    name = "aim"
    reads_data = True
    needs_approx_dp = False

    @property
    def config_type(self) -> type[AIMConfig]:
        """AIM's options."""
        return AIMConfig

    def plan(self, schema: Schema, rho: float, config: AIMConfig) -> MechanismPlan:
        """The 1-way noise scale and the rounds, from :func:`aim_start` (as the fit uses it)."""
        domain = schema.domain()
        d = len(domain)
        sens = float(schema.privacy_unit.sensitivity_rows)
        start = aim_start(rho, d, sensitivity=sens, config=config) if rho > 0 else None
        sigma0 = start.sigma if start is not None else math.inf
        meas: list[dict[str, Any]] = [{"what": "every 1-way marginal", "count": d, "sigma": sigma0}]
        notes: list[str] = []
        if start is not None and start.tiny:
            notes.append("the budget is too small for AIM's rounds: the 1-way marginals take all of it "
                         "(as the independent mechanism)")
        else:
            rounds = config.max_rounds or 16 * d
            meas.append({"what": f"adaptively chosen marginals (up to {config.degree}-way)",
                         "count": f"<= {rounds}",
                         "sigma": f"starts at {sigma0:.4g}, halves when a round stops helping"})
        for combo in itertools.combinations(sorted(domain, key=lambda c: -domain[c]), min(config.degree, d)):
            size = math.prod(domain[c] for c in combo)
            if size > config.max_model_cells:
                notes.append(f"the {config.degree}-way marginal over {list(combo)} ({size:,} cells) exceeds "
                             "the model cap; AIM will skip it")
            break
        return MechanismPlan(meas, notes)

    def size(self, schema: Schema, config: AIMConfig) -> ModelSize:
        """Typically about one clique per column of the largest marginals; at most the cap."""
        domain = schema.domain()
        full = math.prod(domain.values()) if domain else 0
        one_way = sum(domain.values())
        bound = min(config.max_model_cells, full)
        model = min(bound, largest_cells(domain, config.degree, len(domain)) + one_way)
        closure = closure_cells(domain, config.degree)
        counts = one_way + min(closure, 1 << 24) + (closure if config.compress else 0)
        return ModelSize(model, bound, counts, config.max_model_cells, refuse_on_bound=False)

    def fit(self, gate: PrivateData | None, schema: Schema, *, rho: float, config: AIMConfig,
            key: MechanismKey, constraints: Constraints, delta: float) -> MarginalFit:
        """:func:`fit_aim`."""
        assert gate is not None
        return fit_aim(gate, rho=rho, constraints=constraints, config=config)

    def statement(self, result: MarginalFit) -> PrivacyStatement:
        """The marginal-based statement."""
        return marginal_statement(self.name)
