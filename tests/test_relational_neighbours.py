"""Linked tables on neighbouring datasets: one person with all their child rows (issue 19).

Every read of every table, replayed after the relational preparation on a dataset with one
person removed, or added with twice the bound of child rows, or added without children,
moves by at most that table's sensitivity (1 for the root, ``max_rows_per_parent`` for a
child). A child fitted with the row as its unit (the planted bug) is caught.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audits.campaigns import linked
from audits.campaigns import neighbours as nb
from dpsynth.privacy.randomness import MechanismKey
from dpsynth.relational import load_relational
from dpsynth.relational.bundle import read_tables
from dpsynth.relational.schema import RelationalSchema
from tests.relational_data import MAX_VISITS, write_clinic

KEY = MechanismKey.for_audit("tests/relational-neighbours")


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> tuple[RelationalSchema, dict[str, pd.DataFrame]]:
    rel = load_relational(write_clinic(tmp_path_factory.mktemp("nbr"), n=300, seed=3))
    return rel, read_tables(rel)


def test_the_neighbours_differ_by_one_person(clinic: tuple[RelationalSchema, dict[str, pd.DataFrame]]) -> None:
    rel, frames = clinic
    out = dict(linked.linked_neighbours(rel, frames, np.random.default_rng(0)))
    assert set(out) == {"remove_person", "add_heavy_person", "add_childless_person"}
    assert len(out["remove_person"]["persons"]) == len(frames["persons"]) - 1
    assert len(out["remove_person"]["visits"]) < len(frames["visits"])
    assert len(out["add_heavy_person"]["visits"]) == len(frames["visits"]) + 2 * MAX_VISITS
    assert len(out["add_childless_person"]["visits"]) == len(frames["visits"])


@pytest.mark.parametrize(("mech", "engine"), [("mst", "numpy"), ("aim", "numpy"), ("aim", "duckdb")])
def test_every_read_of_every_table_stays_within_its_sensitivity(
        mech: str, engine: str, clinic: tuple[RelationalSchema, dict[str, pd.DataFrame]]) -> None:
    rel, frames = clinic
    prepare = linked.in_duckdb if engine == "duckdb" else linked.in_memory  # the child joined in DuckDB
    out = linked.check_linked(rel, frames, nb.MECHANISMS[mech], nb.engine_factory(engine), key=KEY,
                              rng=np.random.default_rng(1), prepare=prepare)
    assert out.sensitivity == {"persons": 1, "visits": MAX_VISITS}
    assert out.neighbours == 3 and min(out.reads.values()) >= 5
    assert out.max_l1["visits"] == MAX_VISITS  # the heavy person is bounded, and the bound is tight
    assert out.max_l1["persons"] == 1
    assert out.violated == []


def test_children_fitted_per_row_are_caught(clinic: tuple[RelationalSchema, dict[str, pd.DataFrame]],
                                            tmp_path: Path) -> None:
    rel, frames = clinic
    out = linked.check_linked(rel, frames, nb.MECHANISMS["independent"], nb.engine_factory("numpy"), key=KEY,
                              rng=np.random.default_rng(1), schemas=linked.row_unit_children)
    assert out.sensitivity["visits"] == 1 and out.max_l1["visits"] > 1
    assert out.violated == ["visits"]


def test_the_campaign_runs_the_linked_variants() -> None:
    """``python -m audits`` (neighbours campaign) covers linked tables: both mechanisms pass, on
    the in-memory and the DuckDB path, the planted row-unit child is caught."""
    out = {r.variant: r for r in linked.run(rng=np.random.default_rng(0))}
    assert {v: r.verdict for v, r in out.items()} == {
        "linked/sens/mst/numpy": "PASS", "linked/sens/aim/numpy": "PASS", "linked/sens/aim/duckdb": "PASS",
        "row_unit_children/linked/sens/independent": "CAUGHT"}
    assert all(r.ok for r in out.values())
    assert out["linked/sens/mst/numpy"].details["max_l1"] == {"people": 1, "events": linked.MAX_CHILDREN}
