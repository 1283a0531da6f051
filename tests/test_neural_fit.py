"""Fitting, accounting, sampling and saving of the DP-VAE and DP-GAN (docs/neural.md, "Tests")."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("opacus")
torch.set_num_threads(1)  # small MLPs: one thread is fastest on a shared 2-core machine

import dpsynth.neural.vae as vae_module
from dpsynth.backends.numpy import NumpyBackend
from dpsynth.errors import BudgetExceededError, ConfigError
from dpsynth.neural import (
    NeuralConfig,
    NeuralModel,
    fit_dpgan,
    fit_dpvae,
    fit_neural,
    load_neural,
    save_neural,
)
from dpsynth.privacy.accountant import Accountant
from dpsynth.privacy.budget import ZCDP, ApproxDP
from dpsynth.privacy.events import GaussianEvent, SubsampledGaussianEvent
from dpsynth.privacy.gate import PrivateData
from dpsynth.privacy.randomness import MechanismKey
from dpsynth.tabular.encoding import decode, encode
from dpsynth.tabular.schema import parse_schema

pytestmark = [
    pytest.mark.neural,
    pytest.mark.filterwarnings("ignore:First batch is empty"),
]

CANARY = "CANARY-zq81x-7f3a"
CANARY_NUMBER = 987654.321
SCHEMA = parse_schema(
    {
        "columns": [
            {"name": "color", "kind": "categorical", "categories": ["red", "green", "blue"],
             "nullable": True, "other": True},
            {"name": "size", "kind": "ordinal", "categories": ["S", "M", "L"]},
            {"name": "flag", "kind": "boolean"},
            {"name": "amount", "kind": "numeric", "dtype": "float", "bounds": [0, 100],
             "edges": [0, 10, 50, 100]},
        ]
    }
)
KEY = MechanismKey.for_audit("tests/test_neural_fit")
SMALL = NeuralConfig(epochs=2, batch_size=40, hidden=(16,), latent_dim=4, threads=1, allow_weak=True)


def _gate(table, accountant: Accountant) -> PrivateData:  # type: ignore[no-untyped-def]
    return PrivateData(NumpyBackend(table), accountant, sensitivity=1.0)


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    color = rng.choice(["red", "green", "blue"], size=n, p=[0.6, 0.3, 0.1])
    size = np.where(color == "red", "L", rng.choice(["S", "M"], size=n))
    return pd.DataFrame(
        {
            "color": color,
            "size": size,
            "flag": rng.random(n) < 0.3,
            "amount": rng.uniform(0, 100, size=n).round(2),
        }
    )


@pytest.fixture(scope="module")
def table():  # type: ignore[no-untyped-def]
    df = _frame(400)
    df.loc[17] = [CANARY, "S", True, CANARY_NUMBER]  # one canary row
    return encode(df, SCHEMA)


@pytest.fixture(scope="module")
def models(table):  # type: ignore[no-untyped-def]
    out = {}
    for kind in ("dpvae", "dpgan"):
        acc = Accountant(ApproxDP(3.0, 1e-6))
        out[kind] = (fit_neural(kind, _gate(table, acc), SCHEMA, key=KEY, config=SMALL), acc)
    return out


@pytest.mark.parametrize("kind", ["dpvae", "dpgan"])
def test_ledger_has_one_way_marginals_then_one_dpsgd_event_within_budget(models, kind) -> None:  # type: ignore[no-untyped-def]
    model, acc = models[kind]
    events = [e.event for e in acc.ledger]
    assert [type(e) for e in events] == [GaussianEvent] * 4 + [SubsampledGaussianEvent]
    assert [e.label for e in events[:4]] == [
        f"{kind}: 1-way marginal {c}" for c in ("color", "size", "flag", "amount")
    ]
    from dpsynth.privacy.budget import epsilon_to_rho

    rho = sum(e.rho for e in events[:4])
    assert rho == pytest.approx(SMALL.marginal_share * epsilon_to_rho(3.0, 1e-6))
    assert model.privacy["marginal_sigma"] == events[0].sigma
    assert model.privacy["rows_source"] == "dp_marginal_sums"
    sgd = events[4]
    assert isinstance(sgd, SubsampledGaussianEvent)
    assert sgd.noise_multiplier == model.privacy["noise_multiplier"]
    assert sgd.sample_rate == model.privacy["sample_rate"]
    assert sgd.steps == model.privacy["steps"] == SMALL.epochs * int(1 / sgd.sample_rate)
    # q comes from the noisy count, never from the exact n (401 rows).
    assert sgd.sample_rate == pytest.approx(SMALL.batch_size / model.privacy["n_estimate"])
    assert 2.9 <= acc.epsilon() <= 3.0  # the whole budget, never more
    assert model.estimated_rows == model.privacy["n_estimate"]


def test_dpsgd_is_charged_once_before_the_first_step(table, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    acc = Accountant(ApproxDP(2.0, 1e-6))
    seen: list[list[str]] = []
    original = vae_module.train_vae

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append([type(e.event).__name__ for e in acc.ledger])
        return original(*args, **kwargs)

    monkeypatch.setattr(vae_module, "train_vae", spy)
    fit_neural("dpvae", _gate(table, acc), SCHEMA, key=KEY, config=SMALL)
    assert seen == [["GaussianEvent"] * 4 + ["SubsampledGaussianEvent"]]
    assert len(acc.ledger) == 5


def test_each_marginal_is_charged_before_it_is_counted(table, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    acc = Accountant(ApproxDP(2.0, 1e-6))
    seen: list[tuple[tuple[tuple[str, ...], ...], int]] = []
    original = NumpyBackend.count

    def spy(self, cliques):  # type: ignore[no-untyped-def]
        seen.append((tuple(tuple(c) for c in cliques), len(acc.ledger)))
        return original(self, cliques)

    monkeypatch.setattr(NumpyBackend, "count", spy)
    fit_neural("dpvae", _gate(table, acc), SCHEMA, key=KEY, config=SMALL)
    assert seen == [((("color",),), 1), ((("size",),), 2), ((("flag",),), 3), ((("amount",),), 4)]
    assert acc.epsilon() == pytest.approx(1.99, abs=0.01)


def test_one_way_marginals_that_do_not_fit_are_refused_before_any_count(table, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def boom(self, cliques):  # type: ignore[no-untyped-def]
        raise AssertionError("counted although the charge does not fit")

    monkeypatch.setattr(NumpyBackend, "count", boom)
    acc = Accountant(ApproxDP(0.05, 1e-6))
    config = NeuralConfig(epochs=1, batch_size=40, hidden=(8,), latent_dim=2, epsilon=2.0,
                          marginal_share=0.9, allow_weak=True)
    with pytest.raises(BudgetExceededError):
        fit_neural("dpvae", _gate(table, acc), SCHEMA, key=KEY, config=config)
    assert acc.ledger == ()


def test_overspend_is_refused_before_training(table) -> None:  # type: ignore[no-untyped-def]
    acc = Accountant(ApproxDP(1.0, 1e-6))
    calls: list[tuple[int, int]] = []
    config = NeuralConfig(epochs=1, batch_size=40, hidden=(8,), latent_dim=2, epsilon=2.0, allow_weak=True)
    with pytest.raises(BudgetExceededError):
        fit_neural("dpvae", _gate(table, acc), SCHEMA, key=KEY, config=config,
                   progress=lambda a, b: calls.append((a, b)))
    assert calls == []
    assert not any(isinstance(e.event, SubsampledGaussianEvent) for e in acc.ledger)


def test_fit_dpvae_spends_at_most_the_requested_epsilon(table) -> None:  # type: ignore[no-untyped-def]
    acc = Accountant(ApproxDP(5.0, 1e-6))
    epochs: list[tuple[int, int]] = []
    model = fit_dpvae(_gate(table, acc), SCHEMA, key=KEY, epsilon=1.0, delta=1e-6, epochs=2,
                      batch_size=100, progress=lambda a, b: epochs.append((a, b)), allow_weak=True)
    assert epochs == [(1, 2), (2, 2)]
    assert 0.98 <= acc.epsilon() <= 1.0
    assert len(acc.ledger) == 5  # 4 marginals (25% of rho) + DP-SGD
    assert isinstance(model, NeuralModel) and model.kind == "dpvae"
    # marginal_share=0: the former path, 2% of the fit's rho on one noisy count.
    acc = Accountant(ApproxDP(5.0, 1e-6))
    model = fit_dpvae(_gate(table, acc), SCHEMA, key=KEY, epsilon=1.0, delta=1e-6, epochs=1,
                      batch_size=100, marginal_share=0.0, allow_weak=True)
    assert [type(e.event) for e in acc.ledger] == [GaussianEvent, SubsampledGaussianEvent]
    count = acc.ledger[0].event
    assert isinstance(count, GaussianEvent)
    from dpsynth.privacy.budget import epsilon_to_rho

    assert count.rho == pytest.approx(0.02 * epsilon_to_rho(1.0, 1e-6))
    assert 0.98 <= acc.epsilon() <= 1.0
    assert model.marginals is None and model.privacy["rows_source"] == "dp_count"


def test_given_n_estimate_skips_the_count_and_zcdp_budget_is_refused(table) -> None:  # type: ignore[no-untyped-def]
    acc = Accountant(ApproxDP(1.0, 1e-6))
    cfg = NeuralConfig(epochs=1, batch_size=50, hidden=(8,), latent_dim=2, n_estimate=500,
                       marginal_share=0.0, allow_weak=True)
    model = fit_neural("dpgan", _gate(table, acc), SCHEMA, key=KEY, config=cfg)
    assert [type(e.event) for e in acc.ledger] == [SubsampledGaussianEvent]
    assert model.estimated_rows == 500 and model.privacy["sample_rate"] == 0.1
    with pytest.raises(ConfigError, match="ApproxDP"):
        fit_neural("dpvae", _gate(table, Accountant(ZCDP(0.5))), SCHEMA, key=KEY, config=cfg)
    with pytest.raises(ConfigError, match="kind"):
        fit_neural("gpt", _gate(table, acc), SCHEMA, key=KEY, config=cfg)  # type: ignore[arg-type]


def test_empty_and_tiny_tables_fit_without_error() -> None:
    for n in (0, 3):
        t = encode(_frame(n), SCHEMA)
        acc = Accountant(ApproxDP(1.0, 1e-6))
        cfg = NeuralConfig(epochs=1, batch_size=2, hidden=(8,), latent_dim=2, n_estimate=100, allow_weak=True)
        model = fit_neural("dpvae", _gate(t, acc), SCHEMA, key=KEY, config=cfg)
        assert model.sample(10, np.random.default_rng(0)).shape == (10, 4)


@pytest.mark.parametrize("kind", ["dpvae", "dpgan"])
def test_samples_stay_in_domain_and_decode(models, kind) -> None:  # type: ignore[no-untyped-def]
    model, _ = models[kind]
    codes = model.sample(2000, np.random.default_rng(0))
    sizes = np.array([c.domain_size() for c in SCHEMA.modelled])
    assert codes.shape == (2000, 4) and codes.dtype == np.int64
    assert (codes >= 0).all() and (codes < sizes).all()
    frame = decode(codes, SCHEMA, np.random.default_rng(1))
    assert list(frame.columns) == ["color", "size", "flag", "amount"]
    assert frame["amount"].dropna().between(0, 100).all()
    assert model.sample(0, np.random.default_rng(0)).shape == (0, 4)


@pytest.mark.parametrize("kind", ["dpvae", "dpgan"])
def test_saved_model_reloads_and_same_seed_gives_same_samples(models, kind, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, _ = models[kind]
    save_neural(model, tmp_path)
    assert not any(p.suffix in (".pkl", ".pt", ".pickle") for p in tmp_path.iterdir())
    loaded = load_neural(tmp_path)
    a = loaded.sample(300, np.random.default_rng(42))
    assert np.array_equal(a, loaded.sample(300, np.random.default_rng(42)))
    assert np.array_equal(a, model.sample(300, np.random.default_rng(42)))
    assert not np.array_equal(a, loaded.sample(300, np.random.default_rng(43)))
    assert loaded.estimated_rows == model.estimated_rows
    assert loaded.privacy == dict(model.privacy)


@pytest.mark.parametrize("kind", ["dpvae", "dpgan"])
def test_model_files_do_not_contain_the_canary_row(models, kind, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, _ = models[kind]
    save_neural(model, tmp_path)
    blob = b"".join(p.read_bytes() for p in sorted(tmp_path.iterdir()))
    needles = [
        # b"987654." not b"987654": public floats such as q = 40 / 405 = 0.0987654320987...
        # may contain the digits by chance; the canary number itself has the dot.
        CANARY.encode(), CANARY.encode("utf-16-le"), b"987654.", b"zq81x",
        struct.pack("<d", CANARY_NUMBER), struct.pack("<f", CANARY_NUMBER),
    ]
    for needle in needles:
        assert blob.count(needle) == 0
    assert len(blob) > 1000  # the scan looked at real weights


def test_corrupt_or_foreign_model_dirs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_neural(tmp_path)
    (tmp_path / "model.json").write_text('{"format": "something-else"}')
    with pytest.raises(ConfigError):
        load_neural(tmp_path)


def test_non_table_input_and_mismatched_schema_are_config_errors(table) -> None:  # type: ignore[no-untyped-def]
    acc = Accountant(ApproxDP(1.0, 1e-6))
    with pytest.raises(ConfigError, match="row-level"):
        fit_dpgan(object(), SCHEMA, key=KEY, epsilon=1.0, delta=1e-6)  # type: ignore[arg-type]
    other = parse_schema({"columns": [{"name": "x", "kind": "boolean"}]})
    with pytest.raises(ConfigError, match="domain"):
        fit_neural("dpvae", _gate(table, acc), other, key=KEY, config=SMALL)
    assert acc.ledger == ()  # nothing charged for configuration errors


def test_person_level_gates_and_schemas_are_refused_before_any_charge(table) -> None:  # type: ignore[no-untyped-def]
    acc = Accountant(ApproxDP(1.0, 1e-6))
    person = PrivateData(NumpyBackend(table), acc, sensitivity=3.0)  # max_rows = 3 per person
    with pytest.raises(ConfigError, match="row privacy unit"):
        fit_neural("dpvae", person, SCHEMA, key=KEY, config=SMALL)
    assert acc.ledger == ()


@pytest.mark.parametrize("kind", ["dpvae", "dpgan"])
def test_privacy_record_names_the_three_sources_of_randomness(models, kind) -> None:  # type: ignore[no-untyped-def]
    privacy = models[kind][0].privacy
    assert "noise_rng" not in privacy and "seed" not in privacy
    assert "Opacus" in privacy["dp_noise"] and "secure_mode on" in privacy["dp_noise"]
    assert "Poisson-subsampled Gaussian" in privacy["accounting"]
    assert "per-run secret key" in privacy["training_randomness"]
    assert "never the user's seed" in privacy["training_randomness"]


def _l1_to_marginals(codes: np.ndarray, model: NeuralModel) -> float:
    assert model.marginals is not None
    total = 0.0
    for j, target in enumerate(model.marginals):
        freq = np.bincount(codes[:, j], minlength=target.size) / len(codes)
        total += float(np.abs(freq - target / target.sum()).sum())
    return total


@pytest.mark.parametrize("kind", ["dpvae", "dpgan"])
def test_calibrated_samples_match_the_noisy_marginals_better(models, kind) -> None:  # type: ignore[no-untyped-def]
    model, _ = models[kind]
    assert model.marginals is not None and len(model.marginals) == 4
    for m, size in zip(model.marginals, (5, 3, 2, 3), strict=True):
        assert m.shape == (size,) and (m >= 0).all() and m.sum() == pytest.approx(1, abs=1e-5)
    rng = np.random.default_rng(7)
    raw = model.sample(3000, rng, calibrate=False)
    calibrated = model.sample(3000, rng)
    before, after = _l1_to_marginals(raw, model), _l1_to_marginals(calibrated, model)
    # Resampling 3000 rows leaves only multinomial error (~0.03 per column here).
    assert after < 0.25 and after < 0.5 * before, (before, after)
    # The row estimate comes from the marginals' sums: 401 rows, sigma per sum ~ 20.
    assert abs(model.estimated_rows - 401) < 120
