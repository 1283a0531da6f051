"""Signed bundles: ``dpsynth keygen``, ``release --sign`` and ``verify --key`` (dpsynth.bundle.signing).

The threat model these tests pin: checksums alone detect accidents (a recomputed SHA256SUMS
passes), while a signature checked against the signer's public key fails on any edit of the
bundle, on a signature by another key, and on a removed signature.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_release_support import SMALL_COLUMNS, run_cli, write_inputs

from dpsynth.bundle import signing
from dpsynth.bundle.manifest import format_sha256sums, parse_sha256sums, sha256_file
from dpsynth.bundle.verify import verify_bundle

EPS, DELTA = 1.0, 1e-6


def _keypair(tmp: Path, name: str = "key") -> tuple[Path, Path, str]:
    fp = signing.generate_key(tmp / name)
    return tmp / name, tmp / f"{name}.pub", fp


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One small release signed through the Python API, plus a second key pair."""
    import dpsynth

    tmp = tmp_path_factory.mktemp("signed")
    data, schema = write_inputs(tmp, 400, SMALL_COLUMNS)
    key, pub, fp = _keypair(tmp)
    other_key, other_pub, other_fp = _keypair(tmp, "other")
    result = dpsynth.release(str(data), str(schema), mechanism="independent", epsilon=EPS, delta=DELTA,
                             seed=1, out=tmp / "bundle", sign=key)
    return {"tmp": tmp, "data": data, "schema": schema, "key": key, "pub": pub, "fp": fp,
            "other_key": other_key, "other_pub": other_pub, "other_fp": other_fp,
            "result": result, "bundle": tmp / "bundle"}


