"""Fit a DP-VAE or DP-GAN through the private-data gate, charged to the dpsynth accountant.

:func:`fit_neural` runs the phases described in :mod:`dpsynth.neural`: the budget target,
the DP row estimate (noisy 1-way marginals or a noisy count), the DP-SGD plan calibrated to
what is left, and ONE charged training step. Each phase is a function below.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from dpsynth.errors import BudgetExceededError, ConfigError, require
from dpsynth.neural.data import OneHotLayout, check_table, layout_of_schema
from dpsynth.neural.io import NeuralModel
from dpsynth.neural.train import DPSGDPlan, NeuralConfig, Progress, plan_dpsgd, torch_threads

if TYPE_CHECKING:  # pragma: no cover
    from dpsynth.neural.calibrate import OneWay
    from dpsynth.privacy.accountant import Accountant
    from dpsynth.privacy.gate import PrivateData
    from dpsynth.privacy.randomness import MechanismKey
    from dpsynth.tabular.schema import Schema
    from dpsynth.tabular.table import Table

__all__ = ["fit_neural"]

log = logging.getLogger(__name__)

Rdp = npt.NDArray[np.float64]

#: What the privacy record says about randomness (docs/privacy-model.md, "Randomness").
_DP_NOISE = ("Opacus floating-point Gaussian noise on the clipped-gradient sum, from a "
             "torch.Generator seeded from the OS CSPRNG (never stored)")
_ACCOUNTING = ("RDP of the Poisson-subsampled Gaussian mechanism (one SubsampledGaussianEvent "
               "for all steps), composed with the Gaussian measurements of this fit")
_TRAINING_RANDOMNESS = ("per-run secret key (initial weights, Poisson sampling, latent and "
                        "Gumbel noise); never the user's seed, never stored")


def _check_gate(kind: str, data: object, schema: Schema) -> OneHotLayout:
    """The layout, after refusing a non-gate, a mismatched domain or a person-level unit."""
    from dpsynth.privacy.gate import PrivateData

    if not isinstance(data, PrivateData):
        raise ConfigError(
            f"{kind} reads private data through a PrivateData gate (row-level access via the "
            f"numpy engine), not {type(data).__name__}"
        )
    layout = layout_of_schema(schema)
    domain = data.domain
    if tuple(domain) != layout.columns or tuple(domain.values()) != layout.sizes:
        raise ConfigError(
            "the data's columns and domain sizes must equal the schema's modelled columns "
            f"({len(layout.columns)} columns)"
        )
    if schema.privacy_unit.kind != "row" or data.sensitivity != 1.0:
        raise ConfigError(
            f"{kind} supports the row privacy unit only (DP-SGD clips per row, not per person)"
        )
    return layout


def _session_rdp(accountant: Accountant) -> Rdp:
    from dpsynth.privacy.rdp import DEFAULT_ORDERS

    total = np.zeros(len(DEFAULT_ORDERS))
    for entry in accountant.ledger:
        total = total + np.asarray(entry.event.rdp(DEFAULT_ORDERS), dtype=np.float64)
    return total


@dataclass(frozen=True)
class _Target:
    """What DP-SGD is calibrated to: the target epsilon, the RDP already composed, this fit's rho."""

    epsilon: float
    delta: float
    base: Rdp
    fit_rho: float


def _target(kind: str, data: PrivateData, config: NeuralConfig, delta: float | None) -> _Target:
    """``config.epsilon`` for this fit, or (if ``None``) everything the accountant has left."""
    from dpsynth.privacy.budget import ApproxDP, epsilon_to_rho
    from dpsynth.privacy.rdp import DEFAULT_ORDERS

    accountant = data.accountant
    budget = accountant.budget
    if not isinstance(budget, ApproxDP):
        raise ConfigError(
            f"{kind} needs an ApproxDP accountant budget: DP-SGD has no finite zCDP cost"
        )
    delta = budget.delta if delta is None else float(delta)
    if config.epsilon is None:
        return _Target(budget.epsilon, delta, _session_rdp(accountant), accountant.remaining_rho)
    return _Target(config.epsilon, delta, np.zeros(len(DEFAULT_ORDERS)),
                   epsilon_to_rho(config.epsilon, delta))


