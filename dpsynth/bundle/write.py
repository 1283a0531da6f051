"""Release workflow: fit, sample and write a self-describing bundle; verify a bundle later.

:func:`release` spends the privacy budget once and writes, atomically (an interrupted run
leaves no bundle under the target name), the files a data-sharing agreement can attach:
``synthetic.csv``, ``synthetic.parquet``, ``schema.yaml``, ``manifest.json``,
``privacy_statement.md``, ``report/index.html``, ``report/report.json``, ``SHA256SUMS`` and
``model/`` (the fitted synthesizer, post-processing of the DP outputs: ``dpsynth sample BUNDLE``
draws more rows from it without data or budget). Only public things go into the bundle. An
optional confidential evaluation is written to a separate directory. :func:`verify_bundle`
recomputes every checksum and checks the bundle's internal consistency.

Everything that can fail without looking at the data (arguments, the output location, and
whether the schema's values can be written as CSV and Parquet) is checked before the budget
is spent. ``dpsynth.release`` is this module's :func:`release` (the module is
``dpsynth.bundle.write`` so that the package attribute is the function).
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dpsynth.api import DataSource, fit
from dpsynth.bundle import signing
from dpsynth.bundle.manifest import MODEL_DIR, RowsChoice, build_manifest, format_sha256sums, sha256_file
from dpsynth.bundle.verify import VerifyResult, verify_bundle
from dpsynth.errors import ConfigError
from dpsynth.mechanisms import registry
from dpsynth.synthesizer import Synthesizer
from dpsynth.tabular.atomic import atomic_directory, write_bytes_atomic, write_text_atomic
from dpsynth.tabular.io import check_output, escape_csv_injection, text_columns
from dpsynth.tabular.schema import Schema, dump_schema, load_schema

__all__ = [
    "STAGES",
    "ReleaseResult",
    "VerifyResult",
    "escape_csv_injection",
    "release",
    "verify_bundle",
]

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
STAGES: tuple[str, ...] = ("fit", "sample", "write data", "report", "checksums", "evaluate")
"""Stage names passed to the ``progress`` callback, in order (``evaluate`` only if asked)."""

_WRITER_MARK = ".dpsynth-writer"


@dataclass(frozen=True, kw_only=True)
class ReleaseResult:
    """What :func:`release` wrote.

    Attributes:
        bundle: The bundle directory.
        release_id: The manifest's release id.
        mechanism: The generator used.
        epsilon: The guarantee's epsilon (from the ledger; at most the requested one).
        delta: The guarantee's delta.
        rho: The zCDP cost spent.
        rows: Synthetic rows written.
        rows_source: ``dp_estimate`` or ``user``.
        estimated_rows: The DP estimate of the input's size.
        estimated_rows_stderr: Its standard error from the noise scales (``None`` if unknown).
        files: Paths of the bundle's files, relative to ``bundle``.
        internal_report: Directory of the confidential evaluation, if one was written.
        signed_by: Fingerprint of the key that signed the bundle (``signature.json``), if signed.
    """

    bundle: Path
    release_id: str
    mechanism: str
    epsilon: float | None
    delta: float | None
    rho: float | None
    rows: int
    rows_source: str
    estimated_rows: int
    estimated_rows_stderr: float | None = None
    files: tuple[str, ...] = field(default_factory=tuple)
    internal_report: Path | None = None
    signed_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (paths as strings), as printed by ``dpsynth release --json``."""
        out = asdict(self)
        out["bundle"] = str(self.bundle)
        out["files"] = list(self.files)
        out["internal_report"] = None if self.internal_report is None else str(self.internal_report)
        return out


def _resolve_schema(schema: Schema | str | Path) -> Schema:
    return schema if isinstance(schema, Schema) else load_schema(schema)


def _inside(child: Path, parent: Path) -> bool:
    c, p = child.resolve(), parent.resolve()
    return c == p or p in c.parents


