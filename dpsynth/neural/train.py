"""DP-SGD plumbing shared by the neural generators: configuration, calibration, Opacus wiring.

The DP-SGD run is fixed before it starts: the Poisson sample rate comes from a public or
DP-estimated row count (never the exact one), the number of steps from the epochs, and the
noise multiplier from a calibration that never overshoots the target epsilon. Training uses Opacus:
``DPDataLoader`` (Poisson sampling), ``GradSampleModule`` (per-sample gradients) and
``DPOptimizer`` (per-sample clipping and Gaussian noise), never ``PrivacyEngine``, whose
sample rate would be computed from the exact dataset length.

Randomness (docs/privacy-model.md, "Randomness"): the DP noise is Opacus' Gaussian from a generator seeded by
the OS CSPRNG (:func:`secure_generator`, never stored). Every other draw made while training
reads private rows -- initial weights, Poisson sampling, the VAE's reparameterisation noise,
the GAN's generator and Gumbel noise -- comes from a ``torch.Generator`` seeded by the run's
:class:`~dpsynth.privacy.randomness.MechanismKey` (:func:`keyed_generator`), never from the user's seed
and never from torch's global generator.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dpsynth.errors import ConfigError, require
from dpsynth.neural.data import steps_per_epoch

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from dpsynth.privacy.randomness import MechanismKey

__all__ = [
    "DEFAULT_EPOCHS",
    "MODEL_DEFAULTS",
    "DPSGDPlan",
    "ModelSettings",
    "NeuralConfig",
    "Progress",
    "build_keyed",
    "check_module",
    "keyed_generator",
    "keyed_init",
    "plan_dpsgd",
    "privatise",
    "secure_generator",
    "torch_threads",
]

log = logging.getLogger(__name__)

#: Per-epoch progress callback: ``progress(epochs_done, epochs_total)``.
Progress = Callable[[int, int], None]


@dataclass(frozen=True, kw_only=True)
class ModelSettings:
    """The model-specific settings of one fit, with every default filled in.

    Attributes:
        lr: Learning rate (VAE, GAN discriminator).
        latent_dim: VAE latent size or GAN noise size.
        beta: Weight of the VAE's KL term (unused by the GAN).
        init_from_marginals: Start the VAE decoder's output biases at the log of the noisy
            1-way marginals (post-processing of measured values; unused by the GAN).
        kl_warmup: Fraction of the VAE's steps over which the KL weight rises linearly from
            0 to ``beta`` (0: constant ``beta``; unused by the GAN).
    """

    lr: float
    latent_dim: int
    beta: float
    init_from_marginals: bool
    kl_warmup: float


#: Defaults per model, used for every :class:`NeuralConfig` field left at ``None``. The VAE's
#: differ from the GAN's: a small latent space, a higher learning rate and a weaker KL term
#: keep the decoder from collapsing to the 1-way marginals under DP-SGD noise (see
#: docs/neural.md, "Benchmark").
MODEL_DEFAULTS: dict[str, ModelSettings] = {
    "dpvae": ModelSettings(lr=1e-2, latent_dim=8, beta=0.5, init_from_marginals=True,
                           kl_warmup=0.5),
    "dpgan": ModelSettings(lr=5e-3, latent_dim=32, beta=1.0, init_from_marginals=False,
                           kl_warmup=0.0),
}


#: Epochs of a fit that does not set them (before :attr:`NeuralConfig.min_steps` raises them).
DEFAULT_EPOCHS = 10


@dataclass(frozen=True, kw_only=True)
class NeuralConfig:
    """Configuration of a DP-VAE or DP-GAN fit (all public).

    Attributes:
        epochs: Passes over the data in expectation (steps = epochs * int(1/q)). ``None``
            (the default): :data:`DEFAULT_EPOCHS`, raised until the run has at least
            ``min_steps`` steps. An explicit number is used as given.
        min_steps: With ``epochs=None``, the epochs rise until ``epochs * int(1/q) >= min_steps``
            (public: q comes from the batch size and the DP row estimate). On yrbss (eps 3) 50
            steps lost to independent columns and 200 beat them (docs/neural.md).
        batch_size: Expected Poisson batch size; ``q = batch_size / n_noisy``.
        epsilon: Epsilon of this fit (noisy count + training composed, at the accountant's
            delta). ``None`` spends whatever the accountant's budget has left.
        marginal_share: Fraction of this fit's budget (in zCDP rho) given to noisy 1-way
            marginals of every column (marginal calibration; their sums also give the row
            estimate, so no separate count is measured). ``0`` turns calibration off.
        count_share: Fraction of this fit's rho given to a separate noisy row count; used
            only when ``marginal_share`` is 0 and ``n_estimate`` is ``None``.
        n_estimate: A public (or already DP-measured) row count; when given, it fixes q and
            the output size and no count is measured.
        oversample: Candidate rows drawn per output row for marginal calibration.
        calibration_iters: Maximum raking sweeps of marginal calibration.
        max_grad_norm: Per-sample clipping norm C.
        lr: Learning rate (VAE, GAN discriminator); ``None``: the model's default in
            :data:`MODEL_DEFAULTS` (VAE 1e-2, GAN 5e-3).
        generator_lr: Learning rate of the GAN generator.
        hidden: Hidden layer widths.
        latent_dim: VAE latent size or GAN noise size; ``None``: the model's default (VAE 8,
            GAN 32).
        beta: Weight of the VAE's KL term; ``None``: the model's default (0.5).
        init_from_marginals: VAE only: start the decoder's output biases at the log of the
            noisy 1-way marginals (when they are measured); ``None``: the model's default
            (on for the VAE).
        kl_warmup: VAE only: fraction of the steps over which the KL weight rises linearly
            from 0 to ``beta``, in [0, 1]; ``None``: the model's default (0.5).
        tau: Gumbel-softmax temperature of the GAN generator.
        secure_mode: Opacus' floating-point-attack-resistant noise (sum of 4 draws / 2).
        threads: torch intra-op threads during the fit (restored afterwards); ``None`` keeps
            torch's setting. Small MLPs are often fastest with 1 thread.
        allow_weak: Fit even when DP-SGD's expected noise-to-signal ratio is above
            :data:`dpsynth.neural.limits.MAX_NOISE_TO_SIGNAL` (otherwise refused; the CLI's
            ``--allow-weak-neural``).
    """

    epochs: int | None = None
    min_steps: int = 200
    batch_size: int = 2048
    epsilon: float | None = None
    marginal_share: float = 0.25
    count_share: float = 0.02
    n_estimate: int | None = None
    oversample: int = 6
    calibration_iters: int = 50
    max_grad_norm: float = 1.0
    lr: float | None = None
    generator_lr: float = 1e-3
    hidden: tuple[int, ...] = (64, 64)
    latent_dim: int | None = None
    beta: float | None = None
    init_from_marginals: bool | None = None
    kl_warmup: float | None = None
    tau: float = 0.5
    secure_mode: bool = True
    threads: int | None = None
    allow_weak: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.min_steps, bool) or not isinstance(self.min_steps, int) or self.min_steps < 0:
            raise ConfigError(f"min_steps ({self.min_steps!r}) must be an integer >= 0")
        for name in ("epochs", "batch_size", "latent_dim", "oversample", "calibration_iters"):
            v = getattr(self, name)
            if name in ("latent_dim", "epochs") and v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} ({v!r}) must be an integer >= 1")
        for name in ("max_grad_norm", "lr", "generator_lr", "tau", "beta"):
            v = getattr(self, name)
            if name in ("lr", "beta") and v is None:
                continue
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ConfigError(f"{name} ({v!r}) must be > 0 and finite")
        if self.epsilon is not None and not (math.isfinite(self.epsilon) and self.epsilon > 0):
            raise ConfigError(f"epsilon ({self.epsilon!r}) must be > 0 and finite")
        if not 0.0 <= self.marginal_share < 1.0:
            raise ConfigError(f"marginal_share ({self.marginal_share!r}) must be in [0, 1)")
        if not 0.0 < self.count_share < 1.0:
            raise ConfigError(f"count_share ({self.count_share!r}) must be in (0, 1)")
        if self.n_estimate is not None and (
            isinstance(self.n_estimate, bool) or not isinstance(self.n_estimate, int)
            or self.n_estimate < 1
        ):
            raise ConfigError(f"n_estimate ({self.n_estimate!r}) must be an integer >= 1")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ConfigError(f"threads ({self.threads!r}) must be an integer >= 1 or None")
        if not self.hidden or any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ConfigError(f"hidden ({self.hidden!r}) must be a non-empty tuple of ints >= 1")

        if self.init_from_marginals is not None and not isinstance(self.init_from_marginals, bool):
            raise ConfigError(
                f"init_from_marginals ({self.init_from_marginals!r}) must be a bool or None"
            )
        if self.kl_warmup is not None and (
            isinstance(self.kl_warmup, bool) or not isinstance(self.kl_warmup, (int, float))
            or not 0.0 <= self.kl_warmup <= 1.0
        ):
            raise ConfigError(f"kl_warmup ({self.kl_warmup!r}) must be in [0, 1] or None")

    def epoch_rule(self) -> tuple[int, int]:
        """``(epochs, min_steps)`` for :func:`plan_dpsgd`: explicit epochs exactly, else the default
        epochs raised to ``min_steps``."""
        if self.epochs is not None:
            return self.epochs, 0
        return DEFAULT_EPOCHS, self.min_steps

    def settings(self, kind: str) -> ModelSettings:
        """The model settings for ``kind`` (``"dpvae"`` or ``"dpgan"``): explicit values win,
        fields left at ``None`` take the model's default from :data:`MODEL_DEFAULTS`."""
        if kind not in MODEL_DEFAULTS:
            raise ConfigError(f"kind ({kind!r}) must be one of {sorted(MODEL_DEFAULTS)}")
        base = MODEL_DEFAULTS[kind]
        return ModelSettings(
            lr=base.lr if self.lr is None else float(self.lr),
            latent_dim=base.latent_dim if self.latent_dim is None else self.latent_dim,
            beta=base.beta if self.beta is None else float(self.beta),
            init_from_marginals=(
                base.init_from_marginals if self.init_from_marginals is None
                else self.init_from_marginals
            ),
            kl_warmup=base.kl_warmup if self.kl_warmup is None else float(self.kl_warmup),
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class DPSGDPlan:
    """The public parameters of one DP-SGD run, fixed before any training step.

    Attributes:
        noise_multiplier: sigma (noise std over the clipping norm).
        sample_rate: Poisson sampling probability q.
        steps: Number of noisy optimiser steps.
        expected_batch_size: ``q * n_estimate``, the averaging denominator.
        max_grad_norm: Per-sample clipping norm C.
        n_estimate: The public or DP-estimated row count used for q.
        epochs: Epochs (steps = epochs * int(1/q)).
    """

    noise_multiplier: float
    sample_rate: float
    steps: int
    expected_batch_size: int
    max_grad_norm: float
    n_estimate: int
    epochs: int

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


def plan_dpsgd(
    *,
    n_estimate: int,
    batch_size: int,
    epochs: int,
    max_grad_norm: float,
    target_epsilon: float,
    delta: float,
    extra_rdp: Sequence[float] | np.ndarray[Any, np.dtype[np.float64]] | None = None,
    min_steps: int = 0,
) -> DPSGDPlan:
    """Fix q, steps and the noise multiplier from public quantities only.

    ``q = min(1, batch_size / n_estimate)``; the epochs are raised to the fewest whose steps
    ``epochs * int(1/q)`` reach ``min_steps``; the noise multiplier is the smallest one whose
    DP-SGD RDP, composed with ``extra_rdp`` (already-spent RDP at
    :data:`dpsynth.privacy.rdp.DEFAULT_ORDERS`), converts to at most ``target_epsilon`` at ``delta``.
    """
    from dpsynth.privacy.rdp import noise_multiplier_for_epsilon

    n_est = max(1, int(n_estimate))
    q = min(1.0, batch_size / n_est)
    per_epoch = steps_per_epoch(q)
    epochs = max(int(epochs), -(-int(min_steps) // per_epoch))
    steps = epochs * per_epoch
    sigma = noise_multiplier_for_epsilon(target_epsilon, delta, q, steps, extra_rdp=extra_rdp)
    return DPSGDPlan(
        noise_multiplier=float(sigma),
        sample_rate=float(q),
        steps=int(steps),
        expected_batch_size=max(1, round(q * n_est)),
        max_grad_norm=float(max_grad_norm),
        n_estimate=n_est,
        epochs=int(epochs),
    )


def check_module(module: Any) -> None:
    """Raise :class:`ConfigError` if Opacus cannot compute exact per-sample gradients of
    ``module`` (e.g. it contains BatchNorm, which mixes rows of a batch)."""
    require("opacus", "neural")
    from opacus.validators import ModuleValidator

    errors = ModuleValidator.validate(module, strict=False)
    if errors:
        kinds = sorted({type(e).__name__ + ": " + str(e).splitlines()[0][:120] for e in errors})
        raise ConfigError(
            "the DP-trained network must support per-sample gradients (no BatchNorm or other "
            f"batch-mixing layers); Opacus found: {kinds}"
        )


def secure_generator() -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with 63 bits from the OS CSPRNG (seed never stored).

    The generator itself is torch's Mersenne Twister, not a CSPRNG (torchcsprng, which Opacus
    would use, is unmaintained and not installable); see docs/neural.md for the residual risk.
    """
    torch: Any = require("torch", "neural")
    gen = torch.Generator(device="cpu")
    gen.manual_seed(secrets.randbits(63))
    return gen  # type: ignore[no-any-return]


def keyed_generator(key: MechanismKey, purpose: str) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded by ``key.int_seed(purpose)`` (in-mechanism randomness).

    Purposes used by the fits: ``"<kind> init"``, ``"<kind> poisson"`` and
    ``"<kind> training noise"``, so the streams are independent of each other.
    """
    torch: Any = require("torch", "neural")
    gen = torch.Generator(device="cpu")
    gen.manual_seed(key.int_seed(purpose))
    return gen  # type: ignore[no-any-return]


def keyed_init(module: Any, generator: torch.Generator) -> None:
    """Re-initialise every parameter of ``module`` from ``generator`` (torch's default scheme).

    ``Linear``: weights Kaiming-uniform with ``a = sqrt(5)``, biases uniform in
    ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]`` (what ``nn.Linear.reset_parameters`` draws from the
    global generator); ``LayerNorm``: ones and zeros. Any other module with parameters of its
    own is refused, so no weight is left at a globally seeded value.
    """
    torch: Any = require("torch", "neural")
    nn = torch.nn
    with torch.no_grad():
        for sub in module.modules():
            own = list(sub.parameters(recurse=False))
            if isinstance(sub, nn.Linear):
                nn.init.kaiming_uniform_(sub.weight, a=math.sqrt(5), generator=generator)
                if sub.bias is not None:
                    bound = 1.0 / math.sqrt(sub.in_features) if sub.in_features > 0 else 0.0
                    sub.bias.uniform_(-bound, bound, generator=generator)
            elif isinstance(sub, nn.LayerNorm):
                sub.reset_parameters()  # deterministic: no randomness
            elif own:
                raise ConfigError(
                    f"cannot initialise {type(sub).__name__} from the mechanism key"
                )


def build_keyed(factory: Callable[[], Any], generator: torch.Generator) -> Any:
    """Build a module with ``factory`` without touching torch's global generator, then
    initialise its parameters from ``generator`` (:func:`keyed_init`)."""
    torch: Any = require("torch", "neural")
    with torch.random.fork_rng(devices=[]):  # construction draws from the global RNG: discard
        module = factory()
    keyed_init(module, generator)
    return module


def privatise(
    module: Any,
    optimizer: Any,
    plan: DPSGDPlan,
    *,
    secure_mode: bool,
    noise_generator: torch.Generator | None = None,
) -> tuple[Any, Any]:
    """Wrap ``module`` for per-sample gradients and ``optimizer`` for clipping and noise.

    The loss must be the SUM of per-row losses; the DP optimiser averages the noisy sum of
    clipped per-sample gradients by the *expected* batch size (opacus#571).

    Returns:
        ``(GradSampleModule, DPOptimizer)``.
    """
    require("opacus", "neural")
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    check_module(module)
    gsm = GradSampleModule(module, loss_reduction="sum")
    dp_opt = DPOptimizer(
        optimizer,
        noise_multiplier=plan.noise_multiplier,
        max_grad_norm=plan.max_grad_norm,
        expected_batch_size=plan.expected_batch_size,
        loss_reduction="mean",
        generator=noise_generator if noise_generator is not None else secure_generator(),
        secure_mode=secure_mode,
    )
    return gsm, dp_opt


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op thread count (no-op for ``None``)."""
    torch: Any = require("torch", "neural")
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
