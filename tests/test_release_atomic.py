"""Release atomicity (a failed or killed run leaves no bundle), row counts, config and evaluation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from test_release_support import SMALL_COLUMNS, run_cli, write_inputs

import dpsynth.bundle.write as rel
from dpsynth.tabular.schema import load_schema
from tests.paths import REPO_ROOT


def _leftovers(parent: Path, name: str) -> list[Path]:
    return [p for p in parent.iterdir() if p.name.startswith((name, f".{name}"))]


def test_failure_midway_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, schema = write_inputs(tmp_path, 200, SMALL_COLUMNS)

    def boom(report: object) -> str:
        raise RuntimeError("disk full while rendering")

    monkeypatch.setattr("dpsynth.report.public.render_public_html", boom)
    with pytest.raises(RuntimeError):
        rel.release(data, schema, mechanism="independent", epsilon=1.0, delta=1e-6, out=tmp_path / "b")
    assert _leftovers(tmp_path, "b") == []


def test_failure_with_overwrite_keeps_the_old_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, schema = write_inputs(tmp_path, 200, SMALL_COLUMNS)
    first = rel.release(data, schema, mechanism="independent", epsilon=1.0, delta=1e-6, out=tmp_path / "b")
    monkeypatch.setattr(rel, "_parquet_bytes", lambda df, meta: (_ for _ in ()).throw(OSError("io")))
    with pytest.raises(OSError):
        rel.release(data, schema, mechanism="independent", epsilon=1.0, delta=1e-6,
                    out=tmp_path / "b", overwrite=True)
    assert rel.verify_bundle(tmp_path / "b").release_id == first.release_id
    assert [p.name for p in _leftovers(tmp_path, "b")] == ["b"]


_KILL_SCRIPT = """
import sys, time
from pathlib import Path
import dpsynth.bundle.write as rel
real = rel._parquet_bytes
def slow(df, meta):
    Path(sys.argv[3]).write_text("writing")
    time.sleep(60)
    return real(df, meta)
rel._parquet_bytes = slow
rel.release(sys.argv[1], sys.argv[2], mechanism="schema_only", out=sys.argv[4])
"""


def test_sigkill_during_writing_leaves_no_bundle(tmp_path: Path) -> None:
    data, schema = write_inputs(tmp_path, 50, SMALL_COLUMNS)
    flag, out = tmp_path / "flag", tmp_path / "bundle"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(data), str(schema), str(flag), str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not flag.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert flag.exists(), proc.stderr.read().decode() if proc.stderr else ""
    assert (list(tmp_path.glob(".bundle.*.partial")) and not out.exists())  # mid-write
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    partial = list(tmp_path.glob(".bundle.*.partial"))
    assert len(partial) == 1 and not (partial[0] / "manifest.json").exists()
    # the next release sweeps the dead writer's partial directory
    rel.release(data, schema, mechanism="schema_only", out=out)
    assert rel.verify_bundle(out).ok
    assert list(tmp_path.glob(".bundle.*.partial")) == []


def test_rows_are_the_dp_estimate_and_vary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, schema = write_inputs(tmp_path, 500, SMALL_COLUMNS)
    seen: list[int] = []
    real_fit = rel.fit

    def spy(*args: object, **kwargs: object) -> object:
        synth = real_fit(*args, **kwargs)  # type: ignore[arg-type]
        seen.append(synth.estimated_rows)
        return synth

    monkeypatch.setattr(rel, "fit", spy)
    rows = []
    for i in range(3):
        res = rel.release(data, schema, mechanism="independent", epsilon=0.05, delta=1e-6,
                          out=tmp_path / f"b{i}")
        m = json.loads((tmp_path / f"b{i}" / "manifest.json").read_text())
        assert res.rows == seen[i] == m["rows"]["count"] == m["rows"]["dp_estimate"]
        assert m["rows"]["source"] == "dp_estimate"
        assert len(pd.read_csv(tmp_path / f"b{i}" / "synthetic.csv")) == res.rows
        rows.append(res.rows)
    assert len(set(rows)) > 1  # noise sd of the total is in the hundreds at this epsilon


def test_user_rows_and_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, schema = write_inputs(tmp_path, 200, SMALL_COLUMNS)
    cfg = tmp_path / "release.yaml"
    cfg.write_text(f"data: {data.name}\nschema: {schema.name}\nmechanism: independent\n"
                   "epsilon: 1\ndelta: 1.0e-6\nrows: 123\nseed: 5\nout: bundle\n")
    code, out, err = run_cli(["release", "--config", cfg, "--json"], capsys)
    assert code == 0, err
    res = json.loads(out)
    assert res["rows"] == 123 and res["rows_source"] == "user"
    m = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert m["rows"]["source"] == "user" and m["outputs"][0]["rows"] == 123
    bad = tmp_path / "bad.yaml"
    bad.write_text("epsilonn: 1\n")
    code, _, err = run_cli(["release", "--config", bad], capsys)
    assert code == 2 and "epsilonn" in err


def test_internal_report_is_confidential_and_outside_the_bundle(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    data, schema = write_inputs(tmp_path, 400, SMALL_COLUMNS, canary=False)
    args = ["release", data, "-s", schema, "-m", "independent", "--epsilon", "1", "--delta", "1e-6"]
    code, _, err = run_cli([*args, "--out", tmp_path / "b", "--internal-report", tmp_path / "b" / "eval"], capsys)
    assert code == 2 and "outside the bundle" in err
    code, _, err = run_cli([*args, "--out", tmp_path / "b", "--internal-report", tmp_path / "eval"], capsys)
    assert code == 0, err
    ev = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert ev["classification"].startswith("CONFIDENTIAL")
    assert set(ev["workload_error"]) == {"1", "2", "3"}
    html = (tmp_path / "eval" / "evaluation.html").read_text()
    assert html.count("CONFIDENTIAL") >= 3 and "<title>CONFIDENTIAL" in html
    assert not any("evaluation" in p.name for p in (tmp_path / "b").rglob("*"))
    from dpsynth.errors import ConfigError
    from dpsynth.evaluation.evaluate import evaluate

    with pytest.raises(ConfigError, match="never be written into a bundle"):
        evaluate(data, tmp_path / "b" / "synthetic.csv", load_schema(schema), out=tmp_path / "b" / "x")
