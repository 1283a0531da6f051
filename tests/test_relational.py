"""Linked tables: one person-level guarantee, keys that join, children that follow their parents."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dpsynth.errors import ConfigError, SchemaError
from dpsynth.relational import fit_relational, load_relational
from dpsynth.relational.bundle import read_tables, release_tables, verify_relational
from dpsynth.relational.fit import RelationalSynthesizer, prepare_frames
from dpsynth.relational.schema import parse_relational
from tests.relational_data import MAX_VISITS, PERSON_SCHEMA, VISIT_SCHEMA, relational_spec, write_clinic


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clinic(tmp_path_factory.mktemp("clinic") / "data", n=3000, seed=0)


@pytest.fixture(scope="module")
def fitted(clinic: Path) -> tuple[RelationalSynthesizer, dict[str, pd.DataFrame]]:
    rel = load_relational(clinic)
    frames = read_tables(rel)
    return fit_relational(rel, frames, mechanism="aim", epsilon=3.0), frames


def _joined(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return tables["visits"].merge(tables["persons"], on="person_id", how="inner")


def _count_dist(tables: dict[str, pd.DataFrame]) -> pd.Series:
    per = tables["visits"].groupby("person_id").size().reindex(tables["persons"]["person_id"]).fillna(0)
    return per.clip(upper=MAX_VISITS).value_counts(normalize=True).reindex(range(MAX_VISITS + 1), fill_value=0.0)


def test_one_guarantee_composes_the_tables(fitted: tuple[RelationalSynthesizer, dict[str, pd.DataFrame]]) -> None:
    model, _ = fitted
    spend = model.privacy
    assert spend.epsilon == pytest.approx(3.0, rel=1e-9)
    assert [step.event.label for step in spend.ledger] == [
        "table 'persons' (0.5 of the budget)", "table 'visits' (0.5 of the budget)"]
    rhos = [model.synths[t].privacy.rho for t in ("persons", "visits")]
    assert sum(rhos) == pytest.approx(spend.rho, rel=1e-12)  # each table spent exactly its share
    assert rhos[0] == pytest.approx(rhos[1], rel=1e-9)
    child = model.synths["visits"].schema.privacy_unit
    assert (child.kind, child.column, child.max_rows) == ("person", "person_id", MAX_VISITS)
    assert "at most 12 rows in 'visits'" in str(spend.unit)


def test_keys_join_and_bounds_hold(fitted: tuple[RelationalSynthesizer, dict[str, pd.DataFrame]]) -> None:
    model, _ = fitted
    tables = model.sample(seed=1)
    persons, visits = tables["persons"], tables["visits"]
    assert list(persons.columns) == ["person_id", "age", "sex", "race"]
    assert list(visits.columns) == ["visit_id", "person_id", "department", "cost"]
    assert persons["person_id"].is_unique and visits["visit_id"].is_unique
    assert visits["person_id"].isin(persons["person_id"]).all()
    assert visits.groupby("person_id").size().max() <= MAX_VISITS
    assert abs(len(persons) - 3000) < 100  # a DP estimate of the persons, not the count
    again = model.sample(seed=1)
    pd.testing.assert_frame_equal(again["visits"], visits)  # the seed drives post-processing


def test_children_follow_their_parents(fitted: tuple[RelationalSynthesizer, dict[str, pd.DataFrame]]) -> None:
    """Department depends on the person's sex and the number of visits on age; links at random
    (the same rows, keys shuffled) lose both, so the checks have power."""
    model, real = fitted
    synth = model.sample(seed=2, link="conditional")
    for tables, linked in ((synth, True), (real, True)):
        j = _joined(tables)
        share = pd.crosstab(j["sex"], j["department"], normalize="index")
        assert share.loc["Male", "maternity"] < 0.05 and share.loc["Female", "maternity"] > 0.2, linked
        per = tables["visits"].groupby("person_id").size().reindex(tables["persons"]["person_id"]).fillna(0)
        ages = tables["persons"].set_index("person_id")["age"].astype(int)
        assert per[ages >= 55].mean() > 2.5 * per[ages < 35].mean()
    shuffled = dict(synth)
    rng = np.random.default_rng(0)
    shuffled["visits"] = synth["visits"].assign(
        person_id=rng.choice(synth["persons"]["person_id"].to_numpy(), len(synth["visits"])))
    j = _joined(shuffled)
    assert pd.crosstab(j["sex"], j["department"], normalize="index").loc["Male", "maternity"] > 0.06
    l1 = float(np.abs(_count_dist(synth) - _count_dist(real)).sum())
    l1_random = float(np.abs(_count_dist(shuffled) - _count_dist(real)).sum())
    assert l1 < 0.12 < l1_random


def test_the_policy_drops_orphans_and_bounds_heavy_persons(clinic: Path) -> None:
    rel = load_relational(clinic)
    frames = read_tables(rel)
    persons, visits = frames["persons"], frames["visits"]
    heavy = persons["person_id"].iloc[0]
    extra = pd.DataFrame({"visit_id": [str(10**6 + i) for i in range(100)], "person_id": heavy,
                          "department": "general", "cost": "10"})
    orphans = pd.DataFrame({"visit_id": ["x1", "x2"], "person_id": ["999999", None],
                            "department": "general", "cost": "10"})
    dup = persons.iloc[[1]].assign(age="90")
    prepared = prepare_frames(rel, {"persons": pd.concat([persons, dup]),
                                    "visits": pd.concat([visits, extra, orphans])})
    root = prepared["persons"].set_index("person_id")
    assert len(root) == len(persons)  # the duplicate key kept its first row
    assert root.loc[persons["person_id"].iloc[1], "age"] == persons["age"].iloc[1]
    assert root.loc[heavy, "n_visits"] == MAX_VISITS  # clamped to the bound
    assert set(prepared["visits"]["person_id"]) <= set(root.index)  # orphans dropped
    assert list(prepared["visits"].columns[-2:]) == ["age", "sex"]  # parent columns joined
    assert frames["visits"].equals(visits)  # the input is not modified


def test_a_saved_model_samples_without_data(fitted: tuple[RelationalSynthesizer, dict[str, pd.DataFrame]],
                                            tmp_path: Path) -> None:
    model, _ = fitted
    model.save(tmp_path)
    loaded = RelationalSynthesizer.load(tmp_path)
    assert loaded.privacy.epsilon == pytest.approx(model.privacy.epsilon)
    a, b = model.sample(500, seed=3), loaded.sample(500, seed=3)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])


def test_bundle_verifies_and_catches_a_broken_link(clinic: Path, tmp_path: Path) -> None:
    out = release_tables(clinic, tmp_path / "bundle", epsilon=1.0, mechanism="mst", seed=0)
    result = verify_relational(out)
    assert result.ok, result.failures
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["privacy"]["epsilon"] == pytest.approx(1.0)
    assert set(manifest["tables"]) == {"persons", "visits"}
    assert (out / "tables" / "visits.csv").is_file() and (out / "relational.yaml").is_file()
    for table in ("persons", "visits"):  # a public report per table, under the release's guarantee
        report = json.loads((out / "report" / f"{table}.json").read_text())
        assert report["privacy"]["epsilon"] == pytest.approx(1.0) and report["kind"] == "public"
        assert "<svg" in (out / "report" / f"{table}.html").read_text()
    assert {c["name"] for c in report["columns"]} >= {"department", "age", "sex"}  # joined parent columns
    overview = json.loads((out / "report" / "index.json").read_text())  # one page for the release
    assert [t["name"] for t in overview["tables"]] == ["persons", "visits"]
    assert overview["privacy"]["epsilon"] == pytest.approx(1.0) and overview["kind"] == "public-relational"
    (counts,) = overview["child_counts"]
    assert counts["table"] == "visits" and counts["measured"] and len(counts["labels"]) == MAX_VISITS + 1
    page = (out / "report" / "index.html").read_text()
    assert 'href="persons.html"' in page and 'href="visits.html"' in page and "at most 12 rows per person" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page  # self-contained
    # break one foreign key, and re-sign the checksums so that only the link check can see it
    visits = pd.read_parquet(out / "tables" / "visits.parquet")
    visits.loc[0, "person_id"] = 10**9
    (out / "tables" / "visits.parquet").chmod(0o644)
    visits.to_parquet(out / "tables" / "visits.parquet", index=False)
    from dpsynth.bundle.manifest import format_sha256sums, sha256_file

    names = [p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != "SHA256SUMS"]
    (out / "SHA256SUMS").chmod(0o644)
    (out / "SHA256SUMS").write_text(format_sha256sums({n: sha256_file(out / n) for n in names}))
    broken = verify_relational(out)
    assert not broken.ok
    assert any("foreign key 'person_id' names rows that are not in 'persons'" in f for f in broken.failures)


def test_duckdb_counts_the_same_linked_release(clinic: Path, tmp_path: Path) -> None:
    out = release_tables(clinic, tmp_path / "bundle", epsilon=1.0, mechanism="mst", seed=0, engine="duckdb")
    assert verify_relational(out).ok
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["engine"] == "duckdb" and manifest["privacy"]["epsilon"] == pytest.approx(1.0)


def test_a_persistent_ledger_caps_repeated_releases(clinic: Path, tmp_path: Path) -> None:
    """Two releases of epsilon 1 under a lifetime cap of 1.2 (two compose to about 1.41 in
    zCDP): the second is refused before any read, and the ledger keeps the first one's spend."""
    from dpsynth.errors import BudgetExceededError

    ledger = tmp_path / "ledger.json"
    release_tables(clinic, tmp_path / "a", epsilon=1.0, mechanism="mst", ledger_path=ledger, lifetime_epsilon=1.2)
    before = ledger.read_bytes()
    with pytest.raises(BudgetExceededError):
        release_tables(clinic, tmp_path / "b", epsilon=1.0, mechanism="mst", ledger_path=ledger)
    assert ledger.read_bytes() == before and not (tmp_path / "b").exists()


