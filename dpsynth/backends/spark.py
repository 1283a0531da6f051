"""Counting with Spark: encode with Spark SQL where the data lives, collect only count tensors.

The source (a Spark DataFrame, a catalog table or CSV/Parquet paths) stays in the cluster.
Codes are built with the same SQL as the DuckDB backend (:mod:`dpsynth.backends.sql`, Spark
dialect), so the encoding is identical to :mod:`dpsynth.tabular.encoding`. Costly text columns are
encoded once per distinct value into small cached map tables, broadcast to the executors and
joined to the rows; the rows are pre-aggregated on one packed key and all requested marginals
come from one ``GROUP BY GROUPING SETS`` job. Only the grouped counts (public-domain sized)
come back to the driver, where they are scattered into dense tensors and cached.

NFC normalisation uses ICU4J, which Spark 4 ships (``com.ibm.icu.text.Normalizer``), through
``reflect``, once per distinct value; no Python UDF runs on the executors. Spark event logs, if enabled on the cluster,
record job metrics such as row counts: treat them as confidential.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dpsynth.backends.sql import (
    SPARK,
    SQLBackend,
    missing_expr,
    source_kind,
)
from dpsynth.errors import ConfigError, require
from dpsynth.privacy.randomness import MechanismKey
from dpsynth.tabular.schema import Schema

__all__ = ["SparkBackend", "local_session"]

log = logging.getLogger(__name__)

_CSV = (".csv", ".tsv", ".txt")
_PARQUET = (".parquet", ".pq")
_NO_NULL = "\x00dpsynth-no-null\x00"


def local_session(cores: int = 2, driver_memory: str = "1g") -> Any:
    """A local Spark session for tests and single machines: UI off, few shuffle partitions.

    Args:
        cores: Worker threads (``local[cores]``).
        driver_memory: ``spark.driver.memory`` (only honoured when the JVM starts here).
    """
    sql: Any = require("pyspark.sql", "scale")
    spark = (
        sql.SparkSession.builder.master(f"local[{int(cores)}]")
        .appName("dpsynth")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.eventLog.enabled", "false")
        .config("spark.sql.shuffle.partitions", str(2 * int(cores)))
        .config("spark.driver.memory", driver_memory)
        .config("spark.sql.session.timeZone", "UTC")
        # Let the JIT compile Spark's large generated methods (HotSpot skips methods over 8 kB
        # of bytecode by default, and the encoding stage of a wide table produces such methods).
        .config("spark.driver.extraJavaOptions", "-XX:-DontCompileHugeMethods")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


class SparkBackend(SQLBackend):
    """Exact marginal counts computed by Spark SQL.

    Args:
        source: A Spark DataFrame, the name of a table in the session catalog, or a path
            (glob allowed) to CSV or Parquet files. CSV cells are read as text and
            ``schema.missing_values`` become nulls.
        schema: The public schema; its modelled columns define the domain.
        spark: The Spark session; the active one (or a new default one) when None.
        key: The run's in-mechanism secret, which keys contribution bounding (person-level
            privacy unit only); a fresh one when None. Never the user's seed.

    The session time zone is set to UTC while a count runs (timestamps are read in UTC, as
    the numpy encoder does) and restored afterwards.
    """

    def __init__(self, source: Any, schema: Schema, *, spark: Any = None,
                 key: MechanismKey | None = None) -> None:
        sql: Any = require("pyspark.sql", "scale")
        self._init_cache(schema)
        self._dialect = SPARK
        self._map_frames: dict[str, Any] = {}
        self._one_scan_maps = True
        self._key = key if key is not None else MechanismKey.fresh()
        self._spark = spark or sql.SparkSession.getActiveSession() or sql.SparkSession.builder.getOrCreate()
        frame = self._open(sql, source)
        self._source = f"dpsynth_src_{uuid.uuid4().hex}"
        frame.createOrReplaceTempView(self._source)
        self._kinds = {str(n): source_kind(str(t)) for n, t in frame.dtypes}
        self._check_columns()

    def _open(self, sql: Any, source: Any) -> Any:
        if isinstance(source, sql.DataFrame):
            return source
        if not isinstance(source, (str, Path)):
            raise ConfigError("source must be a Spark DataFrame, a table name or a CSV/Parquet path")
        path = str(source)
        suffix = Path(path).suffix.lower()
        if suffix not in _CSV + _PARQUET and "/" not in path:
            return self._spark.table(path)
        if suffix in _PARQUET:
            return self._spark.read.parquet(path)
        if suffix not in _CSV:
            raise ConfigError(f"input {Path(path).name}: unsupported format {suffix!r} (use .csv or .parquet)")
        raw = self._spark.read.csv(
            path,
            header=True,
            inferSchema=False,
            sep="\t" if suffix == ".tsv" else ",",
            encoding="UTF-8",
            quote='"',
            escape='"',
            nullValue=_NO_NULL,
            emptyValue="",
            ignoreLeadingWhiteSpace=False,
            ignoreTrailingWhiteSpace=False,
            multiLine=True,
        )
        exprs = [
            f"{missing_expr(SPARK, SPARK.ident(c), self._schema.missing_values)} AS "
            f"{SPARK.ident(c.lstrip(chr(0xFEFF)).lstrip(' '))}"
            for c in raw.columns
        ]
        return raw.selectExpr(*exprs)

    @contextmanager
    def _utc(self) -> Iterator[None]:
        conf = self._spark.conf
        zone = conf.get("spark.sql.session.timeZone")
        conf.set("spark.sql.session.timeZone", "UTC")
        try:
            yield
        finally:
            conf.set("spark.sql.session.timeZone", zone)

    def _query(self, sql: str) -> dict[str, Any]:
        with self._utc():
            table = self._spark.sql(sql).toArrow()
        return {n: table.column(n).to_numpy(zero_copy_only=False) for n in table.column_names}

    def _make_map(self, name: str, sql: str, limit: int) -> bool:
        with self._utc():
            frame = self._spark.sql(sql).cache()
            if frame.count() > limit:
                frame.unpersist()
                return False
        frame.createOrReplaceTempView(name)
        self._map_frames[name] = frame
        return True

    def _make_combined(self, name: str, sql: str) -> dict[int, int]:
        with self._utc():
            frame = self._spark.sql(sql).cache()
            sizes = {int(r[0]): int(r[1]) for r in frame.groupBy("__i").count().collect()}
        frame.createOrReplaceTempView(name)
        self._map_frames[name] = frame
        return sizes

    def _drop_map(self, name: str) -> None:
        frame = self._map_frames.pop(name, None)
        if frame is not None:
            frame.unpersist()
        self._spark.catalog.dropTempView(name)

    def close(self) -> None:
        """Drop the temporary views, the cached maps and the cached counts."""
        if not self._closed:
            self._close_maps()
            self._spark.catalog.dropTempView(self._source)
        self._closed = True
        self._cache.clear()