def _copy(signed: dict[str, Any], tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(signed["bundle"], target)
    return target


def _resum(bundle: Path) -> None:
    """What a forger without the key does: recompute the manifest's hashes and SHA256SUMS."""
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    for out in manifest["outputs"]:
        out["sha256"] = sha256_file(bundle / out["path"])
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    sums, _ = parse_sha256sums((bundle / "SHA256SUMS").read_text(encoding="utf-8"))
    (bundle / "SHA256SUMS").write_text(format_sha256sums({n: sha256_file(bundle / n) for n in sums}),
                                       encoding="utf-8")


# --- keygen ------------------------------------------------------------------------------------

def test_keygen_writes_a_0600_private_key_a_public_key_and_prints_the_fingerprint(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["keygen", "--out", tmp_path / "release-key", "--json"], capsys)
    assert code == 0, err
    info = json.loads(out)
    private, public = tmp_path / "release-key", tmp_path / "release-key.pub"
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert b"BEGIN PRIVATE KEY" in private.read_bytes() and b"BEGIN PUBLIC KEY" in public.read_bytes()
    pub = signing.load_public_key(public)
    assert signing.load_private_key(private).public_key() == pub
    from cryptography.hazmat.primitives import serialization

    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert info["fingerprint"] == hashlib.sha256(raw).hexdigest()
    assert info["short_fingerprint"] == ":".join(info["fingerprint"][i:i + 4] for i in range(0, 16, 4))
    code, _, err = run_cli(["keygen", "--out", tmp_path / "k2"], capsys)
    assert code == 0 and "fingerprint: " in err
    assert signing.fingerprint(signing.load_public_key(tmp_path / "k2.pub")) in err


@pytest.mark.parametrize("existing", ["private", "public"])
def test_keygen_refuses_to_overwrite(tmp_path: Path, existing: str, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / ("key" if existing == "private" else "key.pub")
    target.write_text("precious", encoding="utf-8")
    code, _, err = run_cli(["keygen", "--out", tmp_path / "key"], capsys)
    assert code == 2 and "already exists" in err and "never overwritten" in err
    assert target.read_text(encoding="utf-8") == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_keys_are_checked_for_their_role(signed: dict[str, Any], tmp_path: Path) -> None:
    from dpsynth.errors import ConfigError

    with pytest.raises(ConfigError, match="is a private key"):
        signing.load_public_key(signed["key"])
    with pytest.raises(ConfigError, match="that is a public key"):
        signing.load_private_key(signed["pub"])
    with pytest.raises(ConfigError, match="does not exist"):
        signing.load_public_key(tmp_path / "nope.pub")
    (tmp_path / "junk.pub").write_text("not a key", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a PEM public key"):
        signing.load_public_key(tmp_path / "junk.pub")


# --- signing and verifying ---------------------------------------------------------------------

def test_python_api_signed_release_verifies_with_its_key(signed: dict[str, Any]) -> None:
    bundle, result = signed["bundle"], signed["result"]
    assert result.signed_by == signed["fp"]
    assert signing.SIGNATURE_FILE in result.files
    assert (bundle / signing.SIGNATURE_FILE).is_file()
    assert stat.S_IMODE(os.stat(bundle / signing.SIGNATURE_FILE).st_mode) == 0o644
    sums, _ = parse_sha256sums((bundle / "SHA256SUMS").read_text(encoding="utf-8"))
    assert signing.SIGNATURE_FILE not in sums  # it signs SHA256SUMS, so SHA256SUMS cannot list it
    checked = verify_bundle(bundle, key=signed["pub"])
    assert checked.ok, checked.failures
    assert checked.signature is not None and checked.signature.status == "valid"
    assert checked.signature.signed_by == signed["fp"]
    assert "without the private key" in checked.assurance
    doc = json.loads((bundle / signing.SIGNATURE_FILE).read_text(encoding="utf-8"))
    assert doc["algorithm"] == "ed25519" and doc["public_key_fingerprint"] == signed["fp"]
    assert len(base64.b64decode(doc["signature"])) == 64


def test_signed_message_is_domain_separated_and_covers_both_index_files(signed: dict[str, Any]) -> None:
    bundle = signed["bundle"]
    m = hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()
    s = hashlib.sha256((bundle / "SHA256SUMS").read_bytes()).hexdigest()
    msg = signing.signed_message(m, s)
    assert msg == f"dpsynth-bundle-signature-v1\nmanifest.json {m}\nSHA256SUMS {s}\n".encode()
    doc = json.loads((bundle / signing.SIGNATURE_FILE).read_text(encoding="utf-8"))
    signing.load_public_key(signed["pub"]).verify(base64.b64decode(doc["signature"]), msg)


def test_cli_signed_release_and_verify(signed: dict[str, Any], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli-bundle"
    code, _, err = run_cli(["release", signed["data"], "--schema", signed["schema"], "--mechanism",
                            "independent", "--epsilon", EPS, "--delta", DELTA, "--out", out,
                            "--sign", signed["key"]], capsys)
    assert code == 0, err
    assert f"signed (signature.json) by key {signed['fp']}" in err
    code, _, err = run_cli(["verify", out, "--key", signed["pub"]], capsys)
    assert code == 0, err
    assert re.search(r"OK: \d+ files verified", err) and f"valid, signed by key {signed['fp']}" in err
    assert "accidents only" not in err
    code, _, err = run_cli(["verify", out], capsys)
    assert code == 0 and "present, not checked" in err and "accidents only" in err


def test_unsigned_verification_says_it_detects_accidents_only(signed: dict[str, Any], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    bundle = _copy(signed, tmp_path)
    (bundle / signing.SIGNATURE_FILE).unlink()
    code, out, _ = run_cli(["verify", bundle, "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    assert result["signature"]["status"] == "unsigned"
    assert result["assurance"].startswith("unsigned verification detects accidents only")


def test_a_forger_who_recomputes_the_sums_passes_unsigned_but_fails_signed(
        signed: dict[str, Any], tmp_path: Path) -> None:
    bundle = _copy(signed, tmp_path)
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    manifest["privacy"]["caveats"] = ["none"]
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    _resum(bundle)
    assert verify_bundle(bundle).ok  # checksums alone: accidents only
    result = verify_bundle(bundle, key=signed["pub"])
    assert not result.ok
    assert result.failures == (f"signature INVALID for key {signing.short_fingerprint(signed['fp'])}: "
                               "manifest.json and SHA256SUMS changed since signing",)


def _tamper(kind: str, bundle: Path, signed: dict[str, Any]) -> None:
    if kind == "data_cell":
        lines = (bundle / "synthetic.csv").read_text(encoding="utf-8").splitlines(keepends=True)
        cells = lines[1].split(",")
        cells[0] = str(int(cells[0]) + 1)
        lines[1] = ",".join(cells)
        (bundle / "synthetic.csv").write_text("".join(lines), encoding="utf-8")
        _resum(bundle)
    elif kind == "manifest_epsilon":
        manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
        manifest["privacy"]["epsilon"] = manifest["privacy"]["epsilon"] / 10
        (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        _resum(bundle)
    elif kind == "sha256sums":
        (bundle / "notes.txt").write_text("added later", encoding="utf-8")
        sums, _ = parse_sha256sums((bundle / "SHA256SUMS").read_text(encoding="utf-8"))
        sums["notes.txt"] = sha256_file(bundle / "notes.txt")
        (bundle / "SHA256SUMS").write_text(format_sha256sums(sums), encoding="utf-8")
    elif kind == "signature_other_key":
        signing.sign_bundle(bundle, signing.load_private_key(signed["other_key"]))
    elif kind == "signature_other_key_relabelled":
        signing.sign_bundle(bundle, signing.load_private_key(signed["other_key"]))
        doc = json.loads((bundle / signing.SIGNATURE_FILE).read_text(encoding="utf-8"))
        doc["public_key_fingerprint"] = signed["fp"]
        (bundle / signing.SIGNATURE_FILE).write_text(json.dumps(doc), encoding="utf-8")
    elif kind == "signature_deleted":
        (bundle / signing.SIGNATURE_FILE).unlink()
    elif kind == "signature_garbled":
        (bundle / signing.SIGNATURE_FILE).write_text("{not json", encoding="utf-8")


TAMPERS = {
    "data_cell": "manifest.json and SHA256SUMS changed since signing",
    "manifest_epsilon": "manifest.json and SHA256SUMS changed since signing",
    "sha256sums": "SHA256SUMS changed since signing",
    "signature_other_key": "signature.json was made with another key",
    "signature_other_key_relabelled": "the signature does not match",
    "signature_deleted": "signature.json is missing, but a key was given",
    "signature_garbled": "signature.json is malformed",
}


@pytest.mark.parametrize("kind", sorted(TAMPERS))
def test_every_tamper_fails_signed_verification_with_a_clear_message(
        kind: str, signed: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = _copy(signed, tmp_path)
    _tamper(kind, bundle, signed)
    code, _, err = run_cli(["verify", bundle, "--key", signed["pub"]], capsys)
    assert code == 1
    assert TAMPERS[kind] in err
    assert "FAILED: " in err and "dpsynth: error: bundle" in err
    if kind == "data_cell":  # the edited CSV no longer matches the Parquet file either
        assert "differ in column 'age'" in err
    if kind == "signature_other_key":
        assert signed["other_fp"] in err and signed["fp"] in err


def test_verify_key_must_be_a_public_key(signed: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["verify", signed["bundle"], "--key", signed["key"]], capsys)
    assert code == 2 and "is a private key" in err


def test_a_bad_signing_key_fails_before_anything_is_spent_or_written(
        signed: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger, out = tmp_path / "ledger.json", tmp_path / "never"
    code, _, err = run_cli(["release", signed["data"], "--schema", signed["schema"], "--mechanism",
                            "independent", "--epsilon", EPS, "--delta", DELTA, "--out", out,
                            "--ledger", ledger, "--sign", signed["pub"]], capsys)
    assert code == 2 and "that is a public key" in err
    assert not out.exists() and not ledger.exists()


def test_a_failed_signing_step_leaves_no_bundle(signed: dict[str, Any], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import dpsynth

    def boom(bundle: Path, key: object) -> str:
        assert (Path(bundle) / "SHA256SUMS").is_file()  # signing happens on the complete bundle
        raise KeyboardInterrupt

    monkeypatch.setattr(signing, "sign_bundle", boom)
    with pytest.raises(KeyboardInterrupt):
        dpsynth.release(str(signed["data"]), str(signed["schema"]), mechanism="independent",
                        epsilon=EPS, delta=DELTA, out=tmp_path / "b", sign=signed["key"])
    assert list(tmp_path.iterdir()) == []


def test_release_yaml_sign_key_is_a_path_relative_to_the_config(signed: dict[str, Any], tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(signed["key"], tmp_path / "steward-key")
    config = tmp_path / "release.yaml"
    config.write_text(yaml.safe_dump({"data": str(signed["data"]), "schema": str(signed["schema"]),
                                      "mechanism": "independent", "epsilon": EPS, "delta": DELTA,
                                      "out": "bundle", "sign": "steward-key"}), encoding="utf-8")
    code, out, err = run_cli(["release", "--config", config, "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["signed_by"] == signed["fp"]
    assert verify_bundle(tmp_path / "bundle", key=signed["pub"]).ok
