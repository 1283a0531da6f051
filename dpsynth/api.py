"""The Python API: fit a synthesizer on confidential data, then sample from it.

:func:`fit` is the one place where private data enters: it checks the schema, opens a
counting backend, runs the mechanism under a fresh accountant and closes the backend. The
returned :class:`~dpsynth.synthesizer.Synthesizer` holds only public things (schema, transcript, model, privacy
statement), so everything after ``fit`` is post-processing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from dpsynth.backends.base import CountingBackend
from dpsynth.errors import ConfigError, SchemaError
from dpsynth.mechanisms import registry
from dpsynth.mechanisms.base import MarginalFit
from dpsynth.privacy.accountant import Accountant
from dpsynth.privacy.budget import ZCDP, ApproxDP, budget_of
from dpsynth.privacy.events import ApproxZCDPEvent, ZCDPEvent
from dpsynth.privacy.gate import PrivateData
from dpsynth.privacy.randomness import MechanismKey
from dpsynth.privacy.spend import PrivacySpend
from dpsynth.synthesizer import Synthesizer, load
from dpsynth.tabular.schema import Schema

if TYPE_CHECKING:  # pragma: no cover
    from dpsynth.mechanisms.aim import AIMConfig
    from dpsynth.mechanisms.mst import MSTConfig

__all__ = ["MECHANISMS", "Synthesizer", "fit", "load", "privacy_caveats", "schema_constraints"]

log = logging.getLogger(__name__)

#: The built-in mechanisms' names (kept for compatibility; the registry,
#: :func:`dpsynth.mechanisms.registry.names`, also lists mechanisms registered later).
MECHANISMS: tuple[str, ...] = registry.names()
#: A mechanism name (any name in :mod:`dpsynth.mechanisms.registry`).
Mechanism = str
DataSource = pd.DataFrame | str | Path | CountingBackend


def schema_constraints(schema: Schema) -> list[dict[str, int | Sequence[int]]]:
    """The schema's structural zeros as code assignments for the model: its forbidden
    combinations, then the cell pairs its inequalities rule out
    (:func:`dpsynth.tabular.constraints.inequality_assignments`)."""
    from dpsynth.tabular.constraints import constraint_kind, inequality_assignments

    names = {c.name for c in schema.columns}
    out: list[dict[str, int | Sequence[int]]] = []
    for con in schema.constraints:
        if constraint_kind(con, names) != "forbidden":
            continue
        out.append({
            col: [schema.category_code(col, v) for v in val] if isinstance(val, list)
            else schema.category_code(col, val)
            for col, val in con.items()
        })
    out.extend(inequality_assignments(schema))
    return out


def privacy_caveats(schema: Schema, *, allow_private_schema: bool,
                    discovered: frozenset[str] = frozenset()) -> list[str]:
    """Plain-language caveats that every statement of the guarantee must carry.

    Columns in ``discovered`` had their facts derived under DP in this run (DP schema
    discovery): their cost is in the ledger, so they carry no caveat.
    """
    covered = (" Facts marked source: dp were derived under differential privacy and are covered."
               if schema.dp_fact_costs() else "")
    caveats = [
        "The guarantee covers the rows of the input under the declared unit of privacy; it does "
        "not cover facts declared public in the schema (categories, bounds, bin edges)." + covered,
        "Differential privacy bounds what the release reveals about any one unit; it does not "
        "prevent inferences about groups that hold in the population.",
    ]
    dp_facts = [c for c, _ in schema.dp_fact_costs() if c not in discovered]
    if dp_facts:
        caveats.append(f"Facts of columns {dp_facts} are declared as derived under differential "
                       "privacy outside this run; their declared cost (dp_rho) is charged to the "
                       "ledger, but dpsynth cannot check how they were derived.")
    inferred = schema.private_inferred()
    if inferred and allow_private_schema:
        caveats.insert(0, "PRIVATE SCHEMA ACCEPTED: facts of columns "
                       f"{inferred} were read off the private data without differential privacy "
                       "(schema draft); they are not covered by the guarantee.")
    return caveats


def _open(data: DataSource, schema: Schema, engine: str, key: MechanismKey) -> CountingBackend:
    if isinstance(data, CountingBackend):
        return data
    from dpsynth.backends.factory import open_backend

    return open_backend(engine, data, schema, key=key)


def fit(
    data: DataSource,
    schema: Schema | str | Path | None,
    *,
    mechanism: str = "aim",
    epsilon: float | None = None,
    delta: float = 1e-9,
    rho: float | None = None,
    seed: int | None = None,
    engine: str = "numpy",
    allow_private_schema: bool = False,
    ledger_path: str | Path | None = None,
    lifetime_epsilon: float | None = None,
    lifetime_rho: float | None = None,
    ledger_label: str = "fit",
    options: object | None = None,
    mst: MSTConfig | None = None,
    aim: AIMConfig | None = None,
    neural: Any = None,
    discover_schema_epsilon: float | None = None,
    max_memory: str | int | None = None,
) -> Synthesizer:
    """Fit a synthesizer, spending the whole budget (and never more).

    Args:
        data: A DataFrame, a CSV/Parquet path, or an open counting backend.
        schema: The public schema, or a path to a schema file (as :func:`dpsynth.release`).
        mechanism: A registered mechanism (:func:`dpsynth.mechanisms.registry.names`):
            ``schema_only``, ``independent``, ``mst``, ``aim``, ``dpvae``, ``dpgan``, or one
            registered later.
        epsilon: Budget as (epsilon, delta)-DP; or give ``rho`` for zCDP.
        delta: The delta of the guarantee.
        rho: Budget as rho-zCDP (alternative to ``epsilon``).
        seed: Accepted for symmetry with :meth:`Synthesizer.sample`; fitting uses none of it.
            In-mechanism randomness (contribution bounding, DP-SGD batches and training
            noise) comes from a fresh per-run secret, and DP noise from OpenDP; a published
            seed can therefore never replay a fit.
        engine: Counting engine: ``numpy``, ``arrow`` (Parquet), ``duckdb`` or ``spark``.
        allow_private_schema: Accept a schema with ``private_inferred`` facts (recorded as a
            caveat of the guarantee).
        ledger_path: Persistent per-dataset ledger: the whole budget is reserved in it before
            any read (or the fit is refused, leaving it byte-identical), then committed.
        lifetime_epsilon: Lifetime cap (at ``delta``) stored when the ledger is created;
            default the run's budget. A later fit may repeat it but never change it (use
            ``dpsynth ledger raise-cap``). lifetime_rho: the same cap as rho-zCDP.
        ledger_label: What the run is, recorded with its reservation.
        options: The mechanism's options, an instance of its ``config_type`` (default: its
            default options).
        mst: MST options. aim: AIM options. neural: options of the neural generators (older
            spellings of ``options`` for those mechanisms).
        discover_schema_epsilon: Discover the schema's missing facts under DP first, spending
            this much of ``epsilon`` on them (docs/discovery.md); ``schema`` is then optional
            or partial (its columns stay declared). The model gets exactly what a fit at
            ``epsilon - discover_schema_epsilon`` would have had; the stated epsilon covers both.
        max_memory: Budget of the fit's working memory (bytes, or ``"512M"``, ``"2G"``); default
            a share of the machine's memory (:func:`dpsynth.mechanisms.plan.default_max_memory`).
            AIM's model cap is derived from it; a fixed-size model over it is refused before
            any data is read (:func:`dpsynth.mechanisms.plan.plan_fit`).
    """
    mech = registry.get(mechanism)
    config = registry.resolve_config(mech, _options(mechanism, options, mst=mst, aim=aim, neural=neural))
    if discover_schema_epsilon is not None:
        return _fit_discovering(data, schema, mech, config, epsilon=epsilon, delta=delta, rho=rho,
                                engine=engine, allow_private_schema=allow_private_schema,
                                ledger=(ledger_path, lifetime_epsilon, lifetime_rho, ledger_label),
                                discover_epsilon=discover_schema_epsilon, max_memory=max_memory)
    if schema is None:
        raise ConfigError("give a schema, or discover one under DP (discover_schema_epsilon)")
    schema = _public_schema(schema, allow_private_schema)
    constraints = schema_constraints(schema)
    caveats = privacy_caveats(schema, allow_private_schema=allow_private_schema)
    if not mech.reads_data:
        return _fit_without_data(mech, schema, config, constraints, caveats)
    budget = budget_of(epsilon=epsilon, delta=delta, rho=rho)
    from dpsynth.mechanisms.plan import plan_fit, within_memory

    # Refuse a model that cannot fit in memory from public sizes alone, before reading data.
    plan_fit(schema, mechanism=mechanism, epsilon=epsilon, delta=delta, rho=rho, options=config,
             max_memory=max_memory)
    config = within_memory(schema, mechanism, config, max_memory)
    if mech.needs_approx_dp and not isinstance(budget, ApproxDP):
        raise ConfigError(f"{mechanism} needs an ApproxDP accountant budget: DP-SGD has no finite zCDP cost")
    accountant = _accountant(budget, delta, ledger_path, lifetime_epsilon, lifetime_rho, ledger_label)
    try:
        result = _fit_reserved(data, schema, mech, config, accountant, engine, constraints, delta)
    except BaseException:
        accountant.abort()  # returns the reservation only if nothing was read
        raise
    return _fitted(schema, mech, accountant, result, caveats, delta)


def _fitted(schema: Schema, mech: registry.Mechanism, accountant: Accountant, result: Any,
            caveats: list[str], delta: float) -> Synthesizer:
    """End the run and wrap the mechanism's result with what it spent."""
    mechanism = mech.name
    accountant.commit()
    statement = mech.statement(result)
    if not isinstance(result, MarginalFit):  # a neural model
        caveats.extend(statement.caveats)
    # The spend's ledger holds no charge times: they track counting time, which grows with the
    # private row count.
    privacy = accountant.spend(delta).with_context(unit=schema.privacy_unit.describe(), caveats=caveats)
    if not isinstance(result, MarginalFit):
        return Synthesizer(schema, mechanism, privacy, int(result.estimated_rows), None, result,
                           params=dict(result.privacy), statement=statement)
    return Synthesizer(schema, mechanism, privacy, round(result.total), result.model, None,
                       result.measurements, result.selected, result.params, result.compression,
                       statement)


