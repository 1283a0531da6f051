"""The share of synthetic records nearer to a training record than to any holdout record."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audits.campaigns.calibration import jitter_copy, perturbed_copy
from dpsynth.audit.distance import MixedEncoder
from dpsynth.audit.policy import Policy, PolicyEvidence, evaluate_policy
from dpsynth.audit.runner import closer_to_real, run_audit


def _population(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """A low-entropy mixed table, like the calibration's DoctorVisits: many repeated records."""
    age = rng.integers(18, 80, n)
    return pd.DataFrame({"age": age, "income": np.round(rng.gamma(2.0, 0.4, n) + age / 100, 2),
                         "sex": rng.choice(["f", "m"], n), "illness": rng.poisson(1.2, n),
                         "visits": rng.poisson(0.3, n), "insured": rng.choice(["yes", "no"], n, p=[0.3, 0.7]),
                         "region": rng.choice(list("abcde"), n)})


def _share(train: pd.DataFrame, hold: pd.DataFrame, syn: pd.DataFrame, seed: int = 0) -> float:
    enc = MixedEncoder(train, [syn, hold], columns=list(train.columns))
    out = closer_to_real(enc.encode(train), enc.encode(syn), enc.encode(hold), rng=np.random.default_rng(seed))
    assert out["closer_to_real_ci"][0] <= out["closer_to_real_share"] <= out["closer_to_real_ci"][1]
    return float(out["closer_to_real_share"])


@pytest.mark.parametrize("seed", range(3))
def test_fresh_rows_score_a_half_and_edited_copies_score_more(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pop = _population(9000, rng)
    train, hold, fresh = pop.iloc[:3000], pop.iloc[3000:6000].reset_index(drop=True), pop.iloc[6000:]
    train = train.reset_index(drop=True)
    honest = _share(train, hold, fresh.reset_index(drop=True))
    assert abs(honest - 0.5) < 0.04  # 2000 sampled records: sd about 0.011
    assert _share(train, hold, perturbed_copy(train, rng)) > honest + 0.05
    assert _share(train, hold, jitter_copy(train, rng)) > 0.7
    assert _share(train, hold, train) > 0.99  # at distance 0 from itself; a holdout twin ties (counts a half)


def test_the_audit_reports_it_and_a_policy_can_cap_it() -> None:
    rng = np.random.default_rng(5)
    pop = _population(4000, rng)
    train, hold = pop.iloc[:2000].reset_index(drop=True), pop.iloc[2000:].reset_index(drop=True)
    res = run_audit(train, perturbed_copy(train, rng), holdout=hold, quasi_identifiers=["age", "sex", "region"],
                    secrets=["illness"], n_attacks=100, rng=np.random.default_rng(0),
                    policy=Policy(max_closer_to_real_share_upper=0.55))
    copies = res.to_json()["exact_copies"]
    assert copies["closer_to_real_share"] > 0.55 and copies["closer_to_real_rows"] == 2000
    assert any("closer to real" in f for f in res.policy.failures)  # type: ignore[union-attr]
    assert Policy().max_closer_to_real_share_upper == 0.57  # a default gate, see docs/auditing.md


def test_a_cap_without_a_holdout_fails_closed() -> None:
    out = evaluate_policy(PolicyEvidence(), Policy(max_closer_to_real_share_upper=0.6, max_epsilon=None,
                                                   max_delta=None, max_membership_auc_upper=None,
                                                   max_singling_out_risk_upper=None,
                                                   max_linkability_risk_upper=None,
                                                   max_inference_risk_upper=None,
                                                   forbid_rare_exact_copies=False))
    assert not out.passed and "could not be computed" in out.failures[0]


def test_a_small_holdout_does_not_bias_the_share() -> None:
    rng = np.random.default_rng(11)
    pop = _population(8000, rng)
    train, hold, fresh = pop.iloc[:5000], pop.iloc[5000:6000], pop.iloc[6000:]
    enc = MixedEncoder(train, [fresh, hold], columns=list(train.columns))
    out = closer_to_real(enc.encode(train), enc.encode(fresh), enc.encode(hold), rng=np.random.default_rng(0))
    assert out["closer_to_real_reference_rows"] == 1000
    assert abs(out["closer_to_real_share"] - 0.5) < 0.04  # 0.82 unsubsampled (5,000 real, 1,000 holdout)
