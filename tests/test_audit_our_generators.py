"""The audit module run against dpsynth's own generators through the Python API.

A TAPAS-style shadow-model attack retrains the generator with and without an outlier
target. Against a DP generator its empirical epsilon lower bound must stay below the claimed
epsilon; against a generator that leaks the target (a planted bug: the target's row appended
to the output) the same attack must light up.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpsynth import api
from dpsynth.audit.distance import MixedEncoder
from dpsynth.audit.membership import shadow_model_mia
from dpsynth.audit.targets import select_outlier_targets
from dpsynth.mechanisms.mst import MSTConfig
from dpsynth.tabular.encoding import read_frame
from dpsynth.tabular.schema import parse_schema
from tests.paths import ADULT_SAMPLE, ADULT_SCHEMA

COLS = ["age", "sex", "race", "education", "income-per-year"]


@pytest.fixture(scope="module")
def setting() -> tuple[object, pd.DataFrame, pd.DataFrame]:
    from dpsynth.tabular.schema import load_schema

    full = load_schema(ADULT_SCHEMA)
    data = full.to_dict()
    data["columns"] = [c for c in data["columns"] if c["name"] in COLS]
    data["constraints"] = []
    schema = parse_schema(data)
    df = read_frame(ADULT_SAMPLE, schema)[COLS].iloc[:800].reset_index(drop=True)
    for c in ("age",):
        df[c] = pd.to_numeric(df[c])
    t = int(select_outlier_targets(MixedEncoder(df).encode(df), 1)[0])
    return schema, df.drop(index=t).reset_index(drop=True), df.iloc[[t]].reset_index(drop=True)


def _generator(schema: object, *, leak: bool):  # type: ignore[no-untyped-def]
    def fit_sample(train: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        synth = api.fit(train, schema, mechanism="mst", epsilon=1.0, delta=1e-6,  # type: ignore[arg-type]
                        mst=MSTConfig(iters=30))
        out = synth.sample(len(train), seed=int(rng.integers(1 << 31)))
        out["age"] = pd.to_numeric(out["age"])
        return pd.concat([out, train.tail(1)], ignore_index=True) if leak else out
    return fit_sample


@pytest.mark.slow
def test_shadow_attack_on_mst_stays_below_claimed_epsilon(setting) -> None:  # type: ignore[no-untyped-def]
    schema, aux, target = setting
    res = shadow_model_mia(_generator(schema, leak=False), aux, target, rng=np.random.default_rng(0),
                           n_shadow=60, train_size=100)
    assert res.epsilon.epsilon <= 1.0


@pytest.mark.slow
def test_shadow_attack_catches_a_leaking_generator(setting) -> None:  # type: ignore[no-untyped-def]
    schema, aux, target = setting
    res = shadow_model_mia(_generator(schema, leak=True), aux, target, rng=np.random.default_rng(0),
                           n_shadow=60, train_size=100)
    assert res.auc >= 0.9
