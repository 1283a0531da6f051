"""End-to-end tests of ``dpsynth release`` / ``verify``: bundle contents, tampering, exit codes, canaries."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from test_release_support import CANARY_NUMBER, CANARY_TEXT, SMALL_COLUMNS, run_cli, write_inputs

from dpsynth.bundle.manifest import REQUIRED_FILES, REQUIRED_KEYS
from dpsynth.bundle.write import escape_csv_injection, verify_bundle

EPSILON, DELTA = 1.0, 1e-6


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One full-schema release through the CLI (2,000 Adult rows with canaries)."""
    tmp = tmp_path_factory.mktemp("release")
    data, schema = write_inputs(tmp, 2000)
    before = hashlib.sha256(data.read_bytes()).hexdigest()
    out = tmp / "bundle"
    capsys = _Capture()
    from dpsynth.cli import main

    code = main(["release", str(data), "--schema", str(schema), "--mechanism", "independent",
                 "--epsilon", str(EPSILON), "--delta", str(DELTA), "--seed", "7", "--out", str(out),
                 "--json"])
    return {"code": code, "out": out, "data": data, "schema": schema, "before": before,
            "stdout": capsys.stdout(), "tmp": tmp}


class _Capture:
    """Capture stdout around a module-scoped fixture (capsys is function-scoped)."""

    def __init__(self) -> None:
        import io
        import sys

        self._buf = io.StringIO()
        self._old = sys.stdout
        sys.stdout = self._buf

    def stdout(self) -> str:
        import sys

        sys.stdout = self._old
        return self._buf.getvalue()


def _manifest(bundle: Path) -> dict[str, Any]:
    return json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))


