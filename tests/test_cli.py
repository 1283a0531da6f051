"""The command line: the §6 contract, exit codes, JSON on stdout, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dpsynth
from dpsynth.cli import main
from tests.paths import ADULT_SAMPLE as SAMPLE
from tests.paths import ADULT_SCHEMA as SCHEMA


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_public_api_is_pinned() -> None:
    # the order is ruff's RUF022 sort (constants, then classes, then functions)
    assert dpsynth.__all__ == [
        "ZCDP", "Accountant", "ApproxDP", "PureDP", "Schema", "Synthesizer", "__version__",
        "fit", "load", "load_bundle", "load_schema", "release", "verify_bundle",
    ]
    for name in dpsynth.__all__:
        assert getattr(dpsynth, name) is not None


def test_console_script_version_and_help() -> None:
    out = subprocess.run([sys.executable, "-m", "dpsynth.cli", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"dpsynth {dpsynth.__version__}"
    helptext = subprocess.run(
        [sys.executable, "-m", "dpsynth.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for cmd in ("schema", "validate", "budget", "plan", "fit", "sample", "audit"):
        assert cmd in helptext


def test_budget_json_golden(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["budget", "--rho", "0.02", "--delta", "1e-5", "--json"], capsys)
    assert code == 0 and json.loads(out)["epsilon"] == pytest.approx(0.79431, abs=1e-4)
    code, out, _ = run(["budget", "--epsilon", "1", "--delta", "1e-9", "--json"], capsys)
    res = json.loads(out)
    assert code == 0 and res["epsilon"] <= 1.0 and res["rho"] == pytest.approx(0.014973, rel=1e-3)


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["budget", "--epsilon", "-1", "--delta", "1e-9"], 2, "epsilon (-1.0) must be > 0"),
        (["budget", "--delta", "1e-9"], 2, "exactly one"),
        (["plan", "-s", "missing.yaml", "--epsilon", "1"], 4, "missing.yaml"),
        (["fit", "nowhere.csv", "-s", str(SCHEMA), "--epsilon", "1", "--out", "x"], 2, "does not exist"),
        (
            ["fit", str(SAMPLE), "-s", str(SCHEMA), "-m", "magic", "--epsilon", "1", "--out", "x"],
            2,
            "mechanism 'magic'",
        ),
    ],
)
def test_errors_are_one_line_with_exit_codes(args: list[str], code: int, fragment: str,
                                             capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    got, out, err = run(args, capsys)
    assert got == code
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err
    assert out == ""


def test_schema_error_exit_code_4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("columns:\n  - {name: age, kind: numeric, dtype: int, bounds: [9, 1]}\n")
    code, _, err = run(["schema", "validate", str(bad)], capsys)
    assert code == 4 and "age" in err


def test_plan_refuses_a_huge_model_before_reading_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = tmp_path / "big.yaml"
    cats = [str(i) for i in range(20000)]
    big.write_text(json.dumps({"columns": [
        {"name": "zip code", "kind": "categorical", "categories": cats},
        {"name": "street", "kind": "categorical", "categories": cats}]}))
    code, _, err = run(["plan", "-s", str(big), "-m", "mst", "--epsilon", "1"], capsys)
    assert code == 2 and "'zip code'" in err and "'street'" in err


def test_fit_sample_round_trip_with_conditions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model"
    code, out, _ = run(["fit", str(SAMPLE), "-s", str(SCHEMA), "-m", "mst", "--epsilon", "2", "--delta", "1e-9",
                        "--out", str(model), "--json"], capsys)
    assert code == 0
    res = json.loads(out)
    assert res["epsilon"] <= 2.0 and res["mechanism"] == "mst"
    csv = tmp_path / "s.csv"
    code, _, _ = run(["sample", str(model), "--rows", "400", "--condition", "income-per-year=>50K",
                      "--condition", "sex=Female", "--seed", "3", "--out", str(csv)], capsys)
    assert code == 0
    df = pd.read_csv(csv)
    assert len(df) == 400 and (df["income-per-year"] == ">50K").all() and (df["sex"] == "Female").all()
    pq = tmp_path / "s.parquet"
    assert run(["sample", str(model), "--rows", "50", "--seed", "3", "--out", str(pq)], capsys)[0] == 0
    assert len(pd.read_parquet(pq)) == 50
    # refusing to overwrite keeps the first model
    code, _, err = run(["fit", str(SAMPLE), "-s", str(SCHEMA), "--epsilon", "1", "--out", str(model)], capsys)
    assert code == 2 and "already exists" in err


def test_private_schema_is_refused_unless_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    drafted = tmp_path / "draft.yaml"
    assert run(["schema", "draft", str(SAMPLE), "-o", str(drafted)], capsys)[0] == 0
    code, _, err = run(["fit", str(SAMPLE), "-s", str(drafted), "-m", "independent", "--epsilon", "1",
                        "--out", str(tmp_path / "m")], capsys)
    assert code == 4 and "private_inferred" in err
    code, _out, _ = run(["fit", str(SAMPLE), "-s", str(drafted), "-m", "independent", "--epsilon", "1",
                        "--allow-private-schema", "--out", str(tmp_path / "m"), "--json"], capsys)
    assert code == 0
    saved = json.loads((tmp_path / "m" / "synthesizer.json").read_text())
    assert any("PRIVATE SCHEMA ACCEPTED" in c for c in saved["privacy"]["caveats"])


def test_persistent_ledger_refuses_to_exceed_the_lifetime_cap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    args = ["fit", str(SAMPLE), "-s", str(SCHEMA), "-m", "independent", "--epsilon", "1", "--ledger", str(ledger)]
    assert run([*args, "--out", str(tmp_path / "a")], capsys)[0] == 0
    code, _, err = run([*args, "--out", str(tmp_path / "b")], capsys)
    assert code == 3 and "remaining" in err
    assert not (tmp_path / "b").exists()


def test_validate_is_confidential_and_prints_no_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    df = pd.read_csv(SAMPLE, dtype=str)
    df.loc[0, "workclass"] = "CANARY-WORKCLASS-77"
    df.loc[1, "age"] = "123456789"
    p = tmp_path / "d.csv"
    df.to_csv(p, index=False)
    code, out, err = run(["validate", str(p), "-s", str(SCHEMA), "--json"], capsys)
    assert code == 0
    rep = json.loads(out)
    assert rep["confidential"] is True
    assert rep["problems"]["workclass"]["undeclared_category"] == 1
    assert rep["problems"]["age"]["out_of_bounds"] == 1
    assert "CANARY" not in out + err and "123456789" not in out + err


def test_rebalance_to_a_target_share(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model"
    assert (
        run(["fit", str(SAMPLE), "-s", str(SCHEMA), "-m", "mst", "--epsilon", "2", "--out", str(model)], capsys)[0] == 0
    )
    csv = tmp_path / "r.csv"
    code, _, _ = run(["sample", str(model), "--rows", "4000", "--share", "income-per-year=>50K:0.5",
                      "--seed", "0", "--out", str(csv)], capsys)
    assert code == 0
    share = (pd.read_csv(csv)["income-per-year"] == ">50K").mean()
    assert abs(share - 0.5) < 4 * (0.25 / 4000) ** 0.5  # multinomial class counts around 50 %
    code, _, err = run(["sample", str(model), "--share", "income-per-year=>50K:1.5", "--out", str(csv)], capsys)
    assert code == 2 and "sum to at most 1" in err


@pytest.mark.parametrize("engine", ["numpy", "arrow", "duckdb"])
def test_fit_on_parquet_with_each_engine(engine: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "adult.parquet"
    pd.read_csv(SAMPLE, dtype=str, skipinitialspace=True, na_values=["?", ""], keep_default_na=False).to_parquet(data)
    code, out, err = run(["fit", str(data), "-s", str(SCHEMA), "-m", "mst", "--epsilon", "2", "--delta", "1e-9",
                          "--engine", engine, "--out", str(tmp_path / "model"), "--json"], capsys)
    assert code == 0, err
    res = json.loads(out)
    assert res["mechanism"] == "mst" and res["epsilon"] <= 2.0
    assert abs(res["estimated_rows"] - 3000) < 150  # the DP estimate of n (true n: 3000)


def test_arrow_engine_refuses_csv_naming_the_alternative(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["fit", str(SAMPLE), "-s", str(SCHEMA), "-m", "mst", "--epsilon", "1",
                        "--engine", "arrow", "--out", str(tmp_path / "model")], capsys)
    assert code == 2 and "duckdb for CSV" in err and len(err.strip().splitlines()) == 1


def test_sample_systematic_by_default_independent_on_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model"
    assert (
        run(["fit", str(SAMPLE), "-s", str(SCHEMA), "-m", "mst", "--epsilon", "2", "--out", str(model)], capsys)[0] == 0
    )
    synth = dpsynth.load(model)
    p = float(synth.model.probability(("sex",))[0])
    rows = 10_000
    binomial_sd = (rows * p * (1 - p)) ** 0.5  # ~47 rows

    def female(seed: int, independent: bool) -> int:
        return int((synth.sample(rows, seed=seed, independent=independent)["sex"] == "Female").sum())

    systematic = np.array([female(s, False) for s in range(20)])
    iid = np.array([female(s, True) for s in range(20)])
    # Both are unbiased for the model's share; only independent rows carry binomial noise.
    assert abs(iid.mean() - rows * p) < 4 * binomial_sd / 20**0.5
    assert abs(systematic.mean() - rows * p) < 4 * binomial_sd / 20**0.5
    # The sample sd of 20 draws has a relative spread of ~16%: 0.45 is 3.4 of those below 1
    # (a false alarm about 1 in 10,000 runs) and still far above systematic sampling's 0.3.
    assert 0.45 * binomial_sd < iid.std(ddof=1) < 1.6 * binomial_sd
    assert systematic.std(ddof=1) < 0.3 * binomial_sd
    out = tmp_path / "iid.csv"
    code, _, _ = run(["sample", str(model), "--rows", "100", "--independent", "--seed", "1", "--out", str(out)], capsys)
    assert code == 0 and len(pd.read_csv(out)) == 100


def test_an_unknown_flag_is_one_line_and_exit_2_in_a_real_process() -> None:
    import subprocess
    import sys

    for args in (["release", "--no-such-flag"], ["--no-such-flag"], ["schema", "discover", "--no-such-flag"]):
        done = subprocess.run([sys.executable, "-m", "dpsynth", *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "--no-such-flag" in lines[0], (args, done.stderr)
