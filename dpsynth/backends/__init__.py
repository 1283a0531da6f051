"""Counting backends: the engines that compute exact marginal counts where the data lives.

``duckdb`` and ``pyspark`` are imported only when their backend is created.
"""

from dpsynth.backends.base import CountingBackend
from dpsynth.backends.bounding import bound_contributions, encode_bounded
from dpsynth.backends.duckdb import DuckDBBackend
from dpsynth.backends.factory import ENGINES, open_backend
from dpsynth.backends.numpy import NumpyBackend
from dpsynth.backends.spark import SparkBackend

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
