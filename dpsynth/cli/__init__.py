"""The ``dpsynth`` command line: the product's front door (docs/releasing.md).

Progress and messages go to stderr; ``--json`` results go to stdout. Errors print one line
to stderr (a traceback only with ``--debug``) and exit with: 0 success, 1 policy failure or
tampered bundle, 2 usage error, 3 budget exceeded, 4 schema error.
"""

from __future__ import annotations

import errno
import importlib
import json
import logging
import sys
from typing import Any

import typer

from dpsynth import __version__
from dpsynth.errors import DPSynthError

__all__ = ["app", "emit", "err_console", "main"]

_app = typer.Typer(
    name="dpsynth",
    help="Differentially private synthetic tabular data, with a verifiable release bundle.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state: dict[str, Any] = {"debug": False, "registered": False}
_COMMAND_MODULES = ("dpsynth.cli.core_cmds", "dpsynth.cli.release_cmds", "dpsynth.cli.audit_cmds",
                    "dpsynth.cli.ledger_cmds", "dpsynth.cli.discover_cmds", "dpsynth.cli.relational_cmds")
_ROOT_FLAGS = frozenset({"--debug", "--verbose", "-v"})


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


@_app.callback()
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


def _command_app() -> typer.Typer:
    """The app with every command group registered (imported on first use, once).

    The command modules import the mechanism registry and with it numpy, pandas and the
    graphical-model engine, so ``dpsynth --version`` does not import them.
    """
    if not _state["registered"]:
        _state["registered"] = True
        for name in _COMMAND_MODULES:
            try:
                mod = importlib.import_module(name)
            except ModuleNotFoundError as exc:  # a command group not installed in this build
                if exc.name != name:
                    raise
                continue
            mod.register(_app)
    return _app


def __getattr__(name: str) -> Any:
    """``dpsynth.cli.app``: the typer app with its commands (registered on first access)."""
    if name == "app":
        return _command_app()
    raise AttributeError(f"module 'dpsynth.cli' has no attribute {name!r}")


def _asks_version(args: list[str]) -> bool:
    """True when the root options include ``--version`` (click handles it eagerly, first)."""
    for arg in args:
        if arg == "--version":
            return True
        if arg not in _ROOT_FLAGS:
            return False
    return False


def _usage_message(exc: BaseException) -> str:
    """One line for a command-line usage error, with where to find the fix."""
    text = " ".join(str(exc.format_message()).split())  # type: ignore[attr-defined]
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None) or "dpsynth"
    return f"{text} (run '{path} --help' for usage)"


_OS_HINTS = {
    errno.ENOENT: "check the path",
    errno.EISDIR: "give a file, not a directory",
    errno.ENOTDIR: "a parent of this path is a file, not a directory",
    errno.EACCES: "choose a location you may write to",
    errno.EPERM: "choose a location you may write to",
    errno.EROFS: "the file system is read-only; choose another location",
    errno.ENOSPC: "free disk space and run again",
    errno.EDQUOT: "free disk space (quota exceeded) and run again",
}


def _os_message(exc: OSError) -> str:
    """One line for an operating-system error: what failed, on which path, and what to do."""
    what = exc.strerror or type(exc).__name__
    where = f" ({exc.filename})" if exc.filename else ""
    hint = _OS_HINTS.get(exc.errno or -1, "check the path and rerun")
    return f"{what}{where}; {hint}"


def _is_usage_error(exc: BaseException) -> bool:
    """Click-style usage errors, recognised by shape (typer vendors click; click may be absent)."""
    return isinstance(getattr(exc, "exit_code", None), int) and callable(getattr(exc, "format_message", None))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (used by the console script).

    Every failure prints exactly one ``dpsynth: error: ...`` line to stderr (a traceback only
    with ``--debug``) and returns a code of the table in ``docs/releasing.md``.
    """
    args = list(argv) if argv is not None else sys.argv[1:]
    debug = "--debug" in args
    if _asks_version(args):  # answered before the command modules are imported
        sys.stdout.write(f"dpsynth {__version__}\n")
        return 0
    try:
        rc = _command_app()(args=args, prog_name="dpsynth", standalone_mode=False)
    except DPSynthError as exc:
        if debug:
            raise
        sys.stderr.write(f"dpsynth: error: {exc}\n")
        return exc.exit_code
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else 2
    except (KeyboardInterrupt, typer.Abort):
        sys.stderr.write("dpsynth: error: interrupted; no partial output was written\n")
        return 130
    except Exception as exc:
        if debug:
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare command: show its help
            exc.show()  # type: ignore[attr-defined]
            return 2
        if _is_usage_error(exc):
            sys.stderr.write(f"dpsynth: error: {_usage_message(exc)}\n")
            return int(exc.exit_code)  # type: ignore[attr-defined]
        if isinstance(exc, UnicodeDecodeError):
            sys.stderr.write("dpsynth: error: a file is not valid UTF-8 text; re-save it as UTF-8\n")
            return 2
        if isinstance(exc, OSError):
            sys.stderr.write(f"dpsynth: error: {_os_message(exc)}\n")
            return 2
        sys.stderr.write(f"dpsynth: error: internal error ({type(exc).__name__}); this is a bug: "
                         "rerun with --debug and report the traceback\n")
        return 70
    return rc if isinstance(rc, int) else 0
