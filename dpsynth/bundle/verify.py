"""Checking a release bundle against its manifest (``dpsynth verify``).

:func:`ledger_epsilon` recomputes the guarantee from a manifest's ledger, and
:func:`verify_bundle` recomputes every checksum, the row counts and the stated epsilon, so a
recipient can check a bundle with nothing but the bundle. Nothing here reads private data.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpsynth.bundle.manifest import (
    REQUIRED_FILES,
    REQUIRED_KEYS,
    parse_sha256sums,
    sha256_file,
)

__all__ = ["VerifyResult", "ledger_epsilon", "ledger_rho", "verify_bundle"]


def ledger_rho(ledger: list[dict[str, Any]]) -> float:
    """Sum of the zCDP costs recomputed from each ledger entry's event (``inf`` if any has none)."""
    from dpsynth.privacy.events import event_from_json

    costs = [event_from_json(dict(e["event"])).rho for e in ledger]
    return math.fsum(costs) if costs else 0.0


def ledger_epsilon(ledger: list[dict[str, Any]], delta: float) -> float:
    """Epsilon at ``delta`` of the composition of the ledger's events, recomputed from scratch."""
    from dpsynth.privacy.accountant import Accountant
    from dpsynth.privacy.budget import ApproxDP
    from dpsynth.privacy.events import event_from_json

    if not ledger:
        return 0.0
    acc = Accountant(ApproxDP(1e6, delta))
    for entry in ledger:
        acc.charge(event_from_json(dict(entry["event"])))
    return float(acc.epsilon(delta))


