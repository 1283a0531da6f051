"""CliqueVector: a fitted model's log-potentials, one :class:`~dpsynth.pgm.factor.Factor` per clique.

It is the named, immutable form of the potentials that a :class:`~dpsynth.pgm.model.Model`
carries and saves; the estimator builds it once, at the end of a fit, from its working
``list`` of arrays aligned with ``tree.cliques`` (see :mod:`dpsynth.pgm.estimate`). It has
no arithmetic: the engine computes on those arrays, never on clique vectors.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from dpsynth.errors import ConfigError
from dpsynth.pgm.factor import Factor

__all__ = ["CliqueVector"]

Clique = tuple[str, ...]


@dataclass(frozen=True, eq=False)
class CliqueVector(Mapping[Clique, Factor]):
    """An immutable mapping ``clique -> Factor`` (each factor's attributes are its clique).

    Attributes:
        factors: The factor of each clique.
    """

    factors: dict[Clique, Factor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for clique, factor in self.factors.items():
            if tuple(clique) != factor.attrs:
                raise ConfigError(f"factor over {factor.attrs} stored under clique {clique}")

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
