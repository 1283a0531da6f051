"""Counting with DuckDB: encode in the engine, pre-aggregate in one spilling pass.

The source (CSV or Parquet files, a pandas frame or a DuckDB relation) is never loaded into
Python. Codes are built with :mod:`dpsynth.backends.sql` (value maps joined to the rows,
expressions for the other columns), which reproduces :mod:`dpsynth.tabular.encoding` exactly; the
rows are pre-aggregated on one packed key, and their cells in a few unions of the requested
marginals (:class:`~dpsynth.backends.tally.UnionPlan`) are streamed here in batches, counted
with ``bincount`` and summed down to the marginals. Under
``memory_limit`` DuckDB spills its hash tables to ``temp_directory``, so the data may be
larger than memory. Counts are cached per marginal like
:class:`~dpsynth.backends.numpy.NumpyBackend`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from dpsynth.backends.frames import normalise_frame
from dpsynth.backends.sql import DUCKDB, SQLBackend, missing_expr, source_kind
from dpsynth.errors import ConfigError, require
from dpsynth.privacy.randomness import MechanismKey
from dpsynth.tabular.schema import Schema

__all__ = ["DuckDBBackend", "file_sql"]

log = logging.getLogger(__name__)

_CSV = (".csv", ".tsv", ".txt")
_PARQUET = (".parquet", ".pq")
#: A cell text no CSV holds: DuckDB's own null detection is switched off with it, so that
#: ``schema.missing_values`` alone decides which cells are null (as in ``read_frame``).
_NO_NULL = "\x00dpsynth-no-null\x00"


def file_sql(con: Any, source: str | Path, missing_values: Sequence[str], sep: str | None = None) -> str:
    """SQL selecting a CSV or Parquet file (or glob) on ``con``: CSV cells as text, after the
    schema's missing-value rules (as ``read_frame`` reads them); Parquet columns as typed."""
    path = str(source)
    suffix = Path(path).suffix.lower()
    if suffix in _PARQUET:
        return f"SELECT * FROM read_parquet({DUCKDB.string(path)})"
    if suffix not in _CSV:
        raise ConfigError(f"input {Path(path).name}: unsupported format {suffix!r} (use .csv or .parquet)")
    if not any(ch in path for ch in "*?[") and not Path(path).exists():
        raise ConfigError(f"input file {path} does not exist")
    delim = sep if sep is not None else "\t" if suffix == ".tsv" else ","
    reader = (
        f"read_csv({DUCKDB.string(path)}, all_varchar = true, header = true, "
        f"delim = {DUCKDB.string(delim)}, nullstr = {DUCKDB.string(_NO_NULL)})"
    )
    raw = [str(r[0]) for r in con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()]
    cols = ", ".join(
        f"{missing_expr(DUCKDB, DUCKDB.ident(c), missing_values)} AS "
        f"{DUCKDB.ident(c.lstrip(chr(0xFEFF)).lstrip(' '))}"
        for c in raw
    )
    return f"SELECT {cols} FROM {reader}"


