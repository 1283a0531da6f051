"""Release linked tables as one bundle, and verify one (checksums, guarantee, referential integrity).

A relational bundle holds, written atomically::

    tables/<table>.csv, tables/<table>.parquet   one pair per table, keys that join
    relational.yaml, schemas/<table>.schema.yaml the public relational schema
    model/                                       the fitted tables (sample more: no data, no budget)
    manifest.json                                one guarantee per person, each table's share
    report/index.html, report/index.json        public overview: the guarantee, the tables, child counts
    report/<table>.html, report/<table>.json    public reports (noisy measurements vs released rows)
    privacy_statement.md, SHA256SUMS

:func:`verify_relational` recomputes every checksum, re-derives epsilon from the ledger,
and checks that every primary key is unique, every foreign key names a row of the root and
no person has more child rows than the declared bound.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from dpsynth.bundle.manifest import format_sha256sums, parse_sha256sums, sha256_file, software_versions
from dpsynth.bundle.signing import SIGNATURE_FILE
from dpsynth.bundle.verify import ledger_epsilon, ledger_rho
from dpsynth.errors import BundleError, ConfigError
from dpsynth.relational.fit import RelationalSynthesizer, fit_relational
from dpsynth.relational.schema import RelationalSchema, dump_relational, load_relational
from dpsynth.tabular.atomic import atomic_directory, write_bytes_atomic, write_text_atomic

if TYPE_CHECKING:  # pragma: no cover
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["FORMAT", "RelationalVerifyResult", "read_tables", "release_tables", "verify_relational"]

FORMAT = "dpsynth-relational-bundle/1"


def read_tables(rel: RelationalSchema, data: Mapping[str, Any] | None = None, *,
                lazy_children: bool = False) -> dict[str, Any]:
    """Each table's rows: a frame or path from ``data``, else the schema's ``data`` file.

    With ``lazy_children`` a child table given as a path stays a path (the duckdb engine reads
    it out of core); otherwise every path is read into a frame with its table's schema.
    """
    from dpsynth.relational.fit import _frame_of, table_errors
    from dpsynth.tabular.reading import check_input

    frames: dict[str, Any] = {}
    for name, schema in rel.schemas.items():
        source = (data or {}).get(name)
        if source is None:
            source = rel.data_path(name)
        if source is None:
            raise ConfigError(f"table {name!r}: no data (give a data file in the relational schema)")
        if lazy_children and name != rel.root and not isinstance(source, pd.DataFrame):
            with table_errors(name):  # the checks that need only the file and its header, now
                check_input(source, schema, sep=rel.specs[name].sep)
        frames[name] = source if lazy_children and name != rel.root else _frame_of(rel, name, source)
    return frames


def _statement(manifest: dict[str, Any]) -> str:
    priv = manifest["privacy"]
    lines = [
        f"# Privacy statement: {manifest.get('name') or 'relational release'}",
        "",
        f"This release of {len(manifest['tables'])} linked tables satisfies "
        f"({priv['epsilon']:.6g}, {priv['delta']:.3g})-differential privacy "
        f"(rho = {priv['rho']:.6g} zCDP) for **{priv['unit']}**.",
        "",
        "One epsilon covers every table: adding or removing one person changes their root row and "
        "at most the declared number of rows of each child table; the tables' budget shares compose.",
        "",
        "| table | rows released | share of the budget | rho |",
        "|---|---|---|---|",
    ]
    for name, t in manifest["tables"].items():
        lines.append(f"| {name} | {t['rows']} | {t['budget_share']:.3g} | {t['rho']:.6g} |")
    lines += ["", "Keys are fresh integers that join; they are not the input's keys. Row counts are "
              "drawn from DP estimates, not copied from the input.", ""]
    if priv.get("caveats"):
        lines += ["## Caveats", "", *(f"- {c}" for c in priv["caveats"]), ""]
    return "\n".join(lines)


def _write_reports(tmp: Path, model: RelationalSynthesizer, tables: dict[str, pd.DataFrame],
                   manifest: dict[str, Any]) -> None:
    """One public HTML report per table (``report/<table>.html`` and ``.json``): the table's
    noisy measurements against the released rows (joined with their parent columns, and the
    root with its child counts), under the release's guarantee; and the overview page
    (``report/index.html``, :mod:`dpsynth.relational.overview`). Post-processing only."""
    from dpsynth.bundle.manifest import RowsChoice, build_manifest
    from dpsynth.relational.fit import prepare_frames
    from dpsynth.relational.overview import build_overview, render_overview
    from dpsynth.report.public import build_public_report, render_public_html, synthetic_table

    fitted = prepare_frames(model.rel, tables)  # the released tables in each fit's layout
    whole = manifest["privacy"]
    reports: dict[str, dict[str, Any]] = {}
    for name, synth in model.synths.items():
        own = build_manifest(synth, rows=RowsChoice(count=len(tables[name]), source="dp_estimate",
                                                    dp_estimate=synth.estimated_rows),
                             seed=manifest["seed"], allow_private_schema=False, requested={}, outputs=[],
                             release_id=manifest["release_id"], created_utc=manifest["created"])
        own["privacy"].update({k: whole[k] for k in ("epsilon", "delta", "rho", "unit")})
        own["privacy"]["caveats"] = [f"table {name!r} of a linked release; its ledger below is this table's "
                                     f"share (rho {synth.privacy.rho:.6g}) of the release's rho {whole['rho']:.6g}",
                                     *whole.get("caveats", [])]
        report = build_public_report(synth, synthetic_table(fitted[name], synth), manifest=own)
        write_text_atomic(tmp / "report" / f"{name}.json", json.dumps(report, indent=2, allow_nan=False))
        write_text_atomic(tmp / "report" / f"{name}.html", render_public_html(report))
        reports[name] = report
    links = {c: list(model.rel.specs[c].parent_columns) for c in model.rel.children}
    overview = build_overview(manifest, reports, links)
    write_text_atomic(tmp / "report" / "index.json", json.dumps(overview, indent=2, allow_nan=False))
    write_text_atomic(tmp / "report" / "index.html", render_overview(overview))


def release_tables(relational: RelationalSchema | str | Path, out: str | Path, *, epsilon: float | None = None,
                   delta: float = 1e-9, rho: float | None = None, mechanism: str = "aim",
                   seed: int | None = None, data: Mapping[str, Any] | None = None,
                   overwrite: bool = False, options: object | None = None, engine: str = "numpy",
                   ledger_path: str | Path | None = None, lifetime_epsilon: float | None = None,
                   sign: str | Path | None = None, internal_report: str | Path | None = None,
                   rows: int | None = None, allow_private_schema: bool = False) -> Path:
    """Fit every table, sample linked synthetic tables and write a verified bundle to ``out``.

    The output location and the signing key (``sign``, an Ed25519 private key file from
    ``dpsynth keygen``) are checked before any budget is spent; the bundle is signed and
    verified after it is written and before it is moved into place. ``internal_report`` names
    a CONFIDENTIAL folder (mode 0700, outside the bundle) for ``evaluation.json``: the
    fidelity of the released tables against the input (:func:`dpsynth.relational.evaluate.fidelity`).
    """
    from dpsynth.bundle import signing
    from dpsynth.tabular.io import check_output

    rel = relational if isinstance(relational, RelationalSchema) else load_relational(relational)
    target = Path(out)
    if target.exists() and not overwrite:
        raise ConfigError(f"output {target} already exists (pass overwrite to replace it)")
    key = None if sign is None else signing.load_private_key(sign)
    if internal_report is not None:
        report_dir = Path(internal_report)
        if report_dir.resolve().is_relative_to(target.resolve()):
            raise ConfigError("the internal report is confidential: write it outside the bundle")
        check_output(report_dir, overwrite=overwrite)
    frames = read_tables(rel, data, lazy_children=engine == "duckdb")
    model = fit_relational(rel, frames, mechanism=mechanism, epsilon=epsilon, delta=delta, rho=rho,
                           options=options, engine=engine, ledger_path=ledger_path,
                           lifetime_epsilon=lifetime_epsilon, allow_private_schema=allow_private_schema)
    tables = model.sample(rows, seed=seed)  # rows: persons; default the DP estimate
    from dpsynth.bundle.write import _data_bytes

    with atomic_directory(target, overwrite=overwrite) as tmp:
        release_id = uuid.uuid4().hex
        files: dict[str, int | None] = {}
        for name, frame in tables.items():
            csv_text, parquet = _data_bytes(frame, {"release_id": release_id, "table": name})
            write_text_atomic(tmp / "tables" / f"{name}.csv", csv_text)
            write_bytes_atomic(tmp / "tables" / f"{name}.parquet", parquet)
            files[f"tables/{name}.csv"] = files[f"tables/{name}.parquet"] = len(frame)
        dump_relational(rel, tmp)
        model.save(tmp / "model")
        manifest = _manifest(model, tables, release_id=release_id, mechanism=mechanism, engine=engine, seed=seed)
        write_text_atomic(tmp / "privacy_statement.md", _statement(manifest))
        _write_reports(tmp, model, tables, manifest)
        names = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
        manifest["outputs"] = [{"path": n, "sha256": sha256_file(tmp / n), "rows": files.get(n)} for n in names]
        write_text_atomic(tmp / "manifest.json", json.dumps(manifest, indent=2, allow_nan=False))
        sums = {n: sha256_file(tmp / n) for n in [*names, "manifest.json"]}
        write_text_atomic(tmp / "SHA256SUMS", format_sha256sums(sums))
        for p in [tmp, *tmp.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        public = None
        if key is not None:
            signing.sign_bundle(tmp, key)
            public = key.public_key()
        check = verify_relational(tmp, key=public)
        if not check.ok:
            raise BundleError("the relational bundle failed its own verification: " + "; ".join(check.failures))
    if internal_report is not None:
        _write_internal(Path(internal_report), rel, read_tables(rel, frames), tables, manifest["release_id"],
                        overwrite=overwrite)
    return target


def _manifest(model: RelationalSynthesizer, tables: dict[str, pd.DataFrame], *, release_id: str, mechanism: str,
              engine: str, seed: int | None) -> dict[str, Any]:
    """``manifest.json`` without its ``outputs``: the release's one guarantee and each table's part."""
    rel, spend = model.rel, model.privacy
    keys = ("primary_key", "parent", "foreign_key", "max_rows_per_parent")
    return {
        "format": FORMAT, "release_id": release_id, "name": rel.name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"), "software": software_versions(),
        "mechanism": mechanism, "engine": engine, "seed": seed, "root": rel.root,
        "privacy": {"epsilon": spend.epsilon, "delta": spend.delta, "rho": spend.rho, "unit": spend.unit,
                    "conversion": spend.conversion, "ledger": [step.to_json() for step in spend.ledger],
                    "caveats": list(spend.caveats)},
        "tables": {name: {"rows": len(tables[name]), "budget_share": rel.shares[name],
                          "rho": model.synths[name].privacy.rho,
                          "estimated_rows": model.synths[name].estimated_rows,
                          **{k: v for k, v in rel.specs[name].model_dump(exclude_none=True).items() if k in keys}}
                   for name in rel.specs},
    }


def _write_internal(folder: Path, rel: RelationalSchema, frames: dict[str, pd.DataFrame],
                    tables: dict[str, pd.DataFrame], release_id: str, *, overwrite: bool) -> None:
    """The CONFIDENTIAL evaluation (owner-only folder): fidelity against the input, no DP."""
    from dpsynth.relational.evaluate import fidelity
    from dpsynth.tabular.io import keep_private

    with atomic_directory(folder, overwrite=overwrite) as rep:
        doc = {"confidential": True, "release_id": release_id,
               "note": "computed on the confidential input without DP: never publish",
               "input_rows": {name: len(frame) for name, frame in frames.items()},
               "fidelity": fidelity(rel, frames, tables)}
        write_text_atomic(rep / "evaluation.json", json.dumps(doc, indent=2, allow_nan=False))
    keep_private(folder)


@dataclass(frozen=True)
class RelationalVerifyResult:
    """The outcome of :func:`verify_relational` (file names, table and column names only)."""

    bundle: Path
    ok: bool
    failures: tuple[str, ...]
    files_checked: int
    release_id: str | None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form, as printed by ``dpsynth verify --json``."""
        return {"bundle": str(self.bundle), "ok": self.ok, "failures": list(self.failures),
                "files_checked": self.files_checked, "release_id": self.release_id}


