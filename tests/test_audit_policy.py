"""Policy loading and pass/fail decisions."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dpsynth.audit import AuditResult, Policy, evaluate_policy, load_policy, run_audit
from dpsynth.errors import ConfigError
from tests.paths import AUDIT_POLICIES


def test_default_yaml_equals_builtin_default() -> None:
    assert load_policy(AUDIT_POLICIES / "default.yaml") == Policy()
    strict = load_policy(AUDIT_POLICIES / "strict.yaml")
    assert strict.manifest_required and strict.max_epsilon == 1.0


def test_bad_policy_files(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text("max_epsilonn: 1\n")
    with pytest.raises(ConfigError, match="unknown policy fields"):
        load_policy(p)
    p.write_text("max_epsilon: -1\n")
    with pytest.raises(ConfigError, match="max_epsilon"):
        load_policy(p)
    p.write_text("max_epsilon: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_policy(p)


@pytest.fixture(scope="module")
def null_result() -> AuditResult:
    rng = np.random.default_rng(11)
    n = 600
    cols = {
        "a": lambda m: rng.integers(18, 90, m),
        "b": lambda m: rng.choice(list("abcdefgh"), m),
        "c": lambda m: rng.choice(list("xyz"), m),
        "s": lambda m: rng.choice(["yes", "no"], m),
    }

    def draw(m: int) -> pd.DataFrame:
        return pd.DataFrame({k: f(m) for k, f in cols.items()})

    return run_audit(draw(n), draw(n), holdout=draw(n), quasi_identifiers=["a", "b", "c"],
                     secrets=["s"], n_attacks=300, rng=rng)


def test_null_release_passes_default_with_manifest_checks(null_result: AuditResult) -> None:
    out = evaluate_policy(null_result, Policy())
    assert out.passed, out.failures
    assert any("privacy.epsilon" in s for s in out.skipped)
    ok = dataclasses.replace(null_result, manifest={"privacy": {"epsilon": 1.0, "delta": 1e-7}})
    assert evaluate_policy(ok, Policy()).passed
    big = dataclasses.replace(null_result, manifest={"privacy": {"epsilon": 12.0, "delta": 1e-7}})
    out = evaluate_policy(big, Policy())
    assert not out.passed
    assert out.failures == ["manifest privacy.epsilon (12.0) exceeds the cap (10.0)"]


def test_required_manifest_missing_fails(null_result: AuditResult) -> None:
    out = evaluate_policy(null_result, Policy(manifest_required=True))
    assert not out.passed and len(out.failures) == 2


def test_caps_on_evidence(null_result: AuditResult) -> None:
    js = null_result.to_json()
    tight = Policy(max_membership_auc_upper=js["membership"]["max_auc_ci"][1] - 1e-6)
    out = evaluate_policy(null_result, tight)
    assert not out.passed and out.failures[0].startswith("membership AUC upper bound")
    zero = Policy(max_linkability_risk_upper=0.0, max_inference_risk_upper=0.0,
                  max_singling_out_risk_upper=0.0)
    failures = evaluate_policy(null_result, zero).failures
    assert sum("risk upper bound" in f for f in failures) >= 2
    assert not evaluate_policy(null_result, Policy(min_k=1000)).passed
    assert evaluate_policy(null_result, Policy(min_k=1)).passed
    assert not evaluate_policy(null_result, Policy(max_membership_epsilon_lb=-0.0 + 0.0,
                                                   max_membership_auc_upper=0.0)).passed


def test_undefined_risk_is_skipped_not_failed_and_not_run_says_why() -> None:
    from dpsynth.audit.policy import PolicyEvidence

    ev = PolicyEvidence(membership_max_auc_ci=(0.4, 0.6), singling_out_ci=(0.0, 0.1),
                        linkability_ci=None, inference_ci=None, rare_exact_copies=None,
                        closer_to_real_ci=(0.45, 0.55), closer_to_real_near_ci=(0.45, 0.6),
                        undefined={"linkability": "undefined: the control always succeeds"},
                        not_run={"inference": "needs a secret column: pass --secret",
                                 "exact_copies": "pass --qi"})
    out = evaluate_policy(ev, Policy())
    assert out.passed is False
    assert any(f.startswith("inference risk could not be computed (needs a secret column: pass "
                            "--secret)") for f in out.failures)
    assert any("--qi" in f for f in out.failures)
    assert not any("linkability" in f for f in out.failures)
    assert "linkability risk: undefined: the control always succeeds" in out.skipped
    relaxed = Policy(max_inference_risk_upper=None, forbid_rare_exact_copies=False)
    assert evaluate_policy(ev, relaxed).passed is True


def test_rare_copy_allowance_is_a_calibrated_binomial_test() -> None:
    from scipy.stats import binom

    from dpsynth.audit.runner import rare_copy_allowance

    assert rare_copy_allowance(0, 0, 100) == 0 and rare_copy_allowance(3, 100, 0) == 0
    # 0 holdout copies, equal rare counts: k copies by chance with probability 2**-k.
    assert rare_copy_allowance(0, 1000, 1000, alpha=1e-3) == 9  # 2**-9 >= 1e-3 > 2**-10
    assert rare_copy_allowance(0, 1000, 1000) == 6  # the default level, 1e-2
    for h in (0, 3, 20):
        k = rare_copy_allowance(h, 2000, 1000, alpha=1e-3)
        p = 1000 / 3000
        assert binom.sf(k - 1, k + h, p) >= 1e-3 > binom.sf(k, k + 1 + h, p)
    # Under the null the gate rarely fires: simulate honest releases at equal copy rates.
    rng = np.random.default_rng(0)
    fires = sum(int(rng.binomial(800, 0.01)) > rare_copy_allowance(int(rng.binomial(800, 0.01)), 800, 800)
                for _ in range(2000))
    assert fires <= 40  # at most about 1% of 2,000 honest audits
