"""CLI command of linked-table releases: ``release-tables`` (``verify`` recognises their bundles).

The main app (:mod:`dpsynth.cli`) calls :func:`register`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from dpsynth.cli.core_cmds import check_budget_flags

__all__ = ["register"]


def release_tables_cmd(
    relational: Path = typer.Argument(..., help="Relational schema (YAML): tables, keys, links, data files."),
    mechanism: str = typer.Option("aim", "--mechanism", "-m", help="aim, mst or independent (every table)."),
    epsilon: float | None = typer.Option(None, "--epsilon", help="Budget per person, for the whole release."),
    delta: float = typer.Option(1e-9, "--delta"),
    rho: float | None = typer.Option(None, "--rho"),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the sampling (post-processing only)."),
    rows: int | None = typer.Option(None, "--rows", help="Persons to release (default: the DP estimate)."),
    engine: str = typer.Option("numpy", "--engine", help="Counting engine of every table: numpy or duckdb."),
    ledger: Path | None = typer.Option(None, "--ledger", help="Persistent ledger file with a lifetime cap."),
    lifetime_epsilon: float | None = typer.Option(
        None, "--lifetime-epsilon", help="Lifetime cap stored in a NEW ledger (default: this budget)."),
    sign: Path | None = typer.Option(None, "--sign", help="Sign the bundle with this Ed25519 private key."),
    internal_report: Path | None = typer.Option(
        None, "--internal-report", help="CONFIDENTIAL folder (outside the bundle) for the fidelity evaluation."),
    allow_private_schema: bool = typer.Option(
        False, "--allow-private-schema", help="Accept drafted (private_inferred) schema facts, as a caveat."),
    out: Path = typer.Option(..., "--out", "-o", help="Bundle directory to write."),
    overwrite: bool = typer.Option(False, "--overwrite"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Release linked tables (a root table of persons and its child tables) as one verified bundle
    under one epsilon per person."""
    from dpsynth.cli import emit
    from dpsynth.relational.bundle import release_tables

    check_budget_flags(epsilon, delta, rho)
    target = release_tables(relational, out, epsilon=epsilon, delta=delta, rho=rho, mechanism=mechanism,
                            seed=seed, overwrite=overwrite, engine=engine, ledger_path=ledger,
                            lifetime_epsilon=lifetime_epsilon, sign=sign, internal_report=internal_report,
                            rows=rows, allow_private_schema=allow_private_schema)
    import json

    # release_tables verified the bundle before moving it into place (or raised)
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    emit({"out": str(target), "epsilon": manifest["privacy"]["epsilon"], "delta": manifest["privacy"]["delta"],
          "unit": manifest["privacy"]["unit"],
          "rows": {name: t["rows"] for name, t in manifest["tables"].items()}, "verified": True},
         as_json=as_json)


def sample_tables_cmd(
    bundle: Path = typer.Argument(..., help="A relational bundle written by release-tables (verified first)."),
    rows: int | None = typer.Option(None, "--rows", help="Persons to draw (default: the DP estimate)."),
    seed: int | None = typer.Option(None, "--seed", help="Post-processing seed: sampling and decoding only."),
    link: str = typer.Option("reweighted", "--link", help="reweighted (default), conditional or matched."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory to write, one CSV per table."),
    overwrite: bool = typer.Option(False, "--overwrite"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Sample more linked tables from a relational bundle (post-processing: no data, no budget)."""
    from dpsynth.cli import emit
    from dpsynth.errors import BundleError, ConfigError
    from dpsynth.relational.bundle import verify_relational
    from dpsynth.relational.fit import RelationalSynthesizer
    from dpsynth.tabular.atomic import atomic_directory, write_text_atomic
    from dpsynth.tabular.io import escape_csv_injection, text_columns

    if not (bundle / "relational.yaml").is_file():
        raise ConfigError(f"{bundle} is not a relational bundle (no relational.yaml); use `dpsynth sample`")
    check = verify_relational(bundle)
    if not check.ok:
        raise BundleError(f"bundle {bundle} failed verification: " + "; ".join(check.failures))
    tables = RelationalSynthesizer.load(bundle / "model").sample(rows, seed=seed, link=link)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        for name, frame in tables.items():
            write_text_atomic(tmp / f"{name}.csv",
                              escape_csv_injection(text_columns(frame)).to_csv(index=False, lineterminator="\n"))
    emit({"out": str(out), "rows": {name: len(frame) for name, frame in tables.items()}}, as_json=as_json)


def plan_tables_cmd(
    relational: Path = typer.Argument(..., help="Relational schema (YAML); no data is read."),
    mechanism: str = typer.Option("aim", "--mechanism", "-m", help="aim, mst or independent (every table)."),
    epsilon: float | None = typer.Option(None, "--epsilon"),
    delta: float = typer.Option(1e-9, "--delta"),
    rho: float | None = typer.Option(None, "--rho"),
    max_memory: str | None = typer.Option(None, "--max-memory", help="Working-memory budget of each table's fit."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Plan a linked release from public inputs alone: each table's share, rho, sensitivity and model."""
    from dpsynth.cli import emit
    from dpsynth.relational.plan import plan_relational
    from dpsynth.relational.schema import load_relational

    check_budget_flags(epsilon, delta, rho)
    plan = plan_relational(load_relational(relational), mechanism=mechanism, epsilon=epsilon, delta=delta, rho=rho,
                           max_memory=max_memory)
    if as_json:
        emit(plan, as_json=True)
        return
    def first_sigma(t: dict[str, Any]) -> str:
        sigmas = [m["sigma"] for m in t["plan"].get("measurements", []) if isinstance(m.get("sigma"), float)]
        return f", noise sigma {sigmas[0]:,.0f} rows per cell of a 1-way count" if sigmas else ""

    emit({"unit": plan["unit"], "epsilon": plan["epsilon"], "rho": plan["rho"],
          **{f"table {name}": f"share {t['budget_share']:.3g}, rho {t['rho']:.4g}, sensitivity {t['sensitivity_rows']} "
             f"rows, {len(t['modelled_columns'])} modelled columns, model <= {t['plan']['max_model_cells']} cells"
             + first_sigma(t) for name, t in plan["tables"].items()}}, as_json=False)


def register(app: typer.Typer) -> None:
    """Add the commands to ``app``."""
    app.command("release-tables")(release_tables_cmd)
    app.command("sample-tables")(sample_tables_cmd)
    app.command("plan-tables")(plan_tables_cmd)