@dataclass(frozen=True)
class _Rows:
    """The DP row estimate and how it was obtained (with the RDP it added to the base)."""

    n_est: int
    rows: int
    base: Rdp
    one_way: OneWay | None
    count_sigma: float | None


def _estimate_rows(kind: str, data: PrivateData, config: NeuralConfig, target: _Target) -> _Rows:
    """Phase 1: noisy 1-way marginals, or a noisy row count, or the given estimate."""
    from dpsynth.privacy.events import GaussianEvent
    from dpsynth.privacy.rdp import DEFAULT_ORDERS

    base, fit_rho = target.base, target.fit_rho
    one_way = None
    if config.marginal_share > 0:
        if fit_rho <= 0:
            raise BudgetExceededError("requested 1-way marginals with remaining rho=0")
        from dpsynth.neural.calibrate import measure_one_way

        # Charged before each count; also composed into the RDP that calibrates DP-SGD.
        one_way = measure_one_way(data, rho=config.marginal_share * fit_rho, label=f"{kind}: 1-way marginal")
        for ev in one_way.events:
            base = base + np.asarray(ev.rdp(DEFAULT_ORDERS), dtype=np.float64)
    if config.n_estimate is not None:
        return _Rows(config.n_estimate, config.n_estimate, base, one_way, None)
    if one_way is not None:
        return _Rows(max(1, one_way.n_estimate), one_way.n_estimate, base, one_way, None)
    if fit_rho <= 0:
        raise BudgetExceededError("requested a noisy row count with remaining rho=0")
    count_sigma = data.sensitivity * math.sqrt(1.0 / (2.0 * config.count_share * fit_rho))
    count_event = GaussianEvent(count_sigma, data.sensitivity)
    noisy = data.measure_total(sigma=count_sigma, label=f"{kind}: noisy row count")
    base = base + np.asarray(count_event.rdp(DEFAULT_ORDERS), dtype=np.float64)
    return _Rows(max(1, noisy), max(0, noisy), base, None, count_sigma)


def _trainer(kind: str, layout: OneHotLayout, plan: DPSGDPlan, config: NeuralConfig, *,
             key: MechanismKey, progress: Progress | None,
             marginals: Any) -> Callable[[Table], dict[str, Any]]:
    """Phase 3's trainer: the gate hands it the rows only after charging the training event."""

    def trainer(table: Table) -> dict[str, Any]:
        from dpsynth.neural.data import one_hot

        check_table(table, layout)
        x = one_hot(table.codes, layout)
        with torch_threads(config.threads), warnings.catch_warnings():
            # Opacus' backward hooks fire on module outputs when inputs need no grad: expected.
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            if kind == "dpvae":
                from dpsynth.neural.vae import train_vae

                return train_vae(x, layout, plan, config, key=key, progress=progress, marginals=marginals)
            from dpsynth.neural.gan import train_gan

            return train_gan(x, layout, plan, config, key=key, progress=progress)

    return trainer


def _privacy_record(kind: str, plan: DPSGDPlan, config: NeuralConfig, target: _Target,
                    est: _Rows) -> dict[str, Any]:
    """The public record of the fit's privacy parameters (the model's ``privacy``)."""
    return {
        **plan.to_json(),
        "delta": target.delta,
        "epsilon_target": target.epsilon,
        "count_sigma": est.count_sigma,
        "marginal_sigma": None if est.one_way is None else est.one_way.sigma,
        "marginal_share": config.marginal_share if est.one_way is not None else 0.0,
        "rows_source": (
            "given" if config.n_estimate is not None
            else "dp_marginal_sums" if est.one_way is not None else "dp_count"
        ),
        "secure_mode": config.secure_mode,
        "dp_noise": _DP_NOISE + (
            "; secure_mode on (each draw a sum of 4 Gaussians / 2, against floating-point "
            "attacks)" if config.secure_mode else "; secure_mode off"
        ),
        "accounting": _ACCOUNTING,
        "training_randomness": _TRAINING_RANDOMNESS,
        "model_settings": dict(config.settings(kind).__dict__),
    }