def _fit_discovering(data: DataSource, schema: Schema | str | Path | None, mech: registry.Mechanism,
                     config: Any, *, epsilon: float | None, delta: float, rho: float | None, engine: str,
                     allow_private_schema: bool, ledger: tuple[Any, float | None, float | None, str],
                     discover_epsilon: float, max_memory: str | int | None = None) -> Synthesizer:
    """Discover the schema under DP, then fit, in one run under one accountant (one epsilon)."""
    from dpsynth.mechanisms.plan import plan_fit, within_memory
    from dpsynth.schema_discovery import discover_schema, discovery_rho

    if not mech.reads_data:
        raise ConfigError(f"mechanism {mech.name!r} reads no data, so there is nothing to discover a schema from")
    if epsilon is None or rho is not None:
        raise ConfigError("schema discovery needs an epsilon budget (it spends part of it)")
    if engine not in ("numpy", "arrow") or not isinstance(data, (pd.DataFrame, str, Path)):
        raise ConfigError("schema discovery reads the data as a file or DataFrame with the numpy or "
                          "arrow engine; discover the schema first (dpsynth schema discover) for other engines")
    partial = None if schema is None else _public_schema(schema, allow_private_schema)
    disc_rho = discovery_rho(epsilon, discover_epsilon, delta)
    budget = budget_of(epsilon=epsilon, delta=delta, rho=None)
    path, life_eps, life_rho, label = ledger
    accountant = _accountant(budget, delta, path, life_eps, life_rho, label)
    try:
        found = discover_schema(data, accountant, rho=disc_rho, delta=delta, partial=partial)
        full = found.schema
        plan_fit(full, mechanism=mech.name, epsilon=epsilon, delta=delta, options=config,
                 max_memory=max_memory)
        config = within_memory(full, mech.name, config, max_memory)
        constraints = schema_constraints(full)
        result = _fit_reserved(data, full, mech, config, accountant, engine, constraints, delta,
                               charged=frozenset(found.discovered))
    except BaseException:
        accountant.abort()
        raise
    caveats = privacy_caveats(full, allow_private_schema=allow_private_schema,
                              discovered=frozenset(found.discovered))
    return _fitted(full, mech, accountant, result, caveats, delta)


