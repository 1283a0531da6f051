"""``dpsynth audit --out`` refuses a release bundle: the audit is confidential, a bundle public."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from dpsynth.cli import main
from tests.paths import ADULT_SAMPLE as SAMPLE
from tests.paths import ADULT_SCHEMA as SCHEMA


def _bundle(tmp_path: Path) -> Path:
    """A directory laid out like a release bundle (what the check looks for)."""
    bundle = tmp_path / "release"
    bundle.mkdir()
    lines = SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)
    (bundle / "synthetic.csv").write_text("".join(lines[:301]), encoding="utf-8")
    (bundle / "manifest.json").write_text("{}\n", encoding="utf-8")
    (bundle / "docs").mkdir()
    (bundle / "docs" / "README.md").write_text("public\n", encoding="utf-8")
    digest = hashlib.sha256((bundle / "synthetic.csv").read_bytes()).hexdigest()
    (bundle / "SHA256SUMS").write_text(f"{digest}  synthetic.csv\n", encoding="utf-8")
    return bundle


def _listing(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(root.rglob("*"))}


def _audit(synthetic: Path, out: Path | str) -> list[str]:
    return ["audit", str(SAMPLE), str(synthetic), "-s", str(SCHEMA), "--n-attacks", "50",
            "--seed", "1", "--out", str(out)]


@pytest.mark.parametrize("where", ["root", "subdir", "new_nested", "relative_cwd", "symlink"])
def test_audit_refuses_to_write_into_a_bundle(tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = _bundle(tmp_path)
    before = _listing(bundle)
    out: Path | str
    if where == "root":
        out = bundle
    elif where == "subdir":
        out = bundle / "docs"
    elif where == "new_nested":
        out = bundle / "audit" / "2026"
    elif where == "relative_cwd":
        monkeypatch.chdir(bundle / "docs")
        out = "confidential"
    else:
        out = tmp_path / "looks_outside"
        os.symlink(bundle / "docs", out)
    code = main(_audit(bundle, out))
    stdout, err = capsys.readouterr()
    assert code == 2  # usage error, per the exit-code table in docs/releasing.md
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dpsynth: error: audit output")
    assert "inside the release bundle" in lines[0] and "Traceback" not in err and stdout == ""
    assert _listing(bundle) == before


def test_audit_outside_a_bundle_still_writes_its_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = _bundle(tmp_path)
    before = _listing(bundle)
    out = tmp_path / "confidential" / "audit"
    code = main(_audit(bundle, out))  # reading from a bundle is fine; only writing into one is not
    _, err = capsys.readouterr()
    assert code in (0, 1), err  # 1 = the policy failed, which is not what this test is about
    assert (out / "audit.json").is_file() and (out / "audit.html").is_file()
    assert _listing(bundle) == before
