"""The release manifest: the record of what a bundle holds and guarantees, and its verification.

:func:`build_manifest` turns a fitted :class:`~dpsynth.api.Synthesizer`'s public statement
into the ``manifest.json`` of a release bundle (docs/bundle.md), :func:`sha256_file` and
:func:`format_sha256sums` / :func:`parse_sha256sums` handle the checksums, and
:func:`ledger_epsilon` recomputes the guarantee from a manifest's ledger so that
:func:`verify_bundle` (``dpsynth verify``) can check a bundle against its manifest. Nothing
here reads private data.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from dpsynth.api import Synthesizer

__all__ = [
    "MANIFEST_VERSION",
    "REQUIRED_FILES",
    "REQUIRED_KEYS",
    "RowsChoice",
    "VerifyResult",
    "build_manifest",
    "format_sha256sums",
    "ledger_epsilon",
    "ledger_rho",
    "parse_sha256sums",
    "sha256_file",
    "software_versions",
    "verify_bundle",
]

MANIFEST_VERSION = 1

REQUIRED_FILES: tuple[str, ...] = (
    "synthetic.csv",
    "synthetic.parquet",
    "schema.yaml",
    "manifest.json",
    "privacy_statement.md",
    "report/index.html",
    "report/report.json",
    "SHA256SUMS",
)
"""Every file a bundle must hold (docs/bundle.md)."""

REQUIRED_KEYS: tuple[str, ...] = (
    "privacy.epsilon",
    "privacy.delta",
    "privacy.rho",
    "privacy.unit",
    "privacy.ledger",
    "privacy.caveats",
    "generator.mechanism",
    "software.dpsynth",
    "input.schema_sha256",
    "outputs",
)
"""Manifest keys the CLI contract promises (dotted paths)."""

TRUST_MODEL = (
    "central: the data controller runs dpsynth locally on the confidential data; the machine and "
    "the software are trusted to compute exact counts, and only the noisy, differentially private "
    "results leave it"
)

NOT_PROTECTED = (
    "the public schema: column names, categories, bounds, bin edges, nullability and constraints "
    "(declared public, not derived from the data under the guarantee)",
    "the unit of privacy itself: a person with more rows than the declared bound, or the same "
    "person under several identifiers, is protected less",
    "the combined effect of this release with other releases about the same people, unless they "
    "are charged to the same persistent ledger",
    "facts about groups: differential privacy limits what is learnt about one unit, not "
    "population-level inferences",
)


@dataclass(frozen=True, kw_only=True)
class RowsChoice:
    """How the number of synthetic rows was chosen.

    Attributes:
        count: The number of rows released.
        source: ``dp_estimate`` (the noisy total of the mechanism) or ``user``.
        dp_estimate: The DP estimate of the input's size (public, post-processing).
    """

    count: int
    source: Literal["dp_estimate", "user"]
    dp_estimate: int

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form, with a note for readers."""
        note = (
            "the row count is the differentially private estimate of the input's size; the exact "
            "input size is not published"
            if self.source == "dp_estimate"
            else "the row count was chosen by the data controller; it carries no information "
            "about the input"
        )
        return {"count": self.count, "source": self.source, "dp_estimate": self.dp_estimate,
                "note": note}


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def format_sha256sums(entries: dict[str, str]) -> str:
    """``sha256sum``-compatible text: ``<hex>  <relative path>`` per line, sorted by path."""
    return "".join(f"{digest}  {path}\n" for path, digest in sorted(entries.items()))


def parse_sha256sums(text: str) -> tuple[dict[str, str], list[str]]:
    """Parse ``sha256sum`` output into ``{path: hex}`` and a list of malformed line numbers."""
    out: dict[str, str] = {}
    bad: list[str] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        digest, sep, path = line.partition("  ")
        if not sep:
            digest, sep, path = line.partition(" *")
        digest = digest.strip().lower()
        if not sep or len(digest) != 64 or any(ch not in "0123456789abcdef" for ch in digest):
            bad.append(f"line {lineno}")
            continue
        out[path.strip()] = digest
    return out, bad


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def software_versions() -> dict[str, str | None]:
    """Versions of dpsynth and the libraries that shape the guarantee and the output."""
    import dpsynth

    return {
        "dpsynth": dpsynth.__version__,
        "python": platform.python_version(),
        "opendp": _version("opendp"),
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "pyarrow": _version("pyarrow"),
        "scipy": _version("scipy"),
    }