@dataclass(frozen=True, kw_only=True)
class VerifyResult:
    """The outcome of :func:`verify_bundle`.

    Attributes:
        bundle: The bundle checked.
        ok: Whether every check passed.
        failures: One line per failed check (file names and keys only).
        files_checked: How many checksums were recomputed.
        release_id: The manifest's release id, if it could be read.
    """

    bundle: Path
    ok: bool
    failures: tuple[str, ...]
    files_checked: int
    release_id: str | None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form, as printed by ``dpsynth verify --json``."""
        return {"bundle": str(self.bundle), "ok": self.ok, "failures": list(self.failures),
                "files_checked": self.files_checked, "release_id": self.release_id}

    def raise_for_failures(self) -> None:
        """Raise :class:`~dpsynth.errors.BundleError` (exit code 1) if any check failed."""
        from dpsynth.errors import BundleError

        if not self.ok:
            raise BundleError(f"bundle {self.bundle} failed verification: "
                              + "; ".join(self.failures))


def _dig(data: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    cur: Any = data
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return False, None
        cur = cur[part]
    return True, cur


def _data_rows(path: Path) -> int:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    import csv

    with path.open(newline="", encoding="utf-8") as fh:
        return max(sum(1 for _ in csv.reader(fh)) - 1, 0)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _check_privacy(manifest: dict[str, Any], fail: list[str]) -> None:
    p = manifest["privacy"]
    ledger = p["ledger"]
    try:
        rho = ledger_rho(ledger)
        if p["rho"] is not None and math.isfinite(rho) and not _close(rho, float(p["rho"])):
            fail.append(f"manifest privacy.rho ({p['rho']}) does not match its ledger ({rho:.6g})")
        if p["epsilon"] is not None and p["delta"] is not None:
            eps = ledger_epsilon(ledger, float(p["delta"]))
            if not _close(eps, float(p["epsilon"])):
                fail.append(f"manifest privacy.epsilon ({p['epsilon']}) does not match its "
                            f"ledger ({eps:.6g})")
            asked = (p.get("requested") or {}).get("epsilon")
            if asked is not None and float(p["epsilon"]) > float(asked) * (1 + 1e-9):
                fail.append(f"manifest privacy.epsilon ({p['epsilon']}) exceeds the requested "
                            f"epsilon ({asked})")
    except (KeyError, TypeError, ValueError) as exc:
        fail.append(f"manifest privacy.ledger is malformed ({type(exc).__name__})")


def verify_bundle(path: str | Path) -> VerifyResult:
    """Recompute every checksum of a bundle and check its internal consistency.

    Checks: every required file exists; ``SHA256SUMS`` lists every other file and each hash
    matches; the manifest has the contract's keys, its ``outputs`` match the files' hashes
    and row counts; its epsilon and rho follow from its ledger and stay within the request;
    ``schema.yaml`` hashes to ``input.schema_sha256``; the report belongs to this release.

    Args:
        path: The bundle directory.

    Returns:
        A :class:`VerifyResult`; call :meth:`VerifyResult.raise_for_failures` to raise.
    """
    bundle = Path(path)
    fail: list[str] = []
    if not bundle.is_dir():
        return VerifyResult(bundle=bundle, ok=False, failures=(f"{bundle} is not a directory",),
                            files_checked=0, release_id=None)
    present = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    fail += [f"missing file {name}" for name in REQUIRED_FILES if name not in present]
    checked = 0
    sums_path = bundle / "SHA256SUMS"
    if sums_path.is_file():
        sums, bad = parse_sha256sums(sums_path.read_text(encoding="utf-8", errors="replace"))
        fail += [f"SHA256SUMS: malformed {b}" for b in bad]
        for name in present:
            if name != "SHA256SUMS" and name not in sums:
                fail.append(f"file {name} is not covered by SHA256SUMS")
        for name, digest in sums.items():
            target = bundle / name
            if not _inside(target, bundle) or not target.is_file():
                fail.append(f"SHA256SUMS lists {name}, which is missing")
                continue
            checked += 1
            if sha256_file(target) != digest:
                fail.append(f"checksum mismatch: {name}")
    manifest: dict[str, Any] | None = None
    try:
        manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        fail.append("manifest.json is missing or not valid JSON")
    if manifest is not None:
        _check_manifest(bundle, manifest, fail)
    return VerifyResult(bundle=bundle, ok=not fail, failures=tuple(fail), files_checked=checked,
                        release_id=None if manifest is None else manifest.get("release_id"))


def _inside(child: Path, parent: Path) -> bool:
    c, p = child.resolve(), parent.resolve()
    return c == p or p in c.parents


def _check_manifest(bundle: Path, manifest: dict[str, Any], fail: list[str]) -> None:
    missing = [k for k in REQUIRED_KEYS if not _dig(manifest, k)[0]]
    fail += [f"manifest.json lacks key {k}" for k in missing]
    if missing:
        return
    for out in manifest["outputs"]:
        name = str(out.get("path"))
        target = bundle / name
        if not _inside(target, bundle) or not target.is_file():
            fail.append(f"manifest output {name} is missing")
            continue
        if sha256_file(target) != out.get("sha256"):
            fail.append(f"manifest output {name}: checksum mismatch")
        if out.get("rows") is not None:
            try:
                n = _data_rows(target)
            except Exception:
                fail.append(f"manifest output {name}: cannot be read as a table")
                continue
            if n != out["rows"]:
                fail.append(f"manifest output {name}: holds {n} rows, manifest says {out['rows']}")
    listed = {str(o.get("path")) for o in manifest["outputs"]}
    fail += [f"manifest outputs do not list {n}" for n in REQUIRED_FILES
             if n not in listed and n not in ("manifest.json", "SHA256SUMS")]
    _check_privacy(manifest, fail)
    try:
        from dpsynth.tabular.schema import load_schema

        if load_schema(bundle / "schema.yaml").sha256() != manifest["input"]["schema_sha256"]:
            fail.append("schema.yaml does not match manifest input.schema_sha256")
    except Exception:
        fail.append("schema.yaml cannot be read as a dpsynth schema")
    try:
        report = json.loads((bundle / "report" / "report.json").read_text(encoding="utf-8"))
        if report.get("release_id") != manifest.get("release_id"):
            fail.append("report/report.json belongs to another release")
    except (OSError, ValueError):
        fail.append("report/report.json is missing or not valid JSON")
