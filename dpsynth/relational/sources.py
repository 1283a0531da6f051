"""Child tables joined with their parent columns inside DuckDB, for tables larger than memory.

With ``engine="duckdb"`` a child table given as a CSV or Parquet file (or a frame) is never
loaded into Python: DuckDB reads it, joins it with the (in-memory) root's key and parent
columns and writes the joined rows once to a Parquet file in a private scratch folder (mode
0700, removed on close). The DuckDB counting backend then reads that file like any input: it
bounds each person's rows with the run's secret key and counts out of core, under its memory
limit. Only one row per person comes back to Python: the number of child rows of each person,
for the root's ``n_<child>`` column.

The policy is :func:`dpsynth.relational.fit.prepare_frames`' policy: keys are compared as
trimmed text, child rows whose key is missing or names no root row are dropped. Every exact
count over the relation equals the pandas path's count (tests/test_relational_duckdb.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from dpsynth.backends.frames import normalise_frame
from dpsynth.backends.sql import DUCKDB
from dpsynth.errors import ConfigError, require
from dpsynth.relational.schema import RelationalSchema, count_column

__all__ = ["ChildRelations", "add_counts"]


def duckdb_error() -> type[Exception]:
    """DuckDB's base error class (DuckDB is an optional dependency)."""
    import duckdb

    return duckdb.Error


_KEY = "__dpsynth_parent_key"


class ChildRelations:
    """Each child table joined with its parent columns, as a private scratch Parquet file.

    Args:
        rel: The relational schema.
        root: The root's rows, keys already as text (``prepare_frames``' root).
        sources: Each child's CSV/Parquet path or frame.
        memory_limit: DuckDB ``memory_limit``; beyond it, the join and the counting spill.
        temp_directory: Where the private scratch folder goes (the system's temporary
            directory when None); DuckDB spills inside it.

    Use as a context manager; the files (``paths``) exist until it closes.
    """

    def __init__(self, rel: RelationalSchema, root: pd.DataFrame, sources: Mapping[str, Any], *,
                 memory_limit: str = "2GB", temp_directory: str | None = None) -> None:
        import tempfile

        duckdb: Any = require("duckdb", "scale")
        # The joined rows are written once (compressed Parquet), so each counting pass scans
        # them instead of re-parsing the input and re-joining; the folder is mode 0700.
        self._scratch = tempfile.TemporaryDirectory(prefix="dpsynth-join-", dir=temp_directory)
        self._con: Any = duckdb.connect(":memory:")
        self._con.execute(f"SET memory_limit = {DUCKDB.string(memory_limit)}")
        self._con.execute("SET preserve_insertion_order = false")
        self._con.execute("SET TimeZone = 'UTC'")
        spill = Path(self._scratch.name) / "spill"  # never DuckDB's default, ./.tmp
        self._con.execute(f"SET temp_directory = {DUCKDB.string(str(spill))}")
        self._frames: list[pd.DataFrame] = []  # registered frames must outlive their views
        self.paths: dict[str, Path] = {}
        self._fks = {c: str(rel.specs[c].foreign_key) for c in rel.children}
        pk = str(rel.specs[rel.root].primary_key)
        for i, child in enumerate(rel.children):
            try:
                self.paths[child] = self._join(rel, child, i, root, pk, sources[child])
            except BaseException as exc:
                self.close()  # no scratch file outlives a failed join
                if isinstance(exc, duckdb_error()):  # its message may quote a line of the file: not shown
                    raise ConfigError(f"table {child!r}: DuckDB could not read its data ({type(exc).__name__}): "
                                      "check that it is UTF-8, well-formed CSV (delimiter: the table's sep) "
                                      "or Parquet") from None
                raise

    def _register(self, name: str, frame: pd.DataFrame) -> str:
        self._frames.append(frame)
        self._con.register(name, frame)
        return f"SELECT * FROM {name}"

    def _join(self, rel: RelationalSchema, child: str, i: int, root: pd.DataFrame, pk: str, source: Any) -> Path:
        from dpsynth.backends.duckdb import file_sql

        spec = rel.specs[child]
        fk = DUCKDB.ident(str(spec.foreign_key))
        parents = normalise_frame(root[[pk, *spec.parent_columns]].rename(columns={pk: _KEY}))
        self._register(f"__dpsynth_parents_{i}", parents)
        if isinstance(source, pd.DataFrame):
            inner = self._register(f"__dpsynth_child_{i}", normalise_frame(source))
        elif isinstance(source, (str, Path)):
            inner = file_sql(self._con, source, rel.schemas[child].missing_values, sep=spec.sep)
        else:
            raise ConfigError(f"table {child!r}: give a CSV/Parquet path or a DataFrame for the duckdb engine")
        columns = [str(r[0]) for r in self._con.execute(f"DESCRIBE {inner}").fetchall()]
        if str(spec.foreign_key) not in columns:
            raise ConfigError(f"table {child!r}: the data has no foreign key column {str(spec.foreign_key)!r}")
        skip = {str(spec.foreign_key), *spec.parent_columns}  # the person's values come from the root
        own = ", ".join(f"c.{DUCKDB.ident(c)}" for c in columns if c not in skip)
        picked = ", ".join(f"p.{DUCKDB.ident(c)}" for c in spec.parent_columns)
        sql = (f"SELECT {own + ', ' if own else ''}p.{_KEY} AS {fk}{', ' + picked if picked else ''} "
               f"FROM ({inner}) AS c JOIN __dpsynth_parents_{i} AS p "
               f"ON trim(CAST(c.{fk} AS VARCHAR)) = p.{_KEY}")
        path = Path(self._scratch.name) / f"{i}.parquet"
        self._con.execute(f"COPY ({sql}) TO {DUCKDB.string(str(path))} (FORMAT parquet)")
        return path

    def counts(self, child: str) -> pd.Series:
        """Each person's number of rows in ``child`` (persons without rows are absent)."""
        fk = DUCKDB.ident(self._fks[child])
        frame = self._con.execute(f"SELECT {fk} AS k, count(*) AS n FROM read_parquet("
                                  f"{DUCKDB.string(str(self.paths[child]))}) GROUP BY {fk}").df()
        return pd.Series(frame["n"].to_numpy(), index=frame["k"].astype("string"))

    def close(self) -> None:
        self.paths.clear()
        self._frames.clear()
        self._con.close()
        self._scratch.cleanup()

    def __enter__(self) -> ChildRelations:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def add_counts(rel: RelationalSchema, root: pd.DataFrame, children: ChildRelations) -> pd.DataFrame:
    """The root with its clamped ``n_<child>`` columns, counted by DuckDB."""
    out = root.copy()
    pk = str(rel.specs[rel.root].primary_key)
    for child in rel.children:
        bound = int(rel.specs[child].max_rows_per_parent or 1)
        out[count_column(child)] = (out[pk].map(children.counts(child)).fillna(0).astype("int64").clip(upper=bound))
    return out
