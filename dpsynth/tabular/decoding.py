"""Decoding integer codes back into a data frame, using only the public schema.

Decoding is post-processing: binned numbers and dates are drawn inside their bin with a
caller-supplied random generator, and identifier tokens are fresh random text.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from dpsynth.errors import ConfigError
from dpsynth.tabular.columns import (
    GRANULARITY_UNITS,
    BooleanColumn,
    CategoricalColumn,
    DatetimeColumn,
    IdentifierColumn,
    NumericColumn,
    OrdinalColumn,
)
from dpsynth.tabular.schema import Schema

__all__ = ["decode"]


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
