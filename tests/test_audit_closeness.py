"""The share of synthetic records nearer to a training record than to any holdout record."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audits.campaigns.calibration import jitter_copy, perturbed_copy
from dpsynth.audit.distance import MixedEncoder
from dpsynth.audit.policy import NEAR_CAP, Policy, PolicyEvidence, evaluate_policy
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
    assert abs(honest - 0.5) < 0.04  # 3,000 records: sd about 0.01
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
    assert Policy().max_closer_to_real_share_upper is None  # reported; the near share is the default gate
    assert Policy().max_closer_to_real_near_share_upper == NEAR_CAP  # see docs/auditing.md, "Calibration"
    assert copies["closer_to_real_near_share"] > copies["closer_to_real_share"]  # copies show near the pool
    near = run_audit(train, perturbed_copy(train, rng), holdout=hold, quasi_identifiers=["age", "sex", "region"],
                     secrets=["illness"], n_attacks=100, rng=np.random.default_rng(0))
    assert any("near synthetic records" in f for f in near.policy.failures)  # type: ignore[union-attr]


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


@pytest.mark.parametrize("heavy_ties", [True, False])
def test_the_permutation_interval_covers_a_half_and_its_error_matches_the_real_spread(heavy_ties: bool) -> None:
    """Fresh rows: the interval holds 0.5 about 95% of the time, and the permutation standard
    error matches the share's spread over 60 independent tables, which a binomial error does
    not: far too wide with many ties (ties score exactly one half), too narrow without them."""
    covered, near_covered, shares, ses, ties = 0, 0, [], [], []
    for seed in range(60):
        rng = np.random.default_rng([606, seed])
        pop = _population(3000, rng)
        if heavy_ties:
            pop = pop[["sex", "illness", "visits", "insured", "region"]]
        enc = MixedEncoder(pop.iloc[:1000], [pop.iloc[1000:2000], pop.iloc[2000:]], columns=list(pop.columns))
        out = closer_to_real(enc.encode(pop.iloc[:1000]), enc.encode(pop.iloc[2000:]),
                             enc.encode(pop.iloc[1000:2000]), rng=rng)
        lo, hi = out["closer_to_real_ci"]
        covered += lo <= 0.5 <= hi
        near_covered += out["closer_to_real_near_ci"][0] <= 0.5 <= out["closer_to_real_near_ci"][1]
        shares.append(out["closer_to_real_share"])
        ses.append(out["closer_to_real_se"])
        ties.append(out["closer_to_real_ties"])
    assert covered >= 52  # 95% nominal over 60 trials: fewer than 52 has probability < 0.5%
    assert near_covered >= 52
    spread, se = float(np.std(shares, ddof=1)), float(np.mean(ses))
    assert 0.75 < se / spread < 1.33  # measured: 0.98 with heavy ties, 0.93 without
    binomial = 0.5 / np.sqrt(1000)
    if heavy_ties:
        assert np.mean(ties) > 0.8 and se < 0.6 * binomial  # measured: 0.0066 against 0.0158
    else:
        assert np.mean(ties) < 0.05 and spread > 1.05 * binomial  # measured: 0.0184 against 0.0158


def test_the_relabelling_reproduces_the_observed_share() -> None:
    """The pooled k-neighbour shortcut behind the permutations gives the exact share when the
    labels are the real ones."""
    from dpsynth.audit.closeness import _shares
    from dpsynth.audit.distance import EncodedTable, nearest_neighbors

    rng = np.random.default_rng(8)
    pop = _population(3000, rng)
    enc = MixedEncoder(pop.iloc[:1000], [pop.iloc[1000:2000], pop.iloc[2000:]], columns=list(pop.columns))
    r, h, s = (enc.encode(pop.iloc[a:a + 1000]) for a in (0, 1000, 2000))
    exact = closer_to_real(r, s, h, rng=rng, n_permutations=0)["closer_to_real_share"]
    pool = EncodedTable(np.vstack([r.num, h.num]), np.vstack([r.cat, h.cat]), r.num_columns, r.cat_columns,
                        r.scales)
    idx, d = nearest_neighbors(s, pool, k=32, rng=rng)
    assert _shares(d, (idx < 1000)[None])[0] == pytest.approx(exact, abs=1e-12)


def test_all_synthetic_rows_are_used_up_to_the_cap() -> None:
    rng = np.random.default_rng(2)
    pop = _population(9000, rng)
    enc = MixedEncoder(pop.iloc[:3000], [pop.iloc[3000:6000], pop.iloc[6000:]], columns=list(pop.columns))
    tr, ho, sy = enc.encode(pop.iloc[:3000]), enc.encode(pop.iloc[3000:6000]), enc.encode(pop.iloc[6000:])
    assert closer_to_real(tr, sy, ho, rng=rng)["closer_to_real_rows"] == 3000
    assert closer_to_real(tr, sy, ho, rng=rng, max_rows=500)["closer_to_real_rows"] == 500


@pytest.mark.parametrize("seed", range(3))
def test_the_near_share_sees_an_edited_copy_far_more_clearly_than_the_share(seed: int) -> None:
    """The quarter of synthetic records nearest the pool is where copies sit: on a low-entropy
    table the near share of a 30%-perturbed copy stands many standard errors above one half,
    while fresh rows stay at one half."""
    rng = np.random.default_rng([77, seed])
    pop = _population(9000, rng)[["sex", "illness", "visits", "insured", "region", "age"]]
    train, hold = pop.iloc[:3000].reset_index(drop=True), pop.iloc[3000:6000].reset_index(drop=True)
    enc = MixedEncoder(train, [hold, pop.iloc[6000:]], columns=list(pop.columns))
    r, h = enc.encode(train), enc.encode(hold)
    fresh = closer_to_real(r, enc.encode(pop.iloc[6000:]), h, rng=rng)
    edited = closer_to_real(r, enc.encode(perturbed_copy(train, rng)), h, rng=rng)
    assert fresh["closer_to_real_near_ci"][0] <= 0.5 <= fresh["closer_to_real_near_ci"][1] or \
        abs(fresh["closer_to_real_near_share"] - 0.5) < 3 * fresh["closer_to_real_near_se"]
    z_all = (edited["closer_to_real_share"] - 0.5) / edited["closer_to_real_se"]
    z_near = (edited["closer_to_real_near_share"] - 0.5) / edited["closer_to_real_near_se"]
    assert z_near > 1.1 * z_all and edited["closer_to_real_near_ci"][0] > 0.55
