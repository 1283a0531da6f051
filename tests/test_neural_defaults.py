"""Per-model defaults of NeuralConfig and the VAE's decoder-bias start from the noisy marginals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpsynth.backends.numpy import NumpyBackend
from dpsynth.errors import ConfigError
from dpsynth.neural import fit_neural
from dpsynth.neural.data import layout_of_schema
from dpsynth.neural.train import MODEL_DEFAULTS, ModelSettings, NeuralConfig
from dpsynth.neural.vae import PROB_FLOOR, marginal_bias
from dpsynth.privacy.accountant import Accountant
from dpsynth.privacy.budget import ApproxDP
from dpsynth.privacy.gate import PrivateData
from dpsynth.privacy.randomness import MechanismKey
from dpsynth.tabular.encoding import encode
from dpsynth.tabular.schema import parse_schema

pytestmark = [pytest.mark.neural, pytest.mark.filterwarnings("ignore:First batch is empty")]


def test_vae_defaults_differ_from_the_gan_defaults_which_are_unchanged() -> None:
    cfg = NeuralConfig()
    vae, gan = cfg.settings("dpvae"), cfg.settings("dpgan")
    assert vae == ModelSettings(lr=1e-2, latent_dim=8, beta=0.5, init_from_marginals=True,
                                kl_warmup=0.5)
    # The GAN keeps the settings it had when the defaults were shared.
    assert gan == ModelSettings(lr=5e-3, latent_dim=32, beta=1.0, init_from_marginals=False,
                                kl_warmup=0.0)
    assert vae != gan
    assert MODEL_DEFAULTS["dpvae"] is not MODEL_DEFAULTS["dpgan"]


def test_explicit_values_win_over_the_model_defaults() -> None:
    cfg = NeuralConfig(lr=5e-3, latent_dim=32, beta=1.0, init_from_marginals=False, kl_warmup=0)
    explicit = ModelSettings(lr=5e-3, latent_dim=32, beta=1.0, init_from_marginals=False,
                             kl_warmup=0.0)
    assert cfg.settings("dpvae") == explicit  # equal to the GAN's defaults, still kept
    assert NeuralConfig(latent_dim=3).settings("dpgan").latent_dim == 3
    assert NeuralConfig(latent_dim=3).settings("dpgan").lr == 5e-3  # the rest stays default
    assert NeuralConfig(beta=2.0).settings("dpvae").beta == 2.0
    assert NeuralConfig(lr=0.1).settings("dpvae").lr == 0.1


@pytest.mark.parametrize(
    "kwargs",
    [{"lr": 0.0}, {"lr": float("nan")}, {"beta": -1.0}, {"latent_dim": 0}, {"latent_dim": True},
     {"init_from_marginals": "yes"}, {"kl_warmup": 1.5}, {"kl_warmup": -0.1}],
)
def test_invalid_model_settings_are_config_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        NeuralConfig(**kwargs)  # type: ignore[arg-type]


def test_config_is_keyword_only_and_unknown_kinds_are_refused() -> None:
    with pytest.raises(TypeError):
        NeuralConfig(10)  # type: ignore[misc]
    with pytest.raises(ConfigError, match="kind"):
        NeuralConfig().settings("gpt")


SCHEMA = parse_schema(
    {
        "columns": [
            {"name": "color", "kind": "categorical", "categories": ["red", "green", "blue"]},
            {"name": "size", "kind": "ordinal", "categories": ["S", "M", "L"]},
            {"name": "flag", "kind": "boolean"},
        ]
    }
)


def _frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    color = rng.choice(["red", "green", "blue"], size=n, p=[0.6, 0.3, 0.1])
    size = np.where(color == "red", "L", rng.choice(["S", "M"], size=n))
    return pd.DataFrame({"color": color, "size": size, "flag": rng.random(n) < 0.3})


def _softmax_blocks(bias: np.ndarray, sizes: tuple[int, ...]) -> list[np.ndarray]:
    out, start = [], 0
    for size in sizes:
        block = np.exp(bias[start : start + size].astype(np.float64))
        out.append(block / block.sum())
        start += size
    return out


def test_marginal_bias_reproduces_the_marginals_under_softmax() -> None:
    layout = layout_of_schema(SCHEMA)
    rng = np.random.default_rng(0)
    margs = [rng.dirichlet(np.ones(s)) for s in layout.sizes]
    margs[1] = np.array([0.0, 0.25, 0.75])  # a cell measured as 0 is floored, not -inf
    bias = marginal_bias(margs, layout)
    assert bias.dtype == np.float32 and bias.shape == (layout.width,)
    assert np.isfinite(bias).all()
    for got, want in zip(_softmax_blocks(bias, layout.sizes), margs, strict=True):
        floored = np.maximum(want, PROB_FLOOR)
        assert got == pytest.approx(floored / floored.sum(), abs=1e-6)
    with pytest.raises(ConfigError, match="marginals"):
        marginal_bias(margs[:-1], layout)


@pytest.fixture(scope="module")
def table():  # type: ignore[no-untyped-def]
    return encode(_frame(400), SCHEMA)


def _fit(table, **kwargs):  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    pytest.importorskip("opacus")
    cfg = NeuralConfig(epochs=1, batch_size=40, hidden=(8,), threads=1, allow_weak=True, **kwargs)
    gate = PrivateData(NumpyBackend(table), Accountant(ApproxDP(3.0, 1e-6)), sensitivity=1.0)
    return fit_neural("dpvae", gate, SCHEMA, key=MechanismKey.for_audit("defaults"), config=cfg)


def test_default_vae_fit_uses_the_vae_settings_and_records_them(table) -> None:  # type: ignore[no-untyped-def]
    model = _fit(table)
    assert model.latent_dim == 8
    assert model.privacy["model_settings"] == {"lr": 1e-2, "latent_dim": 8, "beta": 0.5,
                                               "init_from_marginals": True, "kl_warmup": 0.5}
    assert _fit(table, latent_dim=3, init_from_marginals=False).latent_dim == 3


def test_decoder_output_bias_starts_at_the_noisy_marginals(table) -> None:  # type: ignore[no-untyped-def]
    layout = layout_of_schema(SCHEMA)
    # A negligible learning rate: after one epoch the output bias is still its start value.
    on = _fit(table, lr=1e-9)
    assert on.marginals is not None
    bias = on.weights[max(k for k in on.weights if k.endswith(".bias"))]
    assert bias == pytest.approx(marginal_bias(on.marginals, layout), abs=1e-4)
    off = _fit(table, lr=1e-9, init_from_marginals=False)
    assert off.marginals is not None
    bias_off = off.weights[max(k for k in off.weights if k.endswith(".bias"))]
    assert np.abs(bias_off - marginal_bias(off.marginals, layout)).max() > 0.1
    # Without measured marginals (marginal_share=0) there is nothing to start from.
    none = _fit(table, lr=1e-9, marginal_share=0.0)
    assert none.marginals is None


def test_kl_weight_rises_linearly_over_the_warmup_steps(table, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import dpsynth.neural.vae as vae_module

    betas: list[float] = []
    original = vae_module.vae_row_loss

    def spy(x, logits, mu, logvar, layout, beta):  # type: ignore[no-untyped-def]
        betas.append(beta)
        return original(x, logits, mu, logvar, layout, beta)

    monkeypatch.setattr(vae_module, "vae_row_loss", spy)
    model = _fit(table, n_estimate=400, marginal_share=0.0, beta=0.4, kl_warmup=0.5)
    steps = model.privacy["steps"]
    assert steps == 10 and len(betas) == steps  # q = 40 / 400: 10 steps per epoch
    assert betas == pytest.approx([0.4 * min(1.0, (t + 1) / 5) for t in range(steps)])
    betas.clear()
    _fit(table, n_estimate=400, marginal_share=0.0, beta=0.4, kl_warmup=0.0)
    assert betas == pytest.approx([0.4] * 10)
