"""Neighbouring linked tables: one person added or removed with all their child rows.

A relational release (:mod:`dpsynth.relational`) reads each table through its own gate: the
root with one row per person, each child joined with its person's parent columns and
bounded to ``max_rows_per_parent`` rows per person. Its guarantee needs every exact read of
every table to move by at most that table's sensitivity when one person comes or goes,
*after* the relational preparation (deduplicated root keys, clamped child counts, the join,
dropped orphans). :func:`check_linked` fits each table on ``D``, replays every read on each
neighbour's prepared tables with the same secret key, and reports the largest move per
table. A planted bug (a child fitted with the row as its unit) is caught by the same check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from audits.campaigns.common import Expect, Timer, VariantResult
from audits.campaigns.neighbours import MECHANISMS, SEED, SENS_RHO, VALUES, BackendFactory, Fit, _replay, engine_factory
from dpsynth.privacy.accountant import Accountant
from dpsynth.privacy.budget import ZCDP
from dpsynth.privacy.gate import GateRead, PrivateData
from dpsynth.privacy.randomness import MechanismKey
from dpsynth.relational.fit import _root_frame, fit_schemas, prepare_frames
from dpsynth.relational.schema import RelationalSchema, parse_relational
from dpsynth.tabular.schema import Schema, parse_schema

__all__ = ["LinkedOutcome", "check_linked", "in_duckdb", "in_memory", "linked_neighbours", "make_linked",
           "row_unit_children", "run"]
CAMPAIGN = "neighbours"
MAX_CHILDREN = 3

Schemas = Callable[[RelationalSchema], dict[str, Schema]]
#: How each table's source is prepared: in pandas, or joined in DuckDB (a Parquet file per child).
Prepare = Callable[[RelationalSchema, Mapping[str, pd.DataFrame]], AbstractContextManager[dict[str, Any]]]


@contextmanager
def in_memory(rel: RelationalSchema, frames: Mapping[str, pd.DataFrame]) -> Iterator[dict[str, Any]]:
    """The pandas preparation (``engine="numpy"``)."""
    yield dict(prepare_frames(rel, frames))


@contextmanager
def in_duckdb(rel: RelationalSchema, frames: Mapping[str, pd.DataFrame]) -> Iterator[dict[str, Any]]:
    """The DuckDB preparation (``engine="duckdb"``): each child joined and stored as Parquet."""
    from dpsynth.relational.sources import ChildRelations, add_counts

    root = _root_frame(rel, frames[rel.root])
    with ChildRelations(rel, root, frames) as joined:
        yield {rel.root: add_counts(rel, root, joined), **joined.paths}


def linked_neighbours(rel: RelationalSchema, frames: Mapping[str, pd.DataFrame],
                      rng: np.random.Generator) -> list[tuple[str, dict[str, pd.DataFrame]]]:
    """``D`` minus its person with the most child rows, and ``D`` plus a new person with twice
    each child's bound of rows (the surplus must be bounded away) or with none."""
    root = rel.root
    pk = str(rel.specs[root].primary_key)
    keys = frames[root][pk].astype(str)
    load = sum(frames[c][str(rel.specs[c].foreign_key)].astype(str).value_counts() for c in rel.children)
    victim = str(pd.Series(load).reindex(keys, fill_value=0).idxmax())
    removed = {root: frames[root][keys != victim].reset_index(drop=True)}
    for c in rel.children:
        fk = str(rel.specs[c].foreign_key)
        removed[c] = frames[c][frames[c][fk].astype(str) != victim].reset_index(drop=True)
    out = [("remove_person", removed)]
    for label, factor in (("add_heavy_person", 2), ("add_childless_person", 0)):
        new = "neighbour-1"
        added = {root: pd.concat([frames[root], frames[root].iloc[[int(rng.integers(len(keys)))]].assign(**{pk: new})],
                                 ignore_index=True)}
        for c in rel.children:
            spec = rel.specs[c]
            rows = frames[c].sample(n=factor * int(spec.max_rows_per_parent or 1), replace=True,
                                    random_state=int(rng.integers(2**31)))
            added[c] = pd.concat([frames[c], rows.assign(**{str(spec.foreign_key): new})], ignore_index=True)
        out.append((label, added))
    return out


@dataclass(frozen=True, kw_only=True)
class LinkedOutcome:
    """Per table: its sensitivity, how many reads it made and the largest L1 move of any read."""

    sensitivity: dict[str, int]
    reads: dict[str, int]
    max_l1: dict[str, int]
    neighbours: int

    @property
    def violated(self) -> list[str]:
        """Tables where some read moved by more than the table's sensitivity."""
        return [t for t, m in self.max_l1.items() if m > self.sensitivity[t]]


