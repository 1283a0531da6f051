"""DP-SGD that knows its limits: the noise-to-signal check at plan and fit time, its calibration
points, the recommendation and the opt-out (docs/neural.md, "When DP-SGD is refused")."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import dpsynth
from dpsynth.errors import ConfigError
from dpsynth.mechanisms.plan import plan_fit
from dpsynth.neural.limits import MAX_NOISE_TO_SIGNAL, WeakDPSGDError, epsilon_to_pass, expected_plan
from dpsynth.neural.train import NeuralConfig
from dpsynth.tabular.schema import load_schema

pytestmark = pytest.mark.neural
DATA = Path(__file__).parent / "data"
SCHEMA = load_schema(DATA / "adult-coded-domain.json")


def _ratio(rows: int, epsilon: float) -> float:
    plan = expected_plan(NeuralConfig(), rows=rows, epsilon=epsilon, delta=1e-9)
    return plan.noise_multiplier / plan.expected_batch_size


def test_calibration_points_fall_on_the_right_sides() -> None:
    # The benchmark's Adult training split (~26,000 rows: 12 steps an epoch, 17 epochs to reach
    # 200 steps) is accepted at eps 3 and 1 ...
    assert _ratio(26_048, 3.0) == pytest.approx(1.41e-3, rel=0.03)
    assert _ratio(26_048, 1.0) == pytest.approx(3.75e-3, rel=0.03)
    assert _ratio(26_048, 1.0) < MAX_NOISE_TO_SIGNAL
    # ... yrbss (10,856 rows) at eps 3, where 200 steps beat independent columns, too ...
    assert _ratio(10_856, 3.0) == pytest.approx(3.15e-3, rel=0.03)
    # ... and the 3,500-row table at eps 1 (AUC 0.48 with 10 steps) is refused.
    assert _ratio(3_500, 1.0) == pytest.approx(2.70e-2, rel=0.03)
    assert _ratio(3_500, 1.0) > MAX_NOISE_TO_SIGNAL


def test_default_epochs_rise_to_the_minimum_steps_and_explicit_epochs_are_kept() -> None:
    plan = expected_plan(NeuralConfig(), rows=10_856, epsilon=3.0, delta=1e-9)  # 5 steps an epoch
    assert (plan.epochs, plan.steps) == (40, 200)
    big = expected_plan(NeuralConfig(), rows=269_420, epsilon=3.0, delta=1e-9)  # 131 steps an epoch
    assert (big.epochs, big.steps) == (10, 1_310)  # the default epochs already reach 200 steps
    explicit = expected_plan(NeuralConfig(epochs=10), rows=10_856, epsilon=3.0, delta=1e-9)
    assert (explicit.epochs, explicit.steps) == (10, 50)
    assert NeuralConfig(min_steps=0).epoch_rule() == (10, 0)
    # More steps at the same budget mean more noise per step.
    assert plan.noise_multiplier > explicit.noise_multiplier
    with pytest.raises(ConfigError, match="min_steps"):
        NeuralConfig(min_steps=-1)


def test_plan_refuses_a_weak_fit_and_recommends_mst_aim_and_an_epsilon() -> None:
    with pytest.raises(WeakDPSGDError) as err:
        plan_fit(SCHEMA, mechanism="dpvae", epsilon=1.0, rows=3_500)
    msg = str(err.value)
    assert "mst or aim" in msg and "allow-weak-neural" in msg and "0.027" in msg
    eps = epsilon_to_pass(NeuralConfig(), rows=3_500, delta=1e-9, start=1.0)
    assert eps is not None and f"epsilon >= {eps:g}" in msg
    assert _ratio(3_500, eps) <= MAX_NOISE_TO_SIGNAL < _ratio(3_500, eps - 0.1)


def test_plan_accepts_adult_at_eps_3_and_allow_weak_overrides() -> None:
    for mech in ("dpvae", "dpgan"):
        notes = plan_fit(SCHEMA, mechanism=mech, epsilon=3.0, rows=26_048).notes
        assert any("noise-to-signal 0.0014" in n for n in notes)
    weak = plan_fit(SCHEMA, mechanism="dpvae", epsilon=1.0, rows=3_500, options=NeuralConfig(allow_weak=True))
    assert any("accepted by allow_weak" in n for n in weak.notes)
    declared = NeuralConfig(n_estimate=3_500)  # a declared n in the options is checked too
    with pytest.raises(WeakDPSGDError):
        plan_fit(SCHEMA, mechanism="dpgan", epsilon=1.0, options=declared)
    unknown = plan_fit(SCHEMA, mechanism="dpvae", epsilon=1.0).notes
    assert any("declare the row count" in n for n in unknown)


def test_fit_refuses_after_the_row_estimate_before_training(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("opacus")
    df = pd.read_csv(DATA / "adult-coded.csv", nrows=3_500)
    schema = tmp_path / "domain.json"
    schema.write_text((DATA / "adult-coded-domain.json").read_text())
    ledger = tmp_path / "ledger.json"
    with pytest.raises(WeakDPSGDError, match=r"dpvae would be too noisy.*training was not"):
        dpsynth.fit(df, schema, mechanism="dpvae", epsilon=1.0, delta=1e-9, ledger_path=ledger)
    assert "DP-SGD training" not in ledger.read_text()  # the training charge was never made


def test_cli_plan_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from dpsynth.cli import main

    args = ["plan", "--schema", str(DATA / "adult-coded-domain.json"), "--mechanism", "dpvae",
            "--epsilon", "1", "--rows", "3500", "--max-memory", "1G"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "too noisy" in err and len(err.strip().splitlines()) == 1
    assert main([*args, "--allow-weak-neural", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["max_memory_mib"] == 1024.0 and any("allow_weak" in n for n in out["notes"])
