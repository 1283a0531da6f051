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

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from audits.campaigns.neighbours import SEED, SENS_RHO, BackendFactory, Fit, _replay
from dpsynth.privacy.accountant import Accountant
from dpsynth.privacy.budget import ZCDP
from dpsynth.privacy.gate import GateRead, PrivateData
from dpsynth.privacy.randomness import MechanismKey
from dpsynth.relational.fit import fit_schemas, prepare_frames
from dpsynth.relational.schema import RelationalSchema
from dpsynth.tabular.schema import Schema

__all__ = ["LinkedOutcome", "check_linked", "linked_neighbours"]

Schemas = Callable[[RelationalSchema], dict[str, Schema]]


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
                 *, key: MechanismKey, rng: np.random.Generator, schemas: Schemas = fit_schemas) -> LinkedOutcome:
    """Fit every table of ``D`` with ``fit`` and replay its reads on each neighbour's tables."""
    fitted = schemas(rel)
    base = prepare_frames(rel, frames)
    reads: dict[str, list[GateRead]] = {}
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
        prepared = prepare_frames(rel, other)
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
