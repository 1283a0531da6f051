"""Randomness of the neural generators (docs/privacy-model.md, "Randomness"; issue 12, finding 2).

- ``dpsynth/neural`` reads private data only through the gate: it imports neither the counting
  backends nor the noise module, and never seeds torch's global generator.
- The VAE's reparameterisation noise is per row: with neighbouring batches coupled so that the
  shared rows keep their noise, adding one row moves the clipped per-sample-gradient sum by at
  most C. The old scheme (noise drawn in batch order from a stream the adversary can replay)
  moves it by several C, which the same check detects.
- Training randomness comes from the MechanismKey: same key, same weights; another key, other
  weights; no fit function takes a seed.
"""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("opacus")

from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer

import dpsynth.neural as neural_pkg
from dpsynth.backends.numpy import NumpyBackend
from dpsynth.neural import NeuralConfig, fit_dpgan, fit_dpvae, fit_neural
from dpsynth.neural.data import OneHotLayout, one_hot, sampling_generator
from dpsynth.neural.gan import train_gan
from dpsynth.neural.train import build_keyed, keyed_generator
from dpsynth.neural.vae import build_vae, latent_noise, train_vae, vae_batch_loss
from dpsynth.privacy.accountant import Accountant
from dpsynth.privacy.budget import ApproxDP
from dpsynth.privacy.gate import PrivateData
from dpsynth.privacy.randomness import MechanismKey
from dpsynth.tabular.encoding import encode
from dpsynth.tabular.schema import parse_schema

pytestmark = [
    pytest.mark.neural,
    pytest.mark.filterwarnings("ignore:Full backward hook is firing"),
    pytest.mark.filterwarnings("ignore:First batch is empty"),
]
torch.set_num_threads(1)

NEURAL_DIR = Path(neural_pkg.__file__).parent


# ------------------------------------------------------------------------------ import layer


def _imports(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def test_neural_package_reaches_private_data_only_through_the_gate() -> None:
    files = sorted(NEURAL_DIR.glob("*.py"))
    assert len(files) >= 7
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for name in _imports(tree):
            assert not name.startswith(("dpsynth.backends", "dpsynth.privacy.noise")), (path.name, name)
        for node in ast.walk(tree):
            # No reaching into a backend's private table (the former table_of).
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert node.value != "_table", path.name
            # No seeding of torch's global generator.
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "manual_seed"):
                assert not (isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"), path.name
    assert not hasattr(neural_pkg, "table_of")


TRAINING_MODULES = ("fit.py", "train.py", "vae.py", "gan.py", "calibrate.py")


def _calls(tree: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Call) and ast.unparse(n.func).split(".")[-1] == name for n in ast.walk(tree))


def test_training_never_uses_the_post_processing_generator() -> None:
    """Seeded generators are for sampling a trained model; training draws from the secret key."""
    for name in TRAINING_MODULES:
        tree = ast.parse((NEURAL_DIR / name).read_text(encoding="utf-8"))
        assert not _calls(tree, "sampling_generator"), name
    assert _calls(ast.parse((NEURAL_DIR / "io.py").read_text(encoding="utf-8")), "sampling_generator")
    assert _calls(ast.parse("g = data.sampling_generator(3)\n"), "sampling_generator")  # the scan has teeth


def test_the_scan_would_catch_a_backend_import() -> None:
    planted = ast.parse("from dpsynth.backends.numpy import NumpyBackend\nimport dpsynth.privacy.noise\n")
    assert {"dpsynth.backends.numpy", "dpsynth.privacy.noise"} <= set(_imports(planted))


def test_no_fit_or_training_function_takes_a_seed() -> None:
    for fn in (fit_neural, fit_dpvae, fit_dpgan, train_vae, train_gan):
        params = inspect.signature(fn).parameters
        assert not any("seed" in name for name in params), fn.__name__
        assert params["key"].kind is inspect.Parameter.KEYWORD_ONLY, fn.__name__
    assert list(inspect.signature(fit_neural).parameters)[:3] == ["kind", "data", "schema"]


# -------------------------------------------------- per-row reparameterisation noise (issue 12)

LAYOUT = OneHotLayout(("a", "b", "c", "d"), (3, 5, 2, 4))
LATENT, HIDDEN, CLIP, ROWS = 4, (16, 8), 0.5, 16


def _model() -> Any:
    """A VAE with fixed weights (torch's default initialisation, from a fixed audit key)."""
    key = MechanismKey.for_audit("tests/test_neural_randomness weights")
    return build_keyed(lambda: build_vae(LAYOUT.width, HIDDEN, LATENT),
                       keyed_generator(key, "weights"))


def _clipped_sum(gsm: Any, opt: DPOptimizer, batch: Any, noise: Any) -> Any:
    """Opacus' per-sample clipping to CLIP, summed over the batch (no noise, no step)."""
    opt.zero_grad(set_to_none=True)
    vae_batch_loss(gsm, batch, noise, LAYOUT, 1.0).backward()
    opt.clip_and_accumulate()
    out = torch.cat([p.summed_grad.reshape(-1) for p in opt.params]).clone()
    opt.zero_grad(set_to_none=True)
    return out


def _setup() -> tuple[Any, DPOptimizer, Any, Any]:
    model = _model()
    gsm = GradSampleModule(model, loss_reduction="sum")
    opt = DPOptimizer(torch.optim.SGD(model.parameters(), lr=0.0), noise_multiplier=0.0,
                      max_grad_norm=CLIP, expected_batch_size=ROWS, loss_reduction="sum")
    codes = np.random.default_rng(5).integers(0, 2, size=(ROWS + 1, len(LAYOUT.sizes)))
    x = one_hot(codes, LAYOUT)
    return gsm, opt, x[:ROWS], x[ROWS:]


