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
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

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


class Interval(Protocol):
    """Part of a range condition's window on a column's value axis (numbers, or datetimes in
    granularity units since the epoch), as :mod:`dpsynth.conditions` resolves it."""

    def holds(self, x: FloatArray) -> BoolArray:
        """Which values lie in the interval."""
        ...


#: ``{column: intervals}``: decoded values of the column must lie in one of the intervals.
Windows = Mapping[str, Sequence[Interval]]


def apply_constraints(frame: pd.DataFrame, codes: npt.NDArray[np.int64], schema: Schema,
                      rng: np.random.Generator, *, windows: Windows | None = None,
                      redraws: int = 8) -> pd.DataFrame:
    """Make decoded rows honour the schema's inequalities, then add its derived columns.

    Derived columns are placed right after their source column. A schema without
    inequalities or derived columns leaves ``frame`` and ``rng`` untouched. Values that stages
    1 and 2 write also satisfy ``windows`` (range conditions of the sample, which ``frame``
    already satisfies); a value set by the last-resort clamp may leave its window.

    Args:
        frame: The decoded frame (modified in place and returned).
        codes: The codes it was decoded from, ``(rows, modelled columns)``.
        schema: The public schema.
        rng: Post-processing randomness (the user's seed).
        windows: Range conditions the repaired values must keep satisfying.
        redraws: How many times violating rows are decoded again before drawing on the overlap.
    """
    ineqs = inequalities(schema)
    if ineqs:
        ok = _Accept(schema, ineqs, windows or {})
        _redraw(frame, codes, schema, ok, rng, redraws)
        pos = {c.name: j for j, c in enumerate(schema.modelled)}
        for q in ineqs:
            _draw_on_overlap(frame, codes, schema, q, pos, rng, ok)
        _clamp(frame, schema, ok)
    for d in derivations(schema):
        _derive(frame, d, schema.column(d.source).nullable)
    return frame


def _any_violated(frame: pd.DataFrame, ineqs: Sequence[Inequality]) -> BoolArray:
    bad = np.zeros(len(frame), dtype=bool)
    for q in ineqs:
        bad |= q.violated(frame)
    return bad


class _Accept:
    """Whether candidate rows satisfy every inequality and every window."""

    def __init__(self, schema: Schema, ineqs: Sequence[Inequality], windows: Windows) -> None:
        self.ineqs, self.windows = ineqs, windows
        self.columns = {n: schema.column(n) for n in windows}

    def __call__(self, frame: pd.DataFrame) -> BoolArray:
        return np.asarray(~_any_violated(frame, self.ineqs) & self.inside(frame))

    def inside(self, frame: pd.DataFrame) -> BoolArray:
        """Rows whose values lie in their windows (a null lies in any window)."""
        good = np.ones(len(frame), dtype=bool)
        for name, win in self.windows.items():
            x = _axis(frame[name], self.columns[name])
            inside = np.zeros(len(x), dtype=bool)
            for iv in win:
                inside |= iv.holds(x)
            good &= inside | np.isnan(x)
        return good


def _axis(values: pd.Series, col: Any) -> FloatArray:
    """Values on the column's value axis: numbers, or datetimes in granularity units (NaN for nulls)."""
    if not isinstance(col, DatetimeColumn):
        return np.asarray(pd.to_numeric(values, errors="coerce"), dtype=np.float64)
    ts = pd.Series(values)
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    units = ts.to_numpy(dtype="datetime64[ns]").astype(f"datetime64[{GRANULARITY_UNITS[col.granularity]}]")
    return np.where(ts.isna().to_numpy(), np.nan, units.astype(np.int64).astype(np.float64))


def _set(frame: pd.DataFrame, column: str, rows: npt.NDArray[np.intp], values: Any) -> None:
    ser = frame[column].copy()
    ser.iloc[rows] = values
    frame[column] = ser


def _redraw(frame: pd.DataFrame, codes: npt.NDArray[np.int64], schema: Schema, ok: _Accept,
            rng: np.random.Generator, redraws: int) -> None:
    """Decode violating rows again; a row takes the fresh values only where they are acceptable."""
    from dpsynth.tabular.decoding import decode  # decoding imports the schema, which imports constraints

    columns = sorted({c for q in ok.ineqs for c in (q.greater, q.lesser)})
    bad = np.flatnonzero(_any_violated(frame, ok.ineqs))
    for _ in range(redraws):
        if not bad.size:
            return
        fresh = decode(codes[bad], schema, rng)
        candidate = frame.iloc[bad].copy()
        for c in columns:
            candidate[c] = fresh[c].array
        good = ok(candidate)
        for c in columns:
            _set(frame, c, bad[good], candidate[c].array[good])
        bad = bad[~good]


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
    return least[codes], most[codes], closed[codes], _grid(col)


