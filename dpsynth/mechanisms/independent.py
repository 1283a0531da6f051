"""Two baselines: ``independent`` (noisy 1-way marginals only) and ``schema_only`` (no data).

``independent`` spends its whole budget on the 1-way marginals and models the columns as
independent. ``schema_only`` reads no private data and spends nothing: it draws rows
uniformly over the public domain, honouring the schema's structural constraints.
"""

from __future__ import annotations

from collections.abc import Sequence

from dpsynth.errors import ConfigError
from dpsynth.mechanisms.base import MarginalFit, sigma_for_rho
from dpsynth.pgm import Domain, estimate, estimate_total
from dpsynth.privacy.gate import PrivateData
from dpsynth.privacy.measure import Measurement

__all__ = ["fit_independent", "fit_schema_only"]


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
    model = estimate(domain, ones, total=total, iters=iters, constraints=constraints)
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