def _public_schema(schema: Schema | str | Path, allow_private_schema: bool) -> Schema:
    """The schema (loaded from a path if need be), refused if it has unaccepted private facts."""
    if not isinstance(schema, Schema):
        from dpsynth.tabular.schema import load_schema

        schema = load_schema(schema)
    inferred = schema.private_inferred()
    if inferred and not allow_private_schema:
        raise SchemaError(
            f"the schema has private_inferred facts (columns {inferred}); declare public facts, "
            "or pass allow_private_schema=True / --allow-private-schema to accept the caveat")
    return schema


def _fit_without_data(mech: registry.Mechanism, schema: Schema, config: Any,
                      constraints: list[dict[str, int | Sequence[int]]], caveats: list[str]) -> Synthesizer:
    """A mechanism that reads no private data: no accountant, no backend, epsilon 0."""
    if schema.dp_fact_costs():
        raise ConfigError(f"mechanism {mech.name!r} spends nothing, but the schema has facts "
                          "derived under DP (dp_rho); release them with a budget-spending mechanism")
    result = mech.fit(None, schema, rho=0.0, config=config, key=MechanismKey.fresh(),
                      constraints=constraints, delta=0.0)
    privacy = PrivacySpend.nothing_read(schema.privacy_unit.describe(), caveats)
    return Synthesizer(schema, mech.name, privacy, 1000, result.model, statement=mech.statement(result))


