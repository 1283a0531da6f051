"""Linked tables counted in DuckDB: the child table is joined and bounded out of core, and
every exact count equals the in-memory path's count under the same secret key."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dpsynth.backends.factory import open_backend
from dpsynth.errors import ConfigError
from dpsynth.privacy.randomness import MechanismKey
from dpsynth.relational import fit_relational, load_relational
from dpsynth.relational.bundle import release_tables, verify_relational
from dpsynth.relational.fit import _frame_of, _root_frame, fit_schemas, prepare_frames
from dpsynth.relational.sources import ChildRelations, add_counts
from tests.relational_data import MAX_VISITS, write_clinic

pytest.importorskip("duckdb")


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The clinic tables with what real exports have: padded keys, missing and orphan keys, a
    repeated person, one person far over the bound, missing cells, and a parent column repeated
    (with other values) in the child file."""
    path = write_clinic(tmp_path_factory.mktemp("messy") / "data", n=1500, seed=4)
    folder = path.parent
    persons = pd.read_csv(folder / "persons.csv", dtype=str)
    visits = pd.read_csv(folder / "visits.csv", dtype=str)
    heavy = persons["person_id"].iloc[0]
    extra = pd.DataFrame({"visit_id": [str(10**6 + i) for i in range(40)], "person_id": f"  {heavy}",
                          "department": "cardiology", "cost": "10.5"})
    odd = pd.DataFrame({"visit_id": ["o1", "o2", "o3"], "person_id": ["999999", "", persons["person_id"].iloc[2]],
                        "department": ["general", "general", ""], "cost": ["1", "2", ""]})
    both = pd.concat([visits, extra, odd])
    both["age"] = "999"  # the export repeats a parent column, wrongly: the root's value is the person's
    both.to_csv(folder / "visits.csv", index=False)
    pd.concat([persons, persons.iloc[[3]].assign(age="99")]).to_csv(folder / "persons.csv", index=False)
    return path


def _relations(rel: object, paths: dict[str, object]) -> tuple[pd.DataFrame, ChildRelations]:
    root = _root_frame(rel, _frame_of(rel, rel.root, paths[rel.root]))  # type: ignore[attr-defined]
    joined = ChildRelations(rel, root, paths)  # type: ignore[arg-type]
    return add_counts(rel, root, joined), joined  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_every_count_equals_the_in_memory_path(messy: Path, tmp_path: Path, fmt: str) -> None:
    rel = load_relational(messy)
    paths: dict[str, object] = {n: rel.data_path(n) for n in rel.specs}
    if fmt == "parquet":
        pd.read_csv(messy.parent / "visits.csv", dtype=str, keep_default_na=False).replace({"": None}).to_parquet(
            tmp_path / "visits.parquet", index=False)
        paths["visits"] = tmp_path / "visits.parquet"
    expected = prepare_frames(rel, paths)
    schema = fit_schemas(rel)["visits"]
    cols = [c.name for c in schema.modelled]
    cliques = [(c,) for c in cols] + list(itertools.combinations(cols, 2)) + [tuple(cols)]
    root, joined = _relations(rel, paths)
    ages = expected["visits"].merge(root[["person_id", "age"]], on="person_id", suffixes=("", "_root"))
    assert (ages["age"] == ages["age_root"]).all()  # the person's age, not the file's copy
    with joined:
        pd.testing.assert_frame_equal(root, expected["persons"])  # the child counts, clamped
        assert root["n_visits"].max() == MAX_VISITS
        key = MechanismKey.fresh()  # the same secret: both engines keep the same rows per person
        mem = open_backend("numpy", expected["visits"], schema, key=key)
        out = open_backend("duckdb", joined.paths["visits"], schema, key=key)
        try:
            for clique, a, b in zip(cliques, mem.count(cliques), out.count(cliques), strict=True):
                assert np.array_equal(a, b), clique
            heavy = int((expected["visits"]["person_id"] == root["person_id"].iloc[0]).sum())
            assert heavy > MAX_VISITS + 30  # the padded keys joined
            total = int(out.count([("department",)])[0].sum())
            assert total == len(expected["visits"]) - heavy + MAX_VISITS  # only the heavy person was cut
        finally:
            mem.close()
            out.close()


