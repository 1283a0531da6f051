"""Schema-driven encoding between data frames and integer-coded tables, with no fitting.

Encoding is total on value-level anomalies (docs/privacy-model.md, "Value-level problems never
raise inside fit"): a null becomes the null code (or the column's fallback code when the column
is not nullable), an undeclared category becomes ``other`` (or null, or the fallback), and
out-of-bounds or infinite numbers and dates are clamped. Nothing here raises because of a cell
value; schema errors raise naming the column. Decoding uses only the public schema and a
post-processing random generator.
"""

from __future__ import annotations

import csv
import logging
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from dpsynth.errors import ConfigError, SchemaError
from dpsynth.tabular.schema import (
    GRANULARITY_UNITS,
    BooleanColumn,
    CategoricalColumn,
    DatetimeColumn,
    IdentifierColumn,
    NumericColumn,
    OrdinalColumn,
    Schema,
    _to_units,
    canonical_key,
)
from dpsynth.tabular.table import Table

__all__ = ["ValidationReport", "check_input", "decode", "encode", "encode_column", "read_frame", "validate_frame"]

log = logging.getLogger(__name__)

_TRUE = {"true", "1", "yes", "t", "y"}
#: a number written with a currency sign, thousands separators, a unit or a percent sign
_UNIT_NUMBER = re.compile(r"^\s*[$€£¥]?\s*([+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)\s*(?:%|°?[^\W\d_]{1,6}\.?)?\s*$")
_FALSE = {"false", "0", "no", "f", "n"}


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


@dataclass
class _Problems:
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, n: int) -> None:
        if n:
            self.counts[kind] = self.counts.get(kind, 0) + int(n)


def _fallback(col: Any) -> int:
    """Code for a value the column cannot hold: other, else null, else the first cell."""
    if isinstance(col, (CategoricalColumn, OrdinalColumn)) and col.other:
        return int(col.n_values)
    if col.nullable:
        return int(col.domain_size() - 1)
    return 0


def _null_code(col: Any, problems: _Problems, n_null: int) -> int:
    if col.nullable:
        return int(col.domain_size() - 1)
    problems.add("null_in_non_nullable", n_null)
    return _fallback(col)


def _encode_categories(s: pd.Series, col: CategoricalColumn | OrdinalColumn, pr: _Problems) -> npt.NDArray[np.int64]:
    codes_of = {canonical_key(c): i for i, c in enumerate(col.categories)}
    inv, uniques = pd.factorize(s, use_na_sentinel=True)
    mapped = np.empty(len(uniques) + 1, dtype=np.int64)
    unseen = np.zeros(len(uniques) + 1, dtype=bool)
    fb = _fallback(col)
    for i, u in enumerate(uniques):
        code = codes_of.get(canonical_key(u))
        unseen[i] = code is None
        mapped[i] = fb if code is None else code
    null = inv < 0
    mapped[-1] = _null_code(col, pr, int(null.sum()))
    idx = np.where(null, len(uniques), inv)
    pr.add("undeclared_category", int(unseen[idx].sum()))
    return mapped[idx]


def _to_numbers(s: pd.Series) -> pd.Series:
    """Numbers of a column; text such as ``12 kg``, ``3.5km``, ``45%`` or ``$1,200`` is read too.

    The unit or sign is dropped (``45%`` reads as 45); text that is no number stays null.
    """
    raw = pd.to_numeric(s, errors="coerce")
    retry = raw.isna() & s.notna()
    if retry.any():
        found = s[retry].astype(str).str.extract(_UNIT_NUMBER, expand=False)
        raw = raw.astype(np.float64)
        raw[retry] = pd.to_numeric(found.str.replace(",", "", regex=False), errors="coerce")
    return raw


def _encode_numeric(s: pd.Series, col: NumericColumn, pr: _Problems) -> npt.NDArray[np.int64]:
    raw = _to_numbers(s)
    pr.add("unparseable", int((raw.isna() & s.notna()).sum()))
    v = raw.to_numpy(dtype=np.float64, na_value=np.nan)
    null = np.isnan(v)
    lo, hi = col.bounds
    with np.errstate(invalid="ignore"):
        pr.add("out_of_bounds", int(((v < lo) | (v > hi)).sum()))
    v = np.clip(np.where(null, lo, v), lo, hi)
    if col.dtype == "int":
        v = np.clip(np.round(v), np.ceil(lo), np.floor(hi))
    if col.per_integer:
        codes = (v - lo).astype(np.int64)
    else:
        codes = np.searchsorted(col.bin_edges()[1:-1], v, side="right").astype(np.int64)
    if null.any():
        codes[null] = _null_code(col, pr, int(null.sum()))
    return codes


