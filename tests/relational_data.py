"""Linked test tables with a known dependence: persons from the Adult sample and their visits.

Each person (a row of ``adult_sample.csv``: age, sex, race) has a number of visits that grows
with age (Poisson, mean 1 under 35, 3 from 35 to 54, 5 from 55), and each visit's department
depends on the person's sex (``maternity`` only for women, ``urology`` mostly for men). A
generator that links children to parents through the parent columns reproduces both; one
that links them at random does not. Written to CSV with schema files, as a user would.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from tests.paths import ADULT_SAMPLE

DEPARTMENTS = ["general", "cardiology", "maternity", "urology", "radiology"]
MAX_VISITS = 12


def persons_and_visits(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``n`` persons (keys 1..n shuffled) and their visits (keys 1..m)."""
    rng = np.random.default_rng(seed)
    adult = pd.read_csv(ADULT_SAMPLE, usecols=["age", "sex", "race"], skipinitialspace=True).dropna()
    people = adult.sample(n=n, replace=n > len(adult), random_state=seed).reset_index(drop=True)
    people.insert(0, "person_id", rng.permutation(n) + 1)
    mean = np.where(people["age"] < 35, 1.0, np.where(people["age"] < 55, 3.0, 5.0))
    counts = rng.poisson(mean)
    owner = np.repeat(np.arange(n), counts)
    female = (people["sex"].to_numpy()[owner] == "Female")
    p_f = np.array([0.4, 0.15, 0.3, 0.02, 0.13])
    p_m = np.array([0.45, 0.25, 0.0, 0.17, 0.13])
    u = rng.random(len(owner))
    cum_f, cum_m = np.cumsum(p_f), np.cumsum(p_m)
    dept = np.where(female, np.searchsorted(cum_f, u * cum_f[-1]), np.searchsorted(cum_m, u * cum_m[-1]))
    visits = pd.DataFrame({
        "visit_id": np.arange(1, len(owner) + 1),
        "person_id": people["person_id"].to_numpy()[owner],
        "department": np.array(DEPARTMENTS)[dept],
        "cost": np.round(rng.gamma(2.0, 150.0, len(owner)), 2).clip(0, 5000),
    })
    return people, visits


PERSON_SCHEMA = {
    "version": 1, "name": "persons",
    "columns": [
        {"name": "person_id", "kind": "identifier"},
        {"name": "age", "kind": "numeric", "dtype": "int", "bounds": [17, 100],
         "edges": [17, 25, 35, 45, 55, 65, 100]},
        {"name": "sex", "kind": "categorical", "categories": ["Female", "Male"]},
        {"name": "race", "kind": "categorical",
         "categories": ["White", "Black", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other"]},
    ],
}
VISIT_SCHEMA = {
    "version": 1, "name": "visits",
    "columns": [
        {"name": "visit_id", "kind": "identifier"},
        {"name": "person_id", "kind": "identifier"},
        {"name": "department", "kind": "categorical", "categories": DEPARTMENTS},
        {"name": "cost", "kind": "numeric", "bounds": [0, 5000], "bins": 20, "decimals": 2},
    ],
}


def relational_spec(parent_columns: list[str] | None = None, max_visits: int = MAX_VISITS) -> dict[str, object]:
    """The relational schema of the persons and visits (data paths relative to its folder)."""
    return {
        "version": 1, "name": "clinic", "root": "persons",
        "tables": [
            {"name": "persons", "schema": "persons.schema.yaml", "data": "persons.csv",
             "primary_key": "person_id"},
            {"name": "visits", "schema": "visits.schema.yaml", "data": "visits.csv", "parent": "persons",
             "primary_key": "visit_id",
             "foreign_key": "person_id", "max_rows_per_parent": max_visits,
             "parent_columns": ["age", "sex"] if parent_columns is None else parent_columns},
        ],
    }


def write_clinic(folder: Path, n: int = 3000, seed: int = 0, **spec: object) -> Path:
    """Write the CSVs, the table schemas and ``relational.yaml`` into ``folder``; its path."""
    folder.mkdir(parents=True, exist_ok=True)
    people, visits = persons_and_visits(n, seed)
    people.to_csv(folder / "persons.csv", index=False)
    visits.to_csv(folder / "visits.csv", index=False)
    (folder / "persons.schema.yaml").write_text(yaml.safe_dump(PERSON_SCHEMA, sort_keys=False))
    (folder / "visits.schema.yaml").write_text(yaml.safe_dump(VISIT_SCHEMA, sort_keys=False))
    path = folder / "relational.yaml"
    path.write_text(yaml.safe_dump(relational_spec(**spec), sort_keys=False))  # type: ignore[arg-type]
    return path
