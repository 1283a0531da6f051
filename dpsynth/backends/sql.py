"""Driver side of the SQL counting engines: value maps, one pre-aggregating pass, marginals.

A count request runs in three steps, all inside the engine except the last:

1. **Value maps.** For each column whose encoding is costly per row (text keys: NFC,
   zero-width characters, whitespace, category lookup; numbers parsed from text), a small
   engine-side table maps every distinct raw value of the column to its code, computed with
   the expressions of :mod:`dpsynth.backends.sqlexpr`. The rows then need one equality join
   per such column instead of the whole expression. The tables hold private values, live in
   the engine only and are dropped on :meth:`SQLBackend.close`. A column with more than
   :data:`MAP_LIMIT` distinct values is encoded row by row instead.
2. **One pass.** Rows are encoded (map joins or expressions), bounded per person when the
   privacy unit is a person, and pre-aggregated on one packed 64-bit key of all needed codes.
3. **Marginals.** The requested marginals are grouped into a few larger *unions*
   (:class:`~dpsynth.backends.tally.UnionPlan`). The engine turns each pre-aggregated row into
   its cell index in every union; DuckDB streams these rows to the driver, which counts them
   with ``bincount``, and Spark counts them itself with ``GROUP BY GROUPING SETS`` and returns
   the (public-domain sized) union tables. The driver sums the unions down to the marginals.
   When the codes do not fit one 62-bit key, the engine groups on the codes themselves.

Only public schema facts enter the SQL text; no data value is ever embedded in it.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from dpsynth.backends.base import CachedCounts
from dpsynth.backends.bounding import BOUNDING_PURPOSE
from dpsynth.backends.sqlexpr import (
    DUCKDB,
    SPARK,
    WHITESPACE,
    Dialect,
    code_expr,
    missing_expr,
    null_code,
    prepared_expr,
    source_kind,
)
from dpsynth.backends.tally import UnionPlan, strides
from dpsynth.errors import ConfigError, DPSynthError, SchemaError
from dpsynth.privacy.randomness import MechanismKey
from dpsynth.tabular.schema import CategoricalColumn, OrdinalColumn, Schema

__all__ = [
    "DUCKDB",
    "MAP_LIMIT",
    "SPARK",
    "WHITESPACE",
    "Dialect",
    "SQLBackend",
    "aggregated_sql",
    "bounded_sql",
    "code_expr",
    "grouping_id",
    "grouping_sets_sql",
    "missing_expr",
    "prepared_expr",
    "scatter_counts",
    "source_kind",
]

log = logging.getLogger(__name__)

#: Columns with more distinct raw values than this are encoded row by row, without a map.
MAP_LIMIT = 200_000


def bounded_sql(
    d: Dialect, inner: str, pid: str, code_cols: Sequence[str], k: int, subkey: str
) -> str:
    """Keep at most ``k`` rows per person by the keyed row hash; null ids are kept.

    Each row gets the rank key of :mod:`dpsynth.backends.bounding`: the md5 of the run's
    secret bounding sub-key, the person, the row's codes over every modelled column
    (``code_cols``) and the row's position among the person's identical rows (``1..m``). The
    key is a function of the person's own rows and the secret only, identical copies get
    distinct keys, and which physical copy is kept cannot change any count. The numpy and
    arrow engines compute the same md5, so every engine keeps the same rows.
    """
    if not all(ch in "0123456789abcdef" for ch in subkey):
        raise ConfigError("the bounding sub-key must be lowercase hex")
    codes = ", ".join(code_cols)

    def text(x: str) -> str:
        return f"CAST({x} AS {d.text_type})"

    parts = ", ".join(
        [d.string(subkey), text(pid), *(text(c) for c in code_cols), text("__dup")]
    )
    key = f"md5(concat_ws('|', {parts}))"
    return (
        f"SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {pid} ORDER BY {key}) AS __rn "
        f"FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {pid}, {codes} ORDER BY {pid}) AS __dup "
        f"FROM ({inner}) AS __e) AS __d) AS __r WHERE {pid} IS NULL OR __rn <= {int(k)}"
    )


def aggregated_sql(inner: str, columns: Sequence[str]) -> str:
    """The distinct code tuples of ``columns`` in ``inner`` with their row counts ``__c``."""
    cols = ", ".join(columns)
    return f"SELECT {cols}, COUNT(*) AS __c FROM ({inner}) AS __s GROUP BY {cols}"


def grouping_sets_sql(d: Dialect, aggregated: str, sets: Sequence[tuple[str, ...]], columns: Sequence[str]) -> str:
    """``GROUP BY GROUPING SETS`` over the distinct tuples of :func:`aggregated_sql` (not every
    input row once per set), with ``GROUPING_ID`` ``__g``: bit ``len(columns) - 1 - i`` is set
    when ``columns[i]`` (every column named in ``sets``) is rolled up, as the SQL standard says."""
    cols = ", ".join(columns)
    groups = ", ".join("(" + ", ".join(s) + ")" for s in sets)
    return (
        f"SELECT grouping_id({cols}) AS __g, {cols}, CAST(SUM(__c) AS BIGINT) AS __n FROM "
        f"({aggregated}) AS __a GROUP BY GROUPING SETS ({groups})"
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
    for s, shape in zip(sets, shapes, strict=True):
        rows = gid == grouping_id(columns, s)
        dense = np.zeros(shape, dtype=np.int64)
        idx = tuple(codes[c][rows] for c in s)
        for axis, (i, size) in enumerate(zip(idx, shape, strict=True)):
            if i.size and (i.min() < 0 or i.max() >= size):
                raise DPSynthError(
                    f"engine returned a code outside the domain of axis {axis} of {s}"
                )
        np.add.at(dense, idx, n[rows])
        out.append(dense)
    return out


def packed_sql(d: Dialect, inner: str, columns: Sequence[str], sizes: Sequence[int]) -> str | None:
    """Rows of ``inner`` pre-aggregated on one packed key ``__k`` of ``columns`` (count ``__c``).

    None when the key space of ``sizes`` does not fit 62 bits.
    """
    st = strides(sizes)
    if st is None:
        return None
    key = " + ".join(f"CAST({c} AS BIGINT) * {s}" for c, s in zip(columns, st, strict=True))
    return f"SELECT __k, COUNT(*) AS __c FROM (SELECT {key} AS __k FROM ({inner}) AS __s) AS __t GROUP BY __k"


def union_keys_sql(d: Dialect, packed: str, plan: UnionPlan, sizes: Sequence[int]) -> str:
    """The rows of :func:`packed_sql` as each union's flat cell index ``u{j}`` and the count ``__c``."""
    st = strides(sizes)
    if st is None:
        raise DPSynthError("the packed key of these columns does not fit 62 bits")
    flats = [
        " + ".join(f"((__k {d.int_div} {st[c]}) % {int(sizes[c])}) * {m}" for c, m in plan.flat_terms(j)) + f" AS u{j}"
        for j in range(len(plan.unions))
    ]
    return f"SELECT {', '.join(flats)}, __c FROM ({packed}) AS __p"


