"""Constraints between columns: inequalities and derived columns, from the schema to the output.

A schema's ``constraints:`` list holds three kinds of public, declared facts:

* forbidden combinations of categories (``{sex: M, diagnosis: C}``), checked by
  :mod:`dpsynth.tabular.schema`;
* inequalities between two numeric or two datetime columns
  (``{inequality: "wind_gust >= wind_speed"}``, also ``>``, ``<=``, ``<``);
* derived columns, parts of a datetime column computed at decode and never modelled
  (``{derived: {year: year, hour: hour}, from: time_hour}``).

This module validates the last two and turns each inequality into structural zeros on the
binned domain: every pair of cells where no value of one can satisfy the inequality with any
value of the other, expressed as forbidden combinations of codes, so the graphical model
needs no new code. :mod:`dpsynth.tabular.constraint_repair` enforces them after decoding.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from dpsynth.tabular.columns import GRANULARITY_UNITS, DatetimeColumn, NumericColumn

__all__ = [
    "MAX_PAIR_CELLS",
    "PARTS",
    "Derivation",
    "Inequality",
    "check_constraints",
    "code_intervals",
    "constraint_kind",
    "derivations",
    "forbidden_pairs",
    "inequalities",
    "inequality_assignments",
]

#: Parts a derived column can take from a datetime column, with the coarsest granularity
#: that still determines the part (``hour`` of a column kept at ``day`` would always be 0).
PARTS: dict[str, str] = {
    "year": "year", "quarter": "month", "month": "month", "day": "day", "weekday": "day",
    "dayofyear": "day", "date": "day", "hour": "hour", "minute": "minute", "second": "second",
}
#: Largest cell-pair table an inequality may span (the model holds it as one clique).
MAX_PAIR_CELLS = 4_000_000
_RANK = {g: i for i, g in enumerate(GRANULARITY_UNITS)}  # year (coarsest) ... second
_OPERATOR = re.compile(r"(>=|<=|>|<)")
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


class SchemaLike(Protocol):
    """What this module needs of a :class:`~dpsynth.tabular.schema.Schema` (which imports
    this module to validate itself, so it cannot be imported here)."""

    @property
    def columns(self) -> Sequence[Any]:
        """The columns, in order."""
        ...

    @property
    def constraints(self) -> Sequence[Mapping[str, Any]]:
        """The constraint entries, as declared."""
        ...

    def column(self, name: str) -> Any:
        """The column called ``name``."""
        ...


@dataclass(frozen=True)
class Inequality:
    """``greater >= lesser`` (or ``>`` when ``strict``), as declared in ``text``."""

    greater: str
    lesser: str
    strict: bool
    text: str

    def violated(self, frame: pd.DataFrame) -> BoolArray:
        """Rows of ``frame`` where both values are present and the inequality fails."""
        g, lo = frame[self.greater], frame[self.lesser]
        bad = (g <= lo) if self.strict else (g < lo)
        return np.asarray(bad.fillna(False).to_numpy(dtype=bool) & g.notna().to_numpy() & lo.notna().to_numpy())


@dataclass(frozen=True)
class Derivation:
    """Columns computed from parts of the datetime column ``source``: ``(column, part)`` pairs."""

    source: str
    parts: tuple[tuple[str, str], ...]


def constraint_kind(entry: Mapping[str, Any], names: Collection[str]) -> str:
    """``"inequality"``, ``"derived"`` or ``"forbidden"`` (a forbidden combination).

    The keywords ``inequality`` and ``derived`` are read as such unless the schema has a
    column of that name, in which case the entry is a forbidden combination as before.
    """
    for key in ("inequality", "derived"):
        if key in entry and key not in names:
            return key
    return "forbidden"


def _parse_inequality(entry: Mapping[str, Any], where: str) -> Inequality:
    extra = sorted(set(entry) - {"inequality"})
    if extra:
        raise ValueError(f"{where}: an inequality takes only the key 'inequality' (got also {extra})")
    text = entry["inequality"]
    if not isinstance(text, str):
        raise ValueError(f"{where}: inequality must be text such as 'end >= start'")
    parts = _OPERATOR.split(text)
    if len(parts) != 3 or not parts[0].strip() or not parts[2].strip():
        raise ValueError(f"{where}: inequality {text!r} must compare two columns with one of >=, >, <=, <")
    left, op, right = parts[0].strip(), parts[1], parts[2].strip()
    if op in (">=", ">"):
        return Inequality(left, right, op == ">", text)
    return Inequality(right, left, op == "<", text)


def _parse_derivation(entry: Mapping[str, Any], where: str) -> Derivation:
    extra = sorted(set(entry) - {"derived", "from", "parts"})
    if extra:
        raise ValueError(f"{where}: a derived-columns entry takes the keys derived, from and parts (got {extra})")
    source, derived, parts = entry.get("from"), entry["derived"], entry.get("parts")
    if not isinstance(source, str):
        raise ValueError(f"{where}: derived columns need 'from: <datetime column>'")
    if isinstance(derived, Mapping):
        if parts is not None:
            raise ValueError(f"{where}: give parts either in the derived mapping or as 'parts', not both")
        pairs = [(str(k), str(v)) for k, v in derived.items()]
    elif isinstance(derived, list) and all(isinstance(d, str) for d in derived):
        parts = derived if parts is None else parts
        if not isinstance(parts, list) or len(parts) != len(derived):
            raise ValueError(f"{where}: 'parts' must list one part per derived column")
        pairs = [(str(d), str(p)) for d, p in zip(derived, parts, strict=True)]
    else:
        raise ValueError(f"{where}: 'derived' must map column names to parts or list column names")
    if not pairs:
        raise ValueError(f"{where}: 'derived' names no column")
    for name, part in pairs:
        if part not in PARTS:
            raise ValueError(f"{where}: derived column {name!r}: part {part!r} is not one of {sorted(PARTS)}")
    return Derivation(source, tuple(pairs))


def _describe(entry: Mapping[str, Any], i: int, kind: str) -> str:
    if kind == "inequality":
        return f"constraint {i} (inequality {entry.get('inequality')!r})"
    return f"constraint {i} (derived from {entry.get('from')!r})"


def _check_inequality(q: Inequality, by_name: Mapping[str, Any], derived: Collection[str], where: str) -> None:
    for name in (q.greater, q.lesser):
        if name in derived:
            raise ValueError(f"{where}: column {name!r} is derived; an inequality compares modelled columns")
        if name not in by_name:
            raise ValueError(f"{where}: column {name!r} is not in the schema")
        if not isinstance(by_name[name], (NumericColumn, DatetimeColumn)):
            raise ValueError(f"{where}: column {name!r} is of kind {by_name[name].kind!r}; an inequality "
                             "compares two numeric or two datetime columns")
    g, lo = by_name[q.greater], by_name[q.lesser]
    if q.greater == q.lesser:
        raise ValueError(f"{where}: compares column {q.greater!r} with itself")
    if g.kind != lo.kind:
        raise ValueError(f"{where}: kind mismatch: column {q.greater!r} is {g.kind} and column {q.lesser!r} "
                         f"is {lo.kind}; an inequality compares two columns of the same kind")
    if isinstance(g, DatetimeColumn) and _aware(g) != _aware(lo):
        raise ValueError(f"{where}: columns {q.greater!r} and {q.lesser!r} must both have time zones or neither")
    if g.n_values * lo.n_values > MAX_PAIR_CELLS:
        raise ValueError(f"{where}: columns {q.greater!r} ({g.n_values} cells) and {q.lesser!r} "
                         f"({lo.n_values} cells) make {g.n_values * lo.n_values:,} cell pairs, more than "
                         f"the {MAX_PAIR_CELLS:,} the model can hold as one table; declare fewer bins")


def _aware(col: DatetimeColumn) -> bool:
    return col.timezone is not None or pd.Timestamp(col.bounds[0]).tzinfo is not None


def _check_derivation(d: Derivation, by_name: Mapping[str, Any], seen: set[str], where: str) -> None:
    if d.source not in by_name:
        raise ValueError(f"{where}: column {d.source!r} is not in the schema")
    src = by_name[d.source]
    if not isinstance(src, DatetimeColumn):
        raise ValueError(f"{where}: column {d.source!r} is of kind {src.kind!r}; derived parts need a datetime column")
    for name, part in d.parts:
        if name in by_name:
            raise ValueError(f"{where}: derived column {name!r} is also declared as a schema column; "
                             "remove it from columns (derived columns are computed, not modelled)")
        if name in seen:
            raise ValueError(f"{where}: derived column {name!r} is derived twice")
        seen.add(name)
        if _RANK[PARTS[part]] > _RANK[src.granularity]:
            raise ValueError(f"{where}: derived column {name!r}: part {part!r} is finer than the "
                             f"granularity {src.granularity!r} of column {d.source!r}")


def check_constraints(columns: Sequence[Any], constraints: Sequence[Mapping[str, Any]]) -> None:
    """Validate the inequalities and derived columns of a schema (forbidden combinations are
    checked by the schema). Raises ``ValueError`` naming the constraint and the column."""
    by_name = {c.name: c for c in columns}
    parsed: list[tuple[str, Inequality | Derivation]] = []
    for i, entry in enumerate(constraints):
        kind = constraint_kind(entry, by_name)
        if kind == "inequality":
            parsed.append((_describe(entry, i, kind), _parse_inequality(entry, f"constraint {i}")))
        elif kind == "derived":
            parsed.append((_describe(entry, i, kind), _parse_derivation(entry, f"constraint {i}")))
    seen: set[str] = set()
    for where, item in parsed:
        if isinstance(item, Derivation):
            _check_derivation(item, by_name, seen, where)
    ineqs = [(where, q) for where, q in parsed if isinstance(q, Inequality)]
    for where, q in ineqs:
        _check_inequality(q, by_name, seen, where)
    cycle = _cycle({(q.greater, q.lesser) for _, q in ineqs})
    if cycle:
        raise ValueError(f"inequalities form a cycle through columns {cycle}; declare each order once")


def _cycle(edges: set[tuple[str, str]]) -> list[str]:
    """Columns on a directed cycle of ``greater -> lesser`` edges (empty when there is none)."""
    succ: dict[str, list[str]] = {}
    for a, b in sorted(edges):
        succ.setdefault(a, []).append(b)
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in succ.get(node, []):
            if state.get(nxt) == 1:
                return path[path.index(nxt):]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return []

    for start in sorted(succ):
        if start not in state and (found := visit(start)):
            return found
    return []


def _typed(schema: SchemaLike, kind: str) -> list[Mapping[str, Any]]:
    names = {c.name for c in schema.columns}
    return [e for e in schema.constraints if constraint_kind(e, names) == kind]


def inequalities(schema: SchemaLike) -> list[Inequality]:
    """The schema's inequalities, in declaration order."""
    return [_parse_inequality(e, "constraint") for e in _typed(schema, "inequality")]