def _accountant(budget: ApproxDP | ZCDP, delta: float, ledger_path: str | Path | None,
                lifetime_epsilon: float | None, lifetime_rho: float | None, label: str) -> Accountant:
    """A fresh accountant; with a ledger, the whole budget is reserved in it now (or refused)."""
    if lifetime_epsilon is not None and lifetime_rho is not None:
        raise ConfigError("give at most one of lifetime_epsilon or lifetime_rho")
    lifetime = (ApproxDP(lifetime_epsilon, delta) if lifetime_epsilon is not None
                else ZCDP(lifetime_rho) if lifetime_rho is not None else None)
    if lifetime is not None and not ledger_path:
        raise ConfigError("a lifetime cap (lifetime_epsilon/lifetime_rho) needs a ledger (ledger_path)")
    return Accountant(budget, ledger_path=Path(ledger_path) if ledger_path else None,
                      lifetime=lifetime, label=label)


def _options(mechanism: str, options: object | None, *, mst: object | None, aim: object | None,
             neural: object | None) -> object | None:
    """``options``, or the older per-mechanism keyword for ``mechanism`` (others are ignored)."""
    legacy = {"mst": mst, "aim": aim, "dpvae": neural, "dpgan": neural}.get(mechanism)
    if options is not None and legacy is not None:
        raise ConfigError(f"give the options of mechanism {mechanism!r} once: options= or its own keyword")
    return options if options is not None else legacy


def _fit_reserved(data: DataSource, schema: Schema, mech: registry.Mechanism, config: Any,
                  accountant: Accountant, engine: str, constraints: list[dict[str, int | Sequence[int]]],
                  delta: float, charged: frozenset[str] = frozenset()) -> Any:
    """Run the mechanism under ``accountant`` (its budget already reserved): the reads happen here.

    Columns in ``charged`` had their DP facts discovered (and charged) in this run already.
    """
    unit = schema.privacy_unit
    # Schema facts derived under DP were read from this data too: they are charged first, so
    # the stated epsilon covers schema and model, and the mechanism gets what is left.
    for column, fact_rho, fact_delta in schema.dp_fact_charges():
        if column in charged:
            continue
        label = f"schema facts of {column!r} (source: dp)"
        accountant.charge(ApproxZCDPEvent(fact_rho, fact_delta, label) if fact_delta > 0
                          else ZCDPEvent(fact_rho, label=label))
    total_rho = accountant.remaining_rho
    sensitivity = float(unit.sensitivity_rows)
    key = MechanismKey.fresh()  # in-mechanism randomness: secret, per run, never the seed
    backend = _open(data, schema, engine, key)
    gate = PrivateData(backend, accountant, sensitivity=sensitivity)
    try:
        return mech.fit(gate, schema, rho=total_rho, config=config, key=key, constraints=constraints,
                        delta=delta)
    finally:
        gate.close()
        if not isinstance(data, CountingBackend):
            backend.close()