def union_sets_sql(
    d: Dialect, packed: str, plan: UnionPlan, group: Sequence[int], sizes: Sequence[int]
) -> tuple[str, list[str]]:
    """One ``GROUP BY GROUPING SETS`` counting the rows of :func:`packed_sql` per union cell.

    ``group`` lists the unions of ``plan`` counted by this query (at most 60, the width of a
    ``GROUPING_ID``); union ``j``'s flat cell index is column ``u{j}``. Returns the SQL and the
    union column names in ``GROUPING_ID`` order.
    """
    st = strides(sizes)
    if st is None:
        raise DPSynthError("the packed key of these columns does not fit 62 bits")

    def code(c: int) -> str:
        return f"((__k {d.int_div} {st[c]}) % {int(sizes[c])})"

    names = [f"u{j}" for j in group]
    flats = [
        " + ".join(f"{code(c)} * {m}" for c, m in plan.flat_terms(j)) + f" AS u{j}" for j in group
    ]
    cols = ", ".join(names)
    sql = (
        f"SELECT grouping_id({cols}) AS __g, {cols}, CAST(SUM(__c) AS BIGINT) AS __n FROM "
        f"(SELECT {', '.join(flats)}, __c FROM ({packed}) AS __p) AS __f "
        f"GROUP BY GROUPING SETS ({', '.join(f'({n})' for n in names)})"
    )
    return sql, names


