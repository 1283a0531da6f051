"""The DP-GAN: a CTGAN-style generator trained against a DP-SGD discriminator.

Privacy structure (reliability.md E3): only the discriminator ever sees real rows, and only
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
"""

from __future__ import annotations

from typing import Any

from dpsynth.errors import ConfigError, require
from dpsynth.neural.data import OneHotLayout, poisson_loader, torch_generator
from dpsynth.neural.train import DPSGDPlan, NeuralConfig, Progress, privatise, secure_generator

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
    for start, size in zip(layout.offsets[:-1], layout.sizes):
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
    seed: int,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train the GAN for exactly ``plan.steps`` DP discriminator steps; return G's weights.

    Args:
        x: ``(n, width)`` one-hot tensor of the private rows (read only by the DP step).
        layout: The public one-hot layout.
        plan: The charged DP-SGD plan.
        config: Architecture and optimiser settings.
        seed: Seeds initialisation, generator noise and Gumbel noise (post-processing
            randomness); the DP noise and Poisson sampling use the OS CSPRNG.
        progress: Called after each epoch with ``(epochs_done, epochs_total)``.

    Returns:
        The generator's ``state_dict`` (tensors).
    """
    torch: Any = require("torch", "neural")
    f = torch.nn.functional
    settings = config.settings("dpgan")
    latent_dim = settings.latent_dim
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen_net = build_generator(latent_dim, config.hidden, layout.width)
        disc = build_discriminator(layout.width, config.hidden)
    opt_d = torch.optim.Adam(disc.parameters(), lr=settings.lr, betas=(0.5, 0.9))
    opt_g = torch.optim.Adam(gen_net.parameters(), lr=config.generator_lr, betas=(0.5, 0.9))
    gsm, dp_opt = privatise(disc, opt_d, plan, secure_mode=config.secure_mode)
    loader = poisson_loader(x, plan.sample_rate, secure_generator())
    if len(loader) * plan.epochs != plan.steps:
        raise ConfigError(f"the loader would run {len(loader) * plan.epochs} steps, {plan.steps} were charged")
    noise = torch_generator(seed + 1)
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
