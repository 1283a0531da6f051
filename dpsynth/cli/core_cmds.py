"""CLI commands for schemas, budgets, plans, fitting and sampling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from dpsynth.errors import ConfigError
from dpsynth.mechanisms import registry

__all__ = ["MECHANISM_HELP", "SEP_HELP", "check_budget_flags", "load_input", "register", "warn_if_tiny"]

SEP_HELP = "CSV delimiter of the data (default ',', tab for .tsv), e.g. --sep ';'."
MECHANISM_HELP = ("Mechanism: " + ", ".join(registry.names())
                  + " (the registered ones; aim is the default).")
TINY_ROWS = 20
"""Below this DP estimate of the input size, fit and release warn (never an error)."""


def check_budget_flags(epsilon: float | None, delta: float | None, rho: float | None) -> None:
    """Refuse a budget flag out of range (exit 2) before anything is read.

    ``delta`` must lie in (0, 1) whenever it is given: it is the delta of the stated
    (epsilon, delta) guarantee even for a rho budget, and 0 is never silently replaced.
    """
    from dpsynth.privacy.budget import check_delta, check_positive

    for name, value in (("epsilon", epsilon), ("rho", rho)):
        if value is not None:
            try:
                check_positive(name, value)
            except ConfigError as err:
                raise ConfigError(f"{err}; pass e.g. --{name} 1") from None
    if delta is not None:
        try:
            check_delta(delta)  # NaN fails too
        except ConfigError as err:
            raise ConfigError(f"{err} for an (epsilon, delta) guarantee; use e.g. --delta 1e-9 "
                              "(well below 1/rows)") from None


def load_input(data: Path, schema: Any, *, sep: str | None, engine: str, mechanism: str) -> Any:
    """The data as the fit should receive it, with every file problem found before any spend.

    The numpy engine gets the frame read here (so an unreadable file fails now); other
    engines get the path after a header check (or a frame when ``--sep`` is given, which only
    the pandas reader supports); a mechanism that reads no data (``schema_only``) gets only a
    header check.
    """
    from dpsynth.tabular.encoding import check_input, read_frame

    reads_data = registry.get(mechanism).reads_data  # unknown names: ConfigError listing the registered ones
    if not reads_data or (engine != "numpy" and sep is None):
        check_input(data, schema, sep=sep)
        return data
    if engine in ("arrow", "spark") and sep is not None:
        raise ConfigError(f"--sep is not supported with --engine {engine}; use numpy or duckdb")
    return read_frame(data, schema, sep=sep)


def warn_if_tiny(estimated_rows: int, mechanism: str, stderr: float | None = None) -> None:
    """Warn on stderr when the DP estimate of the input size is tiny (never an error).

    Tiny means under :data:`TINY_ROWS`, or within three standard errors of zero (``stderr``,
    from the noise scales): an empty file's estimate is pure noise and can land above 20.
    The estimate is differentially private, so printing it reveals nothing more; the exact
    row count is never checked or reported (docs/releasing.md, "Empty and tiny inputs").
    """
    limit = max(float(TINY_ROWS), 3.0 * stderr if stderr is not None else 0.0)
    if registry.get(mechanism).reads_data and estimated_rows < limit:
        from dpsynth.cli import err_console

        near = "" if estimated_rows < TINY_ROWS else f" (within 3 standard errors, ±{stderr:.0f} each, of zero)"
        err_console().print(
            f"[yellow]warning[/yellow]: the DP estimate of the input size is {estimated_rows} rows{near}: the "
            "input may be (nearly) empty, or the budget too small. Check the file with "
            "`dpsynth validate` (confidential) before using the output.")

schema_app = typer.Typer(help="Draft, validate and convert public schemas.", no_args_is_help=True)


def _parse_shares(items: list[str]) -> dict[str, dict[object, float]]:
    out: dict[str, dict[object, float]] = {}
    for item in items:
        col, sep, rest = item.partition("=")
        value, sep2, share = rest.rpartition(":")
        if not (sep and sep2 and col):
            raise ConfigError(f"--share {item!r} must look like COLUMN=VALUE:SHARE")
        try:
            out.setdefault(col, {})[value] = float(share)
        except ValueError:
            raise ConfigError(f"--share {item!r}: SHARE must be a number") from None
    return out


@schema_app.command("draft")
def schema_draft(
    data: Path = typer.Argument(..., help="CSV or Parquet file (read to draft; NOT private)."),
    out: Path = typer.Option(..., "-o", "--out", help="Where to write the drafted schema (YAML)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it already exists."),
    sep: str | None = typer.Option(None, "--sep", help=SEP_HELP),
) -> None:
    """Draft a schema from the data. Every derived fact is marked private_inferred."""
    if out.exists() and not overwrite:
        raise ConfigError(f"schema draft: {out} already exists; pass --overwrite to replace it")

    from dpsynth.cli import err_console
    from dpsynth.tabular.encoding import read_frame
    from dpsynth.tabular.io import check_output, keep_private
    from dpsynth.tabular.schema import dump_schema
    from dpsynth.tabular.schema_io import draft_schema

    check_output(out, overwrite=True, is_dir=False)
    df = read_frame(data, None, sep=sep,
                    na_values=["", "NA", "N/A", "NaN", "null", "NULL", "None", "?"])
    schema, notes = draft_schema(df, name=data.stem)
    dump_schema(schema, out)
    keep_private(out)  # its facts were read off the data without DP
    console = err_console()
    console.print("[bold red]WARNING[/bold red]: this schema was read off the data and is NOT private. "
                  "Every derived fact is marked private_inferred; fitting refuses it unless you "
                  "replace them with public facts or pass --allow-private-schema.")
    for n in notes[1:]:
        console.print(f"  - {n}")
    console.print(f"wrote {out}")


@schema_app.command("validate")
def schema_validate(schema: Path = typer.Argument(..., help="Schema file (YAML/JSON or Private-PGM domain).")) -> None:
    """Check a schema file; print its public domain."""
    from dpsynth.cli import err_console
    from dpsynth.tabular.schema import load_schema

    s = load_schema(schema)
    console = err_console()
    dom = s.domain()
    console.print(f"schema OK: {len(s.columns)} columns, {len(dom)} modelled, unit: {s.privacy_unit.describe()}")
    inferred = s.private_inferred()
    if inferred:
        console.print(f"[yellow]note[/yellow]: private_inferred facts in columns {inferred}")


@schema_app.command("json-schema")
def schema_json(out: Path | None = typer.Option(None, "-o", "--out")) -> None:
    """Print (or write) the JSON Schema of the schema file format."""
    from dpsynth.tabular.schema import schema_json_schema

    text = json.dumps(schema_json_schema(), indent=2)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
    else:
        typer.echo(text)


@schema_app.command("import-sdv")
def schema_import_sdv(
    metadata: Path = typer.Argument(..., help="SDV single-table metadata JSON."),
    facts: Path = typer.Option(..., "--facts", help="YAML/JSON with the public categories and bounds per column."),
    out: Path = typer.Option(..., "-o", "--out"),
) -> None:
    """Convert SDV metadata plus public facts into a dpsynth schema."""
    import yaml

    from dpsynth.tabular.schema import dump_schema
    from dpsynth.tabular.schema_io import from_sdv

    meta = json.loads(metadata.read_text(encoding="utf-8"))
    if "tables" in meta and len(meta["tables"]) == 1:
        meta = next(iter(meta["tables"].values()))
    dump_schema(from_sdv(meta, yaml.safe_load(facts.read_text(encoding="utf-8")) or {}), out)


@schema_app.command("export-sdv")
def schema_export_sdv(
    schema: Path = typer.Argument(...),
    out: Path = typer.Option(..., "-o", "--out"),
) -> None:
    """Write SDV single-table metadata for a dpsynth schema."""
    from dpsynth.tabular.atomic import write_text_atomic
    from dpsynth.tabular.schema import load_schema
    from dpsynth.tabular.schema_io import to_sdv

    write_text_atomic(out, json.dumps(to_sdv(load_schema(schema)), indent=2) + "\n")


def validate_cmd(
    data: Path = typer.Argument(..., help="CSV or Parquet file."),
    schema: Path = typer.Option(..., "-s", "--schema"),
    sep: str | None = typer.Option(None, "--sep", help=SEP_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """CONFIDENTIAL: what the data violates, as counts per column (never values)."""
    from dpsynth.cli import emit, err_console
    from dpsynth.tabular.encoding import read_frame, validate_frame
    from dpsynth.tabular.schema import load_schema

    s = load_schema(schema)
    report = validate_frame(read_frame(data, s, sep=sep), s)
    if as_json:
        emit(report.to_json(), as_json=True)
        return
    console = err_console()
    console.print("[bold]CONFIDENTIAL[/bold] validation report (computed on private data; do not publish)")
    if report.ok:
        console.print("no violations")
    for col, problems in report.problems.items():
        for kind, n in problems.items():
            console.print(f"  {col}: {kind}: {n}")


def budget_cmd(
    rho: float | None = typer.Option(None, "--rho"),
    epsilon: float | None = typer.Option(None, "--epsilon"),
    delta: float = typer.Option(..., "--delta"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Convert between zCDP rho and (epsilon, delta)."""
    from dpsynth.cli import emit
    from dpsynth.privacy.budget import budget_summary

    check_budget_flags(epsilon, delta, rho)
    emit(budget_summary(rho=rho, epsilon=epsilon, delta=delta), as_json=as_json)


