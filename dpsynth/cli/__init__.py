"""The ``dpsynth`` command line: the product's front door (DESIGN.md §6).

Progress and messages go to stderr; ``--json`` results go to stdout. Errors print one line
to stderr (a traceback only with ``--debug``) and exit with: 0 success, 1 policy failure or
tampered bundle, 2 usage error, 3 budget exceeded, 4 schema error.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from typing import Any

import typer

from dpsynth import __version__
from dpsynth.errors import DPSynthError

__all__ = ["app", "main", "emit", "err_console"]

app = typer.Typer(
    name="dpsynth",
    help="Differentially private synthetic tabular data, with a verifiable release bundle.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state: dict[str, Any] = {"debug": False}


def err_console() -> Any:
    """A rich console on stderr (plain when stderr is not a terminal)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def emit(result: Any, *, as_json: bool) -> None:
    """Print a result: JSON on stdout, or a readable summary on stderr."""
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")
        sys.stdout.flush()
    else:
        console = err_console()
        if isinstance(result, dict):
            for k, v in result.items():
                console.print(f"[bold]{k}[/bold]: {v}")
        else:
            console.print(str(result))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dpsynth {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details to stderr."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """dpsynth: privacy-first synthetic data with formal differential-privacy guarantees."""
    _state["debug"] = debug
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


for _name in ("dpsynth.cli.core_cmds", "dpsynth.cli.release_cmds", "dpsynth.cli.audit_cmds",
              "dpsynth.cli.ledger_cmds"):
    try:
        _mod = importlib.import_module(_name)
    except ModuleNotFoundError as _exc:  # a command group not installed in this build
        if _exc.name != _name:
            raise
        continue
    _mod.register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (used by the console script)."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        rc = app(args=argv, standalone_mode=False)
    except DPSynthError as exc:
        if debug:
            raise
        sys.stderr.write(f"dpsynth: error: {exc}\n")
        return exc.exit_code
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:
        sys.stderr.write("dpsynth: interrupted; no partial output was written\n")
        return 130
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return int(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            return 130
        if debug:
            raise
        sys.stderr.write(f"dpsynth: internal error: {type(exc).__name__} (rerun with --debug)\n")
        return 70
    return rc if isinstance(rc, int) else 0