def _copy(released: dict[str, Any], tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(released["out"], target)
    return target


def test_release_writes_every_contract_file_and_key(released: dict[str, Any]) -> None:
    assert released["code"] == 0
    bundle = released["out"]
    files = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    model = [f for f in files if f.startswith("model/")]  # the fitted synthesizer (docs/bundle.md)
    assert sorted(set(files) - set(model)) == sorted(REQUIRED_FILES) and "model/synthesizer.json" in model
    m = _manifest(bundle)
    for key in REQUIRED_KEYS:
        cur: Any = m
        for part in key.split("."):
            assert part in cur, key
            cur = cur[part]
    assert m["generator"]["mechanism"] == "independent"
    assert m["generator"]["post_processing_seed"] == 7
    assert len(m["privacy"]["ledger"]) == 15  # one charged 1-way per modelled column
    assert all("time" not in e for e in m["privacy"]["ledger"])
    assert {o["path"] for o in m["outputs"]} == set(files) - {"manifest.json", "SHA256SUMS"}
    result = json.loads(released["stdout"])
    assert result["release_id"] == m["release_id"]
    assert result["rows"] == m["rows"]["count"] == m["outputs"][0]["rows"]


def test_manifest_epsilon_within_request_and_consistent(released: dict[str, Any]) -> None:
    p = _manifest(released["out"])["privacy"]
    assert 0 < p["epsilon"] <= EPSILON
    assert p["epsilon"] == pytest.approx(EPSILON, rel=1e-6)  # the whole budget is used
    assert p["delta"] == DELTA
    assert p["rho"] == pytest.approx(sum(e["rho"] for e in p["ledger"]), rel=1e-12)


def test_verify_ok_and_input_untouched(released: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run_cli(["verify", released["out"]], capsys)
    assert code == 0, err
    assert "OK: 11 files verified" in err  # 7 + the 4 files of model/
    assert hashlib.sha256(released["data"].read_bytes()).hexdigest() == released["before"]


def test_canaries_and_identifiers_never_reach_the_bundle(released: dict[str, Any]) -> None:
    ids = pd.read_csv(released["data"], dtype=str)["ssn"].tolist()
    blobs = {p.name: p.read_bytes() for p in released["out"].rglob("*") if p.is_file()}
    for name, blob in blobs.items():
        assert CANARY_TEXT.encode() not in blob, name
        assert CANARY_NUMBER.encode() not in blob, name
        assert b"PRIVATE" not in blob, name
    text = blobs["synthetic.csv"].decode()
    assert not any(i in text for i in ids[:50])
    header = text.splitlines()[0].split(",")
    assert "ssn" not in header and len(header) == 15
    frame = pd.read_parquet(released["out"] / "synthetic.parquet")
    assert "ssn" not in frame.columns


@pytest.mark.parametrize("tamper", ["csv_cell", "manifest", "delete", "extra_file", "report"])
def test_verify_detects_tampering(released: dict[str, Any], tmp_path: Path, tamper: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    bundle = _copy(released, tmp_path)
    if tamper == "csv_cell":
        lines = (bundle / "synthetic.csv").read_text().splitlines()
        cells = lines[5].split(",")
        cells[0] = str(int(cells[0]) + 1)
        lines[5] = ",".join(cells)
        (bundle / "synthetic.csv").write_text("\n".join(lines) + "\n")
    elif tamper == "manifest":
        m = _manifest(bundle)
        m["privacy"]["epsilon"] = 0.1
        (bundle / "manifest.json").write_text(json.dumps(m, indent=2))
    elif tamper == "delete":
        (bundle / "privacy_statement.md").unlink()
    elif tamper == "extra_file":
        (bundle / "notes.txt").write_text("added later")
    else:
        (bundle / "report" / "index.html").write_text("<html></html>")
    code, _out, err = run_cli(["verify", bundle], capsys)
    assert code == 1
    assert "FAILED" in err and "failed verification" in err


def test_verify_rejects_consistent_hashes_with_a_false_epsilon(released: dict[str, Any], tmp_path: Path) -> None:
    from dpsynth.bundle.manifest import format_sha256sums, sha256_file

    bundle = _copy(released, tmp_path)
    m = _manifest(bundle)
    m["privacy"]["epsilon"] = 0.5  # understate the loss, then re-hash everything
    (bundle / "manifest.json").write_text(json.dumps(m, indent=2))
    names = [p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file() and p.name != "SHA256SUMS"]
    (bundle / "SHA256SUMS").write_text(format_sha256sums({n: sha256_file(bundle / n) for n in names}))
    result = verify_bundle(bundle)
    assert not result.ok
    assert any("does not match its ledger" in f for f in result.failures)


def test_csv_injection_escaped_but_numbers_kept() -> None:
    df = pd.DataFrame({"t": ["=HYPERLINK(1)", "+1+2", "-cmd", "@SUM", "-3", "-2.5e3", "ok", None],
                       "n": [-1, -2, 3, 4, 5, 6, 7, 8]})
    out = escape_csv_injection(df)
    assert out["t"].tolist()[:7] == ["'=HYPERLINK(1)", "'+1+2", "'-cmd", "'@SUM", "-3", "-2.5e3", "ok"]
    assert out["n"].tolist() == df["n"].tolist()
    assert df["t"][0] == "=HYPERLINK(1)"  # the input is not modified


def test_integer_categories_with_nulls_stay_integers_in_csv() -> None:
    # An object column of integer categories and nulls (a nullable year or month) must not be
    # re-inferred as floats on its way to CSV ("2013.0").
    df = pd.DataFrame({"year": pd.Series([2013, None, 2014], dtype=object), "k": ["a", "b", "c"]})
    assert escape_csv_injection(df).to_csv(index=False).splitlines() == ["year,k", "2013,a", ",b", "2014,c"]


def test_public_report_is_self_contained_and_dp_only(released: dict[str, Any]) -> None:
    html = (released["out"] / "report" / "index.html").read_text()
    assert "<script" not in html and "<link" not in html and "<img" not in html
    assert "src=" not in html and not re.search(r"url\((?!#)", html)
    stripped = re.sub(r'xmlns(:\w+)?="[^"]*"', "", html)  # namespace names are never fetched
    assert "http" not in stripped
    report = json.loads((released["out"] / "report" / "report.json").read_text())
    assert report["kind"] == "public" and report["release_id"] == _manifest(released["out"])["release_id"]
    col = next(c for c in report["columns"] if c["name"] == "sex")
    assert col["measured"] and col["band_2sigma"] > 0 and len(col["noisy_share"]) == 2
    assert '"real' not in json.dumps(report)  # no real-data statistic in the public report


def test_exit_code_bad_epsilon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, schema = write_inputs(tmp_path, 50, SMALL_COLUMNS)
    code, _, err = run_cli(["release", data, "-s", schema, "-m", "independent", "--epsilon", "-1",
                            "--delta", "1e-6", "--out", tmp_path / "b"], capsys)
    assert code == 2 and "epsilon" in err
    assert not (tmp_path / "b").exists()


def test_exit_code_schema_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, _ = write_inputs(tmp_path, 50, SMALL_COLUMNS)
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ncolumns:\n  - {name: age, kind: numeric, bounds: [5, 1]}\n")
    code, _, err = run_cli(["release", data, "-s", bad, "-m", "independent", "--epsilon", "1",
                            "--delta", "1e-6", "--out", tmp_path / "b"], capsys)
    assert code == 4 and "age" in err
    assert not (tmp_path / "b").exists()


def test_exit_code_budget_exceeded_with_persistent_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, schema = write_inputs(tmp_path, 300, SMALL_COLUMNS)
    common = [data, "-s", schema, "-m", "independent", "--epsilon", "1", "--delta", "1e-6",
              "--ledger", tmp_path / "ledger.jsonl"]
    code, _, err = run_cli(["release", *common, "--out", tmp_path / "b1"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["release", *common, "--out", tmp_path / "b2"], capsys)
    assert code == 3 and "nothing was measured" in err
    assert not (tmp_path / "b2").exists()
    assert not list(tmp_path.glob(".b2*"))


def test_existing_output_refused_before_spending(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, schema = write_inputs(tmp_path, 50, SMALL_COLUMNS)
    (tmp_path / "b").mkdir()
    ledger = tmp_path / "ledger.jsonl"
    code, _, err = run_cli(["release", data, "-s", schema, "-m", "independent", "--epsilon", "1",
                            "--delta", "1e-6", "--ledger", ledger, "--out", tmp_path / "b"], capsys)
    assert code == 2 and "already exists" in err
    assert not ledger.exists() or ledger.read_text() == ""


@pytest.mark.parametrize("cell, written", [("-3", "-3"), ("+1", "+1"), ("=1+1", "'=1+1"), ("@x", "'@x"),
                                           ("-cmd", "'-cmd"), ("2.5e3", "2.5e3")])
def test_sample_and_release_escape_csv_cells_by_one_rule(cell: str, written: str, tmp_path: Path) -> None:
    from dpsynth.tabular.io import escape_csv_injection as io_escape
    from dpsynth.tabular.io import write_frame

    df = pd.DataFrame({"t": [cell, "ok"], "n": [1, 2]})
    assert escape_csv_injection(df)["t"][0] == written  # the bundle's writer
    assert io_escape(df)["t"][0] == written
    out = write_frame(df, tmp_path / "s.csv")  # what `dpsynth sample` writes
    assert out.read_text().splitlines()[1].split(",")[0] == written
