"""Counting with DuckDB: encode in the engine, count many marginals in one spilling pass.

The source (CSV or Parquet files, a pandas frame or a DuckDB relation) is never loaded into
Python. Each requested marginal is computed by one ``GROUP BY GROUPING SETS`` query over
codes built with :mod:`dpsynth.backends.sql`, which reproduces :mod:`dpsynth.encoding`
exactly. Under ``memory_limit`` DuckDB spills its hash tables to ``temp_directory``, so the
data may be larger than memory. Counts are cached per marginal like
:class:`~dpsynth.backends.numpy.NumpyBackend`.
"""

from __future__ import annotations

import logging
import math
import secrets
from datetime import date, datetime
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from dpsynth.backends.sql import (
    DUCKDB,
    bounded_sql,
    code_expr,
    grouping_sets_sql,
    missing_expr,
    prepared_expr,
    scatter_counts,
    source_kind,
)
from dpsynth.errors import ConfigError, PrivateAccessError, SchemaError, require
from dpsynth.schema import Schema, canonical_key

__all__ = ["DuckDBBackend"]

log = logging.getLogger(__name__)

_CSV = (".csv", ".tsv", ".txt")
_PARQUET = (".parquet", ".pq")
#: A cell text no CSV holds: DuckDB's own null detection is switched off with it, so that
#: ``schema.missing_values`` alone decides which cells are null (as in ``read_frame``).
_NO_NULL = "\x00dpsynth-no-null\x00"


def _cell_text(v: object) -> str | None:
    """Text of one cell of a mixed-type object column (what pandas would match on)."""
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    return canonical_key(v)


