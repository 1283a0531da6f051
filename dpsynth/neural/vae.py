"""The DP-VAE: a tabular VAE over one-hot codes, trained end to end with DP-SGD.

Encoder and decoder are plain MLPs (ReLU, no normalisation layers, so per-sample gradients
are exact). The reconstruction loss is the sum over columns of the cross-entropy of the
column's softmax block, plus ``beta`` times the KL divergence to N(0, I). Both networks see
(functions of) real rows, so both are trained by the DP optimiser. Only the decoder is kept:
sampling is ``z ~ N(0, I)`` -> decoder logits -> per-column categorical draws.

When the fit measured noisy 1-way marginals, the decoder's output biases start at their logs
(post-processing of already charged measurements), so DP-SGD starts from the right 1-way
marginals and spends its noisy steps on the dependence between columns. The KL weight rises
linearly from 0 to ``beta`` over the first ``kl_warmup`` fraction of the steps (KL annealing),
which keeps the noisy early steps from collapsing the posterior onto the prior.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from dpsynth.errors import ConfigError, require
from dpsynth.neural.data import OneHotLayout, poisson_loader, torch_generator
from dpsynth.neural.train import DPSGDPlan, NeuralConfig, Progress, privatise, secure_generator

__all__ = ["build_decoder", "build_vae", "marginal_bias", "train_vae", "vae_row_loss"]

#: Floor on a marginal probability before its log is taken (a cell measured as 0 starts at a
#: logit of about -9.2 relative to a certain cell, not at -inf).
PROB_FLOOR = 1e-4


def _mlp(torch: Any, sizes: list[int]) -> Any:
    layers: list[Any] = []
    for a, b in itertools.pairwise(sizes):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    return layers


def build_decoder(latent_dim: int, hidden: tuple[int, ...], width: int) -> Any:
    """Decoder: ``latent_dim`` -> reversed ``hidden`` -> ``width`` logits."""
    torch: Any = require("torch", "neural")
    sizes = [latent_dim, *reversed(hidden)]
    return torch.nn.Sequential(*_mlp(torch, sizes), torch.nn.Linear(sizes[-1], width))


def build_vae(width: int, hidden: tuple[int, ...], latent_dim: int) -> Any:
    """The full VAE module: ``forward(x, noise) -> (logits, mu, logvar)``."""
    torch: Any = require("torch", "neural")
    nn = torch.nn

    class TabularVAE(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Sequential(*_mlp(torch, [width, *hidden]))
            self.mu = nn.Linear(hidden[-1], latent_dim)
            self.logvar = nn.Linear(hidden[-1], latent_dim)
            self.decoder = build_decoder(latent_dim, hidden, width)

        def forward(self, x: Any, noise: Any) -> tuple[Any, Any, Any]:
            h = self.encoder(x)
            mu = self.mu(h)
            logvar = self.logvar(h).clamp(-10.0, 10.0)
            z = mu + torch.exp(0.5 * logvar) * noise
            return self.decoder(z), mu, logvar

    return TabularVAE()


def marginal_bias(
    marginals: Sequence[npt.NDArray[np.float64]], layout: OneHotLayout
) -> npt.NDArray[np.float32]:
    """Output biases whose per-column softmax equals ``marginals`` (floored at
    :data:`PROB_FLOOR`, then renormalised): the log-probabilities, column block by block."""
    if tuple(len(m) for m in marginals) != tuple(layout.sizes):
        raise ConfigError("marginals must hold one vector per column of the layout's size")
    blocks = []
    for m in marginals:
        p = np.maximum(np.asarray(m, dtype=np.float64), PROB_FLOOR)
        blocks.append(np.log(p / p.sum()))
    return np.concatenate(blocks).astype(np.float32)


def vae_row_loss(
    x: Any, logits: Any, mu: Any, logvar: Any, layout: OneHotLayout, beta: float
) -> Any:
    """Per-row negative ELBO: per-column cross-entropy plus ``beta`` * KL(q(z|x) || N(0, I))."""
    torch: Any = require("torch", "neural")
    f = torch.nn.functional
    loss = torch.zeros(x.shape[0], dtype=logits.dtype)
    for start, size in zip(layout.offsets[:-1], layout.sizes):
        block = slice(start, start + size)
        target = x[:, block].argmax(dim=1)
        loss = loss + f.cross_entropy(logits[:, block], target, reduction="none")
    kl = -0.5 * torch.sum(1.0 + logvar - mu.pow(2) - logvar.exp(), dim=1)
    return loss + beta * kl


def train_vae(
    x: Any,
    layout: OneHotLayout,
    plan: DPSGDPlan,
    config: NeuralConfig,
    *,
    seed: int,
    progress: Progress | None = None,
    marginals: Sequence[npt.NDArray[np.float64]] | None = None,
) -> dict[str, Any]:
    """Train the VAE with DP-SGD for exactly ``plan.steps`` steps; return the decoder weights.

    Args:
        x: ``(n, width)`` one-hot tensor of the private rows.
        layout: The public one-hot layout.
        plan: The charged DP-SGD plan (q, steps, noise multiplier, clipping norm).
        config: Architecture and optimiser settings.
        seed: Seeds initialisation and the reparameterisation noise (not the DP noise, not
            the Poisson sampling: those come from the OS CSPRNG).
        progress: Called after each epoch with ``(epochs_done, epochs_total)``.
        marginals: Noisy 1-way marginals (public transcript); when given and the settings'
            ``init_from_marginals`` is on, the decoder's output biases start at
            :func:`marginal_bias` of them.

    Returns:
        The decoder's ``state_dict`` (tensors).
    """
    torch: Any = require("torch", "neural")
    settings = config.settings("dpvae")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_vae(layout.width, config.hidden, settings.latent_dim)
    if marginals is not None and settings.init_from_marginals:
        with torch.no_grad():
            model.decoder[-1].bias.copy_(torch.from_numpy(marginal_bias(marginals, layout)))
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    gsm, dp_opt = privatise(model, opt, plan, secure_mode=config.secure_mode)
    loader = poisson_loader(x, plan.sample_rate, secure_generator())
    if len(loader) * plan.epochs != plan.steps:
        raise ConfigError(f"the loader would run {len(loader) * plan.epochs} steps, {plan.steps} were charged")
    noise_gen = torch_generator(seed + 1)
    warmup_steps = settings.kl_warmup * plan.steps
    step = 0
    gsm.train()
    for epoch in range(plan.epochs):
        for (batch,) in loader:
            step += 1
            beta = settings.beta * (min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0)
            dp_opt.zero_grad(set_to_none=True)
            noise = torch.randn(batch.shape[0], settings.latent_dim, generator=noise_gen)
            logits, mu, logvar = gsm(batch, noise)
            vae_row_loss(batch, logits, mu, logvar, layout, beta).sum().backward()
            dp_opt.step()
        if progress is not None:
            progress(epoch + 1, plan.epochs)
    return {k: v.detach().clone() for k, v in model.decoder.state_dict().items()}