def _grid(col: NumericColumn) -> tuple[float, float] | None:
    """``(origin, unit)`` of the values a numeric column decodes to (``None``: any number)."""
    step, decimals = getattr(col, "step", None), getattr(col, "decimals", None)
    return ((float(col.bounds[0]), float(step)) if step else (0.0, 1.0) if col.dtype == "int"
            else (0.0, 10.0 ** -decimals) if decimals is not None else None)


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
                     pos: dict[str, int], rng: np.random.Generator, ok: _Accept) -> None:
    g, lo = schema.column(q.greater), schema.column(q.lesser)
    if isinstance(g, DatetimeColumn) and g.granularity != lo.granularity:
        return  # units differ: left to the clamp
    rows = np.flatnonzero(q.violated(frame))
    if not rows.size:
        return
    g_lo, g_hi, g_cl, g_grid = _cells(g, codes[rows, pos[g.name]])
    l_lo, l_hi, l_cl, l_grid = _cells(lo, codes[rows, pos[lo.name]])
    x_now, y_now = _axis(frame[g.name].iloc[rows], g), _axis(frame[lo.name].iloc[rows], lo)
    # three proposals, in turn: both values on the box holding every feasible pair of the two
    # cells; the lesser value below the current greater one; the greater above the lesser one
    x_ranges = [(np.maximum(g_lo, l_lo), g_hi, g_cl), None, (np.maximum(g_lo, y_now), g_hi, g_cl)]
    y_ranges = [(l_lo, np.minimum(l_hi, g_hi), np.where(l_hi < g_hi, l_cl, np.where(l_hi > g_hi, g_cl, l_cl & g_cl))),
                (l_lo, np.minimum(l_hi, x_now), np.where(x_now < l_hi, True, l_cl)), None]
    todo, done = np.arange(len(rows)), np.zeros(len(rows), dtype=bool)
    x_out, y_out = x_now.copy(), y_now.copy()
    for attempt in range(_TRIES):
        if not todo.size:
            break
        xr, yr = x_ranges[attempt % 3], y_ranges[attempt % 3]
        x, x_ok = _draw(xr[0][todo], xr[1][todo], xr[2][todo], g_grid, rng) if xr else (x_now[todo], True)
        y, y_ok = _draw(yr[0][todo], yr[1][todo], yr[2][todo], l_grid, rng) if yr else (y_now[todo], True)
        hit = np.asarray(x_ok & y_ok & ((x > y) if q.strict else (x >= y)))
        if ok.windows and hit.any():
            candidate = frame.iloc[rows[todo[hit]]].copy()
            candidate[g.name] = _values(g, x[hit], frame[g.name])
            candidate[lo.name] = _values(lo, y[hit], frame[lo.name])
            hit[np.flatnonzero(hit)[~ok(candidate)]] = False
        x_out[todo[hit]], y_out[todo[hit]] = x[hit], y[hit]
        done[todo[hit]] = True
        todo = todo[~hit]
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


def _clamp(frame: pd.DataFrame, schema: Schema, ok: _Accept) -> None:
    """Set the greater value to the lesser one; where that leaves a window and lowering the
    lesser value to the greater one does not, do that instead."""
    clamped = 0
    for _ in range(len(ok.ineqs) + 1):  # enough passes for a chain (inequalities have no cycle)
        changed = False
        for q in ok.ineqs:
            rows = np.flatnonzero(q.violated(frame))
            if not rows.size:
                continue
            g, lo = schema.column(q.greater), schema.column(q.lesser)
            up = _bound(frame[q.lesser].iloc[rows], g, q.strict, up=True)
            down = _bound(frame[q.greater].iloc[rows], lo, q.strict, up=False)
            lower = np.zeros(len(rows), dtype=bool)
            if ok.windows:
                raised, lowered = frame.iloc[rows].copy(), frame.iloc[rows].copy()
                raised[q.greater], lowered[q.lesser] = up, down
                lower = ~ok.inside(raised) & ok.inside(lowered)
            _set(frame, q.greater, rows[~lower], up[~lower])
            _set(frame, q.lesser, rows[lower], down[lower])
            clamped += int(rows.size)
            changed = True
        if not changed:
            break
    if clamped:
        log.debug("inequality repair set %d value(s) to their partner's", clamped)
    left = int(_any_violated(frame, ok.ineqs).sum())
    if left:  # pragma: no cover - impossible without a cycle, which validation refuses
        log.warning("%d synthetic row(s) still violate an inequality of the schema", left)


def _bound(partner: pd.Series, col: NumericColumn | DatetimeColumn, strict: bool, *, up: bool) -> Any:
    """The least value of ``col``'s kind ``>=`` each partner value (``>`` when ``strict``), or
    with ``up=False`` the greatest ``<=`` (``<``) it."""
    if isinstance(col, NumericColumn):
        y = partner.to_numpy(dtype=np.float64)
        sign = 1.0 if up else -1.0
        v = np.nextafter(y, sign * np.inf) if strict else y
        grid = _grid(col)
        if grid is not None:  # the nearest grid value on the right side (rounding may not cross y)
            origin, unit = grid
            k = (y - origin) / unit
            if up:
                on = np.floor(k + 1e-9) + 1 if strict else np.ceil(k - 1e-9)
            else:
                on = np.ceil(k - 1e-9) - 1 if strict else np.floor(k + 1e-9)
            g = _values(col, origin + on * unit, partner)
            v = np.maximum(g, v) if up else np.minimum(g, v)
        return np.round(v).astype(np.int64) if col.dtype == "int" else v
    tz = getattr(partner.dt, "tz", None)
    naive = partner.dt.tz_convert("UTC").dt.tz_localize(None) if tz is not None else partner
    exact = naive.to_numpy(dtype="datetime64[ns]")
    floor = exact.astype(f"datetime64[{GRANULARITY_UNITS[col.granularity]}]")
    on_unit = floor.astype("datetime64[ns]") == exact
    if up:
        units = floor + 1 if strict else np.where(on_unit, floor, floor + 1)
    else:
        units = np.where(on_unit, floor - 1, floor) if strict else floor
    out = pd.Series(units.astype("datetime64[ns]"))
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
