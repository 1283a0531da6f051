"""Factor: one named table, an array whose axes are the attributes of a sub-domain.

A :class:`Factor` is how the engine hands a table *across its boundary*: the fitted model's
log-potentials (:attr:`dpsynth.pgm.model.Model.potentials`, saved and loaded as files) and the
answers of :meth:`~dpsynth.pgm.model.Model.project`. Inside the engine (calibration, the loss,
the optimizers) tables are plain arrays in a ``list`` aligned with ``tree.cliques``, indexed
by clique position; that is the working representation, and the engine never does
arithmetic on factors. So a factor is a checked value (its shape matches its domain) and
nothing more: take ``.values`` to compute.
"""

from __future__ import annotations

from dataclasses import dataclass

from dpsynth.arrays import FloatArray
from dpsynth.errors import ConfigError
from dpsynth.pgm.domain import Domain

__all__ = ["Factor"]


@dataclass(frozen=True, eq=False)
class Factor:
    """A real array indexed by the codes of ``domain`` (log-potentials or expected counts).

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

    @property
    def attrs(self) -> tuple[str, ...]:
        """The attributes of the axes."""
        return self.domain.attrs
