"""The model in the bundle: ``release`` writes ``model/``, ``sample BUNDLE`` draws from it.

One real MST release (epsilon 1) of 2,741 Adult rows with a persistent ledger; the
confidential CSV is deleted right after it. Sampling from the bundle must then work, spend
nothing, leave the ledger as it was, satisfy range conditions on every row, and refuse a
bundle whose model was touched.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_release_support import run_cli

import dpsynth
from dpsynth.bundle.manifest import MODEL_FILE, format_sha256sums, parse_sha256sums, sha256_file
from dpsynth.bundle.verify import verify_bundle
from dpsynth.conditions import Range
from dpsynth.tabular.encoding import encode, read_frame
from dpsynth.tabular.schema import load_schema
from tests.paths import ADULT_SAMPLE, ADULT_SCHEMA

NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
TIME_KEY = re.compile(r"(^|_)(time|timestamp|elapsed|duration|seconds|charged_at)($|_)", re.IGNORECASE)
ROWS = 2741  # the exact input size: private, and absent from the schema's text
SEED = 7


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("bundle-model")
    data = tmp / "data.csv"
    pd.read_csv(ADULT_SAMPLE, dtype=str, keep_default_na=False).head(ROWS).to_csv(data, index=False)
    schema = load_schema(ADULT_SCHEMA)
    table = encode(read_frame(data, schema), schema)
    exact = {c.name: np.bincount(table.codes[:, j], minlength=c.domain_size())
             for j, c in enumerate(schema.modelled)}
    result = dpsynth.release(data, ADULT_SCHEMA, mechanism="mst", epsilon=1.0, delta=1e-9, seed=SEED,
                             ledger_path=tmp / "ledger.json", out=tmp / "bundle")
    data.unlink()  # from here on nothing confidential exists
    return {"out": tmp / "bundle", "ledger": tmp / "ledger.json", "ledger_sha": _sha(tmp / "ledger.json"),
            "result": result, "exact": exact, "tmp": tmp}


def _copy(bundle: dict[str, Any], tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle["out"], tmp_path / "copy"))


def _model_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in (root / "model").rglob("*") if p.is_file())


def test_release_writes_the_model_and_covers_it(bundle: dict[str, Any]) -> None:
    out = bundle["out"]
    files = _model_files(out)
    assert MODEL_FILE in files and "model/model/potentials.npz" in files
    manifest = json.loads((out / "manifest.json").read_text())
    outputs = {o["path"]: o["sha256"] for o in manifest["outputs"]}
    sums, bad = parse_sha256sums((out / "SHA256SUMS").read_text())
    assert not bad
    for name in files:
        assert outputs[name] == sums[name] == sha256_file(out / name)
    assert set(files) <= set(bundle["result"].files)
    result = verify_bundle(out)
    assert result.ok, result.failures
    assert result.files_checked == len(sums) == 7 + len(files)
    assert {(out / f).stat().st_mode & 0o777 for f in files} == {0o644}  # public, like the bundle


def test_saved_model_holds_no_exact_count_and_no_charge_time(bundle: dict[str, Any]) -> None:
    out = bundle["out"]
    assert str(ROWS) not in ADULT_SCHEMA.read_text()

    def keys(node: object) -> list[str]:
        if isinstance(node, dict):
            return [str(k) for k in node] + [k for v in node.values() for k in keys(v)]
        return [k for v in node for k in keys(v)] if isinstance(node, list) else []

    for name in _model_files(out):
        if name.endswith(".json"):
            text = (out / name).read_text()
            assert not [k for k in keys(json.loads(text)) if TIME_KEY.search(k)], name
            estimate = json.loads(text).get("estimated_rows")
            if estimate != ROWS:  # a DP estimate may land on the true size by chance
                # a noisy total such as 2741.17 is fine; the exact size as a number is not
                numbers = [float(n) for n in NUMBER.findall(text)]
                assert ROWS not in numbers, name
    synth = dpsynth.load_bundle(out)
    assert synth.estimated_rows == bundle["result"].estimated_rows
    assert not any(step.to_json().get("time") for step in synth.privacy.ledger)
    # nothing the manifest does not publish either: no lifetime cap, no spend of earlier runs
    assert synth.privacy.lifetime is None and synth.privacy.prior_rho is None
    saved = json.loads((out / "model" / "synthesizer.json").read_text())["privacy"]
    assert saved["lifetime"] is None and saved["prior_rho"] is None
    compared = 0
    for m in synth.measurements:  # every saved count is noisy: none equals the exact marginal
        exact = bundle["exact"].get(m.clique[0])
        if len(m.clique) == 1 and exact is not None and m.values.shape == exact.shape:
            assert not np.array_equal(m.values, exact), m.clique
            compared += 1
    assert compared >= 5


def test_sample_bundle_with_conditions_spends_nothing(bundle: dict[str, Any], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import dpsynth.api
    import dpsynth.privacy.noise

    def refuse(*_args: object, **_kw: object) -> None:
        raise AssertionError("sampling fitted or drew DP noise")

    for name in ("discrete_gaussian", "noisy_max"):
        monkeypatch.setattr(dpsynth.privacy.noise, name, refuse)
    monkeypatch.setattr(dpsynth.api, "fit", refuse)
    target = tmp_path / "more.csv"
    code, out, err = run_cli(["sample", bundle["out"], "--rows", 10_000, "--condition", "age>=42",
                              "--condition", "race=Black,White", "--condition", "hours-per-week=30..40",
                              "--condition", "capital-gain<5000", "--seed", 3, "--out", target, "--json"],
                             capsys)
    assert code == 0, err
    assert json.loads(out) == {"out": str(target), "rows": 10_000, "source": "bundle"}
    df = pd.read_csv(target)
    assert len(df) == 10_000
    assert (df["age"] >= 42).all() and df["age"].between(42, 44).any()  # the boundary bin is used
    assert df["race"].isin(["Black", "White"]).all()
    assert df["hours-per-week"].between(30, 40).all() and (df["capital-gain"] < 5000).all()
    assert not (bundle["tmp"] / "data.csv").exists()
    assert _sha(bundle["ledger"]) == bundle["ledger_sha"]
    assert verify_bundle(bundle["out"]).ok  # sampling changed nothing in the bundle


def test_sample_bundle_reproduces_the_released_csv(bundle: dict[str, Any], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    rows = json.loads((bundle["out"] / "manifest.json").read_text())["rows"]["count"]
    target = tmp_path / "again.csv"
    code, _, err = run_cli(["sample", bundle["out"], "--rows", rows, "--seed", SEED, "--out", target], capsys)
    assert code == 0, err
    assert target.read_bytes() == (bundle["out"] / "synthetic.csv").read_bytes()  # same rows, same escaping


def test_unknown_category_says_did_you_mean(bundle: dict[str, Any], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["sample", bundle["out"], "--rows", 10, "--condition", "race=black",
                            "--out", tmp_path / "x.csv"], capsys)
    assert code == 2
    assert "did you mean 'Black'?" in err and "'Amer-Indian-Eskimo'" in err
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("victim", ["model/model/potentials.npz", "model/synthesizer.json"])
def test_a_touched_model_file_is_refused(bundle: dict[str, Any], tmp_path: Path, victim: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    copy = _copy(bundle, tmp_path)
    raw = bytearray((copy / victim).read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (copy / victim).write_bytes(bytes(raw))
    code, _, err = run_cli(["sample", copy, "--rows", 10, "--out", tmp_path / "x.csv"], capsys)
    assert code == 1
    assert "failed verification" in err and f"checksum mismatch: {victim}" in err
    assert not (tmp_path / "x.csv").exists()
    with pytest.raises(dpsynth.errors.BundleError):
        dpsynth.load_bundle(copy)


def test_signed_bundle_refuses_a_model_edit_with_recomputed_sums(bundle: dict[str, Any], tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from dpsynth.bundle.signing import generate_key, load_private_key, sign_bundle

    copy = _copy(bundle, tmp_path)
    key = tmp_path / "k"
    generate_key(key)
    sign_bundle(copy, load_private_key(key))
    pub = tmp_path / "k.pub"
    assert run_cli(["sample", copy, "--rows", 5, "--key", pub, "--out", tmp_path / "ok.csv"], capsys)[0] == 0
    meta = json.loads((copy / MODEL_FILE).read_text())
    meta["estimated_rows"] += 1000  # an edit, with every checksum made consistent again
    (copy / MODEL_FILE).write_text(json.dumps(meta))
    manifest = json.loads((copy / "manifest.json").read_text())
    for o in manifest["outputs"]:
        o["sha256"] = sha256_file(copy / o["path"])
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=2))
    names = [p.relative_to(copy).as_posix() for p in copy.rglob("*")
             if p.is_file() and p.name not in ("SHA256SUMS", "signature.json")]
    (copy / "SHA256SUMS").write_text(format_sha256sums({n: sha256_file(copy / n) for n in names}))
    code, _, err = run_cli(["sample", copy, "--rows", 5, "--key", pub, "--out", tmp_path / "x.csv"], capsys)
    assert code == 1 and "failed verification" in err
    assert not (tmp_path / "x.csv").exists()


def test_bundle_without_model_still_verifies_but_cannot_be_sampled(bundle: dict[str, Any], tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    copy = _copy(bundle, tmp_path)
    shutil.rmtree(copy / "model")  # as written before releases carried their model
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["outputs"] = [o for o in manifest["outputs"] if not o["path"].startswith("model/")]
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=2))
    names = [p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file() and p.name != "SHA256SUMS"]
    (copy / "SHA256SUMS").write_text(format_sha256sums({n: sha256_file(copy / n) for n in names}))
    assert verify_bundle(copy).ok
    code, _, err = run_cli(["sample", copy, "--rows", 5, "--out", tmp_path / "x.csv"], capsys)
    assert code == 1 and "holds no model/" in err


def test_load_bundle_api_samples_ranges(bundle: dict[str, Any]) -> None:
    synth = dpsynth.load_bundle(bundle["out"])
    manifest = json.loads((bundle["out"] / "manifest.json").read_text())
    assert synth.privacy.epsilon == manifest["privacy"]["epsilon"] and synth.mechanism == "mst"
    df = synth.sample(3000, conditions={"age": Range(low=50, high=60, high_inclusive=False),
                                        "sex": "Female"}, seed=2)
    assert df["age"].between(50, 59).all() and (df["sex"] == "Female").all()
    assert df["age"].nunique() == 10
