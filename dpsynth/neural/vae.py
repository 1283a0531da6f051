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

Reparameterisation noise is in-mechanism randomness: for every batch a fresh
``(batch, latent_dim)`` tensor is drawn from a generator keyed by the run's secret
:class:`~dpsynth.privacy.randomness.MechanismKey` (:func:`latent_noise`), and :func:`vae_batch_loss`
takes it as an explicit input, row ``i`` of the loss depending on row ``i`` of the batch and
row ``i`` of the noise only. Because the key is secret, the noise rows are i.i.d. N(0, I)
whatever the other rows of the Poisson sample are, so neighbouring datasets can be coupled so
that every shared row keeps its noise, and adding one row changes the clipped-gradient sum by
that row's clipped gradient alone (at most C: tests/test_neural_randomness.py). A seed the
adversary knows would break this: noise drawn in batch order from a known stream shifts
every later row's noise when a row is added.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

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

__all__ = [
    "build_decoder",
    "build_vae",
    "latent_noise",
    "marginal_bias",
    "train_vae",
    "vae_batch_loss",
    "vae_row_loss",
]

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
    for start, size in zip(layout.offsets[:-1], layout.sizes, strict=True):
        block = slice(start, start + size)
        target = x[:, block].argmax(dim=1)
        loss = loss + f.cross_entropy(logits[:, block], target, reduction="none")
    kl = -0.5 * torch.sum(1.0 + logvar - mu.pow(2) - logvar.exp(), dim=1)
    return loss + beta * kl


def latent_noise(generator: Any, rows: int, latent_dim: int) -> Any:
    """A fresh ``(rows, latent_dim)`` N(0, I) tensor from ``generator`` (one per batch)."""
    torch: Any = require("torch", "neural")
    return torch.randn(rows, latent_dim, generator=generator)


def vae_batch_loss(
    model: Any, batch: Any, noise: Any, layout: OneHotLayout, beta: float
) -> Any:
    """The SUM over rows of :func:`vae_row_loss` of ``model(batch, noise)``.

    ``noise[i]`` is row ``i``'s reparameterisation noise: the loss of row ``i`` (hence its
    per-sample gradient) is a function of ``batch[i]``, ``noise[i]`` and the weights only.
    """
    if tuple(noise.shape[:1]) != tuple(batch.shape[:1]):
        raise ConfigError("the noise must have one row per batch row")
    logits, mu, logvar = model(batch, noise)
    return vae_row_loss(batch, logits, mu, logvar, layout, beta).sum()


def train_vae(
    x: Any,
    layout: OneHotLayout,
    plan: DPSGDPlan,
    config: NeuralConfig,
    *,
    key: MechanismKey,
    progress: Progress | None = None,
    marginals: Sequence[npt.NDArray[np.float64]] | None = None,
) -> dict[str, Any]:
    """Train the VAE with DP-SGD for exactly ``plan.steps`` steps; return the decoder weights.

    Args:
        x: ``(n, width)`` one-hot tensor of the private rows.
        layout: The public one-hot layout.
        plan: The charged DP-SGD plan (q, steps, noise multiplier, clipping norm).
        config: Architecture and optimiser settings.
        key: The run's secret: seeds the initial weights, the Poisson sampling and the
            reparameterisation noise (the DP noise comes from the OS CSPRNG).
        progress: Called after each epoch with ``(epochs_done, epochs_total)``.
        marginals: Noisy 1-way marginals (public transcript); when given and the settings'
            ``init_from_marginals`` is on, the decoder's output biases start at
            :func:`marginal_bias` of them.

    Returns:
        The decoder's ``state_dict`` (tensors).
    """
    torch: Any = require("torch", "neural")
    settings = config.settings("dpvae")
    model = build_keyed(
        lambda: build_vae(layout.width, config.hidden, settings.latent_dim),
        keyed_generator(key, "dpvae init"),
    )
    if marginals is not None and settings.init_from_marginals:
        with torch.no_grad():
            model.decoder[-1].bias.copy_(torch.from_numpy(marginal_bias(marginals, layout)))
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    gsm, dp_opt = privatise(model, opt, plan, secure_mode=config.secure_mode,
                            noise_generator=secure_generator())
    loader = poisson_loader(x, plan.sample_rate, keyed_generator(key, "dpvae poisson"))
    if len(loader) * plan.epochs != plan.steps:
        raise ConfigError(f"the loader would run {len(loader) * plan.epochs} steps, {plan.steps} were charged")
    noise_gen = keyed_generator(key, "dpvae training noise")
    warmup_steps = settings.kl_warmup * plan.steps
    step = 0
    gsm.train()
    for epoch in range(plan.epochs):
        for (batch,) in loader:
            step += 1
            beta = settings.beta * (min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0)
            dp_opt.zero_grad(set_to_none=True)
            noise = latent_noise(noise_gen, int(batch.shape[0]), settings.latent_dim)
            vae_batch_loss(gsm, batch, noise, layout, beta).backward()
            dp_opt.step()
        if progress is not None:
            progress(epoch + 1, plan.epochs)
    return {k: v.detach().clone() for k, v in model.decoder.state_dict().items()}
