"""Counting backends: the engines that compute exact marginal counts where the data lives."""

from dpsynth.backends.base import CountingBackend
from dpsynth.backends.numpy import NumpyBackend

__all__ = ["CountingBackend", "NumpyBackend"]
