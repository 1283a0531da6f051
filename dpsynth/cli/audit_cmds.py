"""The ``dpsynth audit`` release gate: confidential attack evidence, exit 1 on policy failure."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from dpsynth.errors import ConfigError

__all__ = ["audit_frames", "register"]

_POLICY_DIR = Path(__file__).resolve().parents[2] / "audits" / "policies"


def _numeric_ranges(schema: Any) -> dict[str, tuple[float, float]]:
    from dpsynth.tabular.schema import NumericColumn

    return {c.name: (float(c.bounds[0]), float(c.bounds[1])) for c in schema.modelled
            if isinstance(c, NumericColumn)}


def _coerce(df: Any, schema: Any) -> Any:
    """Give numeric columns numeric dtypes (CSV is read as text); other columns stay text."""
    import pandas as pd

    from dpsynth.tabular.schema import NumericColumn

    out = df.copy()
    for c in schema.modelled:
        if c.name in out.columns and isinstance(c, NumericColumn):
            out[c.name] = pd.to_numeric(out[c.name], errors="coerce")
    return out


def _refuse_audit_in_bundle(out: Path) -> None:
    """Refuse (ConfigError, exit 2) an ``--out`` that is, or is inside, a release bundle.

    The audit is computed on the real data and is confidential; a bundle is public. The
    check is :mod:`dpsynth.evaluation.evaluate`'s, run before any data are read; only its wording is
    adapted to the audit.
    """
    from dpsynth.evaluation.evaluate import _refuse_bundle

    try:
        _refuse_bundle(out)
    except ConfigError as exc:
        msg = str(exc).replace("evaluation output", "audit output", 1)
        raise ConfigError(msg.replace("confidential evaluation", "confidential audit report", 1)) from None


def _split_cols(value: str | None, flag: str) -> list[str] | None:
    if value is None:
        return None
    cols = [c.strip() for c in value.split(",") if c.strip()]
    if not cols:
        raise ConfigError(f"{flag} needs at least one column name (comma-separated)")
    return cols


def audit_frames(real: Any, synthetic: Any, schema: Any, *, holdout: Any = None, policy: Any = None,
                 manifest: dict[str, Any] | None = None, quasi_identifiers: list[str] | None = None,
                 secrets: list[str] | None = None, n_attacks: int = 500, seed: int | None = None,
                 options: Any = None, progress: Any = None) -> Any:
    """Run the audit on frames with roles defaulting from the schema.

    Missing roles do not stop the audit: the measures that need them are skipped and listed
    (with the flag that enables them) in the result's ``skipped``.
    """
    import numpy as np

    from dpsynth.audit import run_audit
    from dpsynth.audit.runner import AuditOptions
    from dpsynth.audit.syntactic import ordinal_orders
    from dpsynth.tabular.schema import Role

    qis = quasi_identifiers or schema.roles(Role.quasi_identifier)
    secs = secrets or schema.roles(Role.sensitive)
    opts = options if options is not None else AuditOptions()
    opts = dataclasses.replace(opts, ordinal_orders=opts.ordinal_orders or ordinal_orders(schema))
    cols = [c.name for c in schema.modelled]

    def pick(df: Any) -> Any:
        return None if df is None else _coerce(df[[c for c in cols if c in df.columns]], schema)

    return run_audit(pick(real), pick(synthetic), holdout=pick(holdout), quasi_identifiers=qis, secrets=secs,
                     numeric_ranges=_numeric_ranges(schema), policy=policy, manifest=manifest,
                     n_attacks=n_attacks, rng=np.random.default_rng(seed), options=opts, progress=progress)


class _Bars:
    """Rich progress bars on stderr: the audit overall, and one bar per attack as it runs."""

    def __init__(self, progress: Any) -> None:
        self._p = progress
        self._overall: Any = None

    def begin(self, steps: Any) -> None:
        self._overall = self._p.add_task("audit", total=len(steps))

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        task = self._p.add_task(name, total=1)
        yield
        self._p.update(task, completed=1)
        if self._overall is not None:
            self._p.advance(self._overall)


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    """A progress receiver drawing on stderr, or None when disabled."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from dpsynth.cli import err_console

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=err_console(), transient=False) as bars:
        yield _Bars(bars)


def _summary(data: dict[str, Any], out: Path) -> None:
    """The human summary on stderr: every number at 3 decimals, undefined and skipped said so."""
    from dpsynth.audit.report import format_number, format_risk
    from dpsynth.cli import err_console

    console = err_console()
    console.print("[bold]CONFIDENTIAL[/bold] audit (computed on real data; evidence, not a guarantee)")
    mem = data.get("membership", {})
    if mem.get("auc") is None:
        console.print("membership inference: not run (" + "; ".join(mem.get("warnings", [])) + ")")
    else:
        console.print(f"membership AUC {format_number(mem.get('auc'))} CI {format_number(mem.get('auc_ci'))}; "
                      f"empirical epsilon lower bound {format_number(mem.get('epsilon_lower_bound'))}")
    for key in ("singling_out", "linkability", "inference"):
        console.print(f"{key} risk {format_risk(data.get(key, {}).get('risk'))}", markup=False)
    copies = data.get("exact_copies", {})
    if copies.get("closer_to_real_share") is not None:
        console.print(f"closer to a real than to a holdout record {format_number(copies['closer_to_real_share'])} "
                      f"CI {format_number(copies.get('closer_to_real_ci'))} (about 0.5 when nothing is copied)",
                      markup=False)
    if copies.get("closer_to_real_near_share") is not None:
        near = format_number(copies["closer_to_real_near_share"])
        console.print(f"  among the quarter nearest the real records {near} "
                      f"CI {format_number(copies.get('closer_to_real_near_ci'))} (copies show here first)",
                      markup=False)
    kan = data.get("k_anonymity", {})
    k_text = f"skipped: {kan.get('skipped_reason')}" if kan.get("skipped") else f"k = {kan.get('k')}"
    console.print(f"k-anonymity {k_text}", markup=False)
    skipped = data.get("skipped", {})
    if skipped:
        console.print("skipped measures (one run; add the roles or flags to run them):")
        for key, why in skipped.items():
            console.print(f"  - {key}: {why}", markup=False)
    pol_out = data.get("policy", {})
    console.print(f"policy {'PASSED' if pol_out.get('passed') else 'FAILED'}"
                  + "".join(f"\n  - {f}" for f in pol_out.get("failures", []))
                  + "".join(f"\n  - not checked: {f}" for f in pol_out.get("skipped", [])), markup=False)
    console.print(f"report: {out}/audit.html", markup=False)