def fit_neural(
    kind: Literal["dpvae", "dpgan"],
    data: PrivateData,
    schema: Schema,
    *,
    key: MechanismKey,
    config: NeuralConfig,
    progress: Progress | None = None,
    delta: float | None = None,
) -> NeuralModel:
    """Fit a DP-VAE or DP-GAN; every read of private data goes through ``data``, charged first.

    Steps: (1) with ``config.marginal_share > 0``, ``data.measure`` one Gaussian event per
    column (together ``marginal_share`` of this fit's rho) for noisy 1-way marginals; their
    sums give the row estimate. Otherwise, unless ``config.n_estimate`` is given,
    ``data.measure_total`` spends ``config.count_share`` of the rho on a noisy row count.
    (2) From that estimate alone, fix q, steps and the smallest noise multiplier that keeps the
    composition (session ledger, if targeting the remaining budget, + step 1 + DP-SGD) within
    the target epsilon; (3) ``data.train`` charges ONE :class:`SubsampledGaussianEvent` and
    then hands the rows to the trainer. The target is ``config.epsilon`` for this fit, or (if
    ``None``) everything the accountant's budget has left.

    Args:
        kind: ``"dpvae"`` or ``"dpgan"``.
        data: The private-data gate (row-level unit, numpy engine); its domain must equal the
            schema's modelled columns. Its accountant needs an ApproxDP budget.
        schema: The public schema.
        key: The run's secret: seeds all training-time randomness (initial weights, Poisson
            sampling, latent/Gumbel noise). Never the user's seed.
        config: Public fit settings.
        progress: Per-epoch callback ``(epochs_done, epochs_total)``.
        delta: Delta for calibration (default: the accountant budget's delta).

    Returns:
        The fitted model (no training rows inside).

    Raises:
        ConfigError: Unknown kind, a non-gate ``data``, schema/data mismatch, person-level
            unit, non-ApproxDP budget, an engine without row access, or a network without
            exact per-sample gradients.
        BudgetExceededError: If a charge does not fit; nothing was measured for it.
    """
    from dpsynth.privacy.events import SubsampledGaussianEvent

    if kind not in ("dpvae", "dpgan"):
        raise ConfigError(f"kind ({kind!r}) must be 'dpvae' or 'dpgan'")
    require("torch", "neural")
    require("opacus", "neural")
    layout = _check_gate(kind, data, schema)
    target = _target(kind, data, config, delta)
    est = _estimate_rows(kind, data, config, target)
    epochs, min_steps = config.epoch_rule()
    plan = plan_dpsgd(n_estimate=est.n_est, batch_size=config.batch_size, epochs=epochs,
                      min_steps=min_steps, max_grad_norm=config.max_grad_norm,
                      target_epsilon=target.epsilon, delta=target.delta, extra_rdp=est.base)
    from dpsynth.neural.limits import refuse_if_weak

    # Refuse a run whose noise swamps its signal, before training reads a row (the DP row
    # estimate above is all that was read).
    refuse_if_weak(kind, plan, config, epsilon=target.epsilon, delta=target.delta, width=layout.width)
    event = SubsampledGaussianEvent(plan.noise_multiplier, plan.sample_rate, plan.steps,
                                    label=f"{kind}: DP-SGD training")
    log.info("%s: sigma=%.4g q=%.4g steps=%d", kind, plan.noise_multiplier, plan.sample_rate, plan.steps)
    marginals = None if est.one_way is None else est.one_way.marginals
    # ONE charge for all of training, made by the gate before the trainer sees a row.
    state = data.train(event, _trainer(kind, layout, plan, config, key=key, progress=progress,
                                       marginals=marginals))
    return NeuralModel(
        kind=kind, layout=layout, hidden=tuple(config.hidden),
        latent_dim=config.settings(kind).latent_dim,
        weights={k: v.numpy().astype(np.float32) for k, v in state.items()},
        estimated_rows=int(est.rows), privacy=_privacy_record(kind, plan, config, target, est),
        schema_sha256=schema.sha256(), marginals=marginals, oversample=config.oversample,
        calibration_iters=config.calibration_iters,
    )