def _normalise_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Mixed-type object columns as text; other columns are scanned by DuckDB as they are."""
    out = df.rename(columns=str)
    for name in out.columns:
        s = out[name]
        if s.dtype == object and not all(isinstance(v, str) for v in s.dropna().unique()):
            out[name] = pd.Series([_cell_text(v) for v in s], index=s.index, dtype=object)
    return out


class DuckDBBackend:
    """Exact marginal counts computed by DuckDB, out of core.

    Args:
        source: A path (glob allowed) to CSV or Parquet files, a pandas DataFrame, or a DuckDB
            relation. CSV cells are read as text; ``schema.missing_values`` become nulls.
        schema: The public schema; its modelled columns define the domain.
        memory_limit: DuckDB ``memory_limit`` (beyond it, operators spill to disk).
        temp_directory: Where DuckDB spills; DuckDB's default when None.
        threads: DuckDB worker threads; DuckDB's default (all cores) when None.
        seed: Seed of the contribution-bounding row choice (person-level privacy unit only);
            fresh randomness when None.

    A relation source is queried on its own connection, whose settings are left alone except
    the time zone, which is UTC during each query and restored after it.
    """

    def __init__(
        self,
        source: Any,
        schema: Schema,
        *,
        memory_limit: str = "2GB",
        temp_directory: str | None = None,
        threads: int | None = None,
        seed: int | None = None,
    ) -> None:
        duckdb: Any = require("duckdb", "scale")
        self._schema = schema
        self._domain = schema.domain()
        self._cache: dict[tuple[str, ...], npt.NDArray[np.int64]] = {}
        self._seed = int(seed) if seed is not None else secrets.randbits(62)
        self._con: Any = None
        self._frame: pd.DataFrame | None = None
        self._rel: Any = None
        self._closed = False
        if isinstance(source, duckdb.DuckDBPyRelation):
            self._rel = source
            described = list(zip(source.columns, map(str, source.types)))
        else:
            self._con = duckdb.connect(":memory:")
            self._con.execute(f"SET memory_limit = {DUCKDB.string(memory_limit)}")
            self._con.execute("SET preserve_insertion_order = false")
            self._con.execute("SET TimeZone = 'UTC'")
            if temp_directory is not None:
                self._con.execute(f"SET temp_directory = {DUCKDB.string(str(temp_directory))}")
            if threads is not None:
                self._con.execute(f"SET threads = {int(threads)}")
            self._con.execute(f"CREATE VIEW __dpsynth_src AS {self._open(source)}")
            described = self._describe("SELECT * FROM __dpsynth_src")
        self._kinds = {str(n): source_kind(t) for n, t in described}
        missing = [c.name for c in schema.modelled if c.name not in self._kinds]
        unit = schema.privacy_unit
        if unit.kind == "person" and unit.column not in self._kinds:
            missing.append(str(unit.column))
        if missing:
            raise SchemaError(f"the data lacks schema columns {missing}")

    def _describe(self, sql: str) -> list[tuple[str, str]]:
        return [(str(r[0]), str(r[1])) for r in self._con.execute(f"DESCRIBE {sql}").fetchall()]

    def _open(self, source: Any) -> str:
        """SQL selecting the raw source (CSV cells as text, after the missing-value rules)."""
        if isinstance(source, pd.DataFrame):
            self._frame = _normalise_frame(source)
            self._con.register("__dpsynth_frame", self._frame)
            return "SELECT * FROM __dpsynth_frame"
        if not isinstance(source, (str, Path)):
            raise ConfigError("source must be a path, a pandas DataFrame or a DuckDB relation")
        path = str(source)
        suffix = Path(path).suffix.lower()
        if suffix in _PARQUET:
            return f"SELECT * FROM read_parquet({DUCKDB.string(path)})"
        if suffix not in _CSV:
            raise ConfigError(f"input {Path(path).name}: unsupported format {suffix!r} (use .csv or .parquet)")
        if not any(ch in path for ch in "*?[") and not Path(path).exists():
            raise ConfigError(f"input file {path} does not exist")
        delim = "\t" if suffix == ".tsv" else ","
        reader = (
            f"read_csv({DUCKDB.string(path)}, all_varchar = true, header = true, "
            f"delim = {DUCKDB.string(delim)}, nullstr = {DUCKDB.string(_NO_NULL)})"
        )
        raw = [name for name, _ in self._describe(f"SELECT * FROM {reader}")]
        cols = ", ".join(
            f"{missing_expr(DUCKDB, DUCKDB.ident(c), self._schema.missing_values)} AS "
            f"{DUCKDB.ident(c.lstrip(chr(0xFEFF)).lstrip(' '))}"
            for c in raw
        )
        return f"SELECT {cols} FROM {reader}"

    @property
    def domain(self) -> dict[str, int]:
        return dict(self._domain)

    def _encoded_sql(self, names: Sequence[str]) -> tuple[str, dict[str, str]]:
        """SQL of the codes of ``names`` (all modelled columns when bounding) and their aliases."""
        unit = self._schema.privacy_unit
        bounded = unit.kind == "person"
        cols = [c for c in self._schema.modelled if bounded or c.name in names]
        alias = {c.name: f"c{j}" for j, c in enumerate(self._schema.modelled)}
        prep = [
            f"{prepared_expr(DUCKDB, DUCKDB.ident(c.name), self._kinds[c.name], c)} AS p_{alias[c.name]}"
            for c in cols
        ]
        codes = [f"{code_expr(DUCKDB, 'p_' + alias[c.name], c)} AS {alias[c.name]}" for c in cols]
        if bounded:
            prep.append(f"{DUCKDB.ident(str(unit.column))} AS __pid")
            codes.append("__pid")
        sql = f"SELECT {', '.join(codes)} FROM (SELECT {', '.join(prep)} FROM __dpsynth_src) AS __p"
        if bounded:
            sql = bounded_sql(DUCKDB, sql, "__pid", [alias[c.name] for c in cols], int(unit.max_rows or 1), self._seed)
        return sql, alias

    def _query(self, sql: str) -> Any:
        if self._con is not None:
            return self._con.execute(sql).fetchnumpy()
        zone = self._rel.query("__dpsynth_src", "SELECT current_setting('TimeZone')").fetchall()[0][0]
        self._rel.query("__dpsynth_src", "SET TimeZone = 'UTC'")
        try:
            return self._rel.query("__dpsynth_src", sql).fetchnumpy()
        finally:
            self._rel.query("__dpsynth_src", f"SET TimeZone = {DUCKDB.string(str(zone))}")

    def _compute(self, keys: list[tuple[str, ...]]) -> None:
        names = [c.name for c in self._schema.modelled if any(c.name in k for k in keys)]
        inner, alias = self._encoded_sql(names)
        columns = [alias[n] for n in names]
        sets = [tuple(alias[c] for c in k) for k in keys]
        table = self._query(grouping_sets_sql(DUCKDB, inner, sets, columns))
        get = lambda name: np.asarray(np.ma.filled(table[name], -1), dtype=np.int64)  # noqa: E731
        counts = scatter_counts(
            get("__g"),
            {a: get(a) for a in columns},
            get("__n"),
            columns,
            sets,
            [tuple(self._domain[c] for c in k) for k in keys],
        )
        self._cache.update(zip(keys, counts))

    def count(self, cliques: Sequence[tuple[str, ...]]) -> list[npt.NDArray[np.int64]]:
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
        keys = [tuple(sorted(set(c), key=order.index)) for c in cliques]
        todo = list(dict.fromkeys(k for k in keys if k not in self._cache))
        if todo:
            log.debug("counting %d marginal(s) in one DuckDB pass", len(todo))
            self._compute(todo)
        out = []
        for clique, key in zip(cliques, keys):
            counts = self._cache[key]
            out.append(counts.transpose([key.index(c) for c in clique]))
        return out

    def close(self) -> None:
        self._closed = True
        self._cache.clear()
        self._rel = None
        self._frame = None
        if self._con is not None:
            self._con.close()
            self._con = None