def _sweep_stale_partials(out: Path) -> None:
    """Remove partial bundles left by writers that were killed (their process is gone)."""
    for tmp in out.parent.glob(f".{out.name}.*.partial"):
        mark = tmp / _WRITER_MARK
        try:
            pid = int(mark.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            if time.time() - tmp.stat().st_mtime < 3600:
                continue  # maybe a writer that has not marked itself yet
            pid = -1
        if pid > 0:
            try:
                os.kill(pid, 0)
                continue  # still running
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
        log.info("removing partial bundle %s left by an interrupted run", tmp.name)
        shutil.rmtree(tmp, ignore_errors=True)


def _check_args(out: Path, overwrite: bool, rows: int | None, internal_report: Path | None) -> None:
    if out.exists() and not overwrite:
        raise ConfigError(f"output {out} already exists (pass overwrite / --overwrite to replace it)")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output {out} exists and is not a directory")
    check_output(out, overwrite=overwrite)
    if internal_report is not None:
        check_output(internal_report, overwrite=overwrite)
    if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 1):
        raise ConfigError(f"rows ({rows!r}) must be a positive integer")
    if internal_report is not None and (_inside(internal_report, out) or _inside(out, internal_report)):
        raise ConfigError(
            f"internal report directory {internal_report} must be outside the bundle {out}: "
            "the confidential evaluation never goes into a public bundle")


def _publishable(tmp: Path) -> None:
    """Bundles are meant to be shared: files 0644, directories 0755 (temp files start 0600)."""
    for p in [tmp, *tmp.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)


def _parquet_bytes(df: pd.DataFrame, meta: dict[str, str]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    merged = dict(table.schema.metadata or {})
    merged.update({f"dpsynth.{k}".encode(): v.encode() for k, v in meta.items()})
    buf = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(merged), buf)
    return buf.getvalue()


def _data_bytes(synthetic: pd.DataFrame, meta: dict[str, str]) -> tuple[str, bytes]:
    """The CSV text and Parquet bytes of the synthetic rows (mixed columns as text in both)."""
    frame = text_columns(synthetic)
    csv_text = escape_csv_injection(frame).to_csv(index=False, lineterminator="\n")
    return csv_text, _parquet_bytes(frame, meta)


def _write_data(tmp: Path, synthetic: pd.DataFrame, meta: dict[str, str]) -> None:
    csv_text, parquet = _data_bytes(synthetic, meta)
    write_text_atomic(tmp / "synthetic.csv", csv_text)
    write_bytes_atomic(tmp / "synthetic.parquet", parquet)


def _preflight_writers(schema: Schema) -> None:
    """Encode every public value of every column to CSV and Parquet in memory, before spending.

    The frame comes from the schema alone (each category, ``other`` and null; each numeric
    and date bin), so a column type the writers cannot store fails here, while nothing is
    spent, instead of after the budget is gone.
    """
    import numpy as np

    from dpsynth.tabular.encoding import decode

    sizes = np.array([c.domain_size() for c in schema.modelled], dtype=np.int64)
    i = np.arange(min(int(sizes.max(initial=1)), 256), dtype=np.int64)[:, None]
    codes = np.concatenate([i % sizes, (sizes - 1 - i) % sizes])  # first and last codes: other, null
    frame = decode(codes.reshape(len(codes), len(sizes)), schema, np.random.default_rng(0))
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        frame = text_columns(frame)
        escape_csv_injection(frame).to_csv(io.StringIO(), index=False)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), io.BytesIO())
    except (ValueError, TypeError) as exc:  # pyarrow.ArrowInvalid / ArrowTypeError
        raise ConfigError(f"the schema's values cannot be written as CSV and Parquet "
                          f"({type(exc).__name__}); nothing was spent. This is a bug: please report it "
                          "with the schema") from None


def _read_source(data: DataSource, schema: Schema) -> pd.DataFrame | None:
    """The input as a frame when the confidential evaluation needs it (never modified)."""
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, (str, Path)):
        from dpsynth.tabular.encoding import read_frame

        return read_frame(data, schema)
    return None


