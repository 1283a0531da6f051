"""Audit roles: drafted proposals, one run without roles, undefined headlines, progress, 3 decimals."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dpsynth.audit import run_audit
from dpsynth.audit.report import format_number, format_risk, render_audit_html
from dpsynth.audit.runner import AuditOptions
from dpsynth.cli import main
from dpsynth.tabular.draft import draft_schema
from dpsynth.tabular.draft_roles import propose_roles
from tests.paths import ADULT_SAMPLE, ADULT_SCHEMA

LONG_FLOAT = re.compile(r"\d\.\d{4,}")


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """600 training rows, 600 holdout rows, and a 'release' half copied from training."""
    df = pd.read_csv(ADULT_SAMPLE, dtype=str, keep_default_na=False)
    perm = np.random.default_rng(0).permutation(len(df))
    d = tmp_path_factory.mktemp("roles")
    real, hold = df.iloc[perm[:600]], df.iloc[perm[600:1200]]
    syn = pd.concat([real.iloc[:300], df.iloc[perm[1200:1500]]])
    out = {"real": d / "real.csv", "hold": d / "hold.csv", "syn": d / "syn.csv"}
    for key, frame in (("real", real), ("hold", hold), ("syn", syn)):
        frame.to_csv(out[key], index=False)
    spec = yaml.safe_load(ADULT_SCHEMA.read_text(encoding="utf-8"))
    for col in spec["columns"]:
        col.pop("role", None)
    out["schema"] = d / "no_roles.yaml"
    out["schema"].write_text(yaml.safe_dump(spec), encoding="utf-8")
    return out


def test_draft_proposes_qis_and_secrets_marked_drafted() -> None:
    schema, notes = draft_schema(pd.read_csv(ADULT_SAMPLE))
    roles = {c.name: c.role.value for c in schema.columns}
    assert roles["income-per-year"] == "sensitive"
    for qi in ("age", "sex", "race", "native-country", "marital-status", "education"):
        assert roles[qi] == "quasi_identifier", qi
    assert roles["capital-gain"] == roles["fnlwgt"] == "none"
    for c in schema.columns:
        if c.role.value != "none":
            assert c.sources["role"].value == "private_inferred"
    assert any(n.startswith("audit roles drafted") and "income-per-year" in n for n in notes)


def test_propose_roles_by_name_and_kind() -> None:
    specs = [{"name": "zipCode", "kind": "categorical"}, {"name": "Diagnosis", "kind": "categorical"},
             {"name": "admitted", "kind": "datetime"}, {"name": "annual_salary", "kind": "numeric"},
             {"name": "patient_id", "kind": "identifier"}, {"name": "wage_age_ratio", "kind": "numeric"},
             {"name": "average", "kind": "numeric"}, {"name": "sex", "kind": "boolean", "role": "none"}]
    notes: list[str] = []
    roles = {s["name"]: s.get("role", "none") for s in propose_roles(specs, notes)}
    assert roles == {"zipCode": "quasi_identifier", "Diagnosis": "sensitive",
                     "admitted": "quasi_identifier", "annual_salary": "sensitive",
                     "patient_id": "none", "wage_age_ratio": "sensitive", "average": "none",
                     "sex": "quasi_identifier"}
    assert len(notes) == 1
    assert propose_roles([{"name": "x", "kind": "numeric"}], notes) == [{"name": "x", "kind": "numeric"}]


def test_no_roles_runs_membership_and_lists_skips_in_one_run(
        split: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["audit", str(split["real"]), str(split["syn"]), "--schema", str(split["schema"]),
               "--holdout", str(split["hold"]), "--n-attacks", "100", "--seed", "1",
               "--out", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert rc == 1  # the closed gate: capped measures that were not run fail, saying why
    js = json.loads((tmp_path / "a" / "audit.json").read_text(encoding="utf-8"))
    assert js["membership"]["auc"] is not None
    assert js["singling_out"]["risk"]["value"] is not None
    assert set(js["skipped"]) == {"linkability", "inference", "k_anonymity", "exact_copies"}
    assert js["linkability"]["risk"]["skipped"] is True
    assert "--qi" in js["skipped"]["linkability"] and "--secret" in js["skipped"]["inference"]
    assert "skipped measures" in err and "--qi" in err and "--secret" in err
    assert any("--secret" in f for f in js["policy"]["failures"])
    assert not LONG_FLOAT.search(err), err
    assert "undefined" not in err


def test_cli_flags_and_progress_and_three_decimals(
        split: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["audit", str(split["real"]), str(split["syn"]), "--schema", str(ADULT_SCHEMA),
               "--holdout", str(split["hold"]), "--n-attacks", "100", "--seed", "1",
               "--link-a", "age,sex", "--link-b", "race,native-country", "--so-cols",
               "age,education,occupation", "--confidence", "0.9", "--ci", "wilson-centre",
               "--progress", "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert rc in (0, 1)
    js = json.loads((tmp_path / "b" / "audit.json").read_text(encoding="utf-8"))
    assert js["linkability"]["columns_a"] == ["age", "sex"]
    assert js["linkability"]["columns_b"] == ["race", "native-country"]
    assert js["singling_out"]["columns"] == ["age", "education", "occupation"]
    assert js["linkability"]["risk"]["confidence"] == 0.9
    assert js["meta"]["risk_estimator"] == "wilson-centre"
    assert js["meta"]["numeric_match"] == "relative"  # Anonymeter's rule, the default
    assert "membership: distance attack" in err and "inference" in err  # progress rows
    summary = err[err.index("CONFIDENTIAL"):]
    assert not LONG_FLOAT.search(summary), summary
    assert main(["audit", str(split["real"]), str(split["syn"]), "--schema", str(ADULT_SCHEMA),
                 "--link-a", "age", "--out", str(tmp_path / "c")]) == 2


class Recorder:
    def __init__(self) -> None:
        self.planned: list[str] = []
        self.ran: list[str] = []

    def begin(self, steps: Sequence[str]) -> None:
        self.planned = list(steps)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.ran.append(name)
        yield


def test_undefined_linkability_is_said_and_does_not_fail() -> None:
    df = pd.read_csv(ADULT_SAMPLE)
    df["const_a"], df["const_b"] = "x", "y"  # every record ties: control success is 1
    real, hold, syn = df.iloc[:500], df.iloc[500:1000], df.iloc[1000:1500]
    rec = Recorder()
    res = run_audit(real, syn, holdout=hold, quasi_identifiers=["age", "sex"],
                    secrets=["income-per-year"], n_attacks=100, rng=np.random.default_rng(3),
                    options=AuditOptions(link_columns=(["const_a"], ["const_b"])), progress=rec)
    js = res.to_json()
    link = js["linkability"]["risk"]
    assert link["undefined"] is True and link["value"] is None
    assert format_risk(link).startswith("undefined: ")
    assert not any("linkability" in f for f in js["policy"]["failures"])
    assert any(s.startswith("linkability risk: undefined") for s in js["policy"]["skipped"])
    assert "undefined: " in render_audit_html(res)
    assert rec.ran == [s for s in rec.planned if s in rec.ran] and "linkability" in rec.ran
    assert set(rec.ran) == set(rec.planned)


def test_format_number() -> None:
    assert format_number(0.123456789) == "0.123"
    assert format_number([0.0, 1 / 3]) == "[0.000, 0.333]"
    assert format_number(7) == "7" and format_number(None) == "n/a"
    assert format_number(float("nan")) == "n/a"


def test_numeric_match_flag_is_recorded_and_a_bad_value_is_one_line(
        split: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["audit", str(split["real"]), str(split["syn"]), "--schema", str(ADULT_SCHEMA), "--holdout",
            str(split["hold"]), "--n-attacks", "50", "--seed", "1", "--secret", "age"]
    assert main([*args, "--numeric-match", "nearby", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "numeric_match" in err and "relative" in err and "Traceback" not in err
    assert main([*args, "--numeric-match", "scale", "--out", str(tmp_path / "s")]) in (0, 1)
    js = json.loads((tmp_path / "s" / "audit.json").read_text(encoding="utf-8"))
    assert js["meta"]["numeric_match"] == "scale"
    assert js["inference"]["per_secret"]["age"]["n_attacks"] == 50
