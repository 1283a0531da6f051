"""The neighbours campaign (audits/campaigns/neighbours.py, issue 12).

Correct bounding keeps every exact read within its sensitivity on neighbouring datasets and
its reads consistent on every engine; the seed-replay attack sees nothing. The planted bugs
(seeded positional bounding, per-pass re-keying) are caught. A hypothesis property checks the
engines directly: one added person moves 1- and 2-way counts by at most ``max_rows`` in L1,
and numpy, arrow and DuckDB keep the same rows for the same key.
"""

from __future__ import annotations

import itertools
import math
import shutil
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audits.campaigns import neighbours as nb
from dpsynth.backends.factory import open_backend
from dpsynth.privacy.accountant import Accountant
from dpsynth.privacy.budget import ZCDP
from dpsynth.privacy.gate import GateRead, PrivateData
from dpsynth.privacy.randomness import MechanismKey

ENGINES = ("numpy", "arrow", "duckdb")
KEY = MechanismKey.for_audit("tests/neighbours")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return nb.make_frame(40, rng=np.random.default_rng(12))


def _factory(engine: str) -> nb.BackendFactory:
    return nb.engine_factory(engine, **({"threads": 1} if engine != "numpy" else {}))


def test_tables_and_neighbours_differ_by_one_unit(frame: pd.DataFrame) -> None:
    pids = frame["pid"].to_numpy()
    assert (pids[1:] != pids[:-1]).mean() > 0.8  # persons are interleaved, not contiguous
    sizes = frame["pid"].value_counts()
    assert sizes.min() >= 1 and sizes.max() <= 6 and sizes.max() > 2
    for person, want in ((True, 5), (False, 4)):
        out = nb.neighbours(frame, person=person, rng=np.random.default_rng(1))
        assert len(out) == want
        for name, other in out:
            grow = len(other) - len(frame)
            changed = set(other["pid"]) ^ set(frame["pid"])
            if name.startswith("add"):
                assert grow == (4 if person else 1) and len(changed) == 1
                kept = other[other["pid"].isin(set(frame["pid"]))].reset_index(drop=True)
                pd.testing.assert_frame_equal(kept, frame)  # others' rows and order unchanged
            elif person:
                assert len(changed) == 1 and grow == -int(sizes.max())
            else:
                assert grow == -1
    inter = dict(nb.neighbours(frame, person=True, rng=np.random.default_rng(1)))["add_interleaved"]
    where = np.flatnonzero(inter["pid"].to_numpy() == inter["pid"].max())
    assert np.diff(where).min() > 1  # the new person's rows sit among the others'


@pytest.mark.parametrize("engine", ENGINES)
def test_correct_mst_reads_stay_within_sensitivity_and_agree(engine: str, frame: pd.DataFrame) -> None:
    out = nb.check_sensitivity(frame, nb.make_schema(2), nb.MECHANISMS["mst"], _factory(engine),
                               key=KEY, rng=np.random.default_rng(5))
    assert out.sensitivity == 2 and out.neighbours == 5 and out.reads >= 10
    assert out.max_l1 == 2 and out.max_l2 <= 2.0  # a person with >= 2 rows was added: tight
    assert out.checked_pairs > 0 and out.inconsistent_pairs == 0
    assert not out.violated


@pytest.mark.parametrize(("mech", "unit"), [("independent", "row"), ("aim", "person1"),
                                             ("independent", "person2")])
def test_correct_other_mechanisms_and_units(mech: str, unit: str, frame: pd.DataFrame) -> None:
    schema = nb.make_schema(nb.UNITS[unit])
    out = nb.check_sensitivity(frame, schema, nb.MECHANISMS[mech], _factory("numpy"), key=KEY,
                               rng=np.random.default_rng(5))
    assert out.max_l1 == schema.privacy_unit.sensitivity_rows and not out.violated


@pytest.mark.parametrize("k", [1, 2])
def test_seeded_positional_bounding_is_caught(k: int, frame: pd.DataFrame) -> None:
    out = nb.check_sensitivity(frame, nb.make_schema(k), nb.MECHANISMS["independent"],
                               nb.seeded_bounding, key=KEY, rng=np.random.default_rng(5))
    assert out.violated and out.max_l1 > 3 * k


@pytest.mark.parametrize("engine", ["numpy", "arrow"])
def test_rekeying_every_pass_is_caught_by_consistency(engine: str, frame: pd.DataFrame) -> None:
    reads: list[GateRead] = []
    backend = nb.rekey_per_pass(_factory(engine))(frame, nb.make_schema(2), key=KEY, seed=nb.SEED)
    nb.MECHANISMS["mst"](PrivateData(backend, Accountant(ZCDP(1.0)), sensitivity=2,
                                     observer=reads.append), 1.0)
    checked, bad = nb.consistency(reads)
    assert checked > 0 and bad > 0