def test_the_scratch_files_are_private_and_removed(messy: Path) -> None:
    rel = load_relational(messy)
    _, joined = _relations(rel, {n: rel.data_path(n) for n in rel.specs})
    scratch = Path(joined._scratch.name)
    assert scratch.is_dir() and scratch.stat().st_mode & 0o077 == 0
    assert joined.paths["visits"].parent == scratch and joined.paths["visits"].is_file()
    joined.close()
    assert not scratch.exists()


def test_a_release_from_files_counts_in_duckdb_and_verifies(messy: Path, tmp_path: Path) -> None:
    before = (messy.parent / "visits.csv").read_bytes()
    out = release_tables(messy, tmp_path / "bundle", epsilon=1.0, mechanism="aim", seed=0, engine="duckdb",
                         internal_report=tmp_path / "internal")
    assert verify_relational(out).ok
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["engine"] == "duckdb" and manifest["privacy"]["epsilon"] == pytest.approx(1.0)
    evaluation = json.loads((tmp_path / "internal" / "evaluation.json").read_text())
    assert evaluation["input_rows"]["visits"] == len(pd.read_csv(messy.parent / "visits.csv"))  # read for it
    assert set(evaluation["fidelity"]) >= {"joined visits", "count visits"}
    assert abs(manifest["tables"]["persons"]["rows"] - 1500) < 150  # the DP estimate of the persons
    assert (messy.parent / "visits.csv").read_bytes() == before  # the input is not modified


def test_a_child_without_its_key_column_is_named(messy: Path, tmp_path: Path) -> None:
    rel = load_relational(messy)
    pd.read_csv(messy.parent / "visits.csv", dtype=str).drop(columns=["person_id"]).to_csv(
        tmp_path / "v.csv", index=False)
    with pytest.raises(ConfigError, match="table 'visits': the data has no foreign key column 'person_id'"):
        fit_relational(rel, {"persons": rel.data_path("persons"), "visits": tmp_path / "v.csv"},
                       mechanism="mst", epsilon=1.0, engine="duckdb")


def _variant(messy: Path, tmp_path: Path, edit: str) -> Path:
    """A copy of the clinic whose visits file is broken as ``edit`` says."""
    import shutil

    import yaml

    folder = tmp_path / edit
    shutil.copytree(messy.parent, folder)
    visits = folder / "visits.csv"
    if edit == "semicolons":
        visits.write_text(visits.read_text().replace(",", ";"))
    elif edit == "semicolons_declared":
        visits.write_text(visits.read_text().replace(",", ";"))
        spec = yaml.safe_load((folder / "relational.yaml").read_text())
        spec["tables"][1]["sep"] = ";"
        (folder / "relational.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    elif edit == "latin1_row":
        with visits.open("ab") as fh:
            fh.write(b"x9,1,caf\xe9,3,40\n")
    elif edit == "empty":
        visits.write_text("")
    return folder / "relational.yaml"


@pytest.mark.parametrize("engine", ["numpy", "duckdb"])
@pytest.mark.parametrize(("edit", "error", "message"), [
    ("semicolons", "SchemaError", "table 'visits': .*looks ';'-separated; set the table's sep in the relational "
                                  "schema to ';'"),
    ("latin1_row", "ConfigError", "table 'visits': .*UTF-8"),
    ("empty", "ConfigError", "table 'visits': input file visits.csv is empty"),
])
def test_a_bad_child_file_is_named_before_any_spend_on_both_engines(messy: Path, tmp_path: Path, engine: str,
                                                                    edit: str, error: str, message: str) -> None:
    from dpsynth import errors

    ledger = tmp_path / "ledger.json"
    with pytest.raises(getattr(errors, error), match=message) as info:
        release_tables(_variant(messy, tmp_path, edit), tmp_path / "out", epsilon=1.0, mechanism="mst",
                       engine=engine, ledger_path=ledger)
    assert "\xe9" not in str(info.value) and "caf" not in str(info.value)  # no cell value in the message
    assert not ledger.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("engine", ["numpy", "duckdb"])
def test_a_table_declares_its_delimiter(messy: Path, tmp_path: Path, engine: str) -> None:
    out = release_tables(_variant(messy, tmp_path, "semicolons_declared"), tmp_path / "out", epsilon=1.0,
                         mechanism="mst", engine=engine, seed=0)
    assert verify_relational(out).ok