class DuckDBBackend(SQLBackend):
    """Exact marginal counts computed by DuckDB, out of core.

    Args:
        source: A path (glob allowed) to CSV or Parquet files, a pandas DataFrame, or a DuckDB
            relation. CSV cells are read as text; ``schema.missing_values`` become nulls.
        schema: The public schema; its modelled columns define the domain.
        memory_limit: DuckDB ``memory_limit`` (beyond it, operators spill to disk).
        temp_directory: Where DuckDB spills; when None, a fresh owner-only folder in the
            system's temporary directory, removed on close (DuckDB's own default is ``.tmp``
            in the working directory, where private rows have no business).
        threads: DuckDB worker threads; DuckDB's default (all cores) when None.
        key: The run's in-mechanism secret, which keys contribution bounding (person-level
            privacy unit only); a fresh one when None. Never the user's seed.

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
        key: MechanismKey | None = None,
    ) -> None:
        duckdb: Any = require("duckdb", "scale")
        self._init_cache(schema)
        self._dialect = DUCKDB
        self._source = "__dpsynth_src"
        self._key = key if key is not None else MechanismKey.fresh()
        self._con: Any = None
        self._frame: pd.DataFrame | None = None
        self._rel: Any = None
        self._bounded: str | None = None
        self._spill: Any = None
        if isinstance(source, duckdb.DuckDBPyRelation):
            self._rel = source
            self._use_maps = False  # no temporary tables on a connection we do not own
            described = list(zip(source.columns, map(str, source.types), strict=True))
        else:
            self._con = duckdb.connect(":memory:")
            self._con.execute(f"SET memory_limit = {DUCKDB.string(memory_limit)}")
            self._con.execute("SET preserve_insertion_order = false")
            self._con.execute("SET TimeZone = 'UTC'")
            if temp_directory is None:
                import tempfile

                self._spill = tempfile.TemporaryDirectory(prefix="dpsynth-spill-")
                temp_directory = self._spill.name
            self._con.execute(f"SET temp_directory = {DUCKDB.string(str(temp_directory))}")
            if threads is not None:
                self._con.execute(f"SET threads = {int(threads)}")
            self._con.execute(f"CREATE VIEW __dpsynth_src AS {self._open(source)}")
            self._union_keys_in_driver = True
            described = self._describe("SELECT * FROM __dpsynth_src")
        self._kinds = {str(n): source_kind(t) for n, t in described}
        self._check_columns()

    def _encoded_sql(self, names: Sequence[str]) -> tuple[str, dict[str, str]]:
        """With a person-level unit, the bounded codes of every modelled column, stored once.

        Bounding keeps the same rows in every pass (the key is fixed for the run), and its window
        over all rows is the costly part of a pass: the first pass stores the kept rows' codes
        in a temporary table (small integers, spilled beyond the memory limit) that later
        passes scan instead.
        """
        sql, alias = super()._encoded_sql(names)
        if self._schema.privacy_unit.kind != "person" or self._con is None:
            return sql, alias
        if self._bounded is None:
            modelled = list(self._schema.modelled)
            cols = ", ".join(
                f"CAST({alias[c.name]} AS {'SMALLINT' if c.domain_size() < 2**15 else 'INTEGER'}) AS {alias[c.name]}"
                for c in modelled
            )
            self._con.execute(f"CREATE TEMP TABLE __dpsynth_bounded AS SELECT {cols} FROM ({sql}) AS __b")
            self._bounded = "__dpsynth_bounded"
            self._extra_maps.append(self._bounded)
        return f"SELECT * FROM {self._bounded}", alias

    def _aggregate(self, sql: str) -> str:
        """The distinct code tuples of a wide pass, counted once into a temporary table (each
        group of 60 grouping sets then reads it instead of re-reading the source)."""
        if self._con is None:
            return sql
        self._con.execute(f"CREATE OR REPLACE TEMP TABLE __dpsynth_aggregated AS {sql}")
        return "SELECT * FROM __dpsynth_aggregated"

    def _forget_aggregate(self) -> None:
        if self._con is not None:
            self._con.execute("DROP TABLE IF EXISTS __dpsynth_aggregated")

    def _person_expr(self, column: str) -> str:
        """The person identifier, as a flat text vector when it is text.

        DuckDB's window operator, partitioning by a dictionary-encoded text column (as Parquet
        files store keys), ran out of memory on 5.4M rows under a 2 GB limit where the same
        rows from CSV took 0.8 GB; ``concat`` copies the values out of the dictionary (nulls
        stay null, so rows without a person are still all kept).
        """
        if self._kinds.get(str(self._schema.privacy_unit.column)) != "text":
            return column
        return f"(CASE WHEN {column} IS NULL THEN NULL ELSE concat({column}, '') END)"

    def _describe(self, sql: str) -> list[tuple[str, str]]:
        return [(str(r[0]), str(r[1])) for r in self._con.execute(f"DESCRIBE {sql}").fetchall()]

    def _open(self, source: Any) -> str:
        """SQL selecting the raw source (CSV cells as text, after the missing-value rules)."""
        if isinstance(source, pd.DataFrame):
            self._frame = normalise_frame(source)
            self._con.register("__dpsynth_frame", self._frame)
            return "SELECT * FROM __dpsynth_frame"
        if not isinstance(source, (str, Path)):
            raise ConfigError("source must be a path, a pandas DataFrame or a DuckDB relation")
        self._one_scan_maps = Path(str(source)).suffix.lower() in _CSV  # parsing CSV is the costly part
        return file_sql(self._con, source, self._schema.missing_values)

    def _query(self, sql: str) -> dict[str, Any]:
        if self._con is not None:
            out: dict[str, Any] = self._con.execute(sql).fetchnumpy()
            return out
        zone = self._rel.query("__dpsynth_src", "SELECT current_setting('TimeZone')").fetchall()[0][0]
        self._rel.query("__dpsynth_src", "SET TimeZone = 'UTC'")
        try:
            res: dict[str, Any] = self._rel.query("__dpsynth_src", sql).fetchnumpy()
            return res
        finally:
            self._rel.query("__dpsynth_src", f"SET TimeZone = {DUCKDB.string(str(zone))}")

    def _make_map(self, name: str, sql: str, limit: int) -> bool:
        self._con.execute(f"CREATE TEMP TABLE {name} AS {sql}")
        if int(self._con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]) > limit:
            self._drop_map(name)
            return False
        return True

    def _make_combined(self, name: str, sql: str) -> dict[int, int]:
        self._con.execute(f"CREATE TEMP TABLE {name} AS {sql}")
        rows = self._con.execute(f"SELECT __i, count(*) FROM {name} GROUP BY __i").fetchall()
        return {int(i): int(n) for i, n in rows}

    def _drop_map(self, name: str) -> None:
        if self._con is not None:
            self._con.execute(f"DROP TABLE IF EXISTS {name}")

    def _stream(self, sql: str) -> Iterator[dict[str, npt.NDArray[Any]]]:
        for batch in self._con.sql(sql).to_arrow_reader(1 << 20):
            yield {n: np.asarray(batch.column(n).to_numpy(zero_copy_only=False)) for n in batch.schema.names}

    def close(self) -> None:
        if not self._closed:
            self._close_maps()
        self._closed = True
        self._cache.clear()
        self._rel = None
        self._frame = None
        if self._con is not None:
            self._con.close()
            self._con = None
        if self._spill is not None:
            self._spill.cleanup()
            self._spill = None
