"""The public schema: validation errors name the column, readers, drafting, JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from dpsynth.errors import SchemaError
from dpsynth.tabular.schema import (
    Role,
    Schema,
    Source,
    dump_schema,
    load_schema,
    parse_schema,
    schema_json_schema,
)
from dpsynth.tabular.schema_io import MIN_CATEGORY_COUNT, draft_schema, from_pgm_domain, from_sdv, to_sdv


def test_adult_schema_loads_with_public_domain(adult_schema_path: Path) -> None:
    s = load_schema(adult_schema_path)
    dom = s.domain()
    assert dom["sex"] == 2
    assert dom["workclass"] == 9  # 8 categories + null
    assert dom["age"] == 14  # 14 declared bins
    assert dom["education-num"] == 16  # one cell per integer 1..16
    assert s.private_inferred() == []
    assert set(s.roles(Role.quasi_identifier)) >= {"age", "sex", "race"}
    assert s.roles(Role.sensitive) == ["income-per-year"]


@pytest.mark.parametrize(
    ("column", "fragment"),
    [
        ({"name": "age", "kind": "numeric", "dtype": "int", "bounds": [10, 5]}, "age"),
        ({"name": "w", "kind": "numeric", "dtype": "float", "bounds": [0, 1]}, "needs bins"),
        ({"name": "c", "kind": "categorical", "categories": ["a", "a"]}, "unique"),
        ({"name": "c", "kind": "categorical", "categories": []}, "categories"),
        ({"name": "d", "kind": "datetime", "bounds": ["2020-01-01", "2019-01-01"]}, "lower < upper"),
        ({"name": "e", "kind": "numeric", "dtype": "int", "bounds": [0, 10], "edges": [0, 5, 4, 10]}, "increasing"),
        ({"name": "f", "kind": "numeric", "dtype": "int", "bounds": [0, 1000]}, "needs bins"),
    ],
)
def test_schema_errors_name_the_column_and_constraint(column: dict, fragment: str) -> None:
    with pytest.raises(SchemaError) as info:
        parse_schema({"columns": [column]})
    assert fragment in str(info.value)


def test_duplicate_column_names_are_a_schema_error() -> None:
    col = {"name": "a", "kind": "boolean"}
    with pytest.raises(SchemaError, match="duplicate column names"):
        parse_schema({"columns": [col, col]})


def test_person_unit_must_be_an_identifier_column() -> None:
    cols = [{"name": "pid", "kind": "categorical", "categories": ["x"]}, {"name": "b", "kind": "boolean"}]
    with pytest.raises(SchemaError, match="identifier"):
        parse_schema({"columns": cols, "privacy_unit": {"kind": "person", "column": "pid", "max_rows": 3}})
    cols[0] = {"name": "pid", "kind": "identifier"}
    s = parse_schema({"columns": cols, "privacy_unit": {"kind": "person", "column": "pid", "max_rows": 3}})
    assert s.privacy_unit.sensitivity_rows == 3
    assert "pid" not in s.domain()


def test_constraints_must_name_declared_categories() -> None:
    cols = [{"name": "a", "kind": "categorical", "categories": ["x", "y"]}, {"name": "b", "kind": "boolean"}]
    parse_schema({"columns": cols, "constraints": [{"a": "x", "b": True}]})
    with pytest.raises(SchemaError, match="'a'"):
        parse_schema({"columns": cols, "constraints": [{"a": "zzz", "b": True}]})


def test_yaml_round_trip_preserves_the_schema(tmp_path: Path, adult_schema_path: Path) -> None:
    s = load_schema(adult_schema_path)
    dump_schema(s, tmp_path / "s.yaml")
    again = load_schema(tmp_path / "s.yaml")
    assert again == s
    assert again.sha256() == s.sha256()


def test_pgm_domain_reader(tmp_path: Path) -> None:
    (tmp_path / "d.json").write_text(json.dumps({"a": 3, "b": 2}))
    s = load_schema(tmp_path / "d.json")
    assert s.domain() == {"a": 3, "b": 2}
    with pytest.raises(SchemaError, match="'a'"):
        from_pgm_domain({"a": 0})


def test_sdv_round_trip_needs_public_facts() -> None:
    meta = {"columns": {"id": {"sdtype": "id"}, "age": {"sdtype": "numerical", "computer_representation": "Int64"},
                        "color": {"sdtype": "categorical"}}, "primary_key": "id"}
    with pytest.raises(SchemaError, match="color"):
        from_sdv(meta, {"age": {"bounds": [0, 100], "bins": 10}})
    s = from_sdv(meta, {"age": {"bounds": [0, 100], "bins": 10}, "color": {"categories": ["r", "g"]}})
    assert s.domain() == {"age": 10, "color": 2}
    back = to_sdv(s)
    assert back["columns"]["age"]["sdtype"] == "numerical"
    assert back["columns"]["color"]["sdtype"] == "categorical"


def test_draft_marks_everything_private_and_hides_identifiers_and_rare_values() -> None:
    n = 400
    df = pd.DataFrame({
        "email": [f"user{i}@example.org" for i in range(n)],
        "patient_id": [f"P{i:05d}" for i in range(n)],
        "color": ["red"] * 200 + ["blue"] * 195 + ["CANARY-RARE"] * 3 + [None] * 2,
        "age": [20 + (i % 60) for i in range(n)],
        "flag": ["yes", "no"] * (n // 2),
    })
    schema, notes = draft_schema(df)
    kinds = {c.name: c.kind for c in schema.columns}
    assert kinds["email"] == "identifier" and kinds["patient_id"] == "identifier"
    assert kinds["age"] == "numeric" and kinds["flag"] == "boolean"
    color = schema.column("color")
    assert color.kind == "categorical" and color.other and color.nullable
    assert "CANARY-RARE" not in color.categories
    text = dump_schema(schema)
    assert "CANARY-RARE" not in text and "example.org" not in text and "P00001" not in text
    assert all(Source.private_inferred in c.fact_sources() for c in schema.columns)
    assert set(schema.private_inferred()) == {c.name for c in schema.columns}
    assert "NOT differentially private" in notes[0]
    assert MIN_CATEGORY_COUNT >= 5


def test_published_json_schema_is_current(repo_root: Path) -> None:
    published = json.loads((repo_root / "dpsynth" / "data" / "schema.schema.json").read_text())
    assert published == json.loads(json.dumps(schema_json_schema()))
    assert "columns" in published["properties"]


def test_model_validate_accepts_every_kind() -> None:
    s = Schema.model_validate({"columns": [
        {"name": "c", "kind": "categorical", "categories": ["a"], "other": True},
        {"name": "o", "kind": "ordinal", "categories": ["lo", "hi"]},
        {"name": "n", "kind": "numeric", "dtype": "float", "bounds": [0, 1], "bins": 4},
        {"name": "t", "kind": "datetime", "bounds": ["2000-01-01", "2000-12-31"], "granularity": "day", "bins": 12},
        {"name": "b", "kind": "boolean", "nullable": True},
        {"name": "i", "kind": "identifier", "output": "token"},
    ]})
    assert s.domain() == {"c": 2, "o": 2, "n": 4, "t": 12, "b": 3}