MAX_MEMORY_HELP = ("Memory budget of the fit, e.g. 512M or 2G (default: half the machine's memory); "
                   "AIM's model cap is derived from it, larger fixed-size models are refused.")
ALLOW_WEAK_HELP = ("dpvae/dpgan: fit even when DP-SGD's expected noise-to-signal ratio is over the "
                   "limit (docs/neural.md); otherwise refused with a recommendation.")


def neural_options(mechanism: str, allow_weak: bool) -> object | None:
    """``NeuralConfig(allow_weak=True)`` for a DP-SGD mechanism when asked, else ``None``."""
    from dpsynth.mechanisms import registry

    if not allow_weak or not registry.get(mechanism).needs_approx_dp:
        return None
    from dpsynth.neural.train import NeuralConfig

    return NeuralConfig(allow_weak=True)


def plan_cmd(
    schema: Path = typer.Option(..., "-s", "--schema"),
    mechanism: str = typer.Option("aim", "--mechanism", "-m", help=MECHANISM_HELP),
    epsilon: float | None = typer.Option(None, "--epsilon"),
    delta: float = typer.Option(1e-9, "--delta"),
    rho: float | None = typer.Option(None, "--rho"),
    max_memory: str | None = typer.Option(None, "--max-memory", help=MAX_MEMORY_HELP),
    memory_cap_gib: float | None = typer.Option(None, "--memory-cap-gib", help="Older spelling of --max-memory."),
    rows: int | None = typer.Option(None, "--rows", help="Declared row count (public), for the DP-SGD check."),
    allow_weak_neural: bool = typer.Option(False, "--allow-weak-neural", help=ALLOW_WEAK_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Plan a fit from the schema alone: noise scales, model size, memory."""
    from dpsynth.cli import emit
    from dpsynth.mechanisms.plan import plan_fit
    from dpsynth.tabular.schema import load_schema

    check_budget_flags(epsilon, delta, rho)
    cap = max_memory if max_memory is not None else (
        int(memory_cap_gib * 2**30) if memory_cap_gib is not None else None)
    p = plan_fit(load_schema(schema), mechanism=mechanism, epsilon=epsilon, delta=delta, rho=rho,
                 max_memory=cap, rows=rows, options=neural_options(mechanism, allow_weak_neural))
    emit(p.to_json(), as_json=as_json)


def fit_cmd(
    data: Path = typer.Argument(..., help="CSV or Parquet file (private)."),
    schema: Path = typer.Option(..., "-s", "--schema"),
    mechanism: str = typer.Option("aim", "--mechanism", "-m", help=MECHANISM_HELP),
    epsilon: float | None = typer.Option(None, "--epsilon"),
    delta: float = typer.Option(1e-9, "--delta"),
    rho: float | None = typer.Option(None, "--rho"),
    seed: int | None = typer.Option(
        None, "--seed", help="Accepted for scripts; fitting uses no seed (bounding and DP-SGD draw "
        "from a per-run secret, DP noise from OpenDP). Pass seeds to `sample`."),
    engine: str = typer.Option("numpy", "--engine", help="numpy, arrow (Parquet), duckdb or spark."),
    allow_private_schema: bool = typer.Option(False, "--allow-private-schema"),
    ledger: Path | None = typer.Option(None, "--ledger", help="Persistent ledger file with a lifetime cap."),
    lifetime_epsilon: float | None = typer.Option(
        None, "--lifetime-epsilon",
        help="Lifetime cap stored in a NEW ledger (default: this budget); never raised later."),
    lifetime_rho: float | None = typer.Option(None, "--lifetime-rho", help="Lifetime cap as rho-zCDP (new ledger)."),
    out: Path = typer.Option(..., "--out", help="Model directory to write."),
    overwrite: bool = typer.Option(False, "--overwrite"),
    sep: str | None = typer.Option(None, "--sep", help=SEP_HELP),
    max_memory: str | None = typer.Option(None, "--max-memory", help=MAX_MEMORY_HELP),
    allow_weak_neural: bool = typer.Option(False, "--allow-weak-neural", help=ALLOW_WEAK_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Fit a model under a privacy budget and save it (JSON + npz)."""
    from dpsynth.api import fit
    from dpsynth.cli import emit
    from dpsynth.tabular.io import check_output, publish
    from dpsynth.tabular.schema import load_schema

    check_budget_flags(epsilon, delta, rho)
    s = load_schema(schema)
    if out.exists() and not overwrite:
        raise ConfigError(f"output {out} already exists (pass --overwrite to replace it)")
    check_output(out, overwrite=overwrite)
    source = load_input(data, s, sep=sep, engine=engine, mechanism=mechanism)
    synth = fit(source, s, mechanism=mechanism, epsilon=epsilon, delta=delta, rho=rho,
                seed=seed, engine=engine, allow_private_schema=allow_private_schema, ledger_path=ledger,
                lifetime_epsilon=lifetime_epsilon, lifetime_rho=lifetime_rho, max_memory=max_memory,
                options=neural_options(mechanism, allow_weak_neural))
    synth.save(out, overwrite=overwrite)
    publish(out)  # a fitted model is DP output (post-processing of noisy measurements)
    warn_if_tiny(synth.estimated_rows, synth.mechanism, synth.estimated_rows_stderr)
    emit({"model": str(out), "mechanism": synth.mechanism, "epsilon": synth.privacy.epsilon,
          "delta": synth.privacy.delta, "rho": synth.privacy.rho,
          "estimated_rows": synth.estimated_rows}, as_json=as_json)


def sample_cmd(
    model: Path = typer.Argument(..., help="A release bundle (its model/ is used once the bundle verifies) "
                                 "or a model directory written by `dpsynth fit`."),
    rows: int | None = typer.Option(None, "--rows", help="Rows to draw (default: the DP estimate of n)."),
    condition: list[str] = typer.Option(
        [], "--condition", help="COLUMN=VALUE, COLUMN=A,B, COLUMN>=X (also >, <, <=) or COLUMN=LOW..HIGH "
        "(numbers, dates such as 2017-05..2017-06); repeat for more (all must hold)."),
    share: list[str] = typer.Option([], "--share", help="COLUMN=VALUE:SHARE to rebalance one column; repeat."),
    seed: int | None = typer.Option(None, "--seed", help="Post-processing seed: sampling and decoding only."),
    key: Path | None = typer.Option(
        None, "--key", help="With a bundle: the signer's public key; the bundle must carry a valid signature by it."),
    out: Path = typer.Option(..., "--out", help="Output .csv or .parquet"),
    independent: bool = typer.Option(
        False, "--independent", help="Independent rows instead of systematic sampling within the model's cliques."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Sample synthetic rows from a release bundle or a fitted model (post-processing: spends nothing).

    A bundle is verified first (checksums, manifest, and the signature with --key) and refused
    if any check fails; no data, budget or ledger is read.
    """
    from dpsynth.bundle.load import is_bundle, load_bundle
    from dpsynth.cli import emit
    from dpsynth.synthesizer import load
    from dpsynth.tabular.io import check_output, write_frame

    if out.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise ConfigError(f"--out {out.name}: unsupported format {out.suffix!r} (use .csv or .parquet)")
    check_output(out, overwrite=True, is_dir=False)
    if (model / "relational.yaml").is_file():
        raise ConfigError(f"{model} holds linked tables; sample them with `dpsynth sample-tables {model} --out DIR`")
    if is_bundle(model):
        synth = load_bundle(model, key=key)
    elif key is not None:
        raise ConfigError(f"--key applies to release bundles; {model} is not one (no manifest.json and SHA256SUMS)")
    else:
        synth = load(model)
    df = synth.sample(rows, conditions=list(condition) or None,
                      rebalance=_parse_shares(share) or None, seed=seed, independent=independent)
    write_frame(df, out)
    emit({"out": str(out), "rows": len(df), "source": "bundle" if is_bundle(model) else "model"},
         as_json=as_json)


def register(app: typer.Typer) -> None:
    """Add these commands to the main app."""
    app.add_typer(schema_app, name="schema")
    app.command("validate")(validate_cmd)
    app.command("budget")(budget_cmd)
    app.command("plan")(plan_cmd)
    app.command("fit")(fit_cmd)
    app.command("sample")(sample_cmd)
