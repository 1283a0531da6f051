"""DOMIAS and shadow-model membership attacks: positive and null calibration."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpsynth.audit.distance import MixedEncoder
from dpsynth.audit.membership import distance_mia, domias_mia, shadow_model_mia
from dpsynth.audit.targets import select_outlier_targets
from tests.paths import ADULT_SAMPLE

COLS = ["age", "workclass", "education", "sex", "hours-per-week", "income-per-year"]


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return pd.read_csv(ADULT_SAMPLE)[COLS]


def test_domias_copy_and_null(adult: pd.DataFrame) -> None:
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(adult))
    real, hold = adult.iloc[perm[:800]], adult.iloc[perm[800:1600]]
    null = adult.iloc[rng.integers(0, len(adult), 800)]
    enc = MixedEncoder(real, [hold, null])
    r, h, n = enc.encode(real), enc.encode(hold), enc.encode(null)
    members, nonmembers, ref = r.take(np.arange(400)), h.take(np.arange(400)), \
        h.take(np.arange(400, 800))
    copy = domias_mia(members, nonmembers, r, ref, rng=rng)
    assert copy.auc_ci.lo > 0.5 and copy.auc > 0.6
    nul = domias_mia(members, nonmembers, n, ref, rng=rng)
    assert nul.auc_ci.lo <= 0.5 <= nul.auc_ci.hi and nul.epsilon.epsilon == 0.0
    dist = distance_mia(members, nonmembers, r, rng=rng)
    assert dist.auc > 0.85  # coarse columns: some held-out rows equal real rows


def test_shadow_model_attack(adult: pd.DataFrame) -> None:
    rng = np.random.default_rng(1)
    pool = adult.iloc[:600].reset_index(drop=True)
    enc = MixedEncoder(pool)
    t = int(select_outlier_targets(enc.encode(pool), 1)[0])
    target = pool.iloc[[t]].reset_index(drop=True)
    aux = pool.drop(index=t).reset_index(drop=True)
    public = adult.iloc[1000:]

    def copy_gen(train: pd.DataFrame, g: np.random.Generator) -> pd.DataFrame:
        return train.sample(frac=1.0, random_state=int(g.integers(1 << 31)))

    def null_gen(train: pd.DataFrame, g: np.random.Generator) -> pd.DataFrame:
        return public.iloc[g.integers(0, len(public), len(train))]

    hit = shadow_model_mia(copy_gen, aux, target, rng=rng, n_shadow=40, train_size=60)
    assert hit.auc >= 0.99 and hit.name == "shadow"
    miss = shadow_model_mia(null_gen, aux, target, rng=rng, n_shadow=40, train_size=60)
    assert miss.auc_ci.lo <= 0.5 <= miss.auc_ci.hi and miss.epsilon.epsilon == 0.0
