"""Self-audits (audits/): correct mechanisms pass, every planted privacy bug is caught.

The fast subset runs here (B4 primitives, D1 for MST, D2 at rho = 0.5); the full-size
campaigns (D1 for AIM, D2 at rho = 0.02 with 2 x 20 000 replicas) are marked slow.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audits import all_ok, run_campaigns
from audits.__main__ import main
from audits.campaigns import transcript
from audits.campaigns.common import VariantResult, mu_holdout, noise_bug
from dpsynth.privacy import noise

Results = dict[str, list[VariantResult]]


def _check(results: Results) -> None:
    for rs in results.values():
        for r in rs:
            if r.expect == "pass":
                assert r.lower_bound <= r.claim, (r.campaign, r.variant, r.lower_bound)
                assert r.verdict == "PASS"
            elif r.expect == "caught":
                assert r.lower_bound > r.claim, (r.campaign, r.variant, r.lower_bound)
                assert r.verdict == "CAUGHT"
            else:  # covered: another campaign gates this bug
                assert r.details["covered_by"] in {"d2_measure"}
    assert all_ok(results)


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Results, Path]:
    out = tmp_path_factory.mktemp("audits")
    return run_campaigns(fast=True, results_dir=out, seed=7), out


def test_fast_subset_passes_correct_and_catches_planted(fast_run: tuple[Results, Path]) -> None:
    res = fast_run[0]
    assert set(res) == {"b4_primitives", "d1_mst", "d2_measure", "neighbours"}
    _check(res)
    variants = {(r.campaign, r.variant) for rs in res.values() for r in rs}
    for v in ("domain_from_data", "no_noise", "half_sigma", "correct"):
        assert ("d1_mst", v) in variants
    assert ("d2_measure", "half_sigma@rho=0.5") in variants
    planted = [r for rs in res.values() for r in rs if r.expect == "caught"]
    assert len(planted) >= 6


def test_results_files_and_claims(fast_run: tuple[Results, Path]) -> None:
    out = fast_run[1]
    doc = json.loads((out / "d1_mst.json").read_text())
    assert doc["ok"] and doc["alpha"] == 1e-3 and doc["mode"] == "fast"
    for v in doc["variants"]:
        assert v["claim"] == pytest.approx(0.79431, abs=1e-4)  # docs/self-audits.md, "Measured numbers"
        assert v["details"]["delta"] == 1e-5
    d2 = json.loads((out / "d2_measure.json").read_text())["variants"]
    correct = next(v for v in d2 if v["variant"].startswith("correct"))
    assert correct["claim"] == pytest.approx(np.sqrt(2 * 0.5 * 2 / 3))  # 2/3 of rho measured
    bug = next(v for v in d2 if v["variant"].startswith("half_sigma"))
    assert bug["claim"] == pytest.approx(1.0)  # sqrt(2 rho_total)


def test_noise_bug_patch_is_scoped_and_restored() -> None:
    original = noise.discrete_gaussian
    zeros = np.zeros(4000, dtype=np.int64)
    with noise_bug("no_noise"):
        assert noise.discrete_gaussian is not original
        assert np.all(noise.discrete_gaussian(zeros, 5.0) == 0)
    with noise_bug("half_sigma"):
        sd = float(np.std(noise.discrete_gaussian(zeros, 8.0)))
    assert noise.discrete_gaussian is original
    assert 3.6 < sd < 4.4  # sigma 8 halved; SE of the sd ~ 0.045


def test_domain_bug_worlds_differ_only_by_the_target() -> None:
    (d0, s0), (d1, s1) = transcript._worlds(domain_bug=True)
    assert len(d1) == len(d0) + 1
    assert s0.domain() != s1.domain()  # the drafted domain reveals the target
    (p0, q0), (p1, q1) = transcript._worlds(domain_bug=False)
    assert q0.domain() == q1.domain() == transcript.public_schema().domain()
    assert len(p0) == 2 and len(p1) == 3


def test_mu_holdout_null_scores_give_zero_bound() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=4000), rng.normal(size=4000)
    mu, det = mu_holdout(a, b, rng=rng)
    assert mu < 0.2 and det["n_eval_member"] == 2000
    mu_sep, _ = mu_holdout(rng.normal(2.0, 1.0, 4000), b, rng=rng)
    assert mu_sep == pytest.approx(1.8, abs=0.2)  # true mu = 2; a lower bound at alpha = 1e-3


def test_cli_rejects_unknown_campaign(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "--only", "nope"])
    assert exc.value.code == 2


@pytest.mark.slow
def test_full_campaigns(tmp_path: Path) -> None:
    results = run_campaigns(fast=False, results_dir=tmp_path, seed=11)
    assert set(results) == {"b4_primitives", "d1_mst", "d1_aim", "d2_measure", "neighbours"}
    _check(results)
    d2 = {r.variant: r for r in results["d2_measure"]}
    assert d2["half_sigma@rho=0.02"].lower_bound > np.sqrt(2 * 0.02)
