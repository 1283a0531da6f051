"""Person-level membership inference on linked tables: a copy of the training persons is
caught with high AUC and a positive empirical epsilon; a DP release at epsilon 1 is not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpsynth.relational import fit_relational, load_relational
from dpsynth.relational.audit import linked_membership, person_profiles, split_persons
from dpsynth.relational.bundle import read_tables
from dpsynth.relational.schema import RelationalSchema
from tests.relational_data import DEPARTMENTS, write_clinic

Split = tuple[RelationalSchema, dict[str, pd.DataFrame], dict[str, pd.DataFrame]]


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Split:
    rel = load_relational(write_clinic(tmp_path_factory.mktemp("mia"), n=2400, seed=5))
    train, hold = split_persons(rel, read_tables(rel), 0.5, np.random.default_rng(0))
    return rel, train, hold


def test_profiles_hold_one_row_per_person_with_their_children(split: Split) -> None:
    rel, train, _ = split
    prof = person_profiles(rel, train)
    assert len(prof) == len(train["persons"])
    assert prof["n_visits"].sum() == len(train["visits"])
    dept = prof[[f"visits.department={d}" for d in DEPARTMENTS]].sum(axis=1)
    assert np.array_equal(dept.to_numpy(), prof["n_visits"].to_numpy())
    assert set(train["persons"]["person_id"]).isdisjoint(set(split[2]["persons"]["person_id"]))


def test_a_copy_of_the_training_persons_is_caught(split: Split) -> None:
    rel, train, hold = split
    out = linked_membership(rel, train, hold, train, rng=np.random.default_rng(1), targets=400)
    assert out.distance.auc > 0.9 and out.distance.epsilon.epsilon > 1.0


def test_a_dp_release_leaves_the_attacks_near_guessing(split: Split) -> None:
    rel, train, hold = split
    synth = fit_relational(rel, train, mechanism="mst", epsilon=1.0).sample(seed=0)
    out = linked_membership(rel, train, hold, synth, rng=np.random.default_rng(1), targets=400)
    for attack in (out.distance, out.domias):
        assert attack.auc_ci.lo < 0.5 < attack.auc_ci.hi + 0.05 and attack.auc < 0.6
        assert attack.epsilon.epsilon <= 1.0  # the empirical lower bound stays under the stated epsilon