def _encode_datetime(s: pd.Series, col: DatetimeColumn, pr: _Problems) -> npt.NDArray[np.int64]:
    ts = (
        pd.to_datetime(s, errors="coerce", utc=True, format="mixed")
        if not pd.api.types.is_datetime64_any_dtype(s)
        else s
    )
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    unit = GRANULARITY_UNITS[col.granularity]
    arr = np.asarray(ts.to_numpy())
    if arr.dtype.kind != "M":  # e.g. all values null
        arr = np.full(len(ts), np.datetime64("NaT"), dtype=f"datetime64[{unit}]")
    units = arr.astype(f"datetime64[{unit}]").astype(np.int64)  # keeps pandas' own resolution
    null = ts.isna().to_numpy()
    retry = np.flatnonzero(null & s.notna().to_numpy())
    for i in retry:  # outside pandas' nanosecond range (e.g. year 9999): parse ISO text directly
        try:
            units[i] = np.datetime64(str(s.iloc[i]).strip()[:19], unit).astype(np.int64)  # type: ignore[call-overload]
            null[i] = False
        except ValueError:
            pass
    pr.add("unparseable", int(np.sum(null & s.notna().to_numpy())))
    lo, hi = col.unit_bounds()
    pr.add("out_of_bounds", int(((units < lo) | (units > hi))[~null].sum()))
    units = np.clip(np.where(null, lo, units), lo, hi)
    edges = np.linspace(lo, hi + 1, col.n_values + 1)
    codes = np.searchsorted(edges[1:-1], units, side="right").astype(np.int64)
    if null.any():
        codes[null] = _null_code(col, pr, int(null.sum()))
    return codes


def _encode_boolean(s: pd.Series, col: BooleanColumn, pr: _Problems) -> npt.NDArray[np.int64]:
    inv, uniques = pd.factorize(s, use_na_sentinel=True)
    mapped = np.empty(len(uniques) + 1, dtype=np.int64)
    bad = np.zeros(len(uniques) + 1, dtype=bool)
    for i, u in enumerate(uniques):
        key = canonical_key(u).lower()
        if key in _TRUE:
            mapped[i] = 1
        elif key in _FALSE:
            mapped[i] = 0
        else:
            bad[i] = True
            mapped[i] = 2 if col.nullable else 0
    null = inv < 0
    mapped[-1] = _null_code(col, pr, int(null.sum()))
    idx = np.where(null, len(uniques), inv)
    pr.add("unparseable", int(bad[idx].sum()))
    return mapped[idx]


def encode_column(s: pd.Series, col: Any) -> tuple[npt.NDArray[np.int64], dict[str, int]]:
    """Codes of one column and the counts of value-level problems met (confidential)."""
    pr = _Problems()
    if isinstance(col, (CategoricalColumn, OrdinalColumn)):
        codes = _encode_categories(s, col, pr)
    elif isinstance(col, NumericColumn):
        codes = _encode_numeric(s, col, pr)
    elif isinstance(col, DatetimeColumn):
        codes = _encode_datetime(s, col, pr)
    elif isinstance(col, BooleanColumn):
        codes = _encode_boolean(s, col, pr)
    else:
        raise SchemaError(f"column {col.name!r} of kind {col.kind!r} is not modelled")
    return codes, pr.counts


