"""The DP-GAN: a CTGAN-style generator trained against a DP-SGD discriminator.

Privacy structure (docs/neural.md, "The models"): only the discriminator ever sees real rows, and only
through the DP optimiser. Each discriminator step is ONE DP-SGD step on a batch made of a
Poisson sample of real rows plus a fixed number of generated rows; every row's gradient is
clipped to C and Gaussian noise N(0, sigma^2 C^2) is added to the sum, so adding or removing
one real row moves the sum by at most C: one subsampled-Gaussian step per discriminator
update. The generator learns only from the discriminator's outputs on generated rows
(post-processing of the DP discriminator); there is no conditional training-by-sampling and
no loss on real data outside the DP step.

Design: a residual MLP generator (as in CTGAN, but LayerNorm instead of BatchNorm) emits one
logit block per column; during training a straight-through hard Gumbel-softmax turns each
block into an exact one-hot, so the discriminator cannot tell fake rows by their softness.
Loss: the standard non-saturating GAN loss (binary cross-entropy on logits). WGAN-GP needs a
gradient penalty on interpolates of real and fake rows, a second-order term that per-sample
clipping handles badly, and weight-clipped WGAN trains slowly; the logistic loss keeps every
per-row loss bounded in its gradient and fits the DP optimiser's per-row contract.

Randomness: initial weights of both networks, the Poisson sampling of real rows, and the
generator's input and Gumbel noise during training all come from generators keyed by the
run's secret :class:`~dpsynth.privacy.randomness.MechanismKey`; the DP noise comes from the OS CSPRNG.
The number of fake rows per step is public (the expected batch size), so the fake rows do not
depend on which real rows were sampled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dpsynth.errors import ConfigError, require
from dpsynth.neural.data import OneHotLayout, poisson_loader
from dpsynth.neural.train import (
    DPSGDPlan,
    NeuralConfig,
    Progress,
    build_keyed,
    keyed_generator,
    privatise,
    secure_generator,
)

if TYPE_CHECKING:  # pragma: no cover
    from dpsynth.privacy.randomness import MechanismKey

__all__ = ["build_discriminator", "build_generator", "gumbel_softmax", "train_gan"]


def build_generator(latent_dim: int, hidden: tuple[int, ...], width: int) -> Any:
    """Residual generator: noise -> per-column logits (``width`` of them)."""
    torch: Any = require("torch", "neural")
    nn = torch.nn

    class Residual(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self, i: int, o: int) -> None:
            super().__init__()
            self.fc = nn.Linear(i, o)
            self.norm = nn.LayerNorm(o)

        def forward(self, x: Any) -> Any:
            return torch.cat([torch.relu(self.norm(self.fc(x))), x], dim=1)

    layers: list[Any] = []
    dim = latent_dim
    for h in hidden:
        layers.append(Residual(dim, h))
        dim += h
    layers.append(nn.Linear(dim, width))
    return nn.Sequential(*layers)


def build_discriminator(width: int, hidden: tuple[int, ...]) -> Any:
    """Discriminator MLP (LeakyReLU, no BatchNorm/Dropout): one logit per row."""
    torch: Any = require("torch", "neural")
    nn = torch.nn
    layers: list[Any] = []
    dim = width
    for h in hidden:
        layers += [nn.Linear(dim, h), nn.LeakyReLU(0.2)]
        dim = h
    layers.append(nn.Linear(dim, 1))
    return nn.Sequential(*layers)


def gumbel_softmax(
    logits: Any, layout: OneHotLayout, tau: float, generator: Any, *, hard: bool = True
) -> Any:
    """Per-column Gumbel-softmax with noise from ``generator`` (never the global RNG).

    With ``hard`` the forward value is an exact one-hot per column and the gradient is the
    soft sample's (straight-through estimator).
    """
    torch: Any = require("torch", "neural")
    u = torch.rand(logits.shape, generator=generator).clamp(1e-10, 1.0 - 1e-10)
    y = (logits - torch.log(-torch.log(u))) / tau
    blocks = []
    for start, size in zip(layout.offsets[:-1], layout.sizes, strict=True):
        soft = torch.softmax(y[:, start : start + size], dim=1)
        if hard:
            idx = soft.argmax(dim=1, keepdim=True)
            one = torch.zeros_like(soft).scatter_(1, idx, 1.0)
            soft = one - soft.detach() + soft
        blocks.append(soft)
    return torch.cat(blocks, dim=1)


def train_gan(
    x: Any,
    layout: OneHotLayout,
    plan: DPSGDPlan,
    config: NeuralConfig,
    *,
    key: MechanismKey,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train the GAN for exactly ``plan.steps`` DP discriminator steps; return G's weights.

    Args:
        x: ``(n, width)`` one-hot tensor of the private rows (read only by the DP step).
        layout: The public one-hot layout.
        plan: The charged DP-SGD plan.
        config: Architecture and optimiser settings.
        key: The run's secret: seeds the initial weights, the Poisson sampling, and the
            generator's input and Gumbel noise (the DP noise comes from the OS CSPRNG).
        progress: Called after each epoch with ``(epochs_done, epochs_total)``.

    Returns:
        The generator's ``state_dict`` (tensors).
    """
    torch: Any = require("torch", "neural")
    f = torch.nn.functional
    settings = config.settings("dpgan")
    latent_dim = settings.latent_dim
    init = keyed_generator(key, "dpgan init")
    gen_net = build_keyed(lambda: build_generator(latent_dim, config.hidden, layout.width), init)
    disc = build_keyed(lambda: build_discriminator(layout.width, config.hidden), init)
    opt_d = torch.optim.Adam(disc.parameters(), lr=settings.lr, betas=(0.5, 0.9))
    opt_g = torch.optim.Adam(gen_net.parameters(), lr=config.generator_lr, betas=(0.5, 0.9))
    gsm, dp_opt = privatise(disc, opt_d, plan, secure_mode=config.secure_mode,
                            noise_generator=secure_generator())
    loader = poisson_loader(x, plan.sample_rate, keyed_generator(key, "dpgan poisson"))
    if len(loader) * plan.epochs != plan.steps:
        raise ConfigError(f"the loader would run {len(loader) * plan.epochs} steps, {plan.steps} were charged")
    noise = keyed_generator(key, "dpgan training noise")
    fakes = plan.expected_batch_size
    for epoch in range(plan.epochs):
        for (real,) in loader:
            # Discriminator: one DP-SGD step on real (Poisson) + fake (fixed count) rows.
            with torch.no_grad():
                z = torch.randn(fakes, latent_dim, generator=noise)
                fake = gumbel_softmax(gen_net(z), layout, config.tau, noise)
            batch = torch.cat([real, fake], dim=0)
            target = torch.cat([torch.ones(real.shape[0]), torch.zeros(fakes)])
            dp_opt.zero_grad(set_to_none=True)
            out = gsm(batch)[:, 0]
            f.binary_cross_entropy_with_logits(out, target, reduction="sum").backward()
            dp_opt.step()
            # Generator: non-saturating loss through the (frozen, hook-free) discriminator.
            gsm.disable_hooks()
            for p in disc.parameters():
                p.requires_grad_(False)
            opt_g.zero_grad(set_to_none=True)
            z = torch.randn(fakes, latent_dim, generator=noise)
            fake = gumbel_softmax(gen_net(z), layout, config.tau, noise)
            f.softplus(-gsm(fake)[:, 0]).mean().backward()
            opt_g.step()
            for p in disc.parameters():
                p.requires_grad_(True)
            gsm.enable_hooks()
        if progress is not None:
            progress(epoch + 1, plan.epochs)
    return {k: v.detach().clone() for k, v in gen_net.state_dict().items()}
