"""Decode-time enforcement of the schema's constraints between columns (post-processing).

Structural zeros (:func:`dpsynth.tabular.constraints.inequality_assignments`) keep each
sampled row's cells compatible with every inequality, but two overlapping cells can still
decode to values that violate it. :func:`apply_constraints` repairs such rows in three
stages, each only on the rows the previous one left violating:

1. decode the row's codes again (fresh within-cell values under the decoder's own rules),
   up to ``redraws`` times;
2. draw the two values uniformly on their cells' overlap, on the column's grid (integers,
   ``step``, ``decimals``, time units; an atom keeps its value), until the inequality holds:
   each try succeeds with probability at least 1/2, so the values stay inside their cells;
3. as a last resort (cells that meet only at a tie, or datetimes of different granularity),
   set the greater value to the lesser one (to the next integer, time unit or float above
   it when the inequality is strict).

Every inequality then holds exactly on every row where both values are present (nulls are
left alone). Finally the derived columns are computed from their source column.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from dpsynth.tabular.columns import GRANULARITY_UNITS, DatetimeColumn, NumericColumn
from dpsynth.tabular.constraints import Derivation, Inequality, code_intervals, derivations, inequalities

if TYPE_CHECKING:
    from dpsynth.tabular.schema import Schema

__all__ = ["apply_constraints"]

log = logging.getLogger(__name__)

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
_PANDAS_PART = {"weekday": "day_of_week", "dayofyear": "day_of_year"}
_TRIES = 40


def apply_constraints(frame: pd.DataFrame, codes: npt.NDArray[np.int64], schema: Schema,
                      rng: np.random.Generator, *, redraws: int = 8) -> pd.DataFrame:
    """Make decoded rows honour the schema's inequalities, then add its derived columns.

    Derived columns are placed right after their source column. A schema without
    inequalities or derived columns leaves ``frame`` and ``rng`` untouched.

    Args:
        frame: The decoded frame (modified in place and returned).
        codes: The codes it was decoded from, ``(rows, modelled columns)``.
        schema: The public schema.
        rng: Post-processing randomness (the user's seed).
        redraws: How many times violating rows are decoded again before drawing on the overlap.
    """
    ineqs = inequalities(schema)
    if ineqs:
        _redraw(frame, codes, schema, ineqs, rng, redraws)
        pos = {c.name: j for j, c in enumerate(schema.modelled)}
        for q in ineqs:
            _draw_on_overlap(frame, codes, schema, q, pos, rng)
        _clamp(frame, schema, ineqs)
    for d in derivations(schema):
        _derive(frame, d, schema.column(d.source).nullable)
    return frame


def _any_violated(frame: pd.DataFrame, ineqs: Sequence[Inequality]) -> BoolArray:
    bad = np.zeros(len(frame), dtype=bool)
    for q in ineqs:
        bad |= q.violated(frame)
    return bad


def _set(frame: pd.DataFrame, column: str, rows: npt.NDArray[np.intp], values: Any) -> None:
    ser = frame[column].copy()
    ser.iloc[rows] = values
    frame[column] = ser


def _redraw(frame: pd.DataFrame, codes: npt.NDArray[np.int64], schema: Schema, ineqs: Sequence[Inequality],
            rng: np.random.Generator, redraws: int) -> None:
    from dpsynth.tabular.decoding import decode  # decoding imports the schema, which imports constraints

    columns = sorted({c for q in ineqs for c in (q.greater, q.lesser)})
    bad = np.flatnonzero(_any_violated(frame, ineqs))
    for _ in range(redraws):
        if not bad.size:
            return
        fresh = decode(codes[bad], schema, rng)
        for c in columns:
            _set(frame, c, bad, fresh[c].array)
        bad = bad[_any_violated(frame.iloc[bad], ineqs)]


def _cells(col: NumericColumn | DatetimeColumn,
           codes: npt.NDArray[np.int64]) -> tuple[FloatArray, FloatArray, BoolArray, tuple[float, float] | None]:
    """Per row, its cell's least value, upper end and whether that end is a value, on the
    column's scale (time units for datetimes), and the grid ``(origin, unit)`` values lie on."""
    if isinstance(col, DatetimeColumn):
        lo, hi = col.unit_bounds()
        edges = np.linspace(lo, hi + 1, col.n_values + 1)[np.stack([codes, codes + 1])]
        first = np.clip(np.ceil(edges[0]), lo, hi)
        last = np.clip(np.maximum(np.ceil(edges[1]) - 1, first), lo, hi)
        return first, last, np.ones(len(codes), dtype=bool), (0.0, 1.0)
    least, most, closed = code_intervals(col)
    step, decimals = getattr(col, "step", None), getattr(col, "decimals", None)
    grid = ((float(col.bounds[0]), float(step)) if step else (0.0, 1.0) if col.dtype == "int"
            else (0.0, 10.0 ** -decimals) if decimals is not None else None)
    return least[codes], most[codes], closed[codes], grid


def _draw(lo: FloatArray, hi: FloatArray, closed: BoolArray, grid: tuple[float, float] | None,
          rng: np.random.Generator) -> tuple[FloatArray, BoolArray]:
    """Uniform values on ``[lo, hi]`` (``[lo, hi)`` where not ``closed``), on ``grid`` if given,
    and whether each range holds any value; a closed range of one point (an atom) gives it."""
    point = closed & (lo == hi)
    if grid is None:
        ok = (hi > lo) | point
        return np.where(point, lo, lo + rng.random(len(lo)) * (hi - lo)), ok
    origin, unit = grid
    kmin = np.ceil((lo - origin) / unit - 1e-9)
    top = (hi - origin) / unit
    kmax = np.floor(top + 1e-9) - (~closed & np.isclose(top, np.round(top)))
    k = kmin + np.floor(rng.random(len(lo)) * np.maximum(kmax - kmin + 1, 0))
    return np.where(point, lo, origin + k * unit), (kmax >= kmin) | point


def _draw_on_overlap(frame: pd.DataFrame, codes: npt.NDArray[np.int64], schema: Schema, q: Inequality,
                     pos: dict[str, int], rng: np.random.Generator) -> None:
    g, lo = schema.column(q.greater), schema.column(q.lesser)
    if isinstance(g, DatetimeColumn) and g.granularity != lo.granularity:
        return  # units differ: left to the clamp
    rows = np.flatnonzero(q.violated(frame))
    if not rows.size:
        return
    g_lo, g_hi, g_cl, g_grid = _cells(g, codes[rows, pos[g.name]])
    l_lo, l_hi, l_cl, l_grid = _cells(lo, codes[rows, pos[lo.name]])
    y_hi = np.minimum(l_hi, g_hi)  # the box holding every feasible pair
    y_cl = np.where(l_hi < g_hi, l_cl, np.where(l_hi > g_hi, g_cl, l_cl & g_cl))
    x_lo = np.maximum(g_lo, l_lo)
    todo = np.arange(len(rows))
    x_out, y_out = np.empty(len(rows)), np.empty(len(rows))
    done = np.zeros(len(rows), dtype=bool)
    for _ in range(_TRIES):
        if not todo.size:
            break
        x, x_ok = _draw(x_lo[todo], g_hi[todo], g_cl[todo], g_grid, rng)
        y, y_ok = _draw(l_lo[todo], y_hi[todo], y_cl[todo], l_grid, rng)
        hit = x_ok & y_ok & ((x > y) if q.strict else (x >= y))
        x_out[todo[hit]], y_out[todo[hit]] = x[hit], y[hit]
        done[todo[hit]] = True
        todo = todo[x_ok & y_ok & ~hit]
    if done.any():
        _set(frame, g.name, rows[done], _values(g, x_out[done], frame[g.name]))
        _set(frame, lo.name, rows[done], _values(lo, y_out[done], frame[lo.name]))


def _values(col: NumericColumn | DatetimeColumn, v: FloatArray, like: pd.Series) -> Any:
    """Drawn values (numbers, or time units) in the representation of the decoded column."""
    if isinstance(col, NumericColumn):
        if col.dtype == "int":
            return np.round(v).astype(np.int64)
        decimals = getattr(col, "decimals", None)
        return np.round(v, decimals) if decimals is not None else v
    unit = GRANULARITY_UNITS[col.granularity]
    out = pd.Series(v.astype(np.int64).astype(f"datetime64[{unit}]").astype("datetime64[ns]"))
    tz = getattr(like.dt, "tz", None)
    return (out.dt.tz_localize("UTC").dt.tz_convert(tz) if tz is not None else out).array


def _clamp(frame: pd.DataFrame, schema: Schema, ineqs: Sequence[Inequality]) -> None:
    clamped = 0
    for _ in range(len(ineqs) + 1):  # enough passes for a chain (inequalities have no cycle)
        changed = False
        for q in ineqs:
            rows = np.flatnonzero(q.violated(frame))
            if rows.size:
                _set(frame, q.greater, rows, _at_least(frame[q.lesser].iloc[rows], schema.column(q.greater), q.strict))
                clamped += int(rows.size)
                changed = True
        if not changed:
            break
    if clamped:
        log.debug("inequality repair set %d value(s) to their partner's", clamped)
    left = int(_any_violated(frame, ineqs).sum())
    if left:  # pragma: no cover - impossible without a cycle, which validation refuses
        log.warning("%d synthetic row(s) still violate an inequality of the schema", left)


def _at_least(lesser: pd.Series, col: NumericColumn | DatetimeColumn, strict: bool) -> Any:
    """The least value of ``col``'s kind that is ``>=`` (``>`` when ``strict``) each value."""
    if isinstance(col, NumericColumn):
        y = lesser.to_numpy(dtype=np.float64)
        if col.dtype == "int":
            return (np.floor(y) + 1 if strict else np.ceil(y)).astype(np.int64)
        return np.nextafter(y, np.inf) if strict else y
    tz = getattr(lesser.dt, "tz", None)
    naive = lesser.dt.tz_convert("UTC").dt.tz_localize(None) if tz is not None else lesser
    exact = naive.to_numpy(dtype="datetime64[ns]")
    unit = GRANULARITY_UNITS[col.granularity]
    floor = exact.astype(f"datetime64[{unit}]")
    up = floor + 1 if strict else np.where(floor.astype("datetime64[ns]") < exact, floor + 1, floor)
    out = pd.Series(up.astype("datetime64[ns]"), index=lesser.index)
    return (out.dt.tz_localize("UTC").dt.tz_convert(tz) if tz is not None else out).array


def _derive(frame: pd.DataFrame, d: Derivation, nullable: bool) -> None:
    src = frame[d.source]
    at = list(frame.columns).index(d.source) + 1
    for name, part in d.parts:
        if part == "date":
            values: Any = src.dt.strftime("%Y-%m-%d").astype(object).where(src.notna(), None).to_numpy()
        else:
            raw = getattr(src.dt, _PANDAS_PART.get(part, part))
            values = raw.astype("Int64") if nullable else raw.astype(np.int64)
        frame.insert(at, name, values)
        at += 1