def _check_columns(df: pd.DataFrame, schema: Schema) -> None:
    names = [str(c) for c in df.columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SchemaError(f"the data has duplicate column names: {dupes}")
    missing = [c.name for c in schema.modelled if c.name not in names]
    if missing:
        raise SchemaError(f"the data lacks schema columns {missing}; check that its header row names "
                          "them exactly, and pass --sep if the file is not comma-separated")
    extra = [n for n in names if n not in {c.name for c in schema.columns}]
    if extra:
        log.warning("ignoring %d data column(s) not in the schema: %s", len(extra), extra)


def encode(df: pd.DataFrame, schema: Schema) -> Table:
    """Encode the modelled columns of ``df`` into a :class:`Table` over the schema's domain.

    The input frame is never modified.
    """
    _check_columns(df, schema)
    df = df.rename(columns=str)
    cols = schema.modelled
    codes = np.empty((len(df), len(cols)), dtype=np.int64)
    for j, c in enumerate(cols):
        codes[:, j], _ = encode_column(df[c.name], c)
    return Table(tuple(c.name for c in cols), tuple(c.domain_size() for c in cols), codes)


@dataclass(frozen=True)
class ValidationReport:
    """Confidential: per column, how many cells violate the schema and how. No values."""

    rows: int
    problems: dict[str, dict[str, int]]

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not any(self.problems.values())

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict, marked confidential."""
        return {"confidential": True, "rows": self.rows, "problems": self.problems, "ok": self.ok}


def validate_frame(df: pd.DataFrame, schema: Schema) -> ValidationReport:
    """What the data violates, as counts per column and kind of problem (confidential)."""
    _check_columns(df, schema)
    df = df.rename(columns=str)
    problems = {c.name: encode_column(df[c.name], c)[1] for c in schema.modelled}
    unit = schema.privacy_unit
    if unit.kind == "person" and unit.column in df.columns:
        per = df[unit.column].value_counts(dropna=True)
        over = int((per > (unit.max_rows or 1)).sum())
        if over:
            problems.setdefault(unit.column, {})["persons_over_max_rows"] = over
    return ValidationReport(rows=len(df), problems={k: v for k, v in problems.items() if v})


def _decode_numeric(codes: npt.NDArray[np.int64], col: NumericColumn, rng: np.random.Generator) -> pd.Series:
    null = codes >= col.n_values
    c = np.clip(codes, 0, col.n_values - 1)
    lo, hi = col.bounds
    if col.per_integer:
        out = (lo + c).astype(np.float64)
    else:
        e = col.bin_edges()
        a, b = e[c], e[c + 1]
        if col.dtype == "int":
            first = np.ceil(a)
            last = np.where(c == col.n_values - 1, np.floor(b), np.ceil(b) - 1)
            last = np.maximum(last, first)
            out = first + np.floor(rng.random(len(c)) * (last - first + 1))
            out = np.clip(out, np.ceil(lo), np.floor(hi))
        else:
            out = a + rng.random(len(c)) * (b - a)
    if col.dtype == "int":
        ser = pd.Series(out.astype(np.int64), dtype="Int64" if col.nullable else "int64")
    else:
        ser = pd.Series(out, dtype="float64")
    if null.any():
        ser[null] = pd.NA if col.dtype == "int" else np.nan
    return ser


def _decode_datetime(codes: npt.NDArray[np.int64], col: DatetimeColumn, rng: np.random.Generator) -> pd.Series:
    null = codes >= col.n_values
    c = np.clip(codes, 0, col.n_values - 1)
    lo, hi = col.unit_bounds()
    edges = np.linspace(lo, hi + 1, col.n_values + 1)
    first = np.ceil(edges[c])
    last = np.maximum(np.ceil(edges[c + 1]) - 1, first)
    units = (first + np.floor(rng.random(len(c)) * (last - first + 1))).astype(np.int64)
    units = np.clip(units, lo, hi)
    arr = units.astype(f"datetime64[{GRANULARITY_UNITS[col.granularity]}]").astype("datetime64[ns]")
    ser = pd.Series(arr)
    tz = col.timezone or (str(pd.Timestamp(col.bounds[0]).tz) if pd.Timestamp(col.bounds[0]).tzinfo else None)
    if tz:
        ser = ser.dt.tz_localize("UTC").dt.tz_convert(tz)
    if null.any():
        ser[null] = pd.NaT
    return ser


def decode(codes: npt.NDArray[np.int64], schema: Schema, rng: np.random.Generator) -> pd.DataFrame:
    """Decode ``(rows, modelled columns)`` codes into a frame in the schema's column order.

    Binned numbers and dates are drawn uniformly inside their bin with ``rng`` (integers stay
    integers, dates land on their granularity). Identifier columns are dropped, or filled
    with fresh random tokens when declared ``output: token``. A categorical column whose
    declared values are not all text and that has an ``other`` bucket (integer ZIP codes plus
    "Other") decodes to text throughout, so its type follows from the schema alone and CSV
    and Parquet spell it the same way.
    """
    modelled = schema.modelled
    if codes.ndim != 2 or codes.shape[1] != len(modelled):
        raise ConfigError(f"codes must have shape (rows, {len(modelled)})")
    n = codes.shape[0]
    pos = {c.name: j for j, c in enumerate(modelled)}
    out: dict[str, pd.Series] = {}
    for col in schema.columns:
        if isinstance(col, IdentifierColumn):
            if col.output == "token":
                digits = rng.integers(0, 16, size=(n, 16))
                out[col.name] = pd.Series(["".join("0123456789abcdef"[d] for d in row) for row in digits], dtype=object)
            continue
        c = codes[:, pos[col.name]]
        if isinstance(col, (CategoricalColumn, OrdinalColumn)):
            cats: list[object] = list(col.categories)
            if (col.other or len({type(v) for v in cats}) > 1) and not all(isinstance(v, str) for v in cats):
                cats = [str(v) for v in cats]  # one type per column: integers with "Other" become text
            labels = np.array(cats + ([col.other_label] if col.other else []) + [None], dtype=object)
            out[col.name] = pd.Series(labels[np.clip(c, 0, len(labels) - 1)], dtype=object)
        elif isinstance(col, BooleanColumn):
            ser = pd.Series(c == 1, dtype="boolean" if col.nullable else bool)
            if col.nullable:
                ser[c == 2] = pd.NA
            out[col.name] = ser
        elif isinstance(col, NumericColumn):
            out[col.name] = _decode_numeric(c, col, rng)
        elif isinstance(col, DatetimeColumn):
            out[col.name] = _decode_datetime(c, col, rng)
    if not out:
        return pd.DataFrame(index=pd.RangeIndex(n))
    # concat keeps one block per column; building from a dict would first copy all object
    # columns into one 2-D block (most of the decoding time for a million rows).
    return pd.concat(list(out.values()), axis=1, keys=pd.Index(list(out)))


def units_of(ts: pd.Timestamp, col: DatetimeColumn) -> int:
    """A timestamp in the column's granularity units (for tests and reports)."""
    return _to_units(ts, col.granularity)
