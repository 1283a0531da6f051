"""Sampling conditions: parse ``COLUMN OP VALUE`` and turn it into codes and exact value windows.

A condition is post-processing only: it is resolved on the public schema (never on data)
into the codes of the model's domain to clamp (the evidence of conditional sampling) and,
for numbers and dates, the window the decoded values must fall in. The forms:

- ``race=Black`` (equality), ``race=Black,White`` (a set; a category that itself holds a
  comma is matched whole first);
- ``age>=40``, ``age>40``, ``age<30``, ``age<=30``, ``age=30..40`` (both ends included,
  either may be left out: ``age=40..``), ``age=30`` (one number);
- dates: ``date>=2017-05``, ``date=2017-05..2017-06`` (May and June: a date written as a year,
  month or day stands for the whole period, so an included upper end runs to its end).

A range maps to the codes of every bin it meets; values are then made to satisfy it exactly
(:func:`enforce_windows`): a value drawn in a boundary bin outside the range is decoded again,
then drawn uniformly on the part of its bin inside the range (integers on integers, dates on
the column's granularity). Several conditions on one column must all hold.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from dpsynth.errors import ConfigError
from dpsynth.tabular.columns import (
    GRANULARITY_UNITS,
    BooleanColumn,
    CategoricalColumn,
    DatetimeColumn,
    NumericColumn,
    OrdinalColumn,
    canonical_key,
    from_units,
    to_units,
)
from dpsynth.tabular.schema import Schema

__all__ = ["Condition", "ConditionSpec", "Range", "Resolved", "enforce_windows", "parse_condition",
           "parse_conditions", "resolve_conditions"]

_EXPR = re.compile(r"^\s*(?P<col>[^<>=]+?)\s*(?P<op><=|>=|<|>|=)\s*(?P<val>.*?)\s*$", re.DOTALL)
_PERIOD = re.compile(r"^(?P<y>\d{4})(-(?P<m>\d{1,2}))?(-(?P<d>\d{1,2}))?$")
_REDRAWS = 16


@dataclass(frozen=True, kw_only=True)
class Range:
    """A range of a numeric or datetime column; an end left as ``None`` is open.

    Dates are ISO text; a date written as a year, month or day covers that whole period.
    """

    low: float | str | None = None
    high: float | str | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True


@dataclass(frozen=True)
class Condition:
    """One condition on one column: a set of ``values`` or a :class:`Range`.

    ``text`` is how it was written (for messages); ``split``: whether a text value may be a
    comma-separated set.
    """

    column: str
    values: tuple[object, ...] = ()
    range: Range | None = None
    text: str = ""
    split: bool = False


ConditionSpec = Mapping[str, object] | Sequence[str]
"""``{column: value, [values] or Range}``, or expressions such as ``["age>=40", "race=Black"]``."""


def parse_condition(text: str) -> Condition:
    """Parse ``COLUMN OP VALUE`` (``OP`` one of ``= >= > <= <``; ``=`` takes sets and ``a..b``).

    Raises:
        ConfigError: The text has no column, operator or value.
    """
    m = _EXPR.match(text)
    if m is None or not m["col"].strip():
        raise ConfigError(f"condition {text!r} must look like COLUMN=VALUE, COLUMN>=VALUE or "
                          "COLUMN=LOW..HIGH")
    col, op, val = m["col"].strip(), m["op"], m["val"]
    if val == "" and op != "=":
        raise ConfigError(f"condition {text!r} has no value after {op!r}")
    if op == "=" and ".." in val:
        low, _, high = val.partition("..")
        if not low.strip() and not high.strip():
            raise ConfigError(f"condition {text!r}: a range needs at least one end")
        return Condition(col, range=Range(low=low.strip() or None, high=high.strip() or None), text=text)
    if op == "=":
        return Condition(col, values=(val,), text=text, split=True)
    rng = (Range(low=val, low_inclusive=op == ">=") if op in (">", ">=")
           else Range(high=val, high_inclusive=op == "<="))
    return Condition(col, range=rng, text=text)


def parse_conditions(spec: ConditionSpec) -> list[Condition]:
    """Conditions from expressions or from a ``{column: value | [values] | Range}`` mapping."""
    if isinstance(spec, str):
        return [parse_condition(spec)]
    if isinstance(spec, Mapping):
        out = []
        for name, value in spec.items():
            shown = f"{name}={value!r}"
            if isinstance(value, Range):
                out.append(Condition(str(name), range=value, text=shown))
            elif isinstance(value, (list, tuple, set, frozenset)):
                out.append(Condition(str(name), values=tuple(value), text=shown))
            else:
                out.append(Condition(str(name), values=(value,), text=shown))
        return out
    return [parse_condition(str(item)) for item in spec]


@dataclass(frozen=True)
class _Interval:
    """An interval of a column's value axis (numbers, or date units since the epoch)."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False

    def meet(self, other: _Interval) -> _Interval | None:
        lo, lo_open = max((self.lo, self.lo_open), (other.lo, other.lo_open))
        hi, hi_open = min((self.hi, not self.hi_open), (other.hi, not other.hi_open))
        hi_open = not hi_open
        if lo > hi or (lo == hi and (lo_open or hi_open)):
            return None
        return _Interval(lo, hi, lo_open, hi_open)

    def holds(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        above = x > self.lo if self.lo_open else x >= self.lo
        below = x < self.hi if self.hi_open else x <= self.hi
        return np.asarray(above & below)


Window = tuple[_Interval, ...]


@dataclass(frozen=True)
class Resolved:
    """Conditions resolved on the schema: ``evidence`` (``{column: codes}`` to clamp) and
    ``windows`` (``{column: intervals}`` the decoded numbers, or dates in granularity units,
    must fall in)."""

    evidence: dict[str, list[int]] = field(default_factory=dict)
    windows: dict[str, Window] = field(default_factory=dict)


def _on_grid(col: NumericColumn | DatetimeColumn) -> bool:
    return isinstance(col, DatetimeColumn) or col.dtype == "int"


def _grid(iv: _Interval) -> _Interval | None:
    """The interval's integers, as a closed interval (``None`` when it holds none)."""
    lo: float = iv.lo
    hi: float = iv.hi
    if math.isfinite(lo):
        lo = math.floor(lo) + 1 if iv.lo_open and float(lo).is_integer() else math.ceil(lo)
    if math.isfinite(hi):
        hi = math.ceil(hi) - 1 if iv.hi_open and float(hi).is_integer() else math.floor(hi)
    return _Interval(lo, hi) if lo <= hi else None


def code_intervals(col: NumericColumn | DatetimeColumn) -> list[_Interval]:
    """The values each value code decodes to, as an interval per code (null excluded).

    Numbers take their cells from :func:`dpsynth.tabular.constraints.code_intervals` (one
    owner for what a cell holds); dates are in granularity units here.
    """
    if isinstance(col, DatetimeColumn):
        ulo, uhi = col.unit_bounds()
        u = np.linspace(ulo, uhi + 1, col.n_values + 1)
        firsts = [max(math.ceil(u[c]), ulo) for c in range(col.n_values)]
        return [_Interval(f, min(max(math.ceil(u[c + 1]) - 1, f), uhi)) for c, f in enumerate(firsts)]
    from dpsynth.tabular.constraints import code_intervals as cells

    least, most, closed = cells(col)
    return [_Interval(float(a), float(b), hi_open=not bool(c)) for a, b, c in zip(least, most, closed, strict=True)]


def _number(text: object, cond: Condition) -> float:
    try:
        x = float(str(text).strip()) if isinstance(text, str) else float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"condition {cond.text!r}: {text!r} is not a number "
                          f"(column {cond.column!r} is numeric)") from None
    if math.isnan(x):
        raise ConfigError(f"condition {cond.text!r}: NaN is not a value to condition on")
    return x


