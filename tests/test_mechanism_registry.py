"""The mechanism registry: a mechanism defined here, registered once, is accepted by plan,
fit, release and the CLI with no other edit; unknown names are refused with the list of
registered ones; and plan reports the noise scales AIM's fit actually charges."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

import dpsynth
from dpsynth import api
from dpsynth.cli import main
from dpsynth.errors import ConfigError
from dpsynth.mechanisms import registry
from dpsynth.mechanisms.aim import AIMConfig, fit_aim
from dpsynth.mechanisms.base import MarginalFit, sigma_for_rho
from dpsynth.mechanisms.plan import plan_fit
from dpsynth.mechanisms.registry import Constraints, MechanismPlan, ModelSize
from dpsynth.pgm import Domain, estimate, estimate_total
from dpsynth.privacy.accountant import Accountant
from dpsynth.privacy.budget import ZCDP, epsilon_to_rho
from dpsynth.privacy.events import GaussianEvent
from dpsynth.privacy.gate import PrivateData
from dpsynth.privacy.guarantee import PrivacyStatement, marginal_statement
from dpsynth.privacy.randomness import MechanismKey
from dpsynth.tabular.encoding import read_frame
from dpsynth.tabular.schema import Schema, load_schema
from tests.paths import ADULT_SAMPLE, ADULT_SCHEMA

SCHEMA = load_schema(ADULT_SCHEMA)
DATA = read_frame(ADULT_SAMPLE, SCHEMA)
BUILTIN = ("schema_only", "independent", "mst", "aim", "dpvae", "dpgan")


# ---------------------------------------------------------------- the toy mechanism
@dataclass(frozen=True, kw_only=True)
class HalvesConfig:
    """Options of the toy: mirror-descent iterations."""

    iters: int = 30


class Halves:
    """Every 1-way marginal measured twice, each time with half the budget."""

    name = "halves"
    reads_data = True
    needs_approx_dp = False
    config_type = HalvesConfig

    def plan(self, schema: Schema, rho: float, config: HalvesConfig) -> MechanismPlan:
        d = len(schema.domain())
        sigma = sigma_for_rho(rho / 2, count=d, sensitivity=float(schema.privacy_unit.sensitivity_rows))
        return MechanismPlan([{"what": "every 1-way marginal, twice", "count": 2 * d, "sigma": sigma}], [])

    def size(self, schema: Schema, config: HalvesConfig) -> ModelSize:
        cells = sum(schema.domain().values())
        return ModelSize(cells, cells, cells, cells)

    def fit(self, gate: PrivateData | None, schema: Schema, *, rho: float, config: HalvesConfig,
            key: MechanismKey, constraints: Constraints, delta: float) -> MarginalFit:
        assert gate is not None
        domain = Domain.from_dict(gate.domain)
        ones = [(a,) for a in domain.attrs]
        sigma = sigma_for_rho(rho / 2, count=len(ones), sensitivity=gate.sensitivity)
        measured = (gate.measure(ones, sigma=sigma, label="halves first")
                    + gate.measure(ones, sigma=sigma, label="halves second"))
        total = estimate_total(measured)
        model = estimate(domain, measured, total=total, iters=config.iters, constraints=constraints)
        return MarginalFit(self.name, domain, tuple(measured), (), model, total, {"sigma": sigma})

    def statement(self, result: MarginalFit) -> PrivacyStatement:
        return marginal_statement(self.name)


@pytest.fixture
def halves() -> Iterator[Halves]:
    mech = Halves()
    registry.register(mech)
    try:
        yield mech
    finally:
        registry.unregister(mech.name)


# ---------------------------------------------------------------- the registry itself
def test_builtins_are_registered_in_order_without_importing_torch() -> None:
    assert registry.names()[:6] == BUILTIN
    assert api.MECHANISMS == BUILTIN
    code = ("import sys; from dpsynth.mechanisms import registry; "
            "assert registry.get('dpvae').config_type.__name__ == 'NeuralConfig'; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_unknown_names_are_refused_everywhere_with_the_registered_names(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listed = str(list(registry.names()))
    with pytest.raises(ConfigError, match="mechanism 'magic' must be one of") as info:
        registry.get("magic")
    assert listed in str(info.value)
    with pytest.raises(ConfigError, match=r"'magic' must be one of \['schema_only', 'independent'"):
        plan_fit(SCHEMA, mechanism="magic", epsilon=1.0)
    with pytest.raises(ConfigError, match="'magic' must be one of"):
        api.fit(DATA, SCHEMA, mechanism="magic", epsilon=1.0)
    with pytest.raises(ConfigError, match="'magic' must be one of"):
        dpsynth.release(DATA, SCHEMA, mechanism="magic", epsilon=1.0, out=tmp_path / "b")
    assert not (tmp_path / "b").exists()
    assert main(["plan", "-s", str(ADULT_SCHEMA), "-m", "magic", "--epsilon", "1"]) == 2
    assert "aim" in capsys.readouterr().err


def test_register_refuses_non_mechanisms_and_taken_names(halves: Halves) -> None:
    with pytest.raises(ConfigError, match="does not implement the Mechanism protocol"):
        registry.register(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'halves' is already registered"):
        registry.register(Halves())


def test_wrong_options_type_is_refused_before_any_spend(halves: Halves) -> None:
    with pytest.raises(ConfigError, match="options of mechanism 'halves' must be a HalvesConfig, not AIMConfig"):
        api.fit(DATA, SCHEMA, mechanism="halves", epsilon=1.0, options=AIMConfig())
    with pytest.raises(ConfigError, match="'independent' takes no options"):
        api.fit(DATA, SCHEMA, mechanism="independent", epsilon=1.0, options=HalvesConfig())


# ---------------------------------------------------------------- a toy, end to end
def test_plan_uses_the_registered_mechanisms_plan(halves: Halves) -> None:
    plan = plan_fit(SCHEMA, mechanism="halves", epsilon=1.0, delta=1e-9).to_json()
    d = len(SCHEMA.domain())
    rho = epsilon_to_rho(1.0, 1e-9)
    assert plan["mechanism"] == "halves"
    assert plan["measurements"] == [{"what": "every 1-way marginal, twice", "count": 2 * d,
                                     "sigma": pytest.approx(sigma_for_rho(rho / 2, count=d))}]
    assert plan["max_model_cells"] == sum(SCHEMA.domain().values())


def test_fit_runs_the_toy_and_spends_exactly_the_budget(halves: Halves) -> None:
    synth = api.fit(DATA, SCHEMA, mechanism="halves", epsilon=1.0, options=HalvesConfig(iters=20))
    d = len(SCHEMA.domain())
    ledger = synth.privacy.ledger
    assert synth.mechanism == "halves" and synth.guarantee.mechanism == "halves"
    assert len(ledger) == 2 * d and {e.label.split()[1] for e in ledger} == {"first", "second"}
    assert synth.privacy.rho == pytest.approx(epsilon_to_rho(1.0, 1e-9), rel=1e-9)
    assert synth.privacy.epsilon is not None and synth.privacy.epsilon <= 1.0
    assert abs(synth.estimated_rows - len(DATA)) < 300  # sigma ~ 32 per measurement, 30 of them
    rows = synth.sample(50, seed=1)
    assert list(rows.columns) == list(DATA.columns) and len(rows) == 50


def test_release_accepts_the_toy_and_its_options(halves: Halves, tmp_path: Path) -> None:
    result = dpsynth.release(DATA, SCHEMA, mechanism="halves", options=HalvesConfig(iters=10),
                             epsilon=1.0, rows=40, seed=3, out=tmp_path / "bundle")
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text(encoding="utf-8"))
    assert result.mechanism == "halves" and result.rows == 40
    assert json.dumps(manifest).count('"halves"') >= 1
    assert len(pd.read_csv(tmp_path / "bundle" / "synthetic.csv")) == 40


def test_release_passes_options_to_builtin_mechanisms(tmp_path: Path) -> None:
    """Issue 14 item 2: ``release`` could not pass mechanism options."""
    from dpsynth.mechanisms.mst import MSTConfig

    result = dpsynth.release(DATA, SCHEMA, mechanism="mst", options=MSTConfig(iters=7, compress=False),
                             epsilon=1.0, rows=20, out=tmp_path / "b")
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text(encoding="utf-8"))
    assert result.mechanism == "mst"
    assert '"iters": 7' in json.dumps(manifest)


def test_cli_plan_and_fit_accept_the_toy(halves: Halves, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "-s", str(ADULT_SCHEMA), "-m", "halves", "--epsilon", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mechanism"] == "halves"
    out = tmp_path / "model"
    code = main(["fit", str(ADULT_SAMPLE), "-s", str(ADULT_SCHEMA), "-m", "halves", "--epsilon", "1",
                 "--out", str(out), "--json"])
    assert code == 0
    res = json.loads(capsys.readouterr().out)
    assert res["mechanism"] == "halves" and res["epsilon"] <= 1.0
    assert api.load(out).mechanism == "halves"


# ---------------------------------------------------------------- the drift bug (issue 14 item 2)
def _aim_charges(rho: float, config: AIMConfig) -> tuple[list[float], int]:
    acct = Accountant(ZCDP(rho))
    from dpsynth.backends.numpy import NumpyBackend
    from dpsynth.tabular.encoding import encode

    gate = PrivateData(NumpyBackend(encode(DATA, SCHEMA)), acct)
    fitted = fit_aim(gate, rho=rho, config=config)
    assert sum(e.rho for e in acct.ledger) == pytest.approx(rho, rel=1e-9)
    sigmas = [e.event.sigma for e in acct.ledger
              if isinstance(e.event, GaussianEvent) and e.event.label.startswith("aim 1-way")]
    assert len(sigmas) == len(SCHEMA.domain())
    return sigmas, int(fitted.params["rounds"])


@pytest.mark.parametrize("max_rounds", [2, 40])
def test_plan_reports_the_1_way_noise_aim_charges(max_rounds: int) -> None:
    """With 15 columns and 2 rounds, AIM's 1-way marginals cannot be paid at the round scale
    (15 * 0.9 > 2): the fit gives them the whole budget, and the plan must say so."""
    rho = 0.05
    config = AIMConfig(max_rounds=max_rounds, degree=2, round_iters=5, final_iters=5)
    plan = plan_fit(SCHEMA, mechanism="aim", rho=rho, aim=config)
    charged, rounds = _aim_charges(rho, config)
    assert charged == [pytest.approx(plan.measurements[0]["sigma"], rel=1e-12)] * len(charged)
    tiny = len(SCHEMA.domain()) * config.alpha > max_rounds
    assert len(plan.measurements) == (1 if tiny else 2)
    if tiny:
        assert charged[0] == pytest.approx(sigma_for_rho(rho, count=len(charged)))
        assert rounds == 0 and any("too small for AIM's rounds" in n for n in plan.notes)
    else:
        assert rounds >= 1
