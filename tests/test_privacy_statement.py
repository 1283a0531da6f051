"""Statements say exactly what the code does (issue 12, findings 3, 5 and 7).

- A marginal release's manifest names zCDP and OpenDP's exact noise; a DP-SGD release's names
  Opacus' floating-point noise and RDP accounting.
- The seed's role is stated the same way everywhere, and the seed reaches no engine: each
  fit draws a fresh in-mechanism key, whatever the seed.
- Schema facts declared as derived under DP are charged to the ledger with their rho.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpsynth import api
from dpsynth.bundle.manifest import RowsChoice, build_manifest
from dpsynth.bundle.statement import privacy_statement
from dpsynth.errors import BudgetExceededError, ConfigError
from dpsynth.privacy.guarantee import SEED_NEVER_TOUCHES, PrivacyStatement, dpsgd_statement, marginal_statement
from dpsynth.privacy.randomness import MechanismKey
from dpsynth.tabular.schema import parse_schema

SCHEMA = parse_schema({"columns": [
    {"name": "a", "kind": "categorical", "categories": ["x", "y", "z"]},
    {"name": "b", "kind": "boolean"},
]})
rng = np.random.default_rng(0)
DATA = pd.DataFrame({"a": rng.choice(["x", "y", "z"], 400), "b": rng.choice(["true", "false"], 400)})


def _manifest(synth: api.Synthesizer, seed: int | None = 3) -> dict[str, object]:
    return build_manifest(
        synth,
        rows=RowsChoice(count=synth.estimated_rows, source="dp_estimate", dp_estimate=synth.estimated_rows),
        seed=seed,
        allow_private_schema=False,
        requested={"epsilon": 1.0, "delta": 1e-6, "rho": None},
        outputs=[],
        release_id="r",
        created_utc="t",
    )


def test_marginal_release_states_zcdp_opendp_and_the_seed_role() -> None:
    synth = api.fit(DATA, SCHEMA, mechanism="mst", epsilon=1.0, delta=1e-6, seed=3)
    m = _manifest(synth)
    p, g = m["privacy"], m["generator"]  # type: ignore[index]
    assert "zCDP" in p["variant"] and "OpenDP" in p["noise"] and "discrete Gaussian" in p["noise"]
    assert "secret" in p["in_mechanism_randomness"]
    assert p["seed_never_touches"] == list(SEED_NEVER_TOUCHES)
    assert "contribution bounding" in g["seed_note"] and "DP-SGD" in g["seed_note"]
    text = privacy_statement(m)
    assert "## Randomness: what the seed controls" in text
    assert "never reaches" in text and "Opacus" not in p["noise"]
    # The statement travels with a saved model.
    assert synth.guarantee == synth.guarantee and synth.guarantee.to_json() == marginal_statement("mst").to_json()


def test_saved_models_keep_their_statement(tmp_path: object) -> None:
    synth = api.fit(DATA, SCHEMA, mechanism="independent", epsilon=1.0, delta=1e-6)
    path = synth.save(tmp_path / "m")  # type: ignore[operator]
    assert api.load(path).guarantee.to_json() == synth.guarantee.to_json()


@pytest.mark.neural
def test_dpsgd_release_names_float_noise_and_rdp() -> None:
    pytest.importorskip("opacus")
    from dpsynth.neural import NeuralConfig

    cfg = NeuralConfig(epochs=1, batch_size=40, hidden=(8,), latent_dim=2, threads=1, allow_weak=True)
    synth = api.fit(DATA, SCHEMA, mechanism="dpvae", epsilon=2.0, delta=1e-6, neural=cfg)
    p = _manifest(synth)["privacy"]  # type: ignore[index]
    assert "Renyi" in p["variant"] and "RDP" in p["accounting"]
    assert "floating-point" in p["noise"] and "Opacus" in p["noise"]
    assert "zCDP)," not in p["variant"]
    assert "Mersenne" in p["in_mechanism_randomness"] and "secret" in p["in_mechanism_randomness"]
    assert any("floating-point" in c for c in p["caveats"])
    assert synth.guarantee.to_json() == dpsgd_statement("dpvae", secure_mode=cfg.secure_mode).to_json()


def test_statement_round_trips_and_refuses_empty_fields() -> None:
    s = marginal_statement("aim")
    assert PrivacyStatement.from_json(s.to_json()) == s
    with pytest.raises(ConfigError, match="noise"):
        PrivacyStatement(mechanism="x", variant="v", accounting="a", noise=" ", in_mechanism_randomness="r")


def test_the_seed_reaches_no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two fits with the same published seed bound with different, fresh secret keys."""
    from dpsynth.backends import factory

    keys: list[MechanismKey] = []
    real = factory.open_backend

    def spy(engine: str, source: object, schema: object, *, key: MechanismKey | None = None, **kw: object) -> object:
        assert key is not None
        keys.append(key)
        return real(engine, source, schema, key=key, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(factory, "open_backend", spy)
    for _ in range(2):
        api.fit(DATA, SCHEMA, mechanism="independent", epsilon=1.0, delta=1e-6, seed=0)
    assert len(keys) == 2
    assert keys[0].hex_for("contribution-bounding") != keys[1].hex_for("contribution-bounding")
    assert "<secret>" in repr(keys[0])


DP_SCHEMA = parse_schema({"columns": [
    {"name": "a", "kind": "categorical", "categories": ["x", "y", "z"], "source": "dp", "dp_rho": 0.01},
    {"name": "b", "kind": "boolean"},
]})


def test_dp_schema_facts_are_charged_to_the_ledger() -> None:
    synth = api.fit(DATA, DP_SCHEMA, mechanism="independent", rho=0.05)
    ledger = [step.to_json() for step in synth.privacy.ledger]
    first = ledger[0]
    assert "schema facts of 'a'" in first["event"]["label"] and first["event"]["rho"] == pytest.approx(0.01)
    assert sum(e["event"]["rho"] for e in ledger) == pytest.approx(0.05)  # schema + model = the budget
    assert any("dp_rho" in c for c in synth.privacy.caveats)
    with pytest.raises(BudgetExceededError):
        api.fit(DATA, DP_SCHEMA, mechanism="independent", rho=0.005)
    with pytest.raises(ConfigError, match="schema_only"):
        api.fit(DATA, DP_SCHEMA, mechanism="schema_only")


def test_randomness_types_keep_their_roles() -> None:
    from dpsynth.privacy.randomness import PostProcessingSeed

    a, b = MechanismKey.fresh(), MechanismKey.fresh()
    assert a.hex_for("x") != b.hex_for("x") and a != b  # fresh secrets; equality is identity
    assert MechanismKey.for_audit("t").hex_for("x") == MechanismKey.for_audit("t").hex_for("x")
    assert a.hex_for("bounding") != a.hex_for("training")  # independent sub-keys per purpose
    assert a.hex_for("x") not in repr(a) and "secret" in repr(a)
    # The user's seed drives post-processing, reproducibly; numpy integers are accepted.
    draws = [PostProcessingSeed(np.int64(5)).generator().integers(0, 10**9) for _ in range(2)]
    assert draws[0] == draws[1]
    with pytest.raises(ConfigError, match="seed"):
        PostProcessingSeed(True)
    synth = api.fit(DATA, SCHEMA, mechanism="independent", epsilon=1.0, delta=1e-6)
    pd.testing.assert_frame_equal(synth.sample(50, seed=3), synth.sample(50, seed=3))
