"""Checking a release bundle against its manifest (``dpsynth verify``).

:func:`ledger_epsilon` recomputes the guarantee from a manifest's ledger, and
:func:`verify_bundle` recomputes every checksum, the row counts and the stated epsilon, checks
that ``synthetic.csv`` and ``synthetic.parquet`` hold the same rows, and, given the signer's
public key, checks the bundle's Ed25519 signature (:mod:`dpsynth.bundle.signing`), so a
recipient can check a bundle with nothing but the bundle and that key.

Threat model: checksums alone detect accidents (truncation, a bad copy, an edited file whose
sums were not recomputed); anyone can edit a file and recompute every checksum. Only a valid
signature, checked against a public key obtained independently of the bundle, detects edits
by anyone who does not hold the private key. Nothing here reads private data.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dpsynth.bundle.manifest import (
    REQUIRED_FILES,
    REQUIRED_KEYS,
    parse_sha256sums,
    sha256_file,
)
from dpsynth.bundle.signing import SIGNATURE_FILE, SignatureCheck, check_signature, load_public_key

if TYPE_CHECKING:
    import pandas as pd
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

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
        signature: The signature check (``None`` only for a path that is not a directory).
    """

    bundle: Path
    ok: bool
    failures: tuple[str, ...]
    files_checked: int
    release_id: str | None
    signature: SignatureCheck | None = None

    @property
    def assurance(self) -> str:
        """What a passing verification shows, given how the signature was checked."""
        if self.signature is not None and self.signature.status == "valid":
            return ("signed bundle: an edit by anyone without the private key of "
                    f"{self.signature.signed_by} would fail this check (a signature does not "
                    "prove the signer ran dpsynth honestly)")
        return ("unsigned verification detects accidents only: anyone can edit a file and "
                "recompute the checksums; check a signature with --key KEY.pub")

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form, as printed by ``dpsynth verify --json``."""
        return {"bundle": str(self.bundle), "ok": self.ok, "failures": list(self.failures),
                "files_checked": self.files_checked, "release_id": self.release_id,
                "signature": None if self.signature is None else self.signature.to_json(),
                "assurance": self.assurance}

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


def verify_bundle(path: str | Path, *, key: str | Path | Ed25519PublicKey | None = None) -> VerifyResult:
    """Recompute every checksum of a bundle and check its internal consistency.

    Checks: every required file exists; ``SHA256SUMS`` lists every other file (but
    ``signature.json``, which signs it) and each hash matches; the manifest has the
    contract's keys, its ``outputs`` match the files' hashes and row counts; its epsilon and
    rho follow from its ledger and stay within the request; ``schema.yaml`` hashes to
    ``input.schema_sha256``; the report belongs to this release; ``synthetic.csv`` and
    ``synthetic.parquet`` hold the same rows. With ``key``, the signature must be present,
    made by that key, and valid over the current ``manifest.json`` and ``SHA256SUMS``.

    Args:
        path: The bundle directory.
        key: The signer's public key (a PEM file path or a key object). Without it an
            existing signature is reported as present but not checked, and verification
            detects accidents only.

    Returns:
        A :class:`VerifyResult`; call :meth:`VerifyResult.raise_for_failures` to raise.

    Raises:
        ConfigError: ``key`` is not a readable Ed25519 public key (a usage error).
    """
    bundle = Path(path)
    public = load_public_key(key) if isinstance(key, (str, Path)) else key
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
            if name not in ("SHA256SUMS", SIGNATURE_FILE) and name not in sums:
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
    _check_data_agree(bundle, fail)
    signature = check_signature(bundle, public)
    if signature.failed:
        fail.append(signature.message)
    return VerifyResult(bundle=bundle, ok=not fail, failures=tuple(fail), files_checked=checked,
                        release_id=None if manifest is None else manifest.get("release_id"),
                        signature=signature)


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


_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # escaped with ' in CSV (tabular.io)
_DATETIME = re.compile(r"\d{4}\D\d{1,2}\D\d{1,2}|\d{1,2}\D\d{1,2}\D\d{4}")  # a full date, year first or last


def _quantum(text: str) -> float:
    """Half the last written digit's place value of a number's text (``0.05`` for ``1.2``)."""
    from decimal import Decimal, InvalidOperation

    try:
        exponent = Decimal(text.strip()).as_tuple().exponent
    except InvalidOperation:
        return 0.0
    return 0.5 * 10.0 ** exponent if isinstance(exponent, int) else 0.0


def _time_resolution(text: str) -> float:
    """Seconds resolved by a datetime's text: a day, a minute, a second or a fraction of one."""
    clock = text.strip().replace("T", " ").partition(" ")[2]
    if not clock:
        return 86400.0
    digits = clock.partition(".")[2]
    n = len(digits) - len(digits.lstrip("0123456789"))
    if n:
        return 10.0 ** -n
    return 1.0 if clock.count(":") >= 2 else 60.0