def _check_sums(bundle: Path, fail: list[str]) -> int:
    sums_path = bundle / "SHA256SUMS"
    if not sums_path.is_file():
        fail.append("missing file SHA256SUMS")
        return 0
    sums, bad = parse_sha256sums(sums_path.read_text(encoding="utf-8", errors="replace"))
    fail += [f"SHA256SUMS: malformed {b}" for b in bad]
    present = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    fail += [f"file {n} is not covered by SHA256SUMS" for n in present
             if n not in ("SHA256SUMS", SIGNATURE_FILE) and n not in sums]
    checked = 0
    for name, digest in sums.items():
        target = bundle / name
        if not target.resolve().is_relative_to(bundle.resolve()) or not target.is_file():
            fail.append(f"SHA256SUMS lists {name}, which is missing")
            continue
        checked += 1
        if sha256_file(target) != digest:
            fail.append(f"checksum mismatch: {name}")
    return checked


def _check_links(bundle: Path, manifest: dict[str, Any], fail: list[str]) -> None:
    tables = manifest.get("tables", {})
    root = manifest.get("root")
    frames: dict[str, pd.DataFrame] = {}
    for name, t in tables.items():
        try:
            frames[name] = pd.read_parquet(bundle / "tables" / f"{name}.parquet")
        except (OSError, ValueError):
            fail.append(f"tables/{name}.parquet cannot be read")
            continue
        csv_rows = len(pd.read_csv(bundle / "tables" / f"{name}.csv", dtype=str, keep_default_na=False))
        if not len(frames[name]) == csv_rows == t.get("rows"):
            fail.append(f"table {name}: CSV, Parquet and manifest row counts differ")
        pk = t.get("primary_key")
        if pk is not None and name in frames and (pk not in frames[name] or not frames[name][pk].is_unique):
            fail.append(f"table {name}: primary key {pk!r} is missing or not unique")
    if root not in frames:
        return
    root_keys = set(frames[root][tables[root]["primary_key"]].tolist())
    for name, t in tables.items():
        if name == root or name not in frames:
            continue
        fk = t["foreign_key"]
        if fk not in frames[name]:
            fail.append(f"table {name}: foreign key {fk!r} is missing")
            continue
        keys = frames[name][fk]
        if keys.isna().any() or not set(keys.tolist()) <= root_keys:
            fail.append(f"table {name}: foreign key {fk!r} names rows that are not in {root!r}")
        if len(keys) and int(keys.value_counts().max()) > int(t["max_rows_per_parent"]):
            fail.append(f"table {name}: a person has more than max_rows_per_parent rows")