def derivations(schema: SchemaLike) -> list[Derivation]:
    """The schema's derived columns, in declaration order."""
    return [_parse_derivation(e, "constraint") for e in _typed(schema, "derived")]


def code_intervals(col: NumericColumn | DatetimeColumn) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Per value code (nulls excluded): the least value the encoding puts in it, the upper end
    of its values, and whether that upper end is itself a value of the cell.

    Numbers are on their own scale; datetimes are seconds since the epoch (UTC). Integer
    cells hold whole numbers, so their upper end is the largest integer they hold. A float
    bin is ``[a, b)``, except the last (``[a, b]``, the upper bound belongs to it). A time bin
    holds every instant from the start of its first granularity unit up to (not including)
    the start of the unit after its last one, since encoding floors an instant to its unit.
    An atom's cell holds exactly its value.
    """
    if isinstance(col, DatetimeColumn):
        lo, hi = col.unit_bounds()
        edges = np.linspace(lo, hi + 1, col.n_values + 1)
        first = np.clip(np.ceil(edges[:-1]), lo, hi).astype(np.int64)
        last = np.clip(np.maximum(np.ceil(edges[1:]) - 1, first), lo, hi).astype(np.int64)
        unit = GRANULARITY_UNITS[col.granularity]
        start = first.astype(f"datetime64[{unit}]").astype("datetime64[s]").astype(np.int64)
        end = (last + 1).astype(f"datetime64[{unit}]").astype("datetime64[s]").astype(np.int64)
        return start.astype(np.float64), end.astype(np.float64), np.zeros(len(first), dtype=bool)
    atoms = np.asarray(getattr(col, "atoms", []), dtype=np.float64)  # cells after the bins
    least, most, closed = _bin_intervals(col)
    return (np.concatenate([least, atoms]), np.concatenate([most, atoms]),
            np.concatenate([closed, np.ones(len(atoms), dtype=bool)]))


def _bin_intervals(col: NumericColumn) -> tuple[FloatArray, FloatArray, BoolArray]:
    low, high = col.bounds
    if col.per_integer:
        values = low + np.arange(int(high - low + 1), dtype=np.float64)
        return values, values.copy(), np.ones(len(values), dtype=bool)
    e = col.bin_edges()
    a, b = e[:-1].astype(np.float64), e[1:].astype(np.float64)
    if col.dtype == "int":
        top = np.where(np.arange(len(a)) == len(a) - 1, np.floor(b), np.ceil(b) - 1)
        least = np.clip(np.ceil(a), np.ceil(low), np.floor(high))
        most = np.clip(np.maximum(top, least), np.ceil(low), np.floor(high))
        return least.astype(np.float64), most.astype(np.float64), np.ones(len(a), dtype=bool)
    closed = np.zeros(len(a), dtype=bool)
    closed[-1] = True
    return a, b, closed


def forbidden_pairs(greater: NumericColumn | DatetimeColumn, lesser: NumericColumn | DatetimeColumn,
                    *, strict: bool) -> BoolArray:
    """``F[i, j]``: no value of ``greater``'s cell ``i`` satisfies ``>`` (``strict``) or ``>=``
    with any value of ``lesser``'s cell ``j``. Null codes are never forbidden (not included)."""
    _, g_sup, g_closed = code_intervals(greater)
    l_min, _, _ = code_intervals(lesser)
    sup, low = g_sup[:, None], l_min[None, :]
    feasible = sup > low if strict else (sup > low) | ((sup == low) & g_closed[:, None])
    return np.asarray(~feasible)


def inequality_assignments(schema: SchemaLike) -> list[dict[str, int | Sequence[int]]]:
    """Each inequality's structural zeros as forbidden combinations of codes: per cell of the
    greater column, the cells of the lesser column it cannot occur with."""
    out: list[dict[str, int | Sequence[int]]] = []
    for q in inequalities(schema):
        bad = forbidden_pairs(schema.column(q.greater), schema.column(q.lesser), strict=q.strict)
        for i in range(bad.shape[0]):
            js = np.flatnonzero(bad[i])
            if js.size:
                out.append({q.greater: i, q.lesser: [int(j) for j in js]})
    return out