def _write_bundle(tmp: Path, synth: Synthesizer, synthetic: pd.DataFrame, manifest: dict[str, Any],
                  step: Progress) -> dict[str, str]:
    """Write every file of the bundle into ``tmp``; the manifest's ``outputs`` are filled in.

    Returns:
        The SHA-256 of every file listed in ``SHA256SUMS``.
    """
    from dpsynth.bundle.statement import privacy_statement
    from dpsynth.report.public import build_public_report, render_public_html, synthetic_table

    meta = {"release_id": manifest["release_id"], "schema_sha256": manifest["input"]["schema_sha256"]}
    write_text_atomic(tmp / _WRITER_MARK, str(os.getpid()))
    step("write data")
    _write_data(tmp, synthetic, meta)
    dump_schema(synth.schema, tmp / "schema.yaml")
    synth.save(tmp / MODEL_DIR)  # the public transcript and model: post-processing, no budget
    step("report")
    report = build_public_report(synth, synthetic_table(synthetic, synth), manifest=manifest)
    write_text_atomic(tmp / "report" / "report.json", json.dumps(report, indent=2, allow_nan=False))
    write_text_atomic(tmp / "report" / "index.html", render_public_html(report))
    write_text_atomic(tmp / "privacy_statement.md", privacy_statement(manifest))
    step("checksums")
    data_rows = {"synthetic.csv": len(synthetic), "synthetic.parquet": len(synthetic)}
    names = ["synthetic.csv", "synthetic.parquet", "schema.yaml", "privacy_statement.md",
             "report/index.html", "report/report.json"]
    names += sorted(p.relative_to(tmp).as_posix() for p in (tmp / MODEL_DIR).rglob("*") if p.is_file())
    manifest["outputs"] = [{"path": n, "sha256": sha256_file(tmp / n), "rows": data_rows.get(n)}
                           for n in names]
    write_text_atomic(tmp / "manifest.json", json.dumps(manifest, indent=2, allow_nan=False))
    (tmp / _WRITER_MARK).unlink()
    sums = {n: sha256_file(tmp / n) for n in [*names, "manifest.json"]}
    write_text_atomic(tmp / "SHA256SUMS", format_sha256sums(sums))
    _publishable(tmp)
    return sums


