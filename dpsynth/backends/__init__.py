"""Counting backends: the engines that compute exact marginal counts where the data lives.

``duckdb`` and ``pyspark`` are imported only when their backend is created, and the modules of
the DuckDB and Spark backends only when their class is first asked for.
"""

from typing import Any

from dpsynth.backends.base import CountingBackend
from dpsynth.backends.bounding import bound_contributions, encode_bounded
from dpsynth.backends.factory import ENGINES, open_backend
from dpsynth.backends.numpy import NumpyBackend

__all__ = [
    "ENGINES",
    "CountingBackend",
    "DuckDBBackend",
    "NumpyBackend",
    "SparkBackend",
    "bound_contributions",
    "encode_bounded",
    "open_backend",
]


def __getattr__(name: str) -> Any:
    if name == "DuckDBBackend":
        from dpsynth.backends.duckdb import DuckDBBackend

        return DuckDBBackend
    if name == "SparkBackend":
        from dpsynth.backends.spark import SparkBackend

        return SparkBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
