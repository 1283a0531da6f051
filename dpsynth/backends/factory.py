"""Open the counting backend an engine name asks for, over a file or frame and a schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from dpsynth.backends.base import CountingBackend
from dpsynth.backends.bounding import encode_bounded
from dpsynth.backends.numpy import NumpyBackend
from dpsynth.errors import ConfigError
from dpsynth.privacy.randomness import MechanismKey
from dpsynth.tabular.encoding import read_frame
from dpsynth.tabular.schema import Schema

__all__ = ["ENGINES", "open_backend"]

ENGINES = ("numpy", "arrow", "duckdb", "spark")


def open_backend(
    engine: str,
    source: Any,
    schema: Schema,
    *,
    key: MechanismKey | None = None,
    **engine_options: Any,
) -> CountingBackend:
    """A counting backend of ``engine`` over ``source``, encoded with ``schema``.

    Args:
        engine: ``"numpy"`` (in memory), ``"arrow"`` (Parquet streamed with pyarrow),
            ``"duckdb"`` (embedded, out of core) or ``"spark"``.
        source: A CSV/Parquet path or a pandas DataFrame; the arrow engine reads Parquet only
            (a file, a directory or a glob) and also takes a pyarrow Table, DuckDB a relation,
            Spark a Spark DataFrame or a table name.
        schema: The public schema.
        key: The run's in-mechanism secret, which keys contribution bounding (person-level
            privacy unit only); ``None`` draws a fresh one. Never derived from the user's seed.
        **engine_options: Options of the engine's backend class (e.g. ``memory_limit`` for
            DuckDB, ``spark`` for Spark, ``threads`` for arrow); numpy takes none.

    Returns:
        The backend; call ``close()`` when done.
    """
    key = key if key is not None else MechanismKey.fresh()
    if engine == "numpy":
        if engine_options:
            raise ConfigError(f"engine 'numpy' takes no options (got {sorted(engine_options)})")
        if isinstance(source, pd.DataFrame):
            frame = source
        elif isinstance(source, (str, Path)):
            frame = read_frame(source, schema)
        else:
            raise ConfigError("engine 'numpy' needs a path or a pandas DataFrame")
        return NumpyBackend(encode_bounded(frame, schema, key))
    if engine == "arrow":
        from dpsynth.backends.arrow import ArrowBackend

        return ArrowBackend(source, schema, key=key, **engine_options)
    if engine == "duckdb":
        from dpsynth.backends.duckdb import DuckDBBackend

        return DuckDBBackend(source, schema, key=key, **engine_options)
    if engine == "spark":
        from dpsynth.backends.spark import SparkBackend

        spark_backend: CountingBackend = SparkBackend(source, schema, key=key, **engine_options)
        return spark_backend
    raise ConfigError(f"engine {engine!r} must be one of {list(ENGINES)}")