def _same_cell(a: str, b: str) -> bool:
    """Whether two renderings of a cell denote the same value (numbers within written precision).

    ``a`` is the CSV's text: a formula-looking cell escaped with ``'`` equals its unescaped value.
    """
    if a[:1] == "'" and a[1:] == b and b.startswith(_FORMULA_START):
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        pass
    else:
        if math.isfinite(x) and math.isfinite(y):
            return abs(x - y) <= max(_quantum(a), _quantum(b)) * (1 + 1e-9) + 1e-12 * max(abs(x), abs(y))
        return x == y
    la, lb = a.strip().casefold(), b.strip().casefold()
    if (la in _TRUE and lb in _TRUE) or (la in _FALSE and lb in _FALSE):
        return True
    if not (_DATETIME.search(a) and _DATETIME.search(b)):
        return False
    import pandas as pd

    try:
        ta, tb = pd.Timestamp(a), pd.Timestamp(b)
    except (ValueError, TypeError):
        return False
    if pd.isna(ta) or pd.isna(tb):
        return False
    if (ta.tzinfo is None) != (tb.tzinfo is None):  # compare wall-clock times
        ta, tb = ta.tz_localize(None), tb.tz_localize(None)
    return bool(abs((ta - tb).total_seconds()) <= max(_time_resolution(a), _time_resolution(b)) + 1e-9)


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame rendered as the release writes CSV (unescaped), read back as text (nulls as ``""``)."""
    import io

    import pandas as pd

    text = frame.to_csv(index=False, lineterminator="\n")
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False)


def _check_data_agree(bundle: Path, fail: list[str]) -> None:
    """``synthetic.csv`` and ``synthetic.parquet`` hold the same columns, rows and values.

    The Parquet rows are rendered to CSV text as the writer renders them and compared cell by
    cell with the CSV as written (a cell escaped against spreadsheet formulas equals its
    unescaped value); cells that differ as text must still denote the same value:
    numbers within the precision the text shows, the same boolean, or the same time at the
    text's resolution. Failures name the column, never a value.
    """
    csv_path, pq_path = bundle / "synthetic.csv", bundle / "synthetic.parquet"
    if not (csv_path.is_file() and pq_path.is_file()):
        return  # reported as missing files
    import pandas as pd
    import pyarrow.parquet as pq

    try:
        from_csv = pd.read_csv(csv_path, dtype=str, keep_default_na=False, na_filter=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError):
        fail.append("synthetic.csv cannot be parsed as CSV")
        return
    try:
        from_pq = _as_text(pq.read_table(pq_path).to_pandas(integer_object_nulls=True))
    except Exception:  # pyarrow raises several error types for a damaged file
        fail.append("synthetic.parquet cannot be read as Parquet")
        return
    if list(from_csv.columns) != list(from_pq.columns):
        only_csv = [c for c in from_csv.columns if c not in from_pq.columns]
        only_pq = [c for c in from_pq.columns if c not in from_csv.columns]
        fail.append(f"synthetic.csv and synthetic.parquet have different columns (only in the CSV: "
                    f"{only_csv}; only in the Parquet: {only_pq}; or a different order)")
        return
    if len(from_csv) != len(from_pq):
        fail.append(f"synthetic.csv holds {len(from_csv)} rows, synthetic.parquet {len(from_pq)}")
        return
    for name in from_csv.columns:
        a, b = from_csv[name].to_numpy(dtype=object), from_pq[name].to_numpy(dtype=object)
        idx = (a != b).nonzero()[0]
        if idx.size:  # formula-looking cells are escaped with ' in the CSV only
            sa, sb = pd.Series(a[idx], dtype=object), pd.Series(b[idx], dtype=object)
            escaped = sa.str.startswith("'") & (sa.str.slice(1) == sb) & sb.str.startswith(_FORMULA_START)
            idx = idx[~escaped.to_numpy(dtype=bool)]
        differ = [i for i in idx if not _same_cell(str(a[i]), str(b[i]))]
        if differ:
            fail.append(f"synthetic.csv and synthetic.parquet differ in column {name!r} "
                        f"({len(differ)} of {len(a)} rows)")
