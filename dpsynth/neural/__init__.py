"""DP-SGD generators (DP-VAE, DP-GAN): the fit functions, charged to the dpsynth accountant.

A fit reads private data only through the private-data gate
(:class:`~dpsynth.privacy.gate.PrivateData`), in two phases, each after a charge: (1) by default,
a discrete-Gaussian noisy 1-way marginal of every column (one
:class:`~dpsynth.privacy.events.GaussianEvent` each), whose sums give the DP row estimate that fixes
the Poisson sample rate ``q = batch_size / n_noisy`` and the default output size, and whose
normalised values calibrate sampling (with ``marginal_share=0``: a single noisy row count
instead); (2) DP-SGD training, charged up front as ONE
:class:`~dpsynth.privacy.events.SubsampledGaussianEvent` whose noise multiplier is calibrated (never
overshooting) so that everything composes within the target epsilon. The exact row count
never enters a privacy parameter.

Training randomness (initial weights, Poisson sampling, the VAE's reparameterisation noise,
the GAN's generator noise) is in-mechanism randomness from the run's secret
:class:`~dpsynth.privacy.randomness.MechanismKey`; a fit takes no user seed. The user's seed is used
only at sampling time (:meth:`NeuralModel.sample`'s ``rng``).

:func:`fit_neural` lives in :mod:`dpsynth.neural.fit` and is re-exported here. Importing
this package does not import torch; fitting or sampling without the ``neural``
extra raises :class:`~dpsynth.errors.MissingDependencyError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from dpsynth.neural.data import OneHotLayout, layout_of_schema
from dpsynth.neural.fit import fit_neural
from dpsynth.neural.io import NeuralModel, load_neural, save_neural
from dpsynth.neural.train import (
    DPSGDPlan,
    NeuralConfig,
    Progress,
    plan_dpsgd,
)

if TYPE_CHECKING:  # pragma: no cover
    from dpsynth.privacy.gate import PrivateData
    from dpsynth.privacy.randomness import MechanismKey
    from dpsynth.tabular.schema import Schema

__all__ = [
    "DPSGDPlan",
    "NeuralConfig",
    "NeuralModel",
    "OneHotLayout",
    "fit_dpgan",
    "fit_dpvae",
    "fit_neural",
    "layout_of_schema",
    "load_neural",
    "plan_dpsgd",
    "save_neural",
]


def _fit_simple(
    kind: Literal["dpvae", "dpgan"],
    data: PrivateData,
    schema: Schema,
    *,
    key: MechanismKey,
    epsilon: float,
    delta: float,
    epochs: int | None,
    batch_size: int,
    total_budget_share_for_count: float,
    marginal_share: float,
    progress: Progress | None,
    allow_weak: bool,
) -> NeuralModel:
    config = NeuralConfig(
        epochs=epochs,
        batch_size=batch_size,
        epsilon=epsilon,
        count_share=total_budget_share_for_count,
        marginal_share=marginal_share,
        allow_weak=allow_weak,
    )
    return fit_neural(kind, data, schema, key=key, config=config, progress=progress, delta=delta)


def fit_dpvae(
    data: PrivateData,
    schema: Schema,
    *,
    key: MechanismKey,
    epsilon: float,
    delta: float,
    epochs: int | None = None,
    batch_size: int = 2048,
    total_budget_share_for_count: float = 0.02,
    marginal_share: float = 0.25,
    progress: Progress | None = None,
    allow_weak: bool = False,
) -> NeuralModel:
    """Fit a DP-VAE spending ``(epsilon, delta)`` in total (1-way marginals + training).

    ``marginal_share`` of the fit's rho goes to noisy 1-way marginals (marginal calibration
    and row estimate); with ``marginal_share=0``, ``total_budget_share_for_count`` goes to a
    noisy row count instead. The rest, in RDP, goes to DP-SGD. See :func:`fit_neural`;
    ``allow_weak`` fits even when DP-SGD's noise would swamp its signal
    (:mod:`dpsynth.neural.limits`).
    """
    return _fit_simple(
        "dpvae", data, schema, key=key, epsilon=epsilon, delta=delta, epochs=epochs,
        batch_size=batch_size, total_budget_share_for_count=total_budget_share_for_count,
        marginal_share=marginal_share, progress=progress, allow_weak=allow_weak,
    )


def fit_dpgan(
    data: PrivateData,
    schema: Schema,
    *,
    key: MechanismKey,
    epsilon: float,
    delta: float,
    epochs: int | None = None,
    batch_size: int = 2048,
    total_budget_share_for_count: float = 0.02,
    marginal_share: float = 0.25,
    progress: Progress | None = None,
    allow_weak: bool = False,
) -> NeuralModel:
    """Fit a DP-GAN spending ``(epsilon, delta)`` in total (as :func:`fit_dpvae`)."""
    return _fit_simple(
        "dpgan", data, schema, key=key, epsilon=epsilon, delta=delta, epochs=epochs,
        batch_size=batch_size, total_budget_share_for_count=total_budget_share_for_count,
        marginal_share=marginal_share, progress=progress, allow_weak=allow_weak,
    )
