"""Report files, JSON shape, and column names with spaces, parentheses and unicode."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dpsynth.audit import AuditResult, run_audit, write_audit_report
from dpsynth.errors import SchemaError
from tests.paths import ADULT_SAMPLE

QIS = ["age", "workclass", "education", "marital-status", "sex", "race"]
SECRETS = ["income-per-year", "hours-per-week"]
ODD = {"age": "age (years)", "workclass": "work class", "education": "éducation",
       "marital-status": "état civil`'\"", "sex": "sex == 'F'", "race": "race/ethnie 人",
       "income-per-year": "income (>50K?)", "hours-per-week": "hours per week [h]"}


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    df = pd.read_csv(ADULT_SAMPLE)
    perm = np.random.default_rng(0).permutation(len(df))
    real = df.iloc[perm[:600]].reset_index(drop=True)
    hold = df.iloc[perm[600:1200]].reset_index(drop=True)
    syn = pd.concat([real.iloc[:300], df.iloc[perm[1200:1500]]], ignore_index=True)
    return real, hold, syn


def audit(frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame], names: dict[str, str]
          ) -> AuditResult:
    real, hold, syn = (f.rename(columns=names) for f in frames)
    return run_audit(real, syn, holdout=hold, quasi_identifiers=[names.get(c, c) for c in QIS],
                     secrets=[names.get(c, c) for c in SECRETS], n_attacks=200,
                     numeric_ranges={names.get("age", "age"): (17.0, 90.0)},
                     rng=np.random.default_rng(42))


def strip_names(js: dict[str, object]) -> str:
    text = json.dumps(js, sort_keys=True, ensure_ascii=False)
    for plain, odd in ODD.items():
        text = text.replace(json.dumps(odd, ensure_ascii=False)[1:-1], plain)
    return text


def test_odd_column_names_give_identical_results(frames: tuple[pd.DataFrame, ...]) -> None:
    plain = audit(frames, {}).to_json()
    odd = audit(frames, ODD).to_json()
    assert plain["singling_out"]["risk"]["attack_rate"] > 0.3  # half the rows are copies
    assert strip_names(odd) == strip_names(plain)


def test_missing_column_raises(frames: tuple[pd.DataFrame, ...]) -> None:
    real, hold, syn = frames
    with pytest.raises(SchemaError, match="'sex' is missing from the synthetic"):
        run_audit(real, syn.drop(columns=["sex"]), holdout=hold, quasi_identifiers=QIS,
                  secrets=SECRETS, rng=np.random.default_rng(0))
    with pytest.raises(SchemaError, match="'nope'"):
        run_audit(real, syn, holdout=hold, quasi_identifiers=[*QIS, "nope"], secrets=SECRETS,
                  rng=np.random.default_rng(0))


def test_json_shape_and_report_files(frames: tuple[pd.DataFrame, ...], tmp_path: Path) -> None:
    res = audit(frames, ODD)
    js = res.to_json()
    assert js["confidential"] is True
    assert "not guarantees" in js["disclaimer"] and "confidential" in js["disclaimer"].lower()
    m = js["membership"]
    assert 0.0 <= m["auc"] <= 1.0 and len(m["auc_ci"]) == 2 and m["epsilon_lower_bound"] >= 0
    for key in ("linkability", "singling_out", "inference"):
        r = js[key]["risk"]
        assert {"value", "ci", "attack_rate", "baseline_rate", "control_rate"} <= set(r)
        assert r["ci"][0] <= r["value"] <= r["ci"][1]
    assert isinstance(js["k_anonymity"]["k"], int)
    assert isinstance(js["policy"]["passed"], bool) and isinstance(js["policy"]["failures"], list)
    out = tmp_path / "audit out"
    write_audit_report(res, out)
    assert sorted(p.name for p in out.iterdir()) == ["audit.html", "audit.json"]
    assert json.loads((out / "audit.json").read_text(encoding="utf-8")) == json.loads(
        json.dumps(js))
    html = (out / "audit.html").read_text(encoding="utf-8")
    assert html.count("CONFIDENTIAL") >= 2 and "NOT differentially" in html
    assert "<svg" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.IGNORECASE)
    assert "<script" not in html and "<link" not in html
    assert "état civil" in html or "&#39;" in html


def test_public_api_is_pinned() -> None:
    import inspect

    from dpsynth import audit

    assert sorted(audit.__all__) == sorted([
        "AuditResult", "DISCLAIMER", "Policy", "PolicyOutcome", "evaluate_policy",
        "load_policy", "run_audit", "write_audit_report"])
    params = inspect.signature(audit.run_audit).parameters
    assert list(params) == ["real", "synthetic", "holdout", "quasi_identifiers", "secrets",
                            "numeric_ranges", "policy", "manifest", "n_attacks", "rng", "options",
                            "progress"]
    assert all(p.kind is p.KEYWORD_ONLY for name, p in params.items()
               if name not in ("real", "synthetic"))


def test_tiny_holdout_skips_membership_with_warning(frames: tuple[pd.DataFrame, ...]) -> None:
    real, hold, syn = frames
    res = run_audit(real, syn, holdout=hold.iloc[:5], quasi_identifiers=QIS, secrets=SECRETS,
                    n_attacks=50, rng=np.random.default_rng(3)).to_json()
    assert res["membership"]["auc"] is None
    assert any("fewer than 8 holdout" in w for w in res["membership"]["warnings"])
    assert res["linkability"]["risk"]["n_control"] == 5
