"""A vector of factors indexed by clique, with the arithmetic mirror descent needs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Union

import numpy as np

from dpsynth.errors import ConfigError
from dpsynth.pgm.domain import Domain
from dpsynth.pgm.factor import Factor

__all__ = ["CliqueVector"]

Clique = tuple[str, ...]
Operand = Union["CliqueVector", float, int]


@dataclass(frozen=True, eq=False)
class CliqueVector(Mapping[Clique, Factor]):
    """An immutable mapping ``clique -> Factor`` that behaves like one long vector.

    Attributes:
        factors: The factor of each clique (each factor's attributes are its clique).
    """

    factors: dict[Clique, Factor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for clique, factor in self.factors.items():
            if tuple(clique) != factor.attrs:
                raise ConfigError(f"factor over {factor.attrs} stored under clique {clique}")

    @classmethod
    def zeros(cls, domain: Domain, cliques: list[Clique]) -> CliqueVector:
        """All-zero factors over ``cliques`` (a uniform model in log space)."""
        return cls({tuple(c): Factor.zeros(domain.project(c)) for c in cliques})

    def __getitem__(self, clique: Clique) -> Factor:
        return self.factors[clique]

    def __iter__(self) -> Iterator[Clique]:
        return iter(self.factors)

    def __len__(self) -> int:
        return len(self.factors)

    @property
    def cliques(self) -> list[Clique]:
        """The cliques, in insertion order."""
        return list(self.factors)

    def _map(self, other: Operand, op: str) -> CliqueVector:
        out: dict[Clique, Factor] = {}
        for clique, factor in self.factors.items():
            rhs: Factor | float = other[clique] if isinstance(other, CliqueVector) else float(other)
            if op == "+":
                out[clique] = factor + rhs
            elif op == "-":
                out[clique] = factor - rhs
            else:
                out[clique] = factor * rhs
        return CliqueVector(out)

    def __add__(self, other: Operand) -> CliqueVector:
        return self._map(other, "+")

    def __sub__(self, other: Operand) -> CliqueVector:
        return self._map(other, "-")

    def __mul__(self, other: Operand) -> CliqueVector:
        return self._map(other, "*")

    __rmul__ = __mul__

    def dot(self, other: CliqueVector) -> float:
        """Inner product over all cliques (``-inf * 0`` cells contribute 0)."""
        total = 0.0
        for clique, factor in self.factors.items():
            prod = factor.values * other[clique].transpose(factor.attrs).values
            total += float(np.sum(np.nan_to_num(prod, nan=0.0)))
        return total

    def exp(self) -> CliqueVector:
        """Elementwise exp of every factor."""
        return CliqueVector({c: f.exp() for c, f in self.factors.items()})

    def log(self) -> CliqueVector:
        """Elementwise log of every factor."""
        return CliqueVector({c: f.log() for c, f in self.factors.items()})

    def expand(self, domain: Domain, cliques: list[Clique]) -> CliqueVector:
        """Sum each factor into the first of ``cliques`` that contains it (broadcast).

        Raises:
            ConfigError: If some factor's clique is not covered by any of ``cliques``.
        """
        out = {tuple(c): Factor.zeros(domain.project(c)) for c in cliques}
        for clique, factor in self.factors.items():
            home = next((c for c in out if set(clique) <= set(c)), None)
            if home is None:
                raise ConfigError(f"clique {clique} is not contained in any of {cliques}")
            out[home] = out[home] + factor.expand(out[home].domain)
        return CliqueVector(out)

    def project(self, cliques: list[Clique], *, log: bool = True) -> CliqueVector:
        """Marginals onto ``cliques``, each taken from the first factor that contains it."""
        out: dict[Clique, Factor] = {}
        for target in cliques:
            source = next((f for c, f in self.factors.items() if set(target) <= set(c)), None)
            if source is None:
                raise ConfigError(f"clique {target} is not contained in any clique of the vector")
            out[tuple(target)] = source.project(tuple(target), log=log)
        return CliqueVector(out)