def _ints(values: Any) -> npt.NDArray[np.int64]:
    """An engine result column as int64, nulls (masked or NaN) as -1 (integers stay exact)."""
    arr = np.ma.asarray(values)
    if arr.dtype.kind not in "iu":
        arr = np.ma.masked_invalid(arr.astype(np.float64))
    return np.asarray(np.ma.filled(arr, -1), dtype=np.int64)


class SQLBackend(CachedCounts):
    """Shared driver side of the SQL engines: value maps, validation, the cache, marginals.

    Subclasses set ``_dialect``, ``_schema``, ``_kinds`` (source kind per column), ``_key``,
    ``_source`` (the SQL name of the raw source) and ``_use_maps``, and implement
    :meth:`_query`, :meth:`_make_map` and :meth:`_drop_map`.
    """

    _dialect: Dialect
    _schema: Schema
    _kinds: dict[str, str]
    _key: MechanismKey
    _source: str
    _use_maps: bool = True
    #: Build all text columns' maps from one scan (see :meth:`_prepare_maps`).
    _one_scan_maps: bool = False
    #: Count union cells in the driver from streamed rows (DuckDB) rather than in the engine.
    _union_keys_in_driver: bool = False

    def _init_cache(self, schema: Schema) -> None:
        super()._init_cache(schema)
        self._maps: dict[str, str | None] = {}
        self._extra_maps: list[str] = []

    def _check_columns(self) -> None:
        missing = [c.name for c in self._schema.modelled if c.name not in self._kinds]
        unit = self._schema.privacy_unit
        if unit.kind == "person" and unit.column not in self._kinds:
            missing.append(str(unit.column))
        if missing:
            raise SchemaError(f"the data lacks schema columns {missing}")

    @abstractmethod
    def _query(self, sql: str) -> dict[str, Any]:
        """Run ``sql`` and return its columns as arrays (nulls masked or as NaN)."""

    def _stream(self, sql: str) -> Iterator[dict[str, npt.NDArray[Any]]]:
        """Run ``sql`` and yield its rows in batches of column arrays (see ``_union_keys_in_driver``)."""
        raise DPSynthError(f"the {self._dialect.name} backend does not stream rows to the driver")

    @abstractmethod
    def _make_map(self, name: str, sql: str, limit: int) -> bool:
        """Materialise ``sql`` as table ``name``; drop it and return False above ``limit`` rows."""

    @abstractmethod
    def _drop_map(self, name: str) -> None:
        """Drop the map table ``name``."""

    def _wants_map(self, col: Any) -> bool:
        kind = self._kinds[col.name]
        if kind == "text":
            return True
        return isinstance(col, (CategoricalColumn, OrdinalColumn)) and kind not in ("bool", "other")

    def _map_for(self, j: int, col: Any) -> str | None:
        """Name of the value map of ``col`` (built on first use), or None to encode per row."""
        if col.name not in self._maps:
            name = None
            if self._use_maps and self._wants_map(col):
                d, v = self._dialect, "__v"
                prep = prepared_expr(d, v, self._kinds[col.name], col)
                sql = (
                    f"SELECT __v AS v, {code_expr(d, '__p', col)} AS code FROM "
                    f"(SELECT __v, {prep} AS __p FROM (SELECT DISTINCT {d.ident(col.name)} AS __v "
                    f"FROM {self._source}) AS __d) AS __q"
                )
                candidate = f"{self._source}_m{j}"
                name = candidate if self._make_map(candidate, sql, MAP_LIMIT) else None
            self._maps[col.name] = name
        return self._maps[col.name]

    def _make_combined(self, name: str, sql: str) -> dict[int, int]:
        """Materialise ``sql`` (columns ``__i, v, code``) as ``name``; rows per ``__i``."""
        raise DPSynthError(f"the {self._dialect.name} backend cannot build maps in one scan")

    def _prepare_maps(self, cols: Sequence[tuple[int, Any]]) -> None:
        """Build the value maps of ``cols`` not built yet.

        With ``_one_scan_maps`` (Spark, whose jobs are costly, and DuckDB on CSV, whose
        parsing is), the maps of all text columns come from one scan of the source that
        stacks ``(column index, value)`` pairs; otherwise each column is scanned alone.
        """
        d = self._dialect
        todo = [(j, c) for j, c in cols if c.name not in self._maps and self._kinds[c.name] == "text"]
        if self._use_maps and self._one_scan_maps and len(todo) > 1:
            if d.name == "spark":
                stacked = ", ".join(f"{j}, {d.ident(c.name)}" for j, c in todo)
                pairs = f"SELECT stack({len(todo)}, {stacked}) AS (__i, __v) FROM {self._source}"
            else:
                idx = ", ".join(str(j) for j, _ in todo)
                vals = ", ".join(d.ident(c.name) for _, c in todo)
                pairs = f"SELECT UNNEST([{idx}]) AS __i, UNNEST([{vals}]) AS __v FROM {self._source}"
            whens = " ".join(f"WHEN {j} THEN {code_expr(d, prepared_expr(d, '__v', 'text', c), c)}" for j, c in todo)
            base = f"{self._source}_maps"
            sizes = self._make_combined(
                base,
                f"SELECT __i, __v AS v, CASE __i {whens} END AS code FROM "
                f"(SELECT DISTINCT __i, __v FROM ({pairs}) AS __s) AS __d",
            )
            self._extra_maps.append(base)
            for j, c in todo:
                name = f"{self._source}_m{j}"
                over = sizes.get(j, 0) > MAP_LIMIT
                self._maps[c.name] = (
                    None
                    if over or not self._make_map(name, f"SELECT v, code FROM {base} WHERE __i = {j}", MAP_LIMIT)
                    else name
                )
        for j, c in cols:
            self._map_for(j, c)

    def _person_expr(self, column: str) -> str:
        """SQL of the person identifier the bounding partitions by (the column itself here)."""
        return column

    def _encoded_sql(self, names: Sequence[str]) -> tuple[str, dict[str, str]]:
        """SQL of the codes of ``names`` (all modelled columns when bounding) and their aliases."""
        d, unit = self._dialect, self._schema.privacy_unit
        bounded = unit.kind == "person"
        modelled = list(self._schema.modelled)
        alias = {c.name: f"c{j}" for j, c in enumerate(modelled)}
        cols = [(j, c) for j, c in enumerate(modelled) if bounded or c.name in names]
        self._prepare_maps(cols)
        raw, codes, joins, maps = [], [], [], []
        for j, c in cols:
            a, m = alias[c.name], self._map_for(j, c)
            if m is None:
                raw.append(f"{prepared_expr(d, d.ident(c.name), self._kinds[c.name], c)} AS p_{a}")
                codes.append(f"{code_expr(d, 'p_' + a, c)} AS {a}")
            else:
                raw.append(f"{d.ident(c.name)} AS r_{a}")
                codes.append(f"coalesce({m}.code, {null_code(c)}) AS {a}")
                joins.append(f"LEFT JOIN {m} ON __p.r_{a} = {m}.v")
                maps.append(m)
        if bounded:
            raw.append(f"{self._person_expr(d.ident(str(unit.column)))} AS __pid")
            codes.append("__pid")
        hint = f"/*+ BROADCAST({', '.join(maps)}) */ " if maps and d.name == "spark" else ""
        sql = f"SELECT {hint}{', '.join(codes)} FROM (SELECT {', '.join(raw)} FROM {self._source}) AS __p"
        if joins:
            sql += " " + " ".join(joins)
        if bounded:
            sql = bounded_sql(
                d,
                sql,
                "__pid",
                [alias[c.name] for _, c in cols],
                int(unit.max_rows or 1),
                self._key.hex_for(BOUNDING_PURPOSE),
            )
        return sql, alias

    def _compute(self, keys: list[tuple[str, ...]]) -> None:
        names = [c.name for c in self._schema.modelled if any(c.name in k for k in keys)]
        inner, alias = self._encoded_sql(names)
        columns = [alias[n] for n in names]
        sizes = [self._domain[n] for n in names]
        packed = packed_sql(self._dialect, inner, columns, sizes)
        if packed is not None and self._union_keys_in_driver:
            plan = UnionPlan(sizes, [tuple(names.index(c) for c in k) for k in keys])
            tables = [np.zeros(plan.cells(j)) for j in range(len(plan.unions))]
            for batch in self._stream(union_keys_sql(self._dialect, packed, plan, sizes)):
                plan.accumulate(tables, [batch[f"u{j}"] for j in range(len(tables))], batch["__c"])
            self._cache.update(zip(keys, plan.assemble_dense(tables), strict=True))
            return
        if packed is not None:
            plan = UnionPlan(sizes, [tuple(names.index(c) for c in k) for k in keys])
            flat: list[npt.NDArray[np.int64]] = [np.zeros(0, np.int64)] * len(plan.unions)
            counts = list(flat)
            js = list(range(len(plan.unions)))
            for group in (js[i : i + 60] for i in range(0, len(js), 60)):
                sql, unames = union_sets_sql(self._dialect, packed, plan, group, sizes)
                result = self._query(sql)
                g, n = _ints(result["__g"]), _ints(result["__n"])
                for j, uname in zip(group, unames, strict=True):
                    rows = g == grouping_id(unames, (uname,))
                    flat[j], counts[j] = _ints(result[uname])[rows], n[rows]
            self._cache.update(zip(keys, plan.assemble(flat, counts), strict=True))
            return
        # Wide tables (key space over 62 bits): distinct tuples counted once, then at most 60
        # grouping sets per query (DuckDB reserves memory per set: 800 once exceeded 2 GB).
        aggregated = self._aggregate(aggregated_sql(inner, columns))
        for part in (keys[i : i + 60] for i in range(0, len(keys), 60)):
            sets = [tuple(alias[c] for c in k) for k in part]
            shapes = [tuple(self._domain[c] for c in k) for k in part]
            used = [a for a in columns if any(a in st for st in sets)]
            result = self._query(grouping_sets_sql(self._dialect, aggregated, sets, used))
            grouped = scatter_counts(_ints(result["__g"]), {a: _ints(result[a]) for a in used},
                                     _ints(result["__n"]), used, sets, shapes)
            self._cache.update(zip(part, grouped, strict=True))
        self._forget_aggregate()

    def _aggregate(self, sql: str) -> str:
        """What a wide pass's queries read ``sql``'s rows from: ``sql`` itself here."""
        return sql

    def _forget_aggregate(self) -> None:
        """Drop what :meth:`_aggregate` stored, if anything."""

    def _close_maps(self) -> None:
        for name in [*(m for m in self._maps.values() if m is not None), *self._extra_maps]:
            self._drop_map(name)
        self._maps.clear()
        self._extra_maps.clear()
