"""SQL text that encodes columns and counts marginals in an engine, with numpy's semantics.

The expressions built here reproduce :mod:`dpsynth.encoding` inside a SQL engine (DuckDB or
Spark SQL): nulls become the null code (or the fallback), undeclared categories become
``other`` (or null, or the fallback), category matching uses :func:`~dpsynth.schema.canonical_key`
(NFC, zero-width characters removed, surrounding whitespace stripped, integral floats match
integers), numbers are clamped to the public bounds (integers rounded half to even) and binned
with ``searchsorted(interior_edges, v, side="right")``, and timestamps are taken to UTC units
of the column's granularity, clamped and binned on ``linspace(lo, hi + 1, bins + 1)``.

Only public schema facts enter the SQL text; no data value is ever embedded in it. The two
engines differ only in a few spellings, captured by a :class:`Dialect`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from dpsynth.encoding import _fallback
from dpsynth.errors import ConfigError, DPSynthError, PrivateAccessError, SchemaError
from dpsynth.schema import (
    BooleanColumn,
    CategoricalColumn,
    DatetimeColumn,
    NumericColumn,
    OrdinalColumn,
    Schema,
    canonical_key,
)

__all__ = [
    "DUCKDB",
    "SPARK",
    "Dialect",
    "SQLBackend",
    "bounded_sql",
    "code_expr",
    "grouping_sets_sql",
    "missing_expr",
    "prepared_expr",
    "scatter_counts",
    "source_kind",
]

log = logging.getLogger(__name__)

_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
#: Every character Python's ``str.strip()`` removes (``str.isspace``), in code point order.
WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
_TRUE = ("true", "1", "yes", "t", "y")
_FALSE = ("false", "0", "no", "f", "n")
_US = {"day": 86_400_000_000, "hour": 3_600_000_000, "minute": 60_000_000, "second": 1_000_000}


@dataclass(frozen=True, kw_only=True)
class Dialect:
    """The spellings that differ between SQL engines.

    Attributes:
        name: ``"duckdb"`` or ``"spark"``.
        backslash_escapes: Whether string literals treat ``\\`` as an escape (Spark does).
        ident_quote: The identifier quote character.
        text_type: The name of the string type.
        nfc: Template turning ``{x}`` into its NFC normal form.
        epoch_us: Template giving microseconds since the epoch of timestamp ``{x}``.
        text_to_ts: Template parsing ISO text ``{x}`` into a timestamp (naive text as UTC).
        round_even: Template rounding double ``{x}`` half to even.
        hash_fn: Name of a 64-bit hash function taking several arguments.
        int_div: Integer division operator.
    """

    name: str
    backslash_escapes: bool
    ident_quote: str
    text_type: str
    nfc: str
    epoch_us: str
    text_to_ts: str
    round_even: str
    hash_fn: str
    int_div: str

    def ident(self, name: str) -> str:
        """A quoted identifier (any characters allowed)."""
        q = self.ident_quote
        return q + name.replace(q, q + q) + q

    def string(self, text: str) -> str:
        """A string literal holding ``text`` exactly."""
        if self.backslash_escapes:
            return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return "'" + text.replace("'", "''") + "'"

    def trim(self, x: str, chars: str) -> str:
        """Strip every character of ``chars`` from both ends of ``x``."""
        if self.name == "spark":
            return f"trim(BOTH {self.string(chars)} FROM {x})"
        return f"trim({x}, {self.string(chars)})"

    def ltrim_spaces(self, x: str) -> str:
        """Strip leading ASCII spaces (pandas' ``skipinitialspace``)."""
        if self.name == "spark":
            return f"ltrim(' ', {x})"
        return f"ltrim({x}, ' ')"


DUCKDB = Dialect(
    name="duckdb",
    backslash_escapes=False,
    ident_quote='"',
    text_type="VARCHAR",
    nfc="nfc_normalize({x})",
    epoch_us="epoch_us({x})",
    text_to_ts="TRY_CAST({x} AS TIMESTAMPTZ)",
    round_even="round_even({x}, 0)",
    hash_fn="hash",
    int_div="//",
)

SPARK = Dialect(
    name="spark",
    backslash_escapes=True,
    ident_quote="`",
    text_type="STRING",
    nfc="reflect('com.ibm.icu.text.Normalizer', 'compose', {x}, false)",
    epoch_us="unix_micros(CAST({x} AS TIMESTAMP))",
    text_to_ts="TRY_CAST({x} AS TIMESTAMP)",
    round_even="bround({x}, 0)",
    hash_fn="xxhash64",
    int_div="div",
)


def source_kind(type_name: str) -> str:
    """Classify an engine type name as text, bool, int, float, date, timestamp or other."""
    t = type_name.strip().lower()
    if t in ("varchar", "string", "text") or t.startswith(("varchar", "char")):
        return "text"
    if t in ("boolean", "bool"):
        return "bool"
    ints = ("tinyint", "smallint", "int", "integer", "bigint", "hugeint", "long", "short", "byte")
    if t in ints or (t.startswith("u") and t[1:] in ints):
        return "int"
    if t in ("float", "double", "real") or t.startswith("decimal"):
        return "float"
    if t == "date":
        return "date"
    if t.startswith("timestamp"):
        return "timestamp"
    return "other"


def _key_of_text(d: Dialect, x: str) -> str:
    stripped = x
    for ch in _ZERO_WIDTH:
        stripped = f"replace({stripped}, {d.string(ch)}, '')"
    return d.trim(d.nfc.format(x=stripped), WHITESPACE)


def _key_expr(d: Dialect, x: str, kind: str) -> tuple[str, str]:
    """``(null test, canonical text key)`` of a value of source kind ``kind``."""
    if kind == "text":
        return f"{x} IS NULL", _key_of_text(d, x)
    if kind == "int":
        return f"{x} IS NULL", f"CAST({x} AS {d.text_type})"
    if kind == "float":
        v = f"CAST({x} AS DOUBLE)"
        integral = f"(abs({v}) < 1e30 AND {v} = floor({v}))"
        as_int = f"CAST(CAST({v} AS DECIMAL(38, 0)) AS {d.text_type})"
        key = f"CASE WHEN {integral} THEN {as_int} ELSE CAST({v} AS {d.text_type}) END"
        return f"({x} IS NULL OR isnan({v}))", key
    if kind == "bool":
        return f"{x} IS NULL", f"CASE WHEN {x} THEN 'True' ELSE 'False' END"
    return f"{x} IS NULL", _key_of_text(d, f"CAST({x} AS {d.text_type})")


def _case_map(d: Dialect, key: str, mapping: dict[str, int], default: int) -> str:
    if not mapping:
        return str(default)
    whens = " ".join(f"WHEN {d.string(k)} THEN {v}" for k, v in mapping.items())
    return f"(CASE {key} {whens} ELSE {default} END)"


def _bin_tree(x: str, edges: npt.NDArray[np.float64], lo: int, hi: int) -> str:
    """Code in ``lo..hi``: the number of interior edges ``<= x`` (searchsorted, right)."""
    if lo == hi:
        return str(lo)
    mid = (lo + hi + 1) // 2
    cut = f"CAST('{float(edges[mid])!r}' AS DOUBLE)"
    return f"(CASE WHEN {x} >= {cut} THEN {_bin_tree(x, edges, mid, hi)} ELSE {_bin_tree(x, edges, lo, mid - 1)} END)"


def _null_code(col: Any) -> int:
    return int(col.domain_size() - 1) if col.nullable else _fallback(col)


def _double(x: float) -> str:
    return f"CAST('{float(x)!r}' AS DOUBLE)"


def _numeric_value(d: Dialect, x: str, kind: str) -> str:
    if kind == "text":
        guard = f"instr({x}, '_') > 0"
        if d.name == "spark":  # Java's parser accepts a trailing d/f type suffix; pandas does not
            guard += f" OR {x} RLIKE {d.string('[0-9.][dDfF][ ]*$')}"
        return f"(CASE WHEN {guard} THEN NULL ELSE TRY_CAST({x} AS DOUBLE) END)"
    if kind == "bool":
        return f"(CASE WHEN {x} THEN 1.0 WHEN NOT {x} THEN 0.0 END)"
    if kind in ("int", "float"):
        return f"CAST({x} AS DOUBLE)"
    return "CAST(NULL AS DOUBLE)"


def _binned(v: str, col: Any, edges: npt.NDArray[np.float64]) -> str:
    return f"(CASE WHEN {v} IS NULL THEN {_null_code(col)} ELSE {_bin_tree(v, edges, 0, len(edges) - 2)} END)"


def _numeric(d: Dialect, x: str, kind: str, col: NumericColumn) -> str:
    v = _numeric_value(d, x, kind)
    lo, hi = col.bounds
    clipped = f"least(greatest({v}, {_double(lo)}), {_double(hi)})"
    if col.dtype == "int":
        r = d.round_even.format(x=clipped)
        clipped = f"least(greatest({r}, {_double(np.ceil(lo))}), {_double(np.floor(hi))})"
    if col.per_integer:
        clipped = f"floor({clipped} - {_double(lo)})"
    return f"(CASE WHEN {v} IS NULL OR isnan({v}) THEN NULL ELSE {clipped} END)"


def _datetime(d: Dialect, x: str, kind: str, col: DatetimeColumn) -> str:
    if kind == "text":
        ts = d.text_to_ts.format(x=x)
    elif kind in ("date", "timestamp"):
        ts = f"CAST({x} AS TIMESTAMP)" if kind == "date" else x
    else:
        ts = "CAST(NULL AS TIMESTAMP)"
    us = d.epoch_us.format(x=ts)
    g = col.granularity
    if g in _US:
        n = _US[g]
        units = f"(({us} - ((({us} % {n}) + {n}) % {n})) {d.int_div} {n})"
    else:
        naive = f"make_timestamp({us})" if d.name == "duckdb" else f"timestamp_micros({us})"
        yr, mo = f"year({naive})", f"month({naive})"
        units = f"({yr} - 1970)" if g == "year" else f"(({yr} - 1970) * 12 + {mo} - 1)"
    lo, hi = col.unit_bounds()
    clipped = f"least(greatest(CAST({units} AS DOUBLE), {_double(lo)}), {_double(hi)})"
    return f"(CASE WHEN {ts} IS NULL THEN NULL ELSE {clipped} END)"


def prepared_expr(d: Dialect, x: str, kind: str, col: Any) -> str:
    """SQL for the cleaned value of ``col`` read from expression ``x`` of source ``kind``.

    The cleaned value is NULL for a null cell; otherwise the canonical text key
    (categorical), the lower-cased key or the boolean itself (boolean), the clamped and
    rounded number (numeric) or the clamped time units (datetime). :func:`code_expr` turns it
    into the code. Splitting the two keeps the SQL small (the bin search repeats its input).

    Args:
        d: The engine's dialect.
        x: A SQL expression (usually a quoted identifier) holding the raw value.
        kind: The source kind of ``x`` (see :func:`source_kind`).
        col: The schema column (categorical, ordinal, numeric, datetime or boolean).
    """
    if isinstance(col, (CategoricalColumn, OrdinalColumn)):
        is_null, key = _key_expr(d, x, kind)
        return f"(CASE WHEN {is_null} THEN NULL ELSE {key} END)"
    if isinstance(col, BooleanColumn):
        if kind == "bool":
            return f"(CASE WHEN {x} THEN 'true' WHEN NOT {x} THEN 'false' END)"
        is_null, key = _key_expr(d, x, kind)
        return f"(CASE WHEN {is_null} THEN NULL ELSE lower({key}) END)"
    if isinstance(col, NumericColumn):
        return _numeric(d, x, kind, col)
    if isinstance(col, DatetimeColumn):
        return _datetime(d, x, kind, col)
    raise DPSynthError(f"column {col.name!r} of kind {col.kind!r} is not modelled")


def code_expr(d: Dialect, v: str, col: Any) -> str:
    """SQL for the integer code of ``col`` from its cleaned value ``v`` (see :func:`prepared_expr`)."""
    if isinstance(col, (CategoricalColumn, OrdinalColumn)):
        mapping = {canonical_key(c): i for i, c in enumerate(col.categories)}
        return f"(CASE WHEN {v} IS NULL THEN {_null_code(col)} ELSE {_case_map(d, v, mapping, _fallback(col))} END)"
    if isinstance(col, BooleanColumn):
        mapping = {**dict.fromkeys(_TRUE, 1), **dict.fromkeys(_FALSE, 0)}
        bad = 2 if col.nullable else 0
        return f"(CASE WHEN {v} IS NULL THEN {_null_code(col)} ELSE {_case_map(d, v, mapping, bad)} END)"
    if isinstance(col, NumericColumn):
        if col.per_integer:
            return f"(CASE WHEN {v} IS NULL THEN {_null_code(col)} ELSE CAST({v} AS BIGINT) END)"
        return _binned(v, col, col.bin_edges())
    if isinstance(col, DatetimeColumn):
        lo, hi = col.unit_bounds()
        return _binned(v, col, np.linspace(lo, hi + 1, col.n_values + 1))
    raise DPSynthError(f"column {col.name!r} of kind {col.kind!r} is not modelled")


def missing_expr(d: Dialect, x: str, missing: Sequence[str]) -> str:
    """CSV text cell ``x`` after pandas' ``skipinitialspace`` and ``missing_values`` rules."""
    v = d.ltrim_spaces(x)
    if not missing:
        return v
    listed = ", ".join(d.string(m) for m in missing)
    return f"(CASE WHEN {v} IN ({listed}) THEN NULL ELSE {v} END)"


def bounded_sql(d: Dialect, inner: str, pid: str, code_cols: Sequence[str], k: int, seed: int) -> str:
    """Keep at most ``k`` rows per person, a seeded pseudo-random choice; null ids are kept.

    Each row gets a rank key hashing the seed, the person, the row's codes and the row's
    position among the person's identical rows (``1..m`` for ``m`` copies). The key is thus a
    function of the person's own rows and the seed only, identical copies get distinct keys
    (so they are chosen as often as a uniform choice would), and which physical copy is kept
    cannot change any count.
    """
    codes = ", ".join(code_cols)

    def text(x: str) -> str:
        return f"CAST({x} AS {d.text_type})"

    parts = ", ".join([d.string(str(int(seed))), text(pid), *(text(c) for c in code_cols), text("__dup")])
    key = f"{d.hash_fn}(concat_ws('|', {parts}))"
    return (
        f"SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {pid} ORDER BY {key}) AS __rn "
        f"FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {pid}, {codes} ORDER BY {pid}) AS __dup "
        f"FROM ({inner}) AS __e) AS __d) AS __r WHERE {pid} IS NULL OR __rn <= {int(k)}"
    )


def grouping_sets_sql(d: Dialect, inner: str, sets: Sequence[tuple[str, ...]], columns: Sequence[str]) -> str:
    """One-pass ``GROUP BY GROUPING SETS`` over ``inner`` with a ``GROUPING_ID`` column ``__g``.

    ``columns`` lists every column named in ``sets``; bit ``len(columns) - 1 - i`` of ``__g``
    is set when ``columns[i]`` is rolled up (the SQL standard layout, shared by both engines).
    """
    cols = ", ".join(columns)
    groups = ", ".join("(" + ", ".join(s) + ")" for s in sets)
    # Pre-aggregate on the full code tuple first: the grouping sets then expand the (small)
    # table of distinct tuples instead of copying every input row once per grouping set.
    return (
        f"SELECT grouping_id({cols}) AS __g, {cols}, CAST(SUM(__c) AS BIGINT) AS __n FROM "
        f"(SELECT {cols}, COUNT(*) AS __c FROM ({inner}) AS __s GROUP BY {cols}) AS __a "
        f"GROUP BY GROUPING SETS ({groups})"
    )


def grouping_id(columns: Sequence[str], grouped: Sequence[str]) -> int:
    """The ``GROUPING_ID`` value of a grouping set (1 bits for rolled-up columns)."""
    g = 0
    for c in columns:
        g = (g << 1) | int(c not in grouped)
    return g


def scatter_counts(
    gid: npt.NDArray[np.int64],
    codes: dict[str, npt.NDArray[np.int64]],
    n: npt.NDArray[np.int64],
    columns: Sequence[str],
    sets: Sequence[tuple[str, ...]],
    shapes: Sequence[tuple[int, ...]],
) -> list[npt.NDArray[np.int64]]:
    """Dense, zero-filled count tensors of each grouping set from the grouped rows."""
    out = []
    for s, shape in zip(sets, shapes):
        rows = gid == grouping_id(columns, s)
        dense = np.zeros(shape, dtype=np.int64)
        idx = tuple(codes[c][rows] for c in s)
        for axis, (i, size) in enumerate(zip(idx, shape)):
            if i.size and (i.min() < 0 or i.max() >= size):
                raise DPSynthError(f"engine returned a code outside the domain of axis {axis} of {s}")
        np.add.at(dense, idx, n[rows])
        out.append(dense)
    return out


class SQLBackend(ABC):
    """Shared driver side of the SQL engines: validation, the per-marginal cache, scattering.

    Subclasses set ``_dialect``, ``_schema``, ``_kinds`` (source kind per column), ``_seed``
    and ``_source`` (the SQL name of the raw source), and implement :meth:`_query`.
    """

    _dialect: Dialect
    _schema: Schema
    _kinds: dict[str, str]
    _seed: int
    _source: str

    def _init_cache(self, schema: Schema) -> None:
        self._schema = schema
        self._domain = schema.domain()
        self._cache: dict[tuple[str, ...], npt.NDArray[np.int64]] = {}
        self._closed = False

    def _check_columns(self) -> None:
        missing = [c.name for c in self._schema.modelled if c.name not in self._kinds]
        unit = self._schema.privacy_unit
        if unit.kind == "person" and unit.column not in self._kinds:
            missing.append(str(unit.column))
        if missing:
            raise SchemaError(f"the data lacks schema columns {missing}")

    @property
    def domain(self) -> dict[str, int]:
        """Public ``{column: domain size}`` of the encoded columns, in order."""
        return dict(self._domain)

    @abstractmethod
    def _query(self, sql: str) -> dict[str, Any]:
        """Run ``sql`` and return its columns as arrays (nulls masked or as NaN)."""

    def _encoded_sql(self, names: Sequence[str]) -> tuple[str, dict[str, str]]:
        """SQL of the codes of ``names`` (all modelled columns when bounding) and their aliases."""
        d, unit = self._dialect, self._schema.privacy_unit
        bounded = unit.kind == "person"
        cols = [c for c in self._schema.modelled if bounded or c.name in names]
        alias = {c.name: f"c{j}" for j, c in enumerate(self._schema.modelled)}
        prep = [f"{prepared_expr(d, d.ident(c.name), self._kinds[c.name], c)} AS p_{alias[c.name]}" for c in cols]
        codes = [f"{code_expr(d, 'p_' + alias[c.name], c)} AS {alias[c.name]}" for c in cols]
        if bounded:
            prep.append(f"{d.ident(str(unit.column))} AS __pid")
            codes.append("__pid")
        sql = f"SELECT {', '.join(codes)} FROM (SELECT {', '.join(prep)} FROM {self._source}) AS __p"
        if bounded:
            sql = bounded_sql(d, sql, "__pid", [alias[c.name] for c in cols], int(unit.max_rows or 1), self._seed)
        return sql, alias

    def _compute(self, keys: list[tuple[str, ...]]) -> None:
        names = [c.name for c in self._schema.modelled if any(c.name in k for k in keys)]
        inner, alias = self._encoded_sql(names)
        columns = [alias[n] for n in names]
        sets = [tuple(alias[c] for c in k) for k in keys]
        result = self._query(grouping_sets_sql(self._dialect, inner, sets, columns))

        def get(name: str) -> npt.NDArray[np.int64]:
            arr = np.ma.filled(np.ma.masked_invalid(np.ma.asarray(result[name], dtype=np.float64)), -1)
            return np.asarray(arr, dtype=np.int64)

        shapes = [tuple(self._domain[c] for c in k) for k in keys]
        counts = scatter_counts(get("__g"), {a: get(a) for a in columns}, get("__n"), columns, sets, shapes)
        self._cache.update(zip(keys, counts))

    def count(self, cliques: Sequence[tuple[str, ...]]) -> list[npt.NDArray[np.int64]]:
        """Exact counts of each clique (all uncached ones in one engine pass)."""
        if self._closed:
            raise PrivateAccessError("the counting backend is closed")
        for c in cliques:
            if not c:
                raise ConfigError("a marginal needs at least one column")
            for col in c:
                if col not in self._domain:
                    raise ConfigError(f"column {col!r} is not in the encoded table")
            if len(set(c)) != len(c):
                raise ConfigError(f"marginal {tuple(c)} repeats a column")
        order = [c.name for c in self._schema.modelled]
        keys = [tuple(sorted(c, key=order.index)) for c in cliques]
        todo = list(dict.fromkeys(k for k in keys if k not in self._cache))
        if todo:
            log.debug("counting %d marginal(s) in one %s pass", len(todo), self._dialect.name)
            self._compute(todo)
        return [self._cache[k].transpose([k.index(c) for c in clique]) for clique, k in zip(cliques, keys)]
