"""``dpsynth schema discover``: a schema derived under DP from the raw file, its cost in the ledger."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import typer

from dpsynth.errors import ConfigError

__all__ = ["register", "schema_discover"]


def _header(data: Path, sep: str | None) -> list[str]:
    """The column names (public: the file's header row), for the preview."""
    if data.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return list(pq.read_schema(data).names)
    csv.field_size_limit(sys.maxsize)
    delimiter = sep or ("\t" if data.suffix.lower() == ".tsv" else ",")
    with data.open("r", encoding="utf-8-sig", newline="") as fh:
        return [c.strip() for c in next(csv.reader(fh, delimiter=delimiter), [])]


def schema_discover(
    data: Path = typer.Argument(..., help="Confidential input (CSV or Parquet); read under DP."),
    epsilon: float = typer.Option(..., "--epsilon", help="Budget of discovery, as (epsilon, delta)-DP."),
    delta: float = typer.Option(1e-9, "--delta", help="Delta of the guarantee."),
    out: Path | None = typer.Option(None, "-o", "--out", help="Where to write the discovered schema (YAML)."),
    partial: Path | None = typer.Option(None, "--schema", "-s",
                                        help="A partial schema: its columns stay declared (and cost nothing)."),
    ledger: Path | None = typer.Option(None, "--ledger", help="Persistent per-dataset ledger to charge."),
    sep: str | None = typer.Option(None, "--sep", help="CSV delimiter (default ',')."),
    preview: bool = typer.Option(False, "--preview", help="Only say what the budget buys (reads no data)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it already exists."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Discover a schema under differential privacy; every fact it writes has source: dp."""
    from dpsynth.cli import emit, err_console
    from dpsynth.cli.core_cmds import check_budget_flags
    from dpsynth.mechanisms.discover import preview as preview_of
    from dpsynth.privacy.accountant import Accountant
    from dpsynth.privacy.budget import ApproxDP
    from dpsynth.schema_discovery import discover_schema
    from dpsynth.tabular.io import check_output, publish
    from dpsynth.tabular.schema import dump_schema, load_schema

    check_budget_flags(epsilon, delta, None)
    if out is None:
        if not preview:
            raise ConfigError("schema discover needs -o/--out (or --preview to only see what the budget buys)")
        out = Path("discovered.yaml")  # not written
    elif out.exists() and not overwrite:
        raise ConfigError(f"schema discover: {out} already exists; pass --overwrite to replace it")
    if not preview:
        check_output(out, overwrite=True, is_dir=False)
    if not data.is_file():
        raise ConfigError(f"input file {data} does not exist or is not a file; check the path")
    known = load_schema(partial) if partial is not None else None
    budget = ApproxDP(epsilon, delta)
    bound = int(known.privacy_unit.sensitivity_rows) if known is not None else 1
    declared = {c.name for c in known.columns} if known is not None else set()
    todo = [c for c in _header(data, sep) if c not in declared]
    plan = preview_of(todo, rho=budget.rho, delta=delta, bound=bound)
    if preview:
        emit(plan, as_json=as_json)
        return
    acc = Accountant(budget, ledger_path=ledger, label=f"schema discover -> {out}")
    try:
        found = discover_schema(data, acc, rho=budget.rho, delta=delta, partial=known, sep=sep)
    except BaseException:
        acc.abort()
        raise
    acc.commit()
    dump_schema(found.schema, out)
    publish(out)  # every fact is a DP output (or was declared): public
    spend = acc.spend(delta)
    result = {"schema": str(out), "discovered": found.discovered, "epsilon": spend.epsilon,
              "delta": spend.delta, "rho": spend.rho, "notes": found.notes,
              "rows_to_keep_a_category": plan["rows_to_keep_a_category"]}
    if as_json:
        emit(result, as_json=True)
        return
    console = err_console()
    console.print(f"discovered {len(found.discovered)} columns under DP: epsilon {spend.epsilon:.3f} "
                  f"at delta {delta:g} (a category needed about {plan['rows_to_keep_a_category']} rows "
                  "to be kept)")
    for note in found.notes:
        console.print(f"  - {note}")
    console.print(f"wrote {out}")


def register(app: typer.Typer) -> None:
    """Add ``schema discover`` to the ``schema`` command group."""
    from dpsynth.cli.core_cmds import schema_app

    schema_app.command("discover")(schema_discover)
