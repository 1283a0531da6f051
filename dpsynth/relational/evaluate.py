"""CONFIDENTIAL: fidelity of linked synthetic tables against the real ones, within and across tables.

Three families of scores, all on the codes of the public schemas (0 is perfect, 2 disjoint):

- ``within <table>``: the mean L1 distance of the table's normalised 2-way marginals;
- ``joined <child>``: the mean L1 distance over every (child column, root column) pair of the
  2-way marginal of the child table joined with its persons;
- ``count <child>``: the L1 distance between the distributions of each person's number of
  child rows (clamped at ``max_rows_per_parent``; persons without rows count as 0).

They are computed on the real data without DP, so they go to a confidential report, never
into a bundle.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd

from dpsynth.relational.schema import RelationalSchema
from dpsynth.tabular.schema import Schema

__all__ = ["fidelity"]


def _codes(frame: pd.DataFrame, schema: Schema, columns: list[str]) -> dict[str, npt.NDArray[np.int64]]:
    from dpsynth.tabular.encoding import encode_column

    return {c: encode_column(frame[c], schema.column(c))[0] for c in columns}


def _l1(a: tuple[npt.NDArray[np.int64], ...], b: tuple[npt.NDArray[np.int64], ...], sizes: tuple[int, ...]) -> float:
    def hist(cols: tuple[npt.NDArray[np.int64], ...]) -> npt.NDArray[np.float64]:
        flat = np.ravel_multi_index(cols, sizes) if cols[0].size else np.zeros(0, dtype=np.int64)
        h = np.bincount(flat, minlength=int(np.prod(sizes))).astype(np.float64)
        return h / max(float(h.sum()), 1.0)
    return float(np.abs(hist(a) - hist(b)).sum())


def _joined(rel: RelationalSchema, tables: Mapping[str, pd.DataFrame], child: str) -> pd.DataFrame:
    pk, fk = str(rel.specs[rel.root].primary_key), str(rel.specs[child].foreign_key)
    persons = tables[rel.root].rename(columns={pk: fk})
    persons[fk] = persons[fk].astype(str)
    kids = tables[child].assign(**{fk: tables[child][fk].astype(str)})
    return kids.merge(persons, on=fk, how="inner", suffixes=("", "_parent"))


def _count_distribution(rel: RelationalSchema, tables: Mapping[str, pd.DataFrame],
                        child: str) -> npt.NDArray[np.float64]:
    pk, fk = str(rel.specs[rel.root].primary_key), str(rel.specs[child].foreign_key)
    bound = int(rel.specs[child].max_rows_per_parent or 1)
    keys = tables[rel.root][pk].astype(str)
    per = tables[child][fk].astype(str).value_counts().reindex(keys).fillna(0).clip(upper=bound)
    return np.bincount(per.astype(int), minlength=bound + 1) / max(len(per), 1)


def fidelity(rel: RelationalSchema, real: Mapping[str, pd.DataFrame], synthetic: Mapping[str, pd.DataFrame]
             ) -> dict[str, float]:
    """Within-table, joined and child-count errors of ``synthetic`` against ``real``."""
    out: dict[str, float] = {}
    for name, schema in rel.schemas.items():
        cols = [c.name for c in schema.modelled]
        r, s = _codes(real[name], schema, cols), _codes(synthetic[name], schema, cols)
        sizes = {c: schema.column(c).domain_size() for c in cols}
        pairs = list(itertools.combinations(cols, 2)) or [(c, c) for c in cols]
        out[f"within {name}"] = float(np.mean([_l1((r[a], r[b]), (s[a], s[b]), (sizes[a], sizes[b]))
                                               for a, b in pairs]))
    parent = rel.schemas[rel.root]
    pcols = [c.name for c in parent.modelled]
    for child in rel.children:
        schema = rel.schemas[child]
        own = [c.name for c in schema.modelled]
        joined = [_joined(rel, t, child) for t in (real, synthetic)]
        rj, sj = ({**_codes(j, schema, own), **_codes(j, parent, pcols)} for j in joined)
        errs = [_l1((rj[a], rj[b]), (sj[a], sj[b]), (schema.column(a).domain_size(), parent.column(b).domain_size()))
                for a in own for b in pcols]
        out[f"joined {child}"] = float(np.mean(errs))
        dists = [_count_distribution(rel, t, child) for t in (real, synthetic)]
        out[f"count {child}"] = float(np.abs(dists[0] - dists[1]).sum())
    return out