def verify_relational(path: str | Path, *, key: str | Path | Ed25519PublicKey | None = None
                      ) -> RelationalVerifyResult:
    """Recompute checksums, the guarantee from the ledger, and the links between the tables;
    with ``key`` (a public key or its PEM file), the signature must be valid and made by it."""
    from dpsynth.bundle.signing import check_signature, load_public_key

    bundle = Path(path)
    public = load_public_key(key) if isinstance(key, (str, Path)) else key
    fail: list[str] = []
    if not bundle.is_dir():
        return RelationalVerifyResult(bundle, False, (f"{bundle} is not a directory",), 0, None)
    checked = _check_sums(bundle, fail)
    try:
        manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        fail.append("manifest.json is missing or not valid JSON")
        return RelationalVerifyResult(bundle, False, tuple(fail), checked, None)
    if manifest.get("format") != FORMAT:
        fail.append(f"manifest format is not {FORMAT}")
    priv = manifest.get("privacy", {})
    ledger = priv.get("ledger", [])
    if not ledger or abs(ledger_rho(ledger) - float(priv.get("rho") or 0.0)) > 1e-9 * max(1.0, priv.get("rho") or 1):
        fail.append("privacy.rho does not equal the sum of the ledger")
    elif priv.get("delta") and abs(ledger_epsilon(ledger, float(priv["delta"])) - float(priv["epsilon"])) > 1e-6:
        fail.append("privacy.epsilon does not follow from the ledger")
    table_rho = sum(float(t.get("rho") or 0.0) for t in manifest.get("tables", {}).values())
    if table_rho > float(priv.get("rho") or 0.0) * (1 + 1e-9):
        fail.append("the tables spent more rho than the release states")
    _check_links(bundle, manifest, fail)
    signature = check_signature(bundle, public)
    if signature.failed:
        fail.append(signature.message)
    return RelationalVerifyResult(bundle, not fail, tuple(fail), checked, manifest.get("release_id"))
