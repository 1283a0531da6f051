"""Decoding integer codes back into a data frame, using only the public schema.

Decoding is post-processing: binned numbers and dates are drawn inside their bin with a
caller-supplied random generator, and identifier tokens are fresh random text. The schema's
spelling facts (boolean labels, null token, datetime format, numeric step and decimals) shape
the output so that it looks like the source file.
"""

from __future__ import annotations

import decimal
import math

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

__all__ = ["decode", "value_grid"]


def _places(x: float) -> int:
    """Digits after the point in the shortest spelling of ``x`` (at most 12)."""
    exponent = decimal.Decimal(repr(float(x))).normalize().as_tuple().exponent
    return min(12, max(0, -int(exponent)))


def value_grid(col: NumericColumn) -> tuple[float, float, int] | None:
    """``(origin, step, places)``: decoded values are ``origin + k * step`` rounded to ``places``.

    The grid is the declared ``step`` from the lower bound, else ``10 ** -decimals``, else
    the integers (integer columns). A float column declaring neither gets a default grid a
    thousandth of its narrowest bin (to a power of ten), so no value is written with 17
    digits. None when that grid would be finer than 12 decimal places.
    """
    lo, _ = col.bounds
    if col.step is not None:
        places = col.decimals if col.decimals is not None else max(_places(col.step), _places(lo))
        return float(lo), float(col.step), places
    if col.dtype == "int":
        return 0.0, 1.0, 0
    if col.decimals is not None:
        places = col.decimals
    else:
        width = float(np.min(np.diff(col.bin_edges())))
        places = max(0, 3 - math.floor(math.log10(width)))
        if places > 12:
            return None
    step = 10.0 ** -places
    return math.floor(lo / step) * step, step, places


def _grid_index(x: npt.NDArray[np.float64], origin: float, step: float) -> npt.NDArray[np.float64]:
    """Position of ``x`` on the grid, snapped to a whole index when within float noise of one."""
    t = (x - origin) / step
    r = np.round(t)
    return np.where(np.abs(t - r) < 1e-9, r, t)


def _in_bins(c: npt.NDArray[np.int64], col: NumericColumn, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """A value inside bin ``c`` of each row: uniform over the grid points of the bin that are
    not atoms, or uniform over the bin when the column has no grid or the bin holds no point."""
    lo, hi = col.bounds
    e = col.bin_edges()
    a, b = e[c], e[c + 1]
    u = rng.random(len(c))
    grid = value_grid(col)
    if grid is None:
        return a + u * (b - a)
    origin, step, places = grid
    last = c == col.n_bins - 1
    kmin = np.ceil(_grid_index(np.maximum(a, lo), origin, step))
    kb = _grid_index(np.minimum(b, hi), origin, step)
    kmax = np.where(last | (b >= hi), np.floor(kb), np.ceil(kb) - 1)
    ak = sorted({float(k) for k in _grid_index(np.asarray(col.atoms, np.float64), origin, step)
                 if float(k).is_integer()}) if col.atoms else []
    inside = [(k >= kmin) & (k <= kmax) for k in ak]
    m = kmax - kmin + 1 - (np.sum(inside, axis=0) if ak else 0)
    k = kmin + np.floor(u * np.maximum(m, 1))
    for ki, hit in zip(ak, inside, strict=True):  # skip over the atoms, lowest first
        k = np.where(hit & (k >= ki), k + 1, k)
    out: npt.NDArray[np.float64] = np.round(origin + k * step, places)
    if col.dtype == "int":
        return np.clip(out, np.ceil(lo), np.floor(hi))
    free = a + u * (b - a)  # a bin narrower than the grid: the declared precision still holds
    if col.step is not None or col.decimals is not None:
        free = np.clip(np.round(origin + np.round(_grid_index(free, origin, step)) * step, places), lo, hi)
    chosen: npt.NDArray[np.float64] = np.where(m > 0, out, free)
    return chosen


def _decode_numeric(codes: npt.NDArray[np.int64], col: NumericColumn, rng: np.random.Generator) -> pd.Series:
    null = codes >= col.n_values
    atom = (codes >= col.n_bins) & ~null
    c = np.clip(codes, 0, col.n_bins - 1)
    lo, _ = col.bounds
    out = (lo + c).astype(np.float64) if col.per_integer else _in_bins(c, col, rng)
    if atom.any():
        out[atom] = np.asarray(col.atoms, dtype=np.float64)[codes[atom] - col.n_bins]
    if col.dtype == "int" or col.decimals == 0:
        ser = pd.Series(out.astype(np.int64), dtype="Int64" if col.nullable else "int64")
    else:
        ser = pd.Series(out, dtype="float64")
    if null.any():
        ser[null] = pd.NA if ser.dtype != "float64" else np.nan
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
    tz = col.zone()
    if tz:
        ser = ser.dt.tz_localize("UTC").dt.tz_convert(tz)
    if null.any():
        ser[null] = pd.NaT
    if col.format is not None:
        text = ser.dt.strftime(col.format).astype(object)
        return text.where(text.notna(), None)
    return ser


def _decode_boolean(c: npt.NDArray[np.int64], col: BooleanColumn) -> pd.Series:
    if col.true_label is not None and col.false_label is not None:
        labels = np.array([col.false_label, col.true_label, None], dtype=object)
        return pd.Series(labels[np.clip(c, 0, 2 if col.nullable else 1)], dtype=object)
    ser = pd.Series(c == 1, dtype="boolean" if col.nullable else bool)
    if col.nullable:
        ser[c == 2] = pd.NA
    return ser


def _spell_nulls(ser: pd.Series, token: str) -> pd.Series:
    """The column as Python values with its nulls spelled ``token`` (written as text)."""
    values = ser.astype(object)
    return values.where(values.notna(), token)


def decode(codes: npt.NDArray[np.int64], schema: Schema, rng: np.random.Generator) -> pd.DataFrame:
    """Decode ``(rows, modelled columns)`` codes into a frame in the schema's column order.

    Binned numbers are drawn inside their bin with ``rng``, uniformly over the points of the
    column's value grid in the bin (:func:`value_grid`: its ``step``, ``decimals`` or the
    integers), never on an atom; an atom's code decodes to the atom itself. Dates are drawn
    uniformly inside their bin at their granularity and written in the declared ``format``
    (text) when there is one. Booleans are written with ``true_label``/``false_label`` when
    declared, and nulls as ``null_token`` (the column then holds text values). Identifier columns are dropped, or filled
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
            out[col.name] = _decode_boolean(c, col)
        elif isinstance(col, NumericColumn):
            out[col.name] = _decode_numeric(c, col, rng)
        elif isinstance(col, DatetimeColumn):
            out[col.name] = _decode_datetime(c, col, rng)
        if col.null_token is not None:
            out[col.name] = _spell_nulls(out[col.name], col.null_token)
    if not out:
        return pd.DataFrame(index=pd.RangeIndex(n))
    # concat keeps one block per column; building from a dict would first copy all object
    # columns into one 2-D block (most of the decoding time for a million rows).
    return pd.concat(list(out.values()), axis=1, keys=pd.Index(list(out)))
