"""CLI command of linked-table releases: ``release-tables`` (``verify`` recognises their bundles).

The main app (:mod:`dpsynth.cli`) calls :func:`register`.
"""

from __future__ import annotations

from pathlib import Path

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
    engine: str = typer.Option("numpy", "--engine", help="Counting engine of every table: numpy or duckdb."),
    out: Path = typer.Option(..., "--out", "-o", help="Bundle directory to write."),
    overwrite: bool = typer.Option(False, "--overwrite"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Release linked tables (a root table of persons and its child tables) as one verified bundle
    under one epsilon per person."""
    from dpsynth.cli import emit
    from dpsynth.relational.bundle import release_tables, verify_relational

    check_budget_flags(epsilon, delta, rho)
    target = release_tables(relational, out, epsilon=epsilon, delta=delta, rho=rho, mechanism=mechanism,
                            seed=seed, overwrite=overwrite, engine=engine)
    import json

    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    check = verify_relational(target)
    emit({"out": str(target), "epsilon": manifest["privacy"]["epsilon"], "delta": manifest["privacy"]["delta"],
          "unit": manifest["privacy"]["unit"],
          "rows": {name: t["rows"] for name, t in manifest["tables"].items()}, "verified": check.ok},
         as_json=as_json)


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command("release-tables")(release_tables_cmd)