def audit_cmd(
    real: Path = typer.Argument(..., help="The real (training) data: CSV or Parquet."),
    synthetic: Path = typer.Argument(..., help="The synthetic data, or a release bundle directory."),
    schema: Path = typer.Option(..., "-s", "--schema"),
    holdout: Path | None = typer.Option(None, "--holdout", help="Real rows NOT used for training."),
    policy: Path | None = typer.Option(None, "--policy", help="Policy YAML (default: the built-in default)."),
    manifest: Path | None = typer.Option(None, "--manifest", help="A release manifest.json (for epsilon caps)."),
    qi: list[str] = typer.Option([], "--qi", help="Quasi-identifier column (repeatable; default from schema roles)."),
    secret: list[str] = typer.Option([], "--secret", help="Secret column (repeatable; default from schema roles)."),
    link_a: str | None = typer.Option(None, "--link-a", help="Linkability column set A, comma-separated."),
    link_b: str | None = typer.Option(None, "--link-b", help="Linkability column set B, comma-separated."),
    so_cols: str | None = typer.Option(None, "--so-cols", help="Columns singling-out predicates may use."),
    n_neighbors: int = typer.Option(1, "--n-neighbors", help="Linkability neighbours per half."),
    confidence: float = typer.Option(0.95, "--confidence", help="Level of the WP29 risk intervals."),
    ci: str = typer.Option("conservative", "--ci", help="Risk estimator: conservative or wilson-centre."),
    numeric_match: str = typer.Option("relative", "--numeric-match",
                                      help="A numeric secret's guess is right within 5% of the guess "
                                           "(relative, Anonymeter's rule) or of the column's range (scale)."),
    n_attacks: int = typer.Option(500, "--n-attacks"),
    seed: int | None = typer.Option(None, "--seed"),
    out: Path = typer.Option(..., "--out", help="Directory for the CONFIDENTIAL audit report."),
    sep: str | None = typer.Option(None, "--sep", help="CSV delimiter of REAL and --holdout "
                                      "(default ','), e.g. --sep ';'."),
    progress: bool | None = typer.Option(None, "--progress/--no-progress",
                                         help="Progress bars on stderr (default: when stderr is a terminal)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """CONFIDENTIAL release gate: attacks on real vs synthetic; exit 1 if the policy fails."""
    from dpsynth.audit import load_policy, write_audit_report
    from dpsynth.audit.runner import AuditOptions
    from dpsynth.cli import emit
    from dpsynth.cli.release_cmds import bundle_data
    from dpsynth.tabular.encoding import read_frame
    from dpsynth.tabular.io import check_output
    from dpsynth.tabular.schema import load_schema

    _refuse_audit_in_bundle(out)
    check_output(out, overwrite=True)  # an existing directory is fine: audit.json/html are replaced
    a, b = _split_cols(link_a, "--link-a"), _split_cols(link_b, "--link-b")
    if (a is None) != (b is None):
        raise ConfigError("--link-a and --link-b go together: give both column sets or neither")
    opts = AuditOptions(link_columns=None if a is None or b is None else (a, b),
                        singling_out_columns=_split_cols(so_cols, "--so-cols"), n_neighbors=n_neighbors,
                        confidence=confidence, ci=ci,  # type: ignore[arg-type]  # checked by AuditOptions
                        numeric_match=numeric_match)  # type: ignore[arg-type]
    s = load_schema(schema)
    if synthetic.is_dir():
        if manifest is None and (synthetic / "manifest.json").exists():
            manifest = synthetic / "manifest.json"
        synthetic = bundle_data(synthetic)
    pol = load_policy(policy) if policy else None
    man = _read_manifest(manifest) if manifest else None
    frames = (read_frame(real, s, sep=sep), read_frame(synthetic, s),
              read_frame(holdout, s, sep=sep) if holdout else None)
    with _progress(sys.stderr.isatty() if progress is None else progress) as bars:
        result = audit_frames(frames[0], frames[1], s, holdout=frames[2], policy=pol, manifest=man,
                              quasi_identifiers=qi or None, secrets=secret or None, n_attacks=n_attacks,
                              seed=seed, options=opts, progress=bars)
    write_audit_report(result, out)
    data = result.to_json()
    if as_json:
        emit(data, as_json=True)
    else:
        _summary(data, out)
    if not data.get("policy", {}).get("passed", False):
        raise typer.Exit(1)


def _read_manifest(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise ConfigError(f"--manifest {path} is not a readable manifest.json; give the bundle's "
                          "manifest.json or leave --manifest out") from None


def register(app: typer.Typer) -> None:
    """Add ``audit`` to the main app."""
    app.command("audit")(audit_cmd)
