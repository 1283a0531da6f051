"""Factors: arrays over a sub-domain with broadcasting arithmetic, in log space by default.

A :class:`Factor` is a value (frozen): every operation returns a new factor. Arithmetic between
two factors broadcasts both onto the union of their domains; marginalisation is a
max-shifted log-sum-exp; nothing loops over cells in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np
import numpy.typing as npt

from dpsynth.arrays import FloatArray
from dpsynth.errors import ConfigError
from dpsynth.pgm.domain import Domain

__all__ = ["Factor", "logsumexp_axes"]

Operand = Union["Factor", float, int]


def logsumexp_axes(values: FloatArray, axes: tuple[int, ...]) -> FloatArray:
    """``log(sum(exp(values)))`` over ``axes``, stable for ``-inf`` entries and slices."""
    if not axes:
        return values.copy()
    peak = np.max(values, axis=axes, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(values - peak), axis=axes, keepdims=True)) + peak
    return np.asarray(np.squeeze(out, axis=axes), dtype=np.float64)


@dataclass(frozen=True, eq=False)
class Factor:
    """A real array indexed by the codes of ``domain`` (usually log-potentials).

    Attributes:
        domain: The attributes of the axes, in axis order.
        values: Array of shape ``domain.shape``.
    """

    domain: Domain
    values: FloatArray

    def __post_init__(self) -> None:
        if tuple(self.values.shape) != tuple(self.domain.shape):
            raise ConfigError(
                f"factor values shape {self.values.shape} does not match domain "
                f"{self.domain.attrs} of shape {self.domain.shape}"
            )

    @classmethod
    def zeros(cls, domain: Domain) -> Factor:
        """The all-zero factor (a uniform distribution in log space)."""
        return cls(domain, np.zeros(domain.shape))

    @classmethod
    def from_array(cls, domain: Domain, values: npt.ArrayLike) -> Factor:
        """Wrap an array (converted to float64) shaped like ``domain``."""
        return cls(domain, np.asarray(values, dtype=np.float64).reshape(domain.shape))

    @property
    def attrs(self) -> tuple[str, ...]:
        """The attributes of the axes."""
        return self.domain.attrs

    # ------------------------------------------------------------------ shape changes
    def transpose(self, attrs: tuple[str, ...]) -> Factor:
        """The same factor with its axes in the order of ``attrs`` (a permutation)."""
        if set(attrs) != set(self.attrs) or len(attrs) != len(self.attrs):
            raise ConfigError(f"{attrs} is not a permutation of {self.attrs}")
        perm = self.domain.axes(attrs)
        return Factor(self.domain.project(attrs), np.transpose(self.values, perm))

    def expand(self, domain: Domain) -> Factor:
        """Broadcast onto a superset domain (new axes repeat the values)."""
        domain.check(self.attrs)
        ordered = tuple(a for a in domain.attrs if a in self.domain)
        moved = self.transpose(ordered).values
        shape = tuple(s if a in self.domain else 1 for a, s in zip(domain.attrs, domain.shape, strict=True))
        out = np.broadcast_to(moved.reshape(shape), domain.shape)
        return Factor(domain, np.array(out))

    def logsumexp(self, attrs: tuple[str, ...] | None = None) -> Factor:
        """Sum out ``attrs`` (all when ``None``) in log space."""
        drop = self.attrs if attrs is None else tuple(attrs)
        axes = self.domain.axes(drop)
        keep = tuple(a for a in self.attrs if a not in drop)
        return Factor(self.domain.project(keep), logsumexp_axes(self.values, axes))

    def sum(self, attrs: tuple[str, ...] | None = None) -> Factor:
        """Sum out ``attrs`` (all when ``None``) in linear space."""
        drop = self.attrs if attrs is None else tuple(attrs)
        axes = self.domain.axes(drop)
        keep = tuple(a for a in self.attrs if a not in drop)
        return Factor(self.domain.project(keep), np.asarray(np.sum(self.values, axis=axes)))

    def project(self, attrs: tuple[str, ...], *, log: bool = True) -> Factor:
        """The marginal over ``attrs`` (in that axis order), summing in log or linear space."""
        self.domain.check(attrs)
        drop = tuple(a for a in self.attrs if a not in attrs)
        out = self.logsumexp(drop) if log else self.sum(drop)
        return out.transpose(tuple(attrs))

    # ------------------------------------------------------------------ arithmetic
    def _binary(self, other: Operand, op: str) -> Factor:
        if isinstance(other, Factor):
            domain = self.domain.merge(other.domain)
            left, right = self.expand_view(domain), other.expand_view(domain)
        else:
            domain, left, right = self.domain, self.values, np.full((), float(other))
        with np.errstate(invalid="ignore"):
            if op == "+":
                out = left + right
            elif op == "-":
                out = left - right
            elif op == "*":
                out = left * right
            else:
                with np.errstate(divide="ignore"):
                    out = left / right
        return Factor(domain, np.array(np.broadcast_to(out, domain.shape), dtype=np.float64))

    def expand_view(self, domain: Domain) -> FloatArray:
        """A broadcastable (not materialised) view of the values in ``domain``'s axis order."""
        ordered = tuple(a for a in domain.attrs if a in self.domain)
        moved = np.transpose(self.values, self.domain.axes(ordered))
        shape = tuple(s if a in self.domain else 1 for a, s in zip(domain.attrs, domain.shape, strict=True))
        return moved.reshape(shape)

    def __add__(self, other: Operand) -> Factor:
        return self._binary(other, "+")

    __radd__ = __add__

    def __sub__(self, other: Operand) -> Factor:
        return self._binary(other, "-")

    def __rsub__(self, other: Operand) -> Factor:
        return (self * -1.0) + other

    def __mul__(self, other: Operand) -> Factor:
        return self._binary(other, "*")

    __rmul__ = __mul__

    def __truediv__(self, other: Operand) -> Factor:
        return self._binary(other, "/")

    def __neg__(self) -> Factor:
        return Factor(self.domain, -self.values)

    def exp(self) -> Factor:
        """Elementwise ``exp`` (log space to linear space)."""
        return Factor(self.domain, np.exp(self.values))

    def log(self) -> Factor:
        """Elementwise ``log`` (``log 0 = -inf``)."""
        with np.errstate(divide="ignore"):
            return Factor(self.domain, np.log(self.values))

    def dot(self, other: Factor) -> float:
        """Sum of the elementwise product (``other`` is aligned to this factor's axes)."""
        aligned = other.transpose(self.attrs).values if other.attrs != self.attrs else other.values
        return float(np.sum(self.values * aligned))

    def normalize(self, total: float = 1.0, *, log: bool = True) -> Factor:
        """Rescale so the represented distribution sums to ``total``.

        Args:
            total: The target mass.
            log: Whether the values are log-space (shift) or linear (scale).
        """
        if log:
            shift = np.log(total) - float(
                logsumexp_axes(self.values, tuple(range(self.values.ndim)))
            )
            return Factor(self.domain, self.values + shift)
        mass = float(np.sum(self.values))
        if mass <= 0:
            raise ConfigError(f"factor over {self.attrs} has no positive mass to normalise")
        return Factor(self.domain, self.values * (total / mass))

    def datavector(self, *, flatten: bool = True) -> FloatArray:
        """The values as a flat vector (C order) or as the array itself."""
        return self.values.ravel() if flatten else self.values
