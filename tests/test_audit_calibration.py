"""G1/G4/G5 calibration of the audit attacks on UCI Adult: null, copy and copy+jitter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpsynth.audit import run_audit
from dpsynth.audit.distance import MixedEncoder
from dpsynth.audit.kanonymity import k_anonymity
from dpsynth.audit.membership import distance_mia
from tests.paths import ADULT_SAMPLE

QIS = ["age", "workclass", "education", "marital-status", "occupation", "race", "sex",
       "native-country"]
SECRETS = ["income-per-year", "hours-per-week"]


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return pd.read_csv(ADULT_SAMPLE)


def split(df: pd.DataFrame, rng: np.random.Generator, n: int = 1000
          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    perm = rng.permutation(len(df))
    return (df.iloc[perm[:n]].reset_index(drop=True),
            df.iloc[perm[n:2 * n]].reset_index(drop=True))


def null_generator(public: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Ignores the training data: independent columns from a fixed public distribution."""
    return pd.DataFrame({c: public[c].to_numpy()[rng.integers(0, len(public), n)]
                         for c in public.columns})


def run_null_membership(adult: pd.DataFrame, runs: int, seed: int) -> tuple[int, int]:
    """Runs where the AUC interval contains 0.5, and where epsilon_lb == 0."""
    rng = np.random.default_rng(seed)
    covered = zero_eps = 0
    for _ in range(runs):
        real, hold = split(adult, rng)
        syn = null_generator(adult, 1000, rng)
        enc = MixedEncoder(real, [hold, syn])
        r, h, s = enc.encode(real), enc.encode(hold), enc.encode(syn)
        res = distance_mia(r.take(rng.choice(1000, 500, replace=False)),
                           h.take(rng.choice(1000, 500, replace=False)), s, rng=rng)
        covered += res.auc_ci.lo <= 0.5 <= res.auc_ci.hi
        zero_eps += res.epsilon.epsilon == 0.0
    return covered, zero_eps


def test_null_generator_membership_20_runs(adult: pd.DataFrame) -> None:
    covered, zero_eps = run_null_membership(adult, 20, seed=1)
    assert covered >= 19 and zero_eps >= 19


@pytest.mark.slow
def test_null_generator_membership_100_runs(adult: pd.DataFrame) -> None:
    covered, zero_eps = run_null_membership(adult, 100, seed=2)
    assert covered >= 99
    assert zero_eps >= 99


def test_null_generator_full_audit_low_risks(adult: pd.DataFrame) -> None:
    rng = np.random.default_rng(3)
    real, hold = split(adult, rng)
    res = run_audit(real, null_generator(adult, 1000, rng), holdout=hold,
                    quasi_identifiers=QIS, secrets=SECRETS, rng=rng).to_json()
    m = res["membership"]
    assert m["auc_ci"][0] <= 0.5 <= m["auc_ci"][1]
    assert m["epsilon_lower_bound"] == 0.0
    for key in ("singling_out", "linkability", "inference"):
        assert res[key]["risk"]["value"] < 0.1, key
        assert res[key]["risk"]["ci"][0] == 0.0, key
    assert res["exact_copies"]["rare"] == 0
    assert res["policy"]["passed"] is True


def test_copy_generator_is_caught(adult: pd.DataFrame) -> None:
    rng = np.random.default_rng(4)
    real, hold = split(adult, rng)
    res = run_audit(real, real.copy(), holdout=hold, quasi_identifiers=QIS, secrets=SECRETS,
                    rng=rng).to_json()
    assert res["membership"]["auc"] >= 0.99
    assert res["membership"]["epsilon_lower_bound"] > 2.0
    # An exact copy is always among the tied nearest records (any-tie measure); the
    # tie-broken headline picks one of many tied records and can miss it.
    assert res["linkability"]["any_tie"]["attack_rate"] >= 0.95
    assert res["singling_out"]["risk"]["value"] >= 0.8
    assert res["singling_out"]["multivariate"]["attack_rate"] >= 0.95
    assert res["inference"]["risk"]["attack_rate"] >= 0.95
    assert res["exact_copies"]["real_records_copied"] == len(real)
    assert res["policy"]["passed"] is False


def jitter_copy(real: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    syn = real.copy()
    for c, sd in (("age", 1.0), ("hours-per-week", 1.0), ("fnlwgt", 2000.0),
                  ("education-num", 0.5)):
        syn[c] = np.round(syn[c] + rng.normal(0.0, sd, len(syn))).astype(int)
    return syn.sample(frac=1.0, random_state=int(rng.integers(1 << 31))).reset_index(drop=True)


def test_copy_with_jitter_meets_k10_but_fails_membership(adult: pd.DataFrame) -> None:
    rng = np.random.default_rng(5)
    real, hold = split(adult, rng)
    syn = jitter_copy(real, rng)
    qis = ["sex", "income-per-year"]
    assert k_anonymity(syn, qis) >= 10
    res = run_audit(real, syn, holdout=hold, quasi_identifiers=qis,
                    secrets=["relationship"], rng=rng).to_json()
    assert res["k_anonymity"]["k"] >= 10
    m = res["membership"]
    assert m["auc_ci"][0] > 0.8
    assert m["epsilon_lower_bound"] > 1.0
    assert res["policy"]["passed"] is False


def test_without_holdout_reports_missing_control(adult: pd.DataFrame) -> None:
    rng = np.random.default_rng(6)
    real, _ = split(adult, rng, n=600)
    res = run_audit(real, real.copy(), holdout=None, quasi_identifiers=QIS, secrets=SECRETS,
                    n_attacks=200, rng=rng).to_json()
    assert res["membership"]["auc"] is None
    assert any("no holdout" in w for w in res["membership"]["warnings"])
    for key in ("singling_out", "linkability", "inference"):
        r = res[key]["risk"]
        assert r["control_rate"] is None and r["has_control"] is False
        assert any("no holdout" in w for w in r["warnings"])
    assert res["policy"]["passed"] is False
    assert any("membership AUC could not be computed" in f for f in res["policy"]["failures"])
