"""Reading input files: CSV (as text) or Parquet, with checks that never echo a cell value.

:func:`read_frame` reads a whole file; :func:`check_input` runs the checks that need only the
file and its header row, so an engine that reads the file later can refuse a missing, empty or
wrongly delimited file before any budget is reserved.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pandas as pd

from dpsynth.errors import ConfigError, SchemaError
from dpsynth.tabular.schema import Schema

__all__ = ["check_input", "read_frame"]

_SEPARATORS = {";": "';'", "\t": "'\\t' (tab)", "|": "'|'"}


def _header(p: Path, sep: str) -> list[str]:
    """The header row of a CSV file (column names only: never a cell of a data row)."""
    csv.field_size_limit(sys.maxsize)
    with p.open("r", encoding="utf-8-sig", newline="") as fh:
        return next(csv.reader(fh, delimiter=sep), [])


def _check_header(names: list[str], p: Path, sep: str, schema: Schema | None) -> None:
    """Refuse duplicate names, and say which delimiter the file looks like when it is wrong."""
    names = [n.strip() for n in names]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SchemaError(f"input file {p.name} has duplicate column names {dupes}; "
                          "rename them so that each column appears once")
    wanted = {c.name for c in schema.modelled} if schema is not None else set()
    if len(names) == 1 and (schema is None or len(wanted) > 1) and names[0] not in wanted:
        for cand, shown in _SEPARATORS.items():
            if cand != sep and cand in names[0]:
                expected = f"the schema has {len(wanted)}" if schema is not None else "its name holds a delimiter"
                raise SchemaError(
                    f"input file {p.name} has one column but {expected}: the file "
                    f"looks {shown}-separated; pass --sep {shown.split()[0]}")
    missing = [c.name for c in schema.modelled if c.name not in names] if schema is not None else []
    if missing:
        raise SchemaError(f"input file {p.name} lacks schema columns {missing}; check that its header "
                          "row names them exactly, and pass --sep if the file is not comma-separated")


def _check_path(path: str | Path, sep: str | None) -> tuple[Path, str | None]:
    """The input path checked (exists, a non-empty file of a known format) and its CSV
    delimiter (``None`` for Parquet)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"input file {p} does not exist; check the path")
    if p.is_dir():
        raise ConfigError(f"input {p} is a directory; give a CSV or Parquet file")
    if p.stat().st_size == 0:
        raise ConfigError(f"input file {p.name} is empty (0 bytes, no header row); "
                          "give a CSV whose first row names the columns")
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return p, None
    if suffix not in (".csv", ".txt", ".tsv", ""):
        raise ConfigError(f"input file {p.name}: unsupported format {suffix!r} (use .csv or .parquet)")
    delimiter = sep if sep is not None else ("\t" if suffix == ".tsv" else ",")
    if len(delimiter) != 1:
        raise ConfigError(f"--sep {delimiter!r} must be a single character")
    return p, delimiter


def check_input(path: str | Path, schema: Schema | None, *, sep: str | None = None) -> None:
    """Check an input file without reading its data rows (for engines that read it later).

    Runs the checks of :func:`read_frame` that need only the file and its header row, so a
    missing, empty or wrongly delimited file is refused before any budget is reserved.
    """
    p, delimiter = _check_path(path, sep)
    if delimiter is None:
        return
    try:
        _check_header(_header(p, delimiter), p, delimiter, schema)
    except UnicodeDecodeError:
        raise ConfigError(f"input file {p.name} is not UTF-8 text; re-save it as UTF-8 "
                          "(e.g. iconv -f latin1 -t utf-8)") from None
    except csv.Error:
        raise ConfigError(f"input file {p.name} has a malformed header row; "
                          "check the delimiter (--sep) and quotes") from None


def read_frame(path: str | Path, schema: Schema | None, *, sep: str | None = None,
               na_values: list[str] | None = None) -> pd.DataFrame:
    """Read CSV (as text, types come from the schema) or Parquet.

    CSV cells listed in ``schema.missing_values`` become nulls; a UTF-8 byte-order mark,
    CRLF line ends and quoted newlines are accepted. A file that cannot be read as a table
    (missing, a directory, empty, not UTF-8, malformed) raises :class:`ConfigError` (exit
    code 2); a header that cannot match the schema (duplicate names, a wrong delimiter)
    raises :class:`SchemaError` (exit code 4). No message contains a cell value. A header
    with no data rows is *not* an error: the row count is private (see docs/releasing.md).

    Args:
        path: A ``.csv``/``.tsv``/``.txt`` or ``.parquet`` file.
        schema: The public schema (its ``missing_values`` apply to CSV), or ``None`` when
            there is none yet (``schema draft``).
        sep: The CSV delimiter (default ``,``, or tab for ``.tsv``).
        na_values: CSV cells read as null (default: the schema's ``missing_values``).
    """
    p, delimiter = _check_path(path, sep)
    if delimiter is None:
        try:
            return pd.read_parquet(p)
        except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
            raise ConfigError(f"input file {p.name} is not a readable Parquet file "
                              f"({type(exc).__name__}); check the file") from None
    try:
        _check_header(_header(p, delimiter), p, delimiter, schema)
        return pd.read_csv(
            p,
            dtype=str,
            keep_default_na=False,
            na_values=na_values if na_values is not None else
            list(schema.missing_values) if schema is not None else [""],
            encoding="utf-8-sig",
            sep=delimiter,
            skipinitialspace=True,
        )
    except UnicodeDecodeError:
        raise ConfigError(f"input file {p.name} is not UTF-8 text; re-save it as UTF-8 "
                          "(e.g. iconv -f latin1 -t utf-8)") from None
    except (pd.errors.EmptyDataError, StopIteration):
        raise ConfigError(f"input file {p.name} has no header row; "
                          "give a CSV whose first row names the columns") from None
    except (pd.errors.ParserError, csv.Error):
        raise ConfigError(f"input file {p.name} is not well-formed CSV (rows with more fields than "
                          f"the header, or broken quoting); check the delimiter (--sep) and quotes") from None