def test_a_signed_bundle_verifies_with_its_key_only(clinic: Path, tmp_path: Path) -> None:
    from dpsynth.bundle.signing import generate_key

    generate_key(tmp_path / "key")
    generate_key(tmp_path / "other")
    out = release_tables(clinic, tmp_path / "bundle", epsilon=1.0, mechanism="mst", sign=tmp_path / "key")
    assert (out / "signature.json").is_file()
    assert verify_relational(out, key=tmp_path / "key.pub").ok
    wrong = verify_relational(out, key=tmp_path / "other.pub")
    assert not wrong.ok and any("another key" in f for f in wrong.failures)
    run = subprocess.run([sys.executable, "-m", "dpsynth", "verify", str(out), "--key", str(tmp_path / "key.pub")],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr


def test_the_internal_report_is_private_and_outside_the_bundle(clinic: Path, tmp_path: Path) -> None:
    out = release_tables(clinic, tmp_path / "bundle", epsilon=3.0, mechanism="aim", seed=0,
                         internal_report=tmp_path / "internal")
    doc = json.loads((tmp_path / "internal" / "evaluation.json").read_text())
    assert doc["confidential"] is True and doc["input_rows"]["persons"] == 3000
    scores = doc["fidelity"]
    assert set(scores) == {"within persons", "within visits", "joined visits", "count visits"}
    assert 0 < scores["count visits"] < 0.3 and 0 < scores["joined visits"] < 0.5
    assert (tmp_path / "internal").stat().st_mode & 0o077 == 0  # owner only
    assert not any("evaluation" in p.name for p in out.rglob("*"))
    with pytest.raises(ConfigError, match="outside the bundle"):
        release_tables(clinic, tmp_path / "b2", epsilon=1.0, internal_report=tmp_path / "b2" / "internal")


def test_an_existing_output_is_refused_before_any_spend(clinic: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(ConfigError, match="already exists"):
        release_tables(clinic, tmp_path / "taken", epsilon=1.0)


def test_a_drafted_child_schema_is_refused_before_any_read_or_accepted_as_a_caveat(clinic: Path,
                                                                                  tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "drafted"
    shutil.copytree(clinic.parent, folder)
    schema = yaml.safe_load((folder / "visits.schema.yaml").read_text())
    next(c for c in schema["columns"] if c["name"] == "cost")["source"] = "private_inferred"
    (folder / "visits.schema.yaml").write_text(yaml.safe_dump(schema, sort_keys=False))
    ledger = tmp_path / "ledger.json"
    with pytest.raises(SchemaError, match=r"table 'visits': the schema has private_inferred facts "
                                          r"\(columns \['cost'\]\).*--allow-private-schema"):
        release_tables(folder / "relational.yaml", tmp_path / "refused", epsilon=1.0, mechanism="mst",
                       ledger_path=ledger)
    assert not ledger.exists()  # refused before the root (a clean schema) spent anything
    out = release_tables(folder / "relational.yaml", tmp_path / "accepted", epsilon=1.0, mechanism="mst",
                         allow_private_schema=True)
    caveats = json.loads((out / "manifest.json").read_text())["privacy"]["caveats"]
    assert [c for c in caveats if "PRIVATE SCHEMA ACCEPTED" in c] == [next(
        c for c in caveats if c.startswith("table 'visits': PRIVATE SCHEMA ACCEPTED: facts of columns ['cost']"))]
    assert "PRIVATE SCHEMA ACCEPTED" in (out / "privacy_statement.md").read_text()
    report = json.loads((out / "report" / "persons.json").read_text())
    assert any("PRIVATE SCHEMA ACCEPTED" in c for c in report["caveats"])  # every table's report says it


def _spec(**changes: object) -> dict[str, object]:
    spec = relational_spec()
    tables = spec["tables"]
    assert isinstance(tables, list)
    for key, value in changes.items():
        table, _, field = key.partition("__")
        entry = next(t for t in tables if t["name"] == table)
        if value is None:
            entry.pop(field, None)
        else:
            entry[field] = value
    return spec


@pytest.mark.parametrize(("changes", "message"), [
    ({"persons__primary_key": None}, "root table 'persons' needs a primary_key"),
    ({"visits__foreign_key": None}, "a child table needs parent, foreign_key and max_rows_per_parent"),
    ({"visits__parent_columns": ["income"]}, "parent column 'income' is not a modelled column of 'persons'"),
    ({"visits__parent_columns": ["person_id"]}, "parent column 'person_id' is not a modelled column"),
    ({"visits__foreign_key": "department"}, "foreign_key 'department' must be of kind identifier"),
    ({"visits__parent": "visits"}, "parent 'visits' must be the root 'persons'"),
    ({"visits__max_rows_per_parent": 0}, "max_rows_per_parent"),
])
def test_schema_errors_name_the_table_and_the_rule(tmp_path: Path, changes: dict[str, object], message: str) -> None:
    (tmp_path / "persons.schema.yaml").write_text(yaml.safe_dump(PERSON_SCHEMA))
    (tmp_path / "visits.schema.yaml").write_text(yaml.safe_dump(VISIT_SCHEMA))
    with pytest.raises(SchemaError, match=message.replace("(", r"\(")):
        parse_relational(_spec(**changes), tmp_path)


def test_budget_shares_are_declared_for_every_table(tmp_path: Path) -> None:
    (tmp_path / "persons.schema.yaml").write_text(yaml.safe_dump(PERSON_SCHEMA))
    (tmp_path / "visits.schema.yaml").write_text(yaml.safe_dump(VISIT_SCHEMA))
    rel = parse_relational({**_spec(), "budget_shares": {"persons": 1, "visits": 3}}, tmp_path)
    assert rel.shares == {"persons": 0.25, "visits": 0.75}
    with pytest.raises(SchemaError, match="missing"):
        parse_relational({**_spec(), "budget_shares": {"persons": 1}}, tmp_path)


def test_the_command_writes_a_verified_bundle(clinic: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    run = [sys.executable, "-m", "dpsynth"]
    made = subprocess.run([*run, "release-tables", str(clinic), "--epsilon", "1", "-m", "mst", "--seed", "0",
                           "--out", str(out), "--json"], capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    result = json.loads(made.stdout)
    assert result["verified"] is True and math.isclose(result["epsilon"], 1.0)
    checked = subprocess.run([*run, "verify", str(out)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0 and "OK" in checked.stderr
    more = subprocess.run([*run, "sample-tables", str(out), "--rows", "200", "--seed", "1", "--out",
                           str(tmp_path / "more"), "--json"], capture_output=True, text=True, check=False)
    assert more.returncode == 0, more.stderr
    persons = pd.read_csv(tmp_path / "more" / "persons.csv")
    visits = pd.read_csv(tmp_path / "more" / "visits.csv")
    assert len(persons) == 200 and visits["person_id"].isin(persons["person_id"]).all()
    single = subprocess.run([*run, "sample", str(out), "--out", str(tmp_path / "x.csv")],
                            capture_output=True, text=True, check=False)
    assert single.returncode == 2 and "sample-tables" in single.stderr
    missing = clinic.parent / "no-data.yaml"
    spec = yaml.safe_load(clinic.read_text())
    spec["tables"][1]["data"] = "nowhere.csv"
    missing.write_text(yaml.safe_dump(spec))
    failed = subprocess.run([*run, "release-tables", str(missing), "--epsilon", "1", "--out", str(tmp_path / "b2")],
                            capture_output=True, text=True, check=False)
    assert failed.returncode == 2 and "nowhere.csv" in failed.stderr and "Traceback" not in failed.stderr
    assert not (tmp_path / "b2").exists()


@pytest.mark.parametrize("link", ["matched", "reweighted"])
def test_other_links_keep_keys_bounds_and_the_child_model(
        link: str, fitted: tuple[RelationalSynthesizer, dict[str, pd.DataFrame]]) -> None:
    """``link="matched"`` (children from the child model alone, handed to persons with the same
    parent columns) and ``"reweighted"`` (the default: persons resampled within their group,
    then conditional): keys join, bounds hold, and the dependence on sex survives."""
    model, _ = fitted
    tables = model.sample(seed=4, link=link)
    visits, persons = tables["visits"], tables["persons"]
    assert visits["person_id"].isin(persons["person_id"]).all()
    assert visits.groupby("person_id").size().max() <= MAX_VISITS
    share = pd.crosstab(_joined(tables)["sex"], _joined(tables)["department"], normalize="index")
    assert share.loc["Male", "maternity"] < 0.05 and share.loc["Female", "maternity"] > 0.2
    if link == "reweighted":  # the tilt moves the count distribution (at most 0.15 in 60 fits), random links 0.35
        rng = np.random.default_rng(0)
        shuffled = {**tables, "visits": visits.assign(person_id=rng.choice(persons["person_id"].to_numpy(),
                                                                          len(visits)))}
        real = _count_dist(fitted[1])
        l1 = float(np.abs(_count_dist(tables) - real).sum())
        assert l1 < 0.3 < float(np.abs(_count_dist(shuffled) - real).sum())
    with pytest.raises(ConfigError, match="link"):
        model.sample(seed=4, link="random")


def test_the_tilt_hits_the_asked_mean_count() -> None:
    """Reweighting's tilt gives the asked mean child count, clipped to the counts' range."""
    from dpsynth.relational.linking import _tilt

    counts = np.array([0, 1, 1, 2, 5, 8], dtype=np.float64)
    for mean in (0.5, 2.8, 6.0):
        w = _tilt(counts, mean)
        assert w.sum() == pytest.approx(1.0) and float((w * counts).sum()) == pytest.approx(mean, abs=1e-6)
    assert float((_tilt(counts, 99.0) * counts).sum()) == pytest.approx(8.0, abs=1e-3)  # clipped to the range
    assert np.allclose(_tilt(np.array([3.0, 3.0]), 1.0), 0.5)


@pytest.mark.parametrize(("edit", "code", "message"), [
    ("missing-file", 4, "cannot read relational schema"),
    ("bad-yaml", 4, "not valid YAML/JSON"),
    ("no-foreign-key", 2, "table 'visits': the data has no foreign key column 'person_id'"),
    ("no-root-column", 4, "lacks schema columns ['age']"),
    ("neural", 2, "must be one of ['mst', 'aim', 'independent'] for linked tables"),
])
def test_bad_input_is_one_line_with_the_documented_code(clinic: Path, tmp_path: Path, edit: str, code: int,
                                                       message: str) -> None:
    spec = yaml.safe_load(clinic.read_text())
    folder = clinic.parent
    path, mech = tmp_path / "relational.yaml", "mst"
    for t in spec["tables"]:
        t["schema"], t["data"] = str(folder / t["schema"]), str(folder / t["data"])
    if edit == "no-foreign-key":
        pd.read_csv(folder / "visits.csv").drop(columns=["person_id"]).to_csv(tmp_path / "v.csv", index=False)
        spec["tables"][1]["data"] = str(tmp_path / "v.csv")
    if edit == "no-root-column":
        pd.read_csv(folder / "persons.csv").drop(columns=["age"]).to_csv(tmp_path / "p.csv", index=False)
        spec["tables"][0]["data"] = str(tmp_path / "p.csv")
    path.write_text(yaml.safe_dump(spec))
    if edit == "missing-file":
        path = tmp_path / "nowhere.yaml"
    if edit == "bad-yaml":
        path.write_text("root: [")
    if edit == "neural":
        mech = "dpvae"
    run = subprocess.run([sys.executable, "-m", "dpsynth", "release-tables", str(path), "--epsilon", "1", "-m", mech,
                          "--out", str(tmp_path / "bundle")], capture_output=True, text=True, check=False)
    assert run.returncode == code and message in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and not (tmp_path / "bundle").exists()


def test_the_plan_reads_no_data_and_the_release_takes_a_person_count(clinic: Path, tmp_path: Path) -> None:
    from dpsynth.relational.plan import plan_relational

    spec = yaml.safe_load(clinic.read_text())
    for t in spec["tables"]:
        t["schema"], t["data"] = str(clinic.parent / t["schema"]), str(tmp_path / "absent.csv")
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(spec))
    plan = plan_relational(load_relational(tmp_path / "r.yaml"), mechanism="mst", epsilon=1.0)
    assert plan["rho"] == pytest.approx(sum(t["rho"] for t in plan["tables"].values()))
    assert {n: t["sensitivity_rows"] for n, t in plan["tables"].items()} == {"persons": 1, "visits": MAX_VISITS}
    assert plan["tables"]["persons"]["modelled_columns"][-1] == "n_visits"
    assert plan["tables"]["visits"]["modelled_columns"][-2:] == ["age", "sex"]
    # four modelled columns each and equal shares: a child count is the bound times noisier
    sigma = {n: t["plan"]["measurements"][0]["sigma"] for n, t in plan["tables"].items()}
    assert sigma["visits"] == pytest.approx(MAX_VISITS * sigma["persons"])
    shown = subprocess.run([sys.executable, "-m", "dpsynth", "plan-tables", str(tmp_path / "r.yaml"), "-m", "mst",
                            "--epsilon", "1"], capture_output=True, text=True, check=True)
    assert f"noise sigma {sigma['visits']:,.0f} rows per cell" in " ".join((shown.stdout + shown.stderr).split())
    out = release_tables(clinic, tmp_path / "bundle", epsilon=1.0, mechanism="mst", seed=0, rows=250)
    assert json.loads((out / "manifest.json").read_text())["tables"]["persons"]["rows"] == 250