def release(
    data: DataSource,
    schema: Schema | str | Path | None,
    *,
    mechanism: str = "aim",
    options: object | None = None,
    epsilon: float | None = None,
    delta: float = 1e-9,
    rho: float | None = None,
    rows: int | None = None,
    seed: int | None = None,
    engine: str = "numpy",
    allow_private_schema: bool = False,
    ledger_path: str | Path | None = None,
    lifetime_epsilon: float | None = None,
    lifetime_rho: float | None = None,
    out: str | Path,
    overwrite: bool = False,
    internal_report: str | Path | None = None,
    holdout: pd.DataFrame | str | Path | None = None,
    target: str | None = None,
    progress: Progress | None = None,
    sign: str | Path | None = None,
    discover_schema_epsilon: float | None = None,
    max_memory: str | int | None = None,
) -> ReleaseResult:
    """Fit a synthesizer, spending the budget once, and write a release bundle atomically.

    Args:
        data: The confidential input: a DataFrame or a CSV/Parquet path (never modified).
        schema: The public schema (or a path to it); with ``discover_schema_epsilon``, a
            partial schema or ``None``.
        mechanism: A registered mechanism (:func:`dpsynth.mechanisms.registry.names`):
            ``schema_only``, ``independent``, ``mst``, ``aim``, ``dpvae``, ``dpgan``, or one
            registered later.
        options: The mechanism's options, an instance of its ``config_type`` (e.g.
            ``AIMConfig``, ``MSTConfig``, ``NeuralConfig``); default its default options.
        epsilon: Budget as (epsilon, delta)-DP; or give ``rho``.
        delta: The delta of the guarantee.
        rho: Budget as rho-zCDP (alternative to ``epsilon``).
        rows: Number of synthetic rows; default the DP estimate of the input size.
        seed: Seed of post-processing only (sampling, decoding); it never reaches DP noise,
            contribution bounding or DP-SGD training, which use OpenDP and a per-run secret.
        engine: Counting engine: ``numpy``, ``duckdb`` or ``spark``.
        allow_private_schema: Accept ``private_inferred`` schema facts (stated as a caveat).
        ledger_path: Persistent per-dataset ledger (lifetime cap across releases); the whole
            budget is reserved in it before any read, or the release is refused.
        lifetime_epsilon: Lifetime cap stored when the ledger is created (default: this
            release's budget); never changed by a later call. lifetime_rho: same, as rho-zCDP.
        out: The bundle directory to create.
        overwrite: Replace an existing bundle (only once the new one is complete).
        internal_report: Where to write the CONFIDENTIAL evaluation (outside the bundle).
        holdout: Real rows never fitted on, for the confidential evaluation.
        target: Binary column for the evaluation's train-on-synthetic AUC.
        progress: Called with each stage name of :data:`STAGES` as it starts.
        sign: An Ed25519 private key file (``dpsynth keygen``): the complete bundle is signed
            (``signature.json``, over ``manifest.json`` and ``SHA256SUMS``) before it is
            published. The key is read before any budget is spent.
        discover_schema_epsilon: Discover the schema (or the columns a partial one leaves
            out) under DP first, spending this much of ``epsilon`` (docs/discovery.md); the
            manifest's epsilon then covers schema and model.
        max_memory: Budget of the fit's working memory (bytes, or ``"512M"``, ``"2G"``); see
            :func:`dpsynth.api.fit`.

    Returns:
        A :class:`ReleaseResult`.

    Raises:
        ConfigError: Bad arguments or existing output (exit code 2), before any budget is spent.
        SchemaError: Invalid schema or data not matching it (exit code 4).
        BudgetExceededError: The budget or the ledger's lifetime cap would be exceeded (3).
    """
    step: Progress = progress or (lambda _stage: None)
    out_dir = Path(out)
    report_dir = None if internal_report is None else Path(internal_report)
    _check_args(out_dir, overwrite, rows, report_dir)
    registry.resolve_config(registry.get(mechanism), options)  # unknown name or wrong options: before any spend
    sch = None if schema is None else _resolve_schema(schema)
    if sch is not None and discover_schema_epsilon is None:
        _preflight_writers(sch)
    elif sch is None and discover_schema_epsilon is None:
        raise ConfigError("give a schema, or discover one under DP (discover_schema_epsilon / "
                          "--discover-schema-epsilon)")
    signing_key = None if sign is None else signing.load_private_key(sign)  # a bad key fails before spending
    _sweep_stale_partials(out_dir)

    step("fit")
    synth = fit(data, sch, mechanism=mechanism, options=options, epsilon=epsilon,
                delta=delta, rho=rho, seed=seed, engine=engine,
                allow_private_schema=allow_private_schema, ledger_path=ledger_path,
                lifetime_epsilon=lifetime_epsilon, lifetime_rho=lifetime_rho,
                ledger_label=f"release -> {out_dir}", discover_schema_epsilon=discover_schema_epsilon,
                max_memory=max_memory)
    sch = synth.schema
    if discover_schema_epsilon is not None:
        _preflight_writers(sch)
    choice = RowsChoice(count=synth.estimated_rows if rows is None else int(rows),
                        source="dp_estimate" if rows is None else "user",
                        dp_estimate=int(synth.estimated_rows))
    step("sample")
    synthetic = synth.sample(choice.count, seed=seed)

    manifest = build_manifest(synth, rows=choice, seed=seed, allow_private_schema=allow_private_schema,
                              requested={"epsilon": epsilon, "delta": delta, "rho": rho,
                                         "discover_schema_epsilon": discover_schema_epsilon}, outputs=[])
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        sums = _write_bundle(tmp, synth, synthetic, manifest, step)
        signed_by = None if signing_key is None else signing.sign_bundle(tmp, signing_key)
    log.info("release %s written to %s", manifest["release_id"], out_dir)

    if report_dir is not None:
        step("evaluate")
        from dpsynth.evaluation.evaluate import evaluate

        real = _read_source(data, sch)
        if real is None:
            raise ConfigError("internal_report needs the data as a DataFrame or a file path")
        evaluate(real, synthetic, sch, holdout=holdout, target=target, out=report_dir,
                 overwrite=overwrite)
    p = synth.privacy
    return ReleaseResult(
        bundle=out_dir, release_id=manifest["release_id"], mechanism=synth.mechanism,
        epsilon=p.epsilon, delta=p.delta, rho=p.rho, rows=choice.count,
        rows_source=choice.source, estimated_rows=choice.dp_estimate,
        estimated_rows_stderr=synth.estimated_rows_stderr,
        files=tuple(sorted([*sums, "SHA256SUMS", *([signing.SIGNATURE_FILE] if signed_by else [])])),
        internal_report=report_dir, signed_by=signed_by,
    )