def _insert(t: Any, pos: int, row: Any) -> Any:
    return torch.cat([t[:pos], row, t[pos:]], dim=0)


POSITIONS = {"first": 0, "middle": ROWS // 2, "last": ROWS}


def _changes(planted: bool) -> dict[str, float]:
    """L2 norm of the change of the clipped sum when one row is inserted at each position."""
    gsm, opt, batch, extra = _setup()
    gen = keyed_generator(MechanismKey.for_audit("tests/test_neural_randomness noise"), "noise")
    noise, extra_noise = latent_noise(gen, ROWS, LATENT), latent_noise(gen, 1, LATENT)
    if planted:  # the old scheme: each batch's noise re-drawn in batch order from a known seed
        noise = latent_noise(sampling_generator(1234), ROWS, LATENT)
    base = _clipped_sum(gsm, opt, batch, noise)
    out = {}
    for name, pos in POSITIONS.items():
        bigger = _insert(batch, pos, extra)
        if planted:
            noise2 = latent_noise(sampling_generator(1234), ROWS + 1, LATENT)
        else:  # the coupling: shared rows keep their noise, the new row brings its own
            noise2 = _insert(noise, pos, extra_noise)
        out[name] = float((_clipped_sum(gsm, opt, bigger, noise2) - base).norm())
    return out


def test_one_added_row_moves_the_clipped_gradient_sum_by_at_most_c() -> None:
    changes = _changes(planted=False)
    for name, change in changes.items():
        assert change <= CLIP + 1e-5, (name, changes)
    # The change is the new row's clipped gradient: nonzero, and the same wherever it goes.
    assert min(changes.values()) > 0.1 * CLIP
    assert max(changes.values()) - min(changes.values()) < 1e-5


def test_planted_batch_order_noise_moves_the_sum_by_more_than_c() -> None:
    changes = _changes(planted=True)
    # Every later row's noise is shifted by one: the sum moves by ~2.4 C here (7 C in the
    # issue's trained model), so the check above has power against the old scheme.
    assert changes["first"] > 1.5 * CLIP, changes


def test_training_draws_a_fresh_keyed_noise_tensor_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    import dpsynth.neural.vae as vae_module

    seen: list[tuple[int, Any]] = []
    original = vae_module.vae_batch_loss

    def spy(model: Any, batch: Any, noise: Any, layout: OneHotLayout, beta: float) -> Any:
        seen.append((int(batch.shape[0]), noise.detach().clone()))
        return original(model, batch, noise, layout, beta)

    monkeypatch.setattr(vae_module, "vae_batch_loss", spy)
    key = MechanismKey.for_audit("per-batch")
    _fit("dpvae", key)
    assert len(seen) == 10  # q = 40 / 400: ten steps
    replay = keyed_generator(key, "dpvae training noise")
    for rows, noise in seen:
        assert noise.shape == (rows, 2)
        assert torch.equal(noise, latent_noise(replay, rows, 2))


# --------------------------------------------------------- the key, not a seed, drives training

SCHEMA = parse_schema({"columns": [
    {"name": "color", "kind": "categorical", "categories": ["red", "green", "blue"]},
    {"name": "flag", "kind": "boolean"},
]})


def _table() -> Any:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"color": rng.choice(["red", "green", "blue"], size=400),
                          "flag": rng.random(400) < 0.3})
    return encode(frame, SCHEMA)


def _fit(kind: str, key: MechanismKey) -> Any:
    cfg = NeuralConfig(epochs=1, batch_size=40, hidden=(8,), latent_dim=2, threads=1,
                       n_estimate=400, marginal_share=0.0, allow_weak=True)
    gate = PrivateData(NumpyBackend(_table()), Accountant(ApproxDP(2.0, 1e-6)), sensitivity=1.0)
    return fit_neural(kind, gate, SCHEMA, key=key, config=cfg)  # type: ignore[arg-type]


@pytest.fixture
def fixed_dp_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin the DP noise (normally from the OS CSPRNG) so only the key's randomness remains."""
    import dpsynth.neural.gan as gan_module
    import dpsynth.neural.vae as vae_module

    for module in (vae_module, gan_module):
        monkeypatch.setattr(module, "secure_generator", lambda: sampling_generator(0))


def _same(a: Any, b: Any) -> bool:
    return a.weights.keys() == b.weights.keys() and all(
        np.array_equal(a.weights[k], b.weights[k]) for k in a.weights)


@pytest.mark.parametrize("kind", ["dpvae", "dpgan"])
def test_same_key_same_weights_other_key_other_weights(kind: str, fixed_dp_noise: None) -> None:
    key = MechanismKey.for_audit(f"determinism {kind}")
    torch.manual_seed(1)
    state = torch.get_rng_state()
    first = _fit(kind, key)
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is not touched
    torch.manual_seed(2)  # a different global state changes nothing
    second = _fit(kind, key)
    assert _same(first, second)
    other = _fit(kind, MechanismKey.for_audit(f"another {kind}"))
    assert not _same(first, other)
    # Nothing derived from the key is written to the model.
    meta = json.dumps(first.metadata())
    for purpose in (f"{kind} init", f"{kind} poisson", f"{kind} training noise"):
        assert str(key.int_seed(purpose)) not in meta


def test_without_pinned_dp_noise_the_same_key_still_gives_different_weights() -> None:
    key = MechanismKey.for_audit("dp noise is not keyed")
    assert not _same(_fit("dpvae", key), _fit("dpvae", key))
