"""The one error tree of dpsynth.

Every error a user can trigger derives from :class:`DPSynthError`. Messages name the thing
and the constraint that failed, and never contain a value read from private data.
"""

from __future__ import annotations

__all__ = [
    "BudgetExceededError",
    "BundleError",
    "ConfigError",
    "DPSynthError",
    "MissingDependencyError",
    "ModelTooLargeError",
    "PrivateAccessError",
    "SchemaError",
]


class DPSynthError(Exception):
    """Base class of every error raised by dpsynth on purpose."""

    exit_code: int = 2


class ConfigError(DPSynthError, ValueError):
    """A configuration or parameter is invalid (a usage error, exit code 2)."""

    exit_code = 2


class SchemaError(DPSynthError, ValueError):
    """The public schema is invalid or does not fit the data's columns (exit code 4)."""

    exit_code = 4


class BudgetExceededError(DPSynthError):
    """A charge would exceed the remaining privacy budget; nothing was measured (exit code 3)."""

    exit_code = 3


class MissingDependencyError(DPSynthError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    exit_code = 2


class ModelTooLargeError(DPSynthError):
    """A model would exceed the memory cap, judged from public domain sizes before allocating."""

    exit_code = 2


class BundleError(DPSynthError):
    """A release bundle is incomplete, inconsistent or has been tampered with (exit code 1)."""

    exit_code = 1


class PrivateAccessError(DPSynthError):
    """Private data was accessed where only the public transcript may be used."""

    exit_code = 2


def require(module: str, extra: str) -> object:
    """Import an optional dependency or raise :class:`MissingDependencyError` naming the extra.

    Args:
        module: The module to import, e.g. ``"torch"``.
        extra: The dpsynth extra that provides it, e.g. ``"neural"``.

    Returns:
        The imported module.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"{module} is not installed; install it with: pip install 'dpsynth[{extra}]'"
        ) from exc
