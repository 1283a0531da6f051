"""CONFIDENTIAL: membership inference against linked tables, at the person level.

A person is in the training data with all their rows or not at all, so the attack works on
**person profiles**: the root row's columns plus, for each child table, the person's number of
rows and, per categorical child column, how many of their rows take each value, and per
numeric child column the mean. Members are training persons, non-members held-out persons
(disjoint, from the same population); the distance and DOMIAS attacks of
:mod:`dpsynth.audit.membership` score them against the synthetic persons' profiles. Like every
audit, the result is computed on real data without DP and is confidential.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dpsynth.audit.distance import MixedEncoder
from dpsynth.audit.membership import MembershipAttackResult, distance_mia, domias_mia
from dpsynth.errors import ConfigError
from dpsynth.relational.schema import RelationalSchema, count_column
from dpsynth.tabular.schema import CategoricalColumn, NumericColumn, OrdinalColumn

__all__ = ["LinkedMembership", "linked_membership", "person_profiles", "split_persons"]


def split_persons(rel: RelationalSchema, tables: Mapping[str, pd.DataFrame], share: float,
                  rng: np.random.Generator) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Training and held-out tables: a ``share`` of the persons with all their rows, and the rest."""
    pk = str(rel.specs[rel.root].primary_key)
    keys = tables[rel.root][pk].astype(str)
    chosen = set(keys[rng.random(len(keys)) < share])
    train: dict[str, pd.DataFrame] = {}
    hold: dict[str, pd.DataFrame] = {}
    for name, frame in tables.items():
        key = pk if name == rel.root else str(rel.specs[name].foreign_key)
        inside = frame[key].astype(str).isin(chosen)
        train[name], hold[name] = frame[inside].reset_index(drop=True), frame[~inside].reset_index(drop=True)
    return train, hold


def person_profiles(rel: RelationalSchema, tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per person: root columns, child counts, child category counts and numeric means."""
    pk = str(rel.specs[rel.root].primary_key)
    root = tables[rel.root]
    keys = root[pk].astype(str)
    out = root[[c.name for c in rel.schemas[rel.root].modelled]].reset_index(drop=True).copy()
    for child in rel.children:
        spec, schema = rel.specs[child], rel.schemas[child]
        frame = tables[child].assign(_key=tables[child][str(spec.foreign_key)].astype(str))
        groups = frame.groupby("_key", sort=False)
        out[count_column(child)] = groups.size().reindex(keys).fillna(0).to_numpy(dtype=np.float64)
        for col in schema.modelled:
            if isinstance(col, (CategoricalColumn, OrdinalColumn)):
                counts = pd.crosstab(frame["_key"], frame[col.name].astype(str)).reindex(keys).fillna(0)
                for value in [str(v) for v in col.categories]:
                    series = counts[value] if value in counts else pd.Series(0.0, index=keys)
                    out[f"{child}.{col.name}={value}"] = series.to_numpy(dtype=np.float64)
            elif isinstance(col, NumericColumn):
                values = pd.to_numeric(frame[col.name], errors="coerce")
                mean = values.groupby(frame["_key"]).mean().reindex(keys)
                out[f"{child}.{col.name} mean"] = mean.fillna(-1.0).to_numpy(dtype=np.float64)
    for col in rel.schemas[rel.root].modelled:
        if isinstance(col, NumericColumn):
            out[col.name] = pd.to_numeric(out[col.name], errors="coerce").fillna(-1.0)
        else:
            out[col.name] = out[col.name].astype(str)
    return out


@dataclass(frozen=True)
class LinkedMembership:
    """Person-level membership attacks (CONFIDENTIAL: computed on real data without DP)."""

    distance: MembershipAttackResult
    domias: MembershipAttackResult
    members: int
    nonmembers: int

    def to_json(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"distance": self.distance.to_json(), "domias": self.domias.to_json(),
                "members": self.members, "nonmembers": self.nonmembers, "confidential": True}


def linked_membership(rel: RelationalSchema, train: Mapping[str, pd.DataFrame], holdout: Mapping[str, pd.DataFrame],
                      synthetic: Mapping[str, pd.DataFrame], *, rng: np.random.Generator,
                      targets: int = 1000) -> LinkedMembership:
    """Distance and DOMIAS attacks on person profiles: ``targets`` members against as many
    held-out persons (half the held-out persons stand for the population in DOMIAS)."""
    real, hold, syn = (person_profiles(rel, t) for t in (train, holdout, synthetic))
    if len(hold) < 32 or len(real) < 16:
        raise ConfigError("person-level membership needs at least 32 held-out and 16 training persons")
    encoder = MixedEncoder(real, [hold, syn])
    perm = rng.permutation(len(hold))
    ref, pool = perm[: len(hold) // 2], perm[len(hold) // 2:]
    m = min(targets, len(pool), len(real))
    members = encoder.encode(real.iloc[rng.permutation(len(real))[:m]].reset_index(drop=True))
    nonmembers = encoder.encode(hold.iloc[pool[:m]].reset_index(drop=True))
    s = encoder.encode(syn)
    return LinkedMembership(distance=distance_mia(members, nonmembers, s, rng=rng),
                            domias=domias_mia(members, nonmembers, s, encoder.encode(hold.iloc[ref]), rng=rng),
                            members=m, nonmembers=m)
