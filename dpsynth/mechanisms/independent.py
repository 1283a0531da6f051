"""Two baselines: ``independent`` (noisy 1-way marginals only) and ``schema_only`` (no data).

``independent`` spends its whole budget on the 1-way marginals and models the columns as
independent. ``schema_only`` reads no private data and spends nothing: it draws rows
uniformly over the public domain, honouring the schema's structural constraints.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from dpsynth.errors import ConfigError
from dpsynth.mechanisms.base import MarginalFit, sigma_for_rho
from dpsynth.mechanisms.registry import Constraints, MechanismPlan, ModelSize
from dpsynth.pgm import Domain, estimate, estimate_total
from dpsynth.privacy.gate import PrivateData
from dpsynth.privacy.guarantee import PrivacyStatement, marginal_statement, no_data_statement
from dpsynth.privacy.measure import Measurement

if TYPE_CHECKING:  # pragma: no cover
    from dpsynth.privacy.randomness import MechanismKey
    from dpsynth.tabular.schema import Schema

__all__ = ["IndependentMechanism", "SchemaOnlyMechanism", "fit_independent", "fit_schema_only"]


def fit_independent(
    data: PrivateData,
    *,
    rho: float,
    constraints: Sequence[dict[str, int | Sequence[int]]] = (),
    iters: int = 200,
) -> MarginalFit:
    """Measure every 1-way marginal with the whole budget ``rho``."""
    if not rho > 0:
        raise ConfigError(f"rho ({rho}) must be > 0")
    domain = Domain.from_dict(data.domain)
    sigma = sigma_for_rho(rho, count=len(domain.attrs), sensitivity=data.sensitivity)
    ones = data.measure([(a,) for a in domain.attrs], sigma=sigma, label="independent 1-way")
    total = estimate_total(ones)
    model = estimate(domain, ones, total=total, iters=iters, constraints=constraints, start="measurements")
    return MarginalFit("independent", domain, tuple(ones), (), model, total, {"sigma": sigma})


def fit_schema_only(
    domain_sizes: dict[str, int],
    *,
    constraints: Sequence[dict[str, int | Sequence[int]]] = (),
) -> MarginalFit:
    """A uniform model over the public domain; reads no data and spends nothing."""
    domain = Domain.from_dict(domain_sizes)
    empty: list[Measurement] = []
    model = estimate(domain, empty, total=1.0, iters=1, constraints=constraints)
    return MarginalFit("schema_only", domain, (), (), model, 1.0, {})


class IndependentMechanism:
    """``independent`` in the mechanism registry (:mod:`dpsynth.mechanisms.registry`)."""

    name = "independent"
    reads_data = True
    needs_approx_dp = False
    config_type = None

    def plan(self, schema: Schema, rho: float, config: None) -> MechanismPlan:
        """Every 1-way marginal with the whole budget."""
        d = len(schema.domain())
        sigma = sigma_for_rho(rho, count=d, sensitivity=float(schema.privacy_unit.sensitivity_rows))
        return MechanismPlan([{"what": "every 1-way marginal", "count": d, "sigma": sigma}], [])

    def size(self, schema: Schema, config: None) -> ModelSize:
        """One table per column."""
        cells = sum(schema.domain().values())
        return ModelSize(cells, cells, cells, cells)

    def fit(self, gate: PrivateData | None, schema: Schema, *, rho: float, config: None,
            key: MechanismKey, constraints: Constraints, delta: float) -> MarginalFit:
        """:func:`fit_independent`."""
        assert gate is not None
        return fit_independent(gate, rho=rho, constraints=constraints)

    def statement(self, result: MarginalFit) -> PrivacyStatement:
        """The marginal-based statement."""
        return marginal_statement(self.name)


class SchemaOnlyMechanism:
    """``schema_only`` in the mechanism registry: reads no data, spends nothing."""

    name = "schema_only"
    reads_data = False
    needs_approx_dp = False
    config_type = None

    def plan(self, schema: Schema, rho: float, config: None) -> MechanismPlan:
        """No measurements."""
        return MechanismPlan([], ["reads no private data; spends nothing"])

    def size(self, schema: Schema, config: None) -> ModelSize:
        """A uniform table per column."""
        domain = schema.domain()
        cells = sum(domain.values())
        return ModelSize(cells, cells, cells, max(domain.values()))

    def fit(self, gate: PrivateData | None, schema: Schema, *, rho: float, config: None,
            key: MechanismKey, constraints: Constraints, delta: float) -> MarginalFit:
        """:func:`fit_schema_only` (``gate`` is ignored and may be ``None``)."""
        return fit_schema_only(schema.domain(), constraints=constraints)

    def statement(self, result: MarginalFit) -> PrivacyStatement:
        """The no-data statement."""
        return no_data_statement(self.name)
