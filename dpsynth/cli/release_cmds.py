"""CLI commands of the release workflow: ``release``, ``verify``, ``keygen`` and ``evaluate``.

The main app (:mod:`dpsynth.cli`) calls :func:`register`. Commands raise dpsynth errors; the
main app prints them as one line on stderr and exits with the error's code. Progress goes to
stderr (quiet when stderr is not a terminal); ``--json`` prints one result object on stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
import yaml

from dpsynth.cli.core_cmds import (
    ALLOW_WEAK_HELP,
    MAX_MEMORY_HELP,
    MECHANISM_HELP,
    SEP_HELP,
    check_budget_flags,
    load_input,
    neural_options,
    warn_if_tiny,
)
from dpsynth.errors import ConfigError
from dpsynth.mechanisms import registry

__all__ = ["CONFIG_KEYS", "bundle_data", "load_release_config", "register"]

CONFIG_KEYS: dict[str, type] = {
    "data": str, "schema": str, "mechanism": str, "epsilon": float, "delta": float, "rho": float,
    "rows": int, "seed": int, "engine": str, "allow_private_schema": bool, "out": str,
    "overwrite": bool, "internal_report": str, "holdout": str, "target": str, "ledger": str,
    "lifetime_epsilon": float, "lifetime_rho": float, "sep": str, "sign": str,
    "discover_schema_epsilon": float, "max_memory": str, "allow_weak_neural": bool,
}
_PATH_KEYS = ("data", "schema", "out", "internal_report", "holdout", "ledger", "sign")


def load_release_config(path: Path) -> dict[str, Any]:
    """Read ``release.yaml``: keys mirror the flags (``-`` or ``_``); paths are relative to it."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except yaml.YAMLError:
        raise ConfigError(f"config {path.name} is not valid YAML") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path.name} must be a mapping of flag names to values")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in CONFIG_KEYS:
            raise ConfigError(f"config {path.name}: unknown key {key!r} (known: {sorted(CONFIG_KEYS)})")
        kind = CONFIG_KEYS[name]
        if value is not None and kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        if (value is not None and not isinstance(value, kind)) or (kind is not bool and isinstance(value, bool)):
            raise ConfigError(f"config {path.name}: {name} ({value!r}) must be a {kind.__name__}")
        if name in _PATH_KEYS and value is not None:
            value = str((path.parent / str(value)) if not Path(str(value)).is_absolute() else value)
        out[name] = value
    return out


@contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    """A rich progress display on stderr, yielding a ``progress(stage)`` callback."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from dpsynth.bundle.write import STAGES

    console = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("starting", total=len(STAGES))

        def step(stage: str) -> None:
            bar.update(task, description=stage, completed=STAGES.index(stage))

        yield step


def _emit(obj: dict[str, Any], as_json: bool, human: str) -> None:
    if as_json:
        typer.echo(json.dumps(obj, indent=2))
    else:
        typer.echo(human, err=True)


def register(app: typer.Typer) -> None:
    """Add the ``release``, ``verify``, ``keygen`` and ``evaluate`` commands to ``app``.

    Long by design: the body is the three commands' option declarations (typer reads them
    from the signatures); each command's work is one call into the package.
    """

    @app.command("release")
    def release_cmd(
        data: Path | None = typer.Argument(None, help="Confidential input (CSV or Parquet)."),
        schema: Path | None = typer.Option(None, "--schema", "-s", help="Public schema file."),
        mechanism: str | None = typer.Option(None, "--mechanism", "-m", help=MECHANISM_HELP),
        epsilon: float | None = typer.Option(None, "--epsilon", help="Budget epsilon."),
        delta: float | None = typer.Option(None, "--delta", help="Budget delta (default 1e-9)."),
        rho: float | None = typer.Option(None, "--rho", help="Budget as rho-zCDP instead of epsilon."),
        rows: int | None = typer.Option(None, "--rows", help="Synthetic rows (default: the DP estimate of n)."),
        seed: int | None = typer.Option(
            None, "--seed",
            help="Post-processing seed: sampling and decoding only (never DP noise, bounding or DP-SGD training); "
            "published in the manifest."),
        engine: str | None = typer.Option(
            None, "--engine", help="numpy (default), arrow (Parquet), duckdb or spark."),
        allow_private_schema: bool | None = typer.Option(
            None, "--allow-private-schema", help="Accept private_inferred schema facts (stated as a caveat)."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Bundle directory to create."),
        overwrite: bool | None = typer.Option(None, "--overwrite", help="Replace an existing bundle."),
        config: Path | None = typer.Option(None, "--config", "-c", help="release.yaml; flags override it."),
        internal_report: Path | None = typer.Option(
            None, "--internal-report", help="Write the CONFIDENTIAL evaluation here (outside the bundle)."),
        holdout: Path | None = typer.Option(None, "--holdout", help="Real rows never fitted on (evaluation)."),
        target: str | None = typer.Option(None, "--target", help="Binary column for the evaluation's AUC."),
        ledger: Path | None = typer.Option(None, "--ledger", help="Persistent per-dataset budget ledger."),
        lifetime_epsilon: float | None = typer.Option(
            None, "--lifetime-epsilon",
            help="Lifetime cap stored in a NEW ledger (default: this budget); never raised later."),
        lifetime_rho: float | None = typer.Option(
            None, "--lifetime-rho", help="Lifetime cap as rho-zCDP (new ledger)."),
        sep: str | None = typer.Option(None, "--sep", help=SEP_HELP),
        sign: Path | None = typer.Option(
            None, "--sign", help="Ed25519 private key (dpsynth keygen): sign the bundle (signature.json)."),
        discover_schema_epsilon: float | None = typer.Option(
            None, "--discover-schema-epsilon",
            help="Discover the schema (or what --schema leaves out) under DP, spending this much of --epsilon."),
        max_memory: str | None = typer.Option(None, "--max-memory", help=MAX_MEMORY_HELP),
        allow_weak_neural: bool | None = typer.Option(None, "--allow-weak-neural", help=ALLOW_WEAK_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
    ) -> None:
        """Fit, sample and write a release bundle a data-sharing agreement can attach."""
        from dpsynth.bundle.write import release
        from dpsynth.tabular.encoding import read_frame
        from dpsynth.tabular.io import check_output
        from dpsynth.tabular.schema import load_schema

        given = {"data": data, "schema": schema, "mechanism": mechanism, "epsilon": epsilon,
                 "delta": delta, "rho": rho, "rows": rows, "seed": seed, "engine": engine,
                 "allow_private_schema": allow_private_schema, "out": out, "overwrite": overwrite,
                 "internal_report": internal_report, "holdout": holdout, "target": target,
                 "ledger": ledger, "lifetime_epsilon": lifetime_epsilon, "lifetime_rho": lifetime_rho,
                 "sep": sep, "sign": sign, "discover_schema_epsilon": discover_schema_epsilon,
                 "max_memory": max_memory, "allow_weak_neural": allow_weak_neural}
        opts = load_release_config(config) if config is not None else {}
        opts.update({k: v for k, v in given.items() if v is not None})
        discover = opts.get("discover_schema_epsilon")
        for need in ("data", "out") if discover is not None else ("data", "schema", "out"):
            if opts.get(need) is None:
                raise ConfigError(f"release needs {need} (as an argument/flag or in --config)")
        mech: Any = opts.get("mechanism") or "aim"
        if registry.get(mech).reads_data and opts.get("epsilon") is None and opts.get("rho") is None:
            raise ConfigError("release needs a budget: --epsilon (with --delta) or --rho")
        delta_value = 1e-9 if opts.get("delta") is None else opts["delta"]  # 0 is refused, not replaced
        check_budget_flags(opts.get("epsilon"), delta_value, opts.get("rho"))
        sch = load_schema(Path(str(opts["schema"]))) if opts.get("schema") is not None else None
        check_output(Path(str(opts["out"])), overwrite=bool(opts.get("overwrite")))
        if discover is not None:  # the raw text, read with the partial schema's null tokens
            from dpsynth.schema_discovery import DEFAULT_MISSING

            source = read_frame(Path(str(opts["data"])), None, sep=opts.get("sep"),
                                na_values=list(sch.missing_values) if sch is not None else list(DEFAULT_MISSING))
        else:
            source = load_input(Path(str(opts["data"])), sch, sep=opts.get("sep"),
                                engine=opts.get("engine") or "numpy", mechanism=mech)
        hold = opts.get("holdout")
        if hold is not None:
            hold = read_frame(Path(str(hold)), sch, sep=opts.get("sep"))  # None: read as text
        with _progress(sys.stderr.isatty()) as step:
            result = release(
                source, sch, mechanism=mech,
                epsilon=opts.get("epsilon"), delta=delta_value, rho=opts.get("rho"),
                rows=opts.get("rows"), seed=opts.get("seed"), engine=opts.get("engine") or "numpy",
                allow_private_schema=bool(opts.get("allow_private_schema")),
                ledger_path=opts.get("ledger"), out=str(opts["out"]),
                lifetime_epsilon=opts.get("lifetime_epsilon"), lifetime_rho=opts.get("lifetime_rho"),
                overwrite=bool(opts.get("overwrite")), internal_report=opts.get("internal_report"),
                holdout=hold, target=opts.get("target"), progress=step, sign=opts.get("sign"),
                discover_schema_epsilon=discover, max_memory=opts.get("max_memory"),
                options=neural_options(mech, bool(opts.get("allow_weak_neural"))),
            )
        warn_if_tiny(result.estimated_rows, result.mechanism, result.estimated_rows_stderr)
        human = (f"release {result.release_id}: {result.rows:,} rows, epsilon={result.epsilon:.6g}, "
                 f"delta={result.delta:g} -> {result.bundle}" if result.epsilon is not None else
                 f"release {result.release_id}: {result.rows:,} rows -> {result.bundle}")
        if result.internal_report is not None:
            human += f"\nCONFIDENTIAL evaluation (do not share) -> {result.internal_report}"
        if result.signed_by is not None:
            human += f"\nsigned (signature.json) by key {result.signed_by}"
        _emit(result.to_json(), as_json, human)

    @app.command("verify")
    def verify_cmd(
        bundle: Path = typer.Argument(..., help="Bundle directory."),
        key: Path | None = typer.Option(
            None, "--key", help="The signer's public key (KEY.pub): the bundle must carry a valid signature by it."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
    ) -> None:
        """Recompute every checksum of a bundle, check its consistency and, with --key, its signature.

        Exit 1 on any failure. Without --key, verification detects accidents only.
        """
        from dpsynth.bundle.write import verify_bundle

        if not bundle.exists():
            raise ConfigError(f"bundle {bundle} does not exist; check the path")
        if not bundle.is_dir():
            raise ConfigError(f"bundle {bundle} is a file; give the bundle directory")
        if (bundle / "relational.yaml").is_file() and not (bundle / "schema.yaml").exists():
            from dpsynth.relational.bundle import verify_relational

            linked = verify_relational(bundle, key=key)
            if as_json:
                typer.echo(json.dumps(linked.to_json(), indent=2))
            else:
                typer.echo(f"{'OK' if linked.ok else 'FAILED'}: {bundle} ({linked.files_checked} files, "
                           "checksums, guarantee and links)", err=True)
                for line in linked.failures:
                    typer.echo(f"  {line}", err=True)
            if not linked.ok:
                from dpsynth.errors import BundleError

                raise BundleError(f"bundle {bundle} failed verification: " + "; ".join(linked.failures))
            return
        result = verify_bundle(bundle, key=key)
        if as_json:
            typer.echo(json.dumps(result.to_json(), indent=2))
        else:
            for line in _verify_lines(result):
                typer.echo(line, err=True)
        result.raise_for_failures()

    @app.command("keygen")
    def keygen_cmd(
        out: Path = typer.Option(..., "--out", "-o", help="Private key file to create (OUT.pub gets the public key)."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
    ) -> None:
        """Create an Ed25519 key pair for signing release bundles (never overwrites a key)."""
        from dpsynth.bundle.signing import generate_key, short_fingerprint

        fp = generate_key(out)
        pub = out.with_name(out.name + ".pub")
        _emit({"private_key": str(out), "public_key": str(pub), "fingerprint": fp,
               "short_fingerprint": short_fingerprint(fp)}, as_json,
              f"private key -> {out} (mode 0600; keep it secret, never put it in a bundle)\n"
              f"public key  -> {pub} (give it to recipients: dpsynth verify BUNDLE --key {pub.name})\n"
              f"fingerprint: {fp} ({short_fingerprint(fp)})")

    @app.command("evaluate")
    def evaluate_cmd(
        real: Path = typer.Argument(..., help="Real (confidential) rows."),
        synthetic: Path = typer.Argument(..., help="Synthetic rows (CSV/Parquet)."),
        schema: Path = typer.Option(..., "--schema", "-s", help="Public schema file."),
        holdout: Path | None = typer.Option(None, "--holdout", help="Real rows never fitted on."),
        target: str | None = typer.Option(None, "--target", help="Binary column for the AUC."),
        out: Path = typer.Option(..., "--out", "-o", help="Directory for the CONFIDENTIAL evaluation."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing directory."),
        sep: str | None = typer.Option(None, "--sep", help=SEP_HELP + " Applies to REAL and --holdout."),
        as_json: bool = typer.Option(False, "--json", help="Print the evaluation as JSON on stdout."),
    ) -> None:
        """CONFIDENTIAL: compare synthetic with real data (not DP; never put it in a bundle).

        SYNTHETIC is a CSV/Parquet file or a release bundle directory (its synthetic.csv).
        """
        from dpsynth.evaluation.evaluate import _refuse_bundle, evaluate
        from dpsynth.tabular.encoding import read_frame
        from dpsynth.tabular.io import check_output
        from dpsynth.tabular.schema import load_schema

        s = load_schema(schema)
        _refuse_bundle(out)
        check_output(out, overwrite=overwrite)
        result = evaluate(read_frame(real, s, sep=sep), _unescaped(bundle_data(synthetic)), s,
                          holdout=None if holdout is None else read_frame(holdout, s, sep=sep),
                          target=target, out=out, overwrite=overwrite)
        _emit(result, as_json, f"CONFIDENTIAL evaluation (do not share) -> {out}")


def _verify_lines(result: Any) -> list[str]:
    """The human lines of ``dpsynth verify``: the outcome, the signature, and what it proves."""
    lines = [f"OK: {result.files_checked} files verified, release {result.release_id}"] if result.ok else []
    lines += [f"FAILED: {failure}" for failure in result.failures]
    sig = result.signature
    if sig is not None and sig.status in ("valid", "unchecked", "unsigned"):
        lines.append(f"signature: {sig.message}")
    lines.append(("note: " if sig is None or sig.status != "valid" else "") + result.assurance)
    return lines


def bundle_data(path: Path) -> Path:
    """``path`` itself, or a bundle directory's ``synthetic.csv``."""
    if path.is_dir():
        if not (path / "synthetic.csv").is_file():
            raise ConfigError(f"{path} is a directory without synthetic.csv; give a CSV/Parquet file "
                              "or a release bundle directory")
        return path / "synthetic.csv"
    return path


def _unescaped(path: Path) -> Any:
    """A released ``synthetic.csv`` with the CSV-injection apostrophes removed."""
    from dpsynth.tabular.encoding import read_frame

    if path.suffix.lower() != ".csv":
        return read_frame(path, None)
    frame = read_frame(path, None, na_values=[""])
    for name in frame.columns:
        frame[name] = frame[name].map(
            lambda v: v[1:] if isinstance(v, str) and v[:2] in ("'=", "'+", "'-", "'@", "'\t", "'\r") else v)
    return frame
