"""Plan a linked release from public inputs alone: the guarantee and, per table, its share,
rho, sensitivity, modelled columns and model plan (``dpsynth plan-tables``)."""

from __future__ import annotations

from typing import Any

from dpsynth.errors import ConfigError
from dpsynth.privacy.budget import budget_of
from dpsynth.relational.fit import MECHANISMS, fit_schemas
from dpsynth.relational.schema import RelationalSchema

__all__ = ["plan_relational"]


def plan_relational(rel: RelationalSchema, *, mechanism: str = "aim", epsilon: float | None = None,
                    delta: float = 1e-9, rho: float | None = None,
                    max_memory: str | int | None = None) -> dict[str, Any]:
    """What a linked release would spend and build, from public inputs alone (no data read):
    the guarantee, and per table its share, rho, sensitivity and model plan."""
    from dpsynth.mechanisms.plan import plan_fit
    from dpsynth.privacy.accountant import Accountant
    from dpsynth.privacy.budget import ApproxDP

    if mechanism not in MECHANISMS:
        raise ConfigError(f"mechanism ({mechanism!r}) must be one of {list(MECHANISMS)} for linked tables")
    budget = budget_of(epsilon=epsilon, delta=delta, rho=rho)
    total = Accountant(budget).remaining_rho
    tables = {}
    for name, schema in fit_schemas(rel).items():
        share = total * rel.shares[name]
        plan = plan_fit(schema, mechanism=mechanism, rho=share, delta=delta, max_memory=max_memory).to_json()
        tables[name] = {"budget_share": rel.shares[name], "rho": share,
                        "sensitivity_rows": schema.privacy_unit.sensitivity_rows,
                        "modelled_columns": [c.name for c in schema.modelled], "plan": plan}
    return {"epsilon": epsilon if isinstance(budget, ApproxDP) else None, "delta": delta, "rho": total,
            "unit": rel.describe_unit(), "mechanism": mechanism, "tables": tables}