def _period(text: object, col: DatetimeColumn, cond: Condition) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``[start, end)`` of a date written as a year, a month, a day or a full timestamp."""
    raw = str(text).strip()
    m = _PERIOD.match(raw)
    try:
        if not raw[:4].isdigit():
            raise ValueError(raw)
        start = pd.Timestamp(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"condition {cond.text!r}: {raw!r} is not a date (column {col.name!r} is "
                          "a datetime; write e.g. 2017, 2017-05, 2017-05-31 or 2017-05-31T12:00)") from None
    if m is None:
        end = start + pd.Timedelta(1, "ns")
    else:
        step = pd.DateOffset(days=1) if m["d"] else pd.DateOffset(months=1) if m["m"] else pd.DateOffset(years=1)
        end = start + step
    tz = _tz(col)
    if tz is not None and start.tzinfo is None:  # written as the output shows the column
        start, end = start.tz_localize(tz), end.tz_localize(tz)
    elif tz is None and start.tzinfo is not None:
        start, end = (t.tz_convert("UTC").tz_localize(None) for t in (start, end))
    return start, end


def _tz(col: DatetimeColumn) -> str | None:
    """The time zone the decoder shows the column in (``None``: naive)."""
    return col.timezone or (str(pd.Timestamp(col.bounds[0]).tz) if pd.Timestamp(col.bounds[0]).tzinfo else None)


def _ceil_units(ts: pd.Timestamp, col: DatetimeColumn) -> int:
    """The first granularity unit starting at or after ``ts``."""
    u = to_units(ts, col.granularity)
    naive = ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts
    return u if from_units(u, col.granularity, None) >= naive else u + 1


def _date_interval(cond: Condition, col: DatetimeColumn, rng: Range | None, point: object) -> _Interval:
    if rng is None:
        start, end = _period(point, col, cond)
        return _Interval(_ceil_units(start, col), _ceil_units(end, col) - 1)
    lo, hi = -math.inf, math.inf
    if rng.low is not None:
        start, end = _period(rng.low, col, cond)
        lo = _ceil_units(start if rng.low_inclusive else end, col)
    if rng.high is not None:
        start, end = _period(rng.high, col, cond)
        hi = _ceil_units(end if rng.high_inclusive else start, col) - 1
    return _Interval(lo, hi)


def _window(cond: Condition, col: NumericColumn | DatetimeColumn) -> Window:
    """The condition on the column's value axis."""
    points: list[object] = []
    for v in cond.values:
        points += list(v.split(",")) if cond.split and isinstance(v, str) else [v]
    out: list[_Interval] = []
    for point in points if cond.range is None else [None]:
        if isinstance(col, DatetimeColumn):
            out.append(_date_interval(cond, col, cond.range, point))
        elif cond.range is None:
            x = _number(point, cond)
            out.append(_Interval(x, x))
        else:
            r = cond.range
            out.append(_Interval(-math.inf if r.low is None else _number(r.low, cond),
                                 math.inf if r.high is None else _number(r.high, cond),
                                 not r.low_inclusive, not r.high_inclusive))
    if _on_grid(col):
        return tuple(g for g in (_grid(iv) for iv in out) if g is not None)
    return tuple(out)


