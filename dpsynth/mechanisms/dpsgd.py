"""The DP-SGD generators (``dpvae``, ``dpgan``) in the mechanism registry.

The adapters import :mod:`dpsynth.neural` only when asked for their options or a fit, so
registering them imports no torch; fitting without the ``neural`` extra raises
:class:`~dpsynth.errors.MissingDependencyError` from :func:`dpsynth.neural.fit_neural`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from dpsynth.mechanisms.registry import Constraints, MechanismPlan, ModelSize
from dpsynth.privacy.guarantee import PrivacyStatement

if TYPE_CHECKING:  # pragma: no cover
    from dpsynth.neural.io import NeuralModel
    from dpsynth.privacy.gate import PrivateData
    from dpsynth.privacy.randomness import MechanismKey
    from dpsynth.tabular.schema import Schema

__all__ = ["DPSGDMechanism"]


class DPSGDMechanism:
    """A DP-SGD generator (``kind`` ``dpvae`` or ``dpgan``); options are a ``NeuralConfig``."""

    reads_data = True
    needs_approx_dp = True

    def __init__(self, kind: Literal["dpvae", "dpgan"]) -> None:
        self.name: str = kind
        self.kind: Literal["dpvae", "dpgan"] = kind

    @property
    def config_type(self) -> type[Any]:
        """:class:`dpsynth.neural.NeuralConfig` (imported on first use; no torch)."""
        from dpsynth.neural.train import NeuralConfig

        return NeuralConfig

    def plan(self, schema: Schema, rho: float, config: Any) -> MechanismPlan:
        """DP-SGD's noise multiplier depends on a DP row estimate: only a note here."""
        return MechanismPlan([], ["DP-SGD training; noise multiplier calibrated from the training "
                                  "share of the budget"])

    def size(self, schema: Schema, config: Any) -> ModelSize:
        """The 1-way tables (the network's weights are small beside the data)."""
        cells = sum(schema.domain().values())
        return ModelSize(cells, cells, cells, cells)

    def fit(self, gate: PrivateData | None, schema: Schema, *, rho: float, config: Any,
            key: MechanismKey, constraints: Constraints, delta: float) -> NeuralModel:
        """:func:`dpsynth.neural.fit_neural` (the budget comes from the gate's accountant)."""
        from dpsynth.neural.fit import fit_neural

        assert gate is not None
        return fit_neural(self.kind, gate, schema, key=key, config=config, delta=delta)

    def statement(self, result: NeuralModel) -> PrivacyStatement:
        """The DP-SGD statement, with the run's secure-mode setting."""
        return result.statement
