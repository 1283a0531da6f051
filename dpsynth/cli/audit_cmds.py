"""The ``dpsynth audit`` release gate: confidential attack evidence, exit 1 on policy failure."""

from __future__ import annotations

import json
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


def audit_frames(real: Any, synthetic: Any, schema: Any, *, holdout: Any = None, policy: Any = None,
                 manifest: dict[str, Any] | None = None, quasi_identifiers: list[str] | None = None,
                 secrets: list[str] | None = None, n_attacks: int = 500, seed: int | None = None) -> Any:
    """Run the audit on frames with roles defaulting from the schema."""
    import numpy as np

    from dpsynth.audit import run_audit
    from dpsynth.tabular.schema import Role

    qis = quasi_identifiers or schema.roles(Role.quasi_identifier)
    secs = secrets or schema.roles(Role.sensitive)
    if not qis:
        raise ConfigError("no quasi-identifiers: mark columns role: quasi_identifier in the schema or pass --qi")
    if not secs:
        raise ConfigError("no secret columns: mark columns role: sensitive in the schema or pass --secret")
    cols = [c.name for c in schema.modelled]
    def pick(df: Any) -> Any:
        return None if df is None else _coerce(df[[c for c in cols if c in df.columns]], schema)

    return run_audit(pick(real), pick(synthetic), holdout=pick(holdout), quasi_identifiers=qis, secrets=secs,
                     numeric_ranges=_numeric_ranges(schema), policy=policy, manifest=manifest,
                     n_attacks=n_attacks, rng=np.random.default_rng(seed))


def audit_cmd(
    real: Path = typer.Argument(..., help="The real (training) data: CSV or Parquet."),
    synthetic: Path = typer.Argument(..., help="The synthetic data, or a release bundle directory."),
    schema: Path = typer.Option(..., "-s", "--schema"),
    holdout: Path | None = typer.Option(None, "--holdout", help="Real rows NOT used for training."),
    policy: Path | None = typer.Option(None, "--policy", help="Policy YAML (default: the built-in default)."),
    manifest: Path | None = typer.Option(None, "--manifest", help="A release manifest.json (for epsilon caps)."),
    qi: list[str] = typer.Option([], "--qi", help="Quasi-identifier column (repeatable; default from schema roles)."),
    secret: list[str] = typer.Option([], "--secret", help="Secret column (repeatable; default from schema roles)."),
    n_attacks: int = typer.Option(500, "--n-attacks"),
    seed: int | None = typer.Option(None, "--seed"),
    out: Path = typer.Option(..., "--out", help="Directory for the CONFIDENTIAL audit report."),
    sep: str | None = typer.Option(None, "--sep", help="CSV delimiter of REAL and --holdout "
                                      "(default ','), e.g. --sep ';'."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """CONFIDENTIAL release gate: attacks on real vs synthetic; exit 1 if the policy fails."""
    from dpsynth.audit import load_policy, write_audit_report
    from dpsynth.cli import emit, err_console
    from dpsynth.cli.release_cmds import bundle_data
    from dpsynth.tabular.encoding import read_frame
    from dpsynth.tabular.io import check_output
    from dpsynth.tabular.schema import load_schema

    _refuse_audit_in_bundle(out)
    check_output(out, overwrite=True)  # an existing directory is fine: audit.json/html are replaced
    s = load_schema(schema)
    if synthetic.is_dir():
        if manifest is None and (synthetic / "manifest.json").exists():
            manifest = synthetic / "manifest.json"
        synthetic = bundle_data(synthetic)
    pol = load_policy(policy) if policy else None
    man = _read_manifest(manifest) if manifest else None
    result = audit_frames(read_frame(real, s, sep=sep), read_frame(synthetic, s), s,
                          holdout=read_frame(holdout, s, sep=sep) if holdout else None, policy=pol, manifest=man,
                          quasi_identifiers=qi or None, secrets=secret or None, n_attacks=n_attacks, seed=seed)
    write_audit_report(result, out)
    data = result.to_json()
    if as_json:
        emit(data, as_json=True)
    else:
        console = err_console()
        console.print("[bold]CONFIDENTIAL[/bold] audit (computed on real data; evidence, not a guarantee)")
        mem = data.get("membership", {})
        console.print(f"membership AUC {mem.get('auc')} CI {mem.get('auc_ci')}; "
                      f"empirical epsilon lower bound {mem.get('epsilon_lower_bound')}")
        for key in ("singling_out", "linkability", "inference"):
            r = data.get(key, {}).get("risk", {})
            console.print(f"{key} risk {r.get('value')} CI {r.get('ci')}")
        console.print(f"k-anonymity k = {data.get('k_anonymity', {}).get('k')}")
        pol_out = data.get("policy", {})
        console.print(f"policy {'PASSED' if pol_out.get('passed') else 'FAILED'}"
                      + "".join(f"\n  - {f}" for f in pol_out.get("failures", [])))
        console.print(f"report: {out}/audit.html")
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