def _did_you_mean(value: str, allowed: list[str]) -> str:
    folded = {a.casefold(): a for a in allowed}
    if value.casefold() in folded:
        return f"; did you mean {folded[value.casefold()]!r}?"
    close = difflib.get_close_matches(value, allowed, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _split(text: str, keys: Mapping[str, int], fold: Callable[[object], str]) -> list[object]:
    """A comma-separated set, each item the longest run of pieces that is a category."""
    pieces, out, i = text.split(","), [], 0
    while i < len(pieces):
        j = next((j for j in range(len(pieces), i, -1) if fold(",".join(pieces[i:j])) in keys), i + 1)
        out.append(",".join(pieces[i:j]))
        i = j
    return list(out)


def _category_codes(cond: Condition, col: CategoricalColumn | OrdinalColumn | BooleanColumn) -> set[int]:
    if isinstance(col, BooleanColumn):
        labels = [col.false_label or "false", col.true_label or "true"]
        keys = {"false": 0, "0": 0, "no": 0, "n": 0, "f": 0, "true": 1, "1": 1, "yes": 1, "y": 1, "t": 1}
        keys.update({canonical_key(labels[0]).lower(): 0, canonical_key(labels[1]).lower(): 1})  # the source spelling
    else:
        labels = [str(c) for c in col.categories] + ([col.other_label] if col.other else [])
        keys = {canonical_key(c): i for i, c in enumerate(labels)}
    fold = (lambda t: canonical_key(t).lower()) if isinstance(col, BooleanColumn) else canonical_key
    codes: set[int] = set()
    for v in cond.values:
        parts = _split(v, keys, fold) if cond.split and isinstance(v, str) else [v]
        for p in parts:
            if fold(p) not in keys:
                shown = str(p).strip()
                more = f" and {len(labels) - 30} more" if len(labels) > 30 else ""
                listed = ", ".join(map(repr, labels[:30])) + more
                raise ConfigError(f"condition {cond.text!r}: {shown!r} is not in the column's public domain "
                                  f"(column {col.name!r} allows {listed}){_did_you_mean(shown, labels)}")
            codes.add(keys[fold(p)])
    return codes


def resolve_conditions(spec: ConditionSpec, schema: Schema) -> Resolved:
    """Resolve conditions on the public schema: codes to clamp and value windows to enforce.

    Raises:
        ConfigError: An unknown column, an identifier column, a value outside the public
            domain (the message lists the allowed values), a range on a column without order,
            or conditions no value satisfies.
    """
    codes: dict[str, set[int]] = {}
    windows: dict[str, Window] = {}
    for cond in parse_conditions(spec):
        col = schema.column(cond.column)
        if not col.modelled:
            raise ConfigError(f"cannot condition on identifier column {cond.column!r}")
        if isinstance(col, (NumericColumn, DatetimeColumn)):
            win = tuple(m for x in windows.get(col.name, (_Interval(-math.inf, math.inf),))
                        for y in _window(cond, col) if (m := x.meet(y)) is not None)
            windows[col.name] = win
            found = {c for c, iv in enumerate(code_intervals(col)) if any(iv.meet(w) for w in win)}
        elif cond.range is not None:
            raise ConfigError(f"condition {cond.text!r}: ranges apply to numeric and datetime columns; "
                              f"column {col.name!r} is {col.kind}; list the values instead (a=x,y)")
        else:
            found = _category_codes(cond, col)
        codes[col.name] = codes[col.name] & found if col.name in codes else found
        if not codes[col.name]:
            raise ConfigError(f"conditions on column {col.name!r} leave no value of its public domain "
                              f"(the last was {cond.text!r})")
    return Resolved({k: sorted(v) for k, v in codes.items()}, windows)


def _axis(values: pd.Series, col: NumericColumn | DatetimeColumn) -> npt.NDArray[np.float64]:
    """Decoded values on the column's value axis (NaN for nulls)."""
    if isinstance(col, NumericColumn):
        return np.asarray(pd.to_numeric(values, errors="coerce"), dtype=np.float64)
    ts = pd.to_datetime(values)
    if ts.dt.tz is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    units = ts.to_numpy().astype(f"datetime64[{GRANULARITY_UNITS[col.granularity]}]").astype(np.int64)
    return np.where(ts.isna().to_numpy(), np.nan, units.astype(np.float64))


def _outside(values: pd.Series, col: NumericColumn | DatetimeColumn, win: Window) -> npt.NDArray[np.bool_]:
    x = _axis(values, col)
    ok = np.zeros(len(x), dtype=bool)
    for iv in win:
        ok |= iv.holds(x)
    return np.asarray(~ok)


def _draw_inside(codes: npt.NDArray[np.int64], win: Window, col: NumericColumn | DatetimeColumn,
                 rng: np.random.Generator) -> pd.Series:
    """Per code, a value drawn uniformly on the part of its bin inside the window."""
    bins, grid = code_intervals(col), _on_grid(col)
    out = np.empty(len(codes), dtype=np.float64)
    for c in np.unique(codes):
        rows = np.flatnonzero(codes == c)
        pieces = [m for w in win if (m := bins[int(c)].meet(w)) is not None]
        sizes = np.array([p.hi - p.lo + grid for p in pieces], dtype=np.float64)
        pick = rng.choice(len(pieces), size=len(rows), p=sizes / sizes.sum() if sizes.sum() > 0 else None)
        lo, width = np.array([p.lo for p in pieces])[pick], sizes[pick]
        out[rows] = lo + (np.floor(rng.random(len(rows)) * width) if grid else rng.random(len(rows)) * width)
    if isinstance(col, NumericColumn):
        return pd.Series(out.astype(np.int64) if grid else out)
    ser = pd.Series(out.astype(np.int64).astype(f"datetime64[{GRANULARITY_UNITS[col.granularity]}]")
                    .astype("datetime64[ns]"))
    tz = _tz(col)
    return ser.dt.tz_localize("UTC").dt.tz_convert(tz) if tz else ser


def enforce_windows(frame: pd.DataFrame, codes: npt.NDArray[np.int64], resolved: Resolved, schema: Schema,
                    redecode: Callable[[npt.NDArray[np.int64]], pd.DataFrame],
                    rng: np.random.Generator) -> pd.DataFrame:
    """Make every decoded value of a range-conditioned column fall inside its window.

    A value outside is decoded again (``redecode`` of its row's codes, so the decoder's shape
    inside a bin is kept) up to 16 times, then drawn uniformly on the part of its bin inside
    the window. ``frame`` (the decoded rows of ``codes``) is changed in place and returned.
    """
    pos = {c.name: j for j, c in enumerate(schema.modelled)}
    for name, win in resolved.windows.items():
        col = schema.column(name)
        assert isinstance(col, (NumericColumn, DatetimeColumn))
        idx = np.flatnonzero(_outside(frame[name], col, win))
        for _ in range(_REDRAWS):
            if not len(idx):
                break
            again = redecode(codes[idx])[name].reset_index(drop=True)
            still = _outside(again, col, win)
            frame.loc[frame.index[idx[~still]], name] = again[~still].to_numpy()
            idx = idx[still]
        if len(idx):
            drawn = _draw_inside(codes[idx, pos[name]], win, col, rng)
            frame.loc[frame.index[idx], name] = drawn.to_numpy()
    return frame
