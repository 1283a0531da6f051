"""The mechanism contract: every mechanism spends exactly its budget (never more), charges
before it measures, keeps samples in the domain, is reproducible in post-processing, and
generates from the transcript alone."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dpsynth import api
from dpsynth.backends.numpy import NumpyBackend
from dpsynth.errors import BudgetExceededError, PrivateAccessError
from dpsynth.mechanisms.aim import AIMConfig
from dpsynth.mechanisms.mst import MSTConfig
from dpsynth.pgm import estimate
from dpsynth.privacy.accountant import Accountant
from dpsynth.privacy.budget import ZCDP, ApproxDP, epsilon_to_rho
from dpsynth.privacy.gate import PrivateData
from dpsynth.privacy.measure import Measurement
from dpsynth.tabular.encoding import encode, read_frame
from dpsynth.tabular.schema import load_schema
from dpsynth.tabular.table import RaisingTable
from tests.paths import ADULT_SAMPLE, ADULT_SCHEMA

SCHEMA = load_schema(ADULT_SCHEMA)
DATA = read_frame(ADULT_SAMPLE, SCHEMA)
SMALL_AIM = AIMConfig(max_rounds=20, round_iters=30, final_iters=200, degree=2)
MECHS = ["independent", "mst", "aim"]


def fit(mechanism: str, df: pd.DataFrame = DATA, **kw: object) -> tuple[api.Synthesizer, NumpyBackend]:
    backend = NumpyBackend(encode(df, SCHEMA))
    opts: dict[str, object] = {"epsilon": 1.0, "delta": 1e-9}
    opts.update(kw)
    synth = api.fit(backend, SCHEMA, mechanism=mechanism, aim=SMALL_AIM, **opts)  # type: ignore[arg-type]
    return synth, backend


@pytest.fixture(scope="module", params=MECHS)
def fitted(request: pytest.FixtureRequest) -> tuple[str, api.Synthesizer, NumpyBackend]:
    synth, backend = fit(request.param)
    return request.param, synth, backend


def test_spends_exactly_the_budget_and_never_more(fitted: tuple[str, api.Synthesizer, NumpyBackend]) -> None:
    _, synth, _ = fitted
    budget_rho = epsilon_to_rho(1.0, 1e-9)
    spent = sum(e.rho or 0.0 for e in synth.privacy.ledger)
    assert spent <= budget_rho * (1 + 1e-12)
    assert spent == pytest.approx(budget_rho, rel=1e-9)
    assert synth.privacy.epsilon is not None and synth.privacy.epsilon <= 1.0 + 1e-12
    assert synth.privacy.rho == pytest.approx(budget_rho, rel=1e-9)


def test_samples_stay_in_domain(fitted: tuple[str, api.Synthesizer, NumpyBackend]) -> None:
    _, synth, _ = fitted
    codes = synth.sample_codes(5000, np.random.default_rng(0))
    sizes = np.array(list(SCHEMA.domain().values()))
    assert codes.shape == (5000, len(sizes))
    assert (codes >= 0).all() and (codes < sizes).all()
    out = synth.sample(2000, seed=1)
    assert list(out.columns) == [c.name for c in SCHEMA.columns]
    assert out["age"].between(17, 100).all()
    assert set(out["sex"]) <= {"Female", "Male"}


def test_same_seed_same_sample(fitted: tuple[str, api.Synthesizer, NumpyBackend]) -> None:
    _, synth, _ = fitted
    pd.testing.assert_frame_equal(synth.sample(500, seed=7), synth.sample(500, seed=7))
    assert not synth.sample(500, seed=7).equals(synth.sample(500, seed=8))


def test_structural_constraints_never_appear(fitted: tuple[str, api.Synthesizer, NumpyBackend]) -> None:
    _, synth, _ = fitted
    out = synth.sample(20000, seed=3)
    assert not ((out["sex"] == "Male") & (out["relationship"] == "Wife")).any()
    assert not ((out["sex"] == "Female") & (out["relationship"] == "Husband")).any()


def test_generation_uses_only_the_transcript(fitted: tuple[str, api.Synthesizer, NumpyBackend], tmp_path: Path) -> None:
    """Post-processing boundary (docs/privacy-model.md).

    After the last measurement the private data may raise on access.
    """
    name, synth, backend = fitted
    backend._table = RaisingTable(tuple(SCHEMA.domain()), tuple(SCHEMA.domain().values()))
    with pytest.raises(PrivateAccessError):
        backend._table.codes  # noqa: B018 - the stand-in really refuses access
    out = synth.sample(1000, seed=0, conditions={"sex": "Female"})
    assert (out["sex"] == "Female").all()
    synth.save(tmp_path / name)
    again = api.load(tmp_path / name)
    pd.testing.assert_frame_equal(again.sample(300, seed=5), synth.sample(300, seed=5))


def test_model_is_a_function_of_the_measurements() -> None:
    synth, _ = fit("mst")
    assert synth.model is not None
    comp = synth.compression
    measurements = list(synth.measurements)
    if comp is not None:  # the model is fitted to the 1-way measurements as compressed
        measurements = [Measurement(m.clique, comp.compress_counts(m.clique, m.values), m.sigma)
                        if len(m.clique) == 1 else m for m in measurements]
    refit = estimate(synth.model.domain, measurements, total=synth.model.total, iters=1000, tol=MSTConfig().tol,
                     constraints=api.schema_constraints(SCHEMA), start="measurements")
    for clique in [("age",), ("sex", "relationship"), ("education", "income-per-year")]:
        np.testing.assert_allclose(refit.marginal(clique), synth.model.marginal(clique), rtol=1e-6, atol=1e-6)


def test_privacy_parameters_do_not_depend_on_n() -> None:
    """Data-independent charges: fit on D and on D plus one row; the charged events are identical."""
    plus_one = pd.concat([DATA, DATA.iloc[[0]]], ignore_index=True)
    for mech in ("independent", "mst"):
        a, _ = fit(mech)
        b, _ = fit(mech, plus_one)
        def strip(s: api.Synthesizer) -> list[tuple[object, ...]]:
            return [
                (e["event"]["type"], e["event"].get("sigma"), e["event"].get("scale"), e["rho"])
                for e in (step.to_json() for step in s.privacy.ledger)
            ]

        assert strip(a) == strip(b)


def test_output_size_is_a_dp_estimate_not_the_exact_count() -> None:
    sizes = {fit("independent")[0].estimated_rows for _ in range(4)}
    assert len(sizes) > 1  # the estimate carries fresh noise each time
    assert all(abs(s - len(DATA)) < 0.2 * len(DATA) for s in sizes)
    synth, _ = fit("independent")
    assert len(synth.sample(seed=0)) == synth.estimated_rows


class _SpyBackend(NumpyBackend):
    def __init__(self, table: object, accountant: Accountant) -> None:
        super().__init__(table)  # type: ignore[arg-type]
        self.accountant = accountant
        self.seen: list[int] = []

    def count(self, cliques):  # type: ignore[no-untyped-def]
        self.seen.append(len(self.accountant.ledger))
        return super().count(cliques)


def test_charge_happens_before_the_count_and_overspend_measures_nothing() -> None:
    acct = Accountant(ZCDP(0.01))
    spy = _SpyBackend(encode(DATA, SCHEMA), acct)
    gate = PrivateData(spy, acct)
    gate.measure([("age",), ("sex",)], sigma=20.0, label="test")
    assert spy.seen == [1, 2]  # each count ran after its own charge
    before = len(acct.ledger)
    with pytest.raises(BudgetExceededError, match="remaining"):
        gate.measure([("race",)], sigma=1.0, label="test")
    with pytest.raises(BudgetExceededError, match="remaining"):
        gate.select([("race",), ("age",)], lambda c, x: 0.0, scale=0.01, label="test")
    assert spy.seen == [1, 2] and len(acct.ledger) == before


def test_released_counts_are_integers() -> None:
    synth, _ = fit("mst")
    assert synth.measurements and all(m.values.dtype == np.int64 for m in synth.measurements)


def test_schema_only_spends_nothing_and_reads_nothing() -> None:
    class Explodes(NumpyBackend):
        def count(self, cliques):  # type: ignore[no-untyped-def]
            raise AssertionError("schema_only must not read data")

    synth = api.fit(Explodes(encode(DATA.head(3), SCHEMA)), SCHEMA, mechanism="schema_only")
    assert synth.privacy.epsilon == 0 and synth.privacy.ledger == ()
    out = synth.sample(3000, seed=0)
    assert not ((out["sex"] == "Male") & (out["relationship"] == "Wife")).any()
    # roughly uniform over the declared categories
    share = out["race"].value_counts(normalize=True)
    assert share.min() > 0.15 and share.max() < 0.25


def test_mst_recovers_strong_pairs_better_than_independent() -> None:
    real = encode(DATA, SCHEMA).codes
    errs = {}
    for mech in ("independent", "mst"):
        synth, _ = fit(mech, epsilon=3.0)
        syn = synth.sample_codes(20000, np.random.default_rng(0))
        sizes = list(SCHEMA.domain().values())
        e = []
        for i, j in itertools.combinations(range(real.shape[1]), 2):
            shape = (sizes[i], sizes[j])
            a = np.bincount(np.ravel_multi_index((real[:, i], real[:, j]), shape), minlength=shape[0] * shape[1])
            b = np.bincount(np.ravel_multi_index((syn[:, i], syn[:, j]), shape), minlength=shape[0] * shape[1])
            e.append(np.abs(a / a.sum() - b / b.sum()).sum())
        errs[mech] = float(np.mean(e))
    assert errs["mst"] < errs["independent"] - 0.02


def test_approx_budget_and_zcdp_budget_agree() -> None:
    rho = epsilon_to_rho(1.0, 1e-9)
    a, _ = fit("independent")
    b, _ = fit("independent", epsilon=None, rho=rho)
    assert a.privacy.rho == pytest.approx(b.privacy.rho, rel=1e-12)
    assert ApproxDP(1.0, 1e-9).epsilon == 1.0


def test_fit_refuses_a_too_large_model_before_reading_any_data() -> None:
    from dpsynth.errors import ModelTooLargeError
    from dpsynth.tabular.schema import parse_schema

    cats = [str(i) for i in range(30000)]
    big = parse_schema({"columns": [{"name": "zip", "kind": "categorical", "categories": cats},
                                    {"name": "street name", "kind": "categorical", "categories": cats}]})

    class Explodes(NumpyBackend):
        def count(self, cliques):  # type: ignore[no-untyped-def]
            raise AssertionError("data must not be read")

    with pytest.raises(ModelTooLargeError, match="'street name'"):
        api.fit(Explodes(encode(pd.DataFrame({"zip": ["1"], "street name": ["2"]}), big)), big,
                mechanism="mst", epsilon=1.0, delta=1e-9)