def test_consistency_accepts_margins_and_flags_a_doctored_read() -> None:
    two = np.array([[3, 1], [0, 2]], dtype=np.int64)
    reads = [GateRead("measure", "t", ("a",), two.sum(axis=1), 1.0),
             GateRead("measure", "t", ("b",), two.sum(axis=0), 1.0),
             GateRead("select", "t", ("b", "a"), two.T.copy(), 1.0)]
    assert nb.consistency(reads) == (2, 0)
    reads[1] = GateRead("measure", "t", ("b",), np.array([4, 2], dtype=np.int64), 1.0)
    assert nb.consistency(reads)[1] >= 1


def test_attack_sees_nothing_on_correct_bounding_and_everything_on_the_seeded_one() -> None:
    w0, w1, schema = nb.attack_worlds(np.random.default_rng(13), 500)
    bug = nb.attack(nb.seeded_bounding, world0=w0, world1=w1, schema=schema, releases=40)
    assert bug.tpr > math.e * bug.fpr + 0.2
    assert bug.epsilon_estimate(nb.ATTACK_DELTA) > nb.ATTACK_EPS
    ok = nb.attack(_factory("numpy"), world0=w0, world1=w1, schema=schema, releases=25)
    assert ok.epsilon_estimate(nb.ATTACK_DELTA) <= nb.ATTACK_EPS
    assert abs(ok.llr1.mean() - ok.llr0.mean()) < 0.5 * (bug.llr1.mean() - bug.llr0.mean())


def test_epsilon_estimate_rule() -> None:
    perfect = nb.AttackOutcome(llr0=-np.ones(50), llr1=np.ones(50), sigma=1.0)
    assert perfect.tpr == 1.0 and perfect.fpr == 0.0
    assert perfect.epsilon_estimate(0.0) == pytest.approx(math.log(100))  # FPR floored at 1/(2n)
    null = nb.AttackOutcome(llr0=np.r_[np.ones(25), -np.ones(25)], llr1=np.r_[np.ones(25), -np.ones(25)],
                            sigma=1.0)
    assert null.epsilon_estimate(0.0) == 0.0


# ----------------------------------------------------------------------------- property

@st.composite
def cases(draw: Any) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    persons = draw(st.integers(3, 20))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    base = nb.make_frame(persons, rng=rng)
    m = draw(st.integers(1, 4))
    extra = nb.new_person(base, m, rng)
    positions = draw(st.lists(st.integers(0, len(base)), min_size=m, max_size=m))
    return base, nb.insert_rows(base, extra, positions), draw(st.sampled_from([1, 2]))


CLIQUES = [(c,) for c in nb.COLUMNS] + list(itertools.combinations(nb.COLUMNS, 2))


@settings(max_examples=20, deadline=None)
@given(case=cases(), label=st.text(min_size=1, max_size=8))
def test_one_added_person_moves_counts_by_at_most_max_rows(case: tuple[pd.DataFrame, pd.DataFrame, int],
                                                           label: str) -> None:
    d, d_plus, k = case
    schema = nb.make_schema(k)
    key = MechanismKey.for_audit(label)
    counts: dict[str, list[list[np.ndarray]]] = {}
    for engine in ENGINES:
        opts = {"threads": 1} if engine != "numpy" else {}
        counts[engine] = []
        for frame in (d, d_plus):
            backend = open_backend(engine, frame, schema, key=key, **opts)
            counts[engine].append(backend.count(CLIQUES))
            backend.close()
        for clique, a, b in zip(CLIQUES, *counts[engine], strict=True):
            assert int(np.abs(b - a).sum()) <= k, (engine, clique)
    for engine in ENGINES[1:]:
        for world in (0, 1):
            for clique, a, b in zip(CLIQUES, counts["numpy"][world], counts[engine][world], strict=True):
                np.testing.assert_array_equal(a, b, err_msg=f"{engine} {clique}")


# ----------------------------------------------------------------------------- spark

@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    if shutil.which("java") is None:
        pytest.skip("Spark needs java")
    pytest.importorskip("pyspark")
    from dpsynth.backends.spark import local_session

    session = local_session(cores=2, driver_memory="1g")
    yield session
    session.stop()


@pytest.mark.slow
@pytest.mark.spark
def test_spark_mst_reads_stay_within_sensitivity(spark: Any, frame: pd.DataFrame) -> None:
    factory = nb.engine_factory("spark", spark=spark)
    out = nb.check_sensitivity(frame, nb.make_schema(2), nb.MECHANISMS["mst"], factory, key=KEY,
                               rng=np.random.default_rng(5))
    assert out.max_l1 == 2 and out.inconsistent_pairs == 0