def check_linked(rel: RelationalSchema, frames: Mapping[str, pd.DataFrame], fit: Fit, factory: BackendFactory,
                 *, key: MechanismKey, rng: np.random.Generator, schemas: Schemas = fit_schemas,
                 prepare: Prepare = in_memory) -> LinkedOutcome:
    """Fit every table of ``D`` with ``fit`` and replay its reads on each neighbour's tables
    (each prepared by ``prepare``, as the engine's release would prepare it)."""
    fitted = schemas(rel)
    reads: dict[str, list[GateRead]] = {}
    with prepare(rel, frames) as base:
        for name, schema in fitted.items():
            reads[name] = []
            backend = factory(base[name], schema, key=key, seed=SEED)
            gate = PrivateData(backend, Accountant(ZCDP(SENS_RHO)), sensitivity=schema.privacy_unit.sensitivity_rows,
                               observer=reads[name].append)
            try:
                fit(gate, SENS_RHO)
            finally:
                backend.close()
    max_l1 = dict.fromkeys(fitted, 0)
    nbrs = linked_neighbours(rel, frames, rng)
    for _, other in nbrs:
        with prepare(rel, other) as prepared:
            for name, schema in fitted.items():
                backend = factory(prepared[name], schema, key=key, seed=SEED)
                try:
                    again = _replay(backend, reads[name])
                finally:
                    backend.close()
                for r, x in zip(reads[name], again, strict=True):
                    max_l1[name] = max(max_l1[name], int(np.abs(x.astype(np.int64) - r.exact).sum()))
    return LinkedOutcome(sensitivity={t: s.privacy_unit.sensitivity_rows for t, s in fitted.items()},
                         reads={t: len(r) for t, r in reads.items()}, max_l1=max_l1, neighbours=len(nbrs))


def make_linked(persons: int, rng: np.random.Generator) -> tuple[RelationalSchema, dict[str, pd.DataFrame]]:
    """A root of ``persons`` (two categoricals) and a child table with 0..5 rows each, bound 3."""
    cat = {"kind": "categorical", "categories": list(VALUES)}
    root = parse_schema({"columns": [{"name": "pid", "kind": "identifier"}, {"name": "a", **cat},
                                     {"name": "b", **cat}]})
    child = parse_schema({"columns": [{"name": "pid", "kind": "identifier"}, {"name": "x", **cat},
                                      {"name": "y", **cat}]})
    spec = {"root": "people", "tables": [
        {"name": "people", "schema": "-", "primary_key": "pid"},
        {"name": "events", "schema": "-", "parent": "people", "foreign_key": "pid",
         "max_rows_per_parent": MAX_CHILDREN, "parent_columns": ["a"]}]}
    rel = parse_relational(spec, Path("."), "linked campaign", schemas={"people": root, "events": child})
    keys = [f"p{i}" for i in range(persons)]
    people = pd.DataFrame({"pid": keys, "a": rng.choice(list(VALUES), persons), "b": rng.choice(list(VALUES), persons)})
    owners = np.repeat(keys, rng.integers(0, 6, persons))
    events = pd.DataFrame({"pid": owners, "x": rng.choice(list(VALUES), len(owners)),
                           "y": rng.choice(list(VALUES), len(owners))})
    return rel, {"people": people, "events": events.iloc[rng.permutation(len(events))].reset_index(drop=True)}


def row_unit_children(rel: RelationalSchema) -> dict[str, Schema]:
    """The planted bug: children fitted as if each row were a person."""
    out = fit_schemas(rel)
    for child in rel.children:
        data = out[child].model_dump(mode="json", by_alias=True)
        data["privacy_unit"] = {"kind": "row"}
        out[child] = parse_schema(data)
    return out


def _result(variant: str, expect: Expect, out: LinkedOutcome, seconds: float) -> VariantResult:
    bad = bool(out.violated)
    verdict, ok = (("FAIL", False) if bad else ("PASS", True)) if expect == "pass" else \
        (("CAUGHT", True) if bad else ("MISSED", False))
    worst = max(out.max_l1, key=lambda t: out.max_l1[t] / out.sensitivity[t])
    return VariantResult(campaign=CAMPAIGN, variant=variant, expect=expect, measure="l1",
                         claim=float(out.sensitivity[worst]), lower_bound=float(out.max_l1[worst]), verdict=verdict,
                         ok=ok, trials=out.neighbours, seconds=round(seconds, 3),
                         details={"sensitivity": out.sensitivity, "max_l1": out.max_l1, "reads": out.reads,
                                  "check": "every read of every table, after the relational preparation, moves by "
                                  "at most the table's sensitivity when one person comes or goes with all rows"})


def run(*, rng: np.random.Generator) -> list[VariantResult]:
    """Linked tables on neighbours: MST and AIM correct (pass) on the in-memory path, AIM on the
    DuckDB path (when DuckDB is installed), children per row (caught)."""
    import importlib.util

    rel, frames = make_linked(60, np.random.default_rng(21))
    results = []
    runs = [("mst", "numpy", in_memory), ("aim", "numpy", in_memory)]
    if importlib.util.find_spec("duckdb") is not None:
        runs.append(("aim", "duckdb", in_duckdb))
    for mech, engine, prepare in runs:
        with Timer() as t:
            out = check_linked(rel, frames, MECHANISMS[mech], engine_factory(engine),
                               key=MechanismKey.for_audit(f"{CAMPAIGN}|linked|{mech}"), rng=np.random.default_rng(5),
                               prepare=prepare)
        results.append(_result(f"linked/sens/{mech}/{engine}", "pass", out, t.seconds))
    with Timer() as t:
        out = check_linked(rel, frames, MECHANISMS["independent"], engine_factory("numpy"),
                           key=MechanismKey.for_audit(f"{CAMPAIGN}|linked|planted"), rng=np.random.default_rng(5),
                           schemas=row_unit_children)
    results.append(_result("row_unit_children/linked/sens/independent", "caught", out, t.seconds))
    return results