def _public_inputs(synth: Synthesizer) -> dict[str, Any]:
    schema = synth.schema
    return {
        "schema": "schema.yaml",
        "domain": schema.domain(),
        "constraints": len(schema.constraints),
        "description": "every category, bound, bin edge and constraint in schema.yaml is a "
        "declared public input; the synthetic rows can only take values in this domain",
    }


def build_manifest(
    synth: Synthesizer,
    *,
    rows: RowsChoice,
    seed: int | None,
    allow_private_schema: bool,
    requested: dict[str, float | None],
    outputs: list[dict[str, Any]],
    release_id: str | None = None,
    created_utc: str | None = None,
) -> dict[str, Any]:
    """Assemble ``manifest.json`` from a fitted synthesizer's public statement.

    Args:
        synth: The fitted synthesizer (its ``privacy`` statement, schema and parameters).
        rows: How many rows were released and why.
        seed: The post-processing seed, if one was given.
        allow_private_schema: Whether a schema with ``private_inferred`` facts was accepted.
        requested: The budget the data controller asked for (``epsilon``, ``delta``, ``rho``).
        outputs: ``[{path, sha256, rows}]`` of the bundle's other files.
        release_id: A fixed id (default: a fresh UUID4).
        created_utc: A fixed timestamp (default: now).

    Returns:
        The manifest as a JSON-ready dict.
    """
    p = synth.privacy
    statement = synth.guarantee
    unit = synth.schema.privacy_unit
    inferred = synth.schema.private_inferred()
    privacy: dict[str, Any] = {
        "epsilon": p.epsilon,
        "delta": p.delta,
        "rho": p.rho,
        "variant": statement.variant,
        "accounting": statement.accounting,
        "conversion": p.conversion,
        "neighbouring": p.neighbouring,
        "unit": p.unit,
        "unit_of_privacy": {"kind": unit.kind, "identifier": unit.column,
                            "max_rows": unit.sensitivity_rows},
        "requested": requested,
        "trust_model": TRUST_MODEL,
        "noise": statement.noise,
        "in_mechanism_randomness": statement.in_mechanism_randomness,
        "seed_controls": list(statement.seed_controls),
        "seed_never_touches": list(statement.seed_never_touches),
        "ledger": [step.to_json() for step in p.ledger],
        "caveats": list(p.caveats),
        "not_protected": list(NOT_PROTECTED),
        "private_schema_accepted": bool(inferred) and allow_private_schema,
        "private_inferred_columns": inferred if allow_private_schema else [],
    }
    return {
        "manifest_version": MANIFEST_VERSION,
        "release_id": release_id or str(uuid.uuid4()),
        "created_utc": created_utc or datetime.now(UTC).isoformat(timespec="seconds"),
        "software": software_versions(),
        "input": {
            "schema_sha256": synth.schema.sha256(),
            "schema_name": synth.schema.name,
            "public_inputs": _public_inputs(synth),
            "data_fingerprint": None,
            "data_fingerprint_note": "no hash of the confidential input is published: a plain "
            "hash of private data can be confirmed by guessing",
        },
        "privacy": privacy,
        "generator": {
            "mechanism": synth.mechanism,
            "parameters": synth.params,
            "selected": [list(c) for c in synth.selected],
            "measured": [{"clique": list(m.clique), "sigma": m.sigma} for m in synth.measurements],
            "post_processing_seed": seed,
            "seed_note": statement.seed_note,
        },
        "rows": rows.to_json(),
        "outputs": outputs,
    }


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
