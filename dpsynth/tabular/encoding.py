"""Schema-driven encoding of data frames into integer-coded tables, with no fitting.

Encoding is total on value-level anomalies (docs/privacy-model.md, "Value-level problems never
raise inside fit"): a null becomes the null code (or the column's fallback code when the column
is not nullable), an undeclared category becomes ``other`` (or null, or the fallback), and
out-of-bounds or infinite numbers and dates are clamped. Nothing here raises because of a cell
value; schema errors raise naming the column. :func:`validate_frame` reports the same
anomalies as confidential counts.

Reading files (:mod:`dpsynth.tabular.reading`) and decoding (:mod:`dpsynth.tabular.decoding`)
live in their own modules; their functions are re-exported here.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from dpsynth.errors import SchemaError
from dpsynth.tabular.columns import (
    GRANULARITY_UNITS,
    BooleanColumn,
    CategoricalColumn,
    DatetimeColumn,
    NumericColumn,
    OrdinalColumn,
    canonical_key,
)
from dpsynth.tabular.columns import units_of as units_of  # re-exported: it used to live here
from dpsynth.tabular.decoding import decode
from dpsynth.tabular.reading import check_input, read_frame
from dpsynth.tabular.schema import Schema
from dpsynth.tabular.table import Table

__all__ = ["ValidationReport", "check_input", "decode", "encode", "encode_column", "read_frame", "validate_frame"]

log = logging.getLogger(__name__)

_TRUE = {"true", "1", "yes", "t", "y"}
#: a number written with a currency sign, thousands separators, a unit or a percent sign
_UNIT_NUMBER = re.compile(r"^\s*[$€£¥]?\s*([+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)\s*(?:%|°?[^\W\d_]{1,6}\.?)?\s*$")
_FALSE = {"false", "0", "no", "f", "n"}


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
    exact = np.round(v) if col.dtype == "int" else v  # an atom matches before clamping (a sentinel)
    atom = np.isin(exact, np.asarray(col.atoms, dtype=np.float64)) if col.atoms else np.zeros(len(v), bool)
    with np.errstate(invalid="ignore"):
        pr.add("out_of_bounds", int(((v < lo) | (v > hi))[~atom].sum()))
    v = np.clip(np.where(null, lo, v), lo, hi)
    if col.dtype == "int":
        v = np.clip(np.round(v), np.ceil(lo), np.floor(hi))
    if col.per_integer:
        codes = (v - lo).astype(np.int64)
    else:
        codes = np.searchsorted(col.bin_edges()[1:-1], v, side="right").astype(np.int64)
    for k, a in enumerate(col.atoms):  # a value clamped onto an atom at a bound
        codes[v == a] = col.n_bins + k
    for k, a in enumerate(col.atoms):  # the exact value first of all (a sentinel beyond a bound)
        codes[exact == a] = col.n_bins + k
    if null.any():
        codes[null] = _null_code(col, pr, int(null.sum()))
    return codes


def _parse_datetimes(s: pd.Series, col: DatetimeColumn) -> pd.Series:
    """Timestamps (UTC) of the cells: the declared format first, then any ISO-like text.

    Text in a declared format without an offset is read in the column's time zone (UTC when
    none), the zone decoding writes it in.
    """
    if pd.api.types.is_datetime64_any_dtype(s):
        return s
    ts = pd.to_datetime(s, errors="coerce", utc=True, format="mixed")
    if col.format is not None and len(s):
        text = s.astype("string").str.strip()
        aware = "%z" in col.format or "%Z" in col.format
        fmt = pd.to_datetime(text, errors="coerce", format=col.format, utc=aware)
        zone = col.zone()
        if not aware and zone:
            fmt = fmt.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
        fmt = fmt.dt.tz_localize("UTC") if fmt.dt.tz is None else fmt.dt.tz_convert("UTC")
        ts = fmt.where(fmt.notna(), ts)
    return ts


def _encode_datetime(s: pd.Series, col: DatetimeColumn, pr: _Problems) -> npt.NDArray[np.int64]:
    ts = _parse_datetimes(s, col)
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
    labels = {canonical_key(col.true_label or "").lower(): 1, canonical_key(col.false_label or "").lower(): 0}
    for i, u in enumerate(uniques):
        key = canonical_key(u).lower()
        if key in labels and key:
            mapped[i] = labels[key]
        elif key in _TRUE:
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
    if getattr(col, "null_token", None) is not None and (pd.api.types.is_object_dtype(s)
                                                         or pd.api.types.is_string_dtype(s)):
        s = s.mask(s.astype("string").str.strip() == col.null_token.strip())
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
