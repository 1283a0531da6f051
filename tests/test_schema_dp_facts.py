"""Schema facts of source ``dp`` must carry their zCDP cost (``dp_rho``) so a fit can charge it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dpsynth.errors import SchemaError
from dpsynth.tabular.schema import Role, dump_schema, load_schema, parse_schema
from dpsynth.tabular.schema_io import set_role


def _cols(**age: Any) -> dict[str, Any]:
    return {"columns": [
        {"name": "sex", "kind": "categorical", "categories": ["f", "m"]},
        {"name": "age", "kind": "numeric", "dtype": "int", "bounds": [0, 50], **age},
        {"name": "income", "kind": "numeric", "bounds": [0, 1000], "bins": 8, "source": "dp", "dp_rho": 0.002},
        {"name": "when", "kind": "datetime", "bounds": ["2000-01-01", "2001-01-01"],
         "sources": {"bounds": "dp", "granularity": "declared"}, "dp_rho": 0.0005},
    ]}


@pytest.mark.parametrize("age", [{"source": "dp"}, {"sources": {"bounds": "dp"}}])
def test_dp_fact_without_dp_rho_is_refused_naming_the_column(age: dict[str, Any]) -> None:
    with pytest.raises(SchemaError) as err:
        parse_schema(_cols(**age))
    msg = str(err.value)
    assert "column 'age'" in msg and "source 'dp' needs dp_rho > 0" in msg and "zCDP" in msg


@pytest.mark.parametrize("rho", [0, -0.1, float("nan"), float("inf")])
def test_dp_rho_must_be_finite_and_positive(rho: float) -> None:
    with pytest.raises(SchemaError, match=r"column 'age': dp_rho must be a finite number > 0"):
        parse_schema(_cols(source="dp", dp_rho=rho))


def test_dp_rho_without_a_dp_fact_is_refused() -> None:
    with pytest.raises(SchemaError, match=r"column 'age': dp_rho is set but no fact has source 'dp'"):
        parse_schema(_cols(dp_rho=0.01))


def test_accepted_with_dp_rho_and_costs_listed_in_schema_order() -> None:
    schema = parse_schema(_cols(sources={"bounds": "dp"}, dp_rho=0.01))
    assert schema.dp_fact_costs() == [("age", 0.01), ("income", 0.002), ("when", 0.0005)]
    assert all(isinstance(rho, float) for _, rho in schema.dp_fact_costs())
    assert parse_schema({"columns": [{"name": "b", "kind": "boolean"}]}).dp_fact_costs() == []
    assert schema.private_inferred() == []  # dp facts are not private_inferred


def test_round_trip_through_yaml_dict_and_set_role(tmp_path: Path) -> None:
    schema = parse_schema(_cols(source="dp", dp_rho=0.01))
    path = tmp_path / "schema.yaml"
    text = dump_schema(schema, path)
    assert "dp_rho: 0.01" in text and "dp_rho: 0.002" in text and "dp_rho: 0.0005" in text
    back = load_schema(path)
    assert back == schema and back.sha256() == schema.sha256()
    assert parse_schema(schema.to_dict()) == schema
    assert set_role(schema, "sex", Role.quasi_identifier).dp_fact_costs() == schema.dp_fact_costs()


def test_unset_dp_rho_leaves_the_dict_and_hash_of_older_schemas_unchanged() -> None:
    schema = parse_schema({"columns": [{"name": "b", "kind": "boolean"},
                                       {"name": "age", "kind": "numeric", "dtype": "int", "bounds": [0, 50]}]})
    assert all("dp_rho" not in c for c in schema.to_dict()["columns"])
    assert "dp_rho" not in dump_schema(schema)
    # golden: the hash this schema had before dp_rho existed (release bundles pin it)
    assert schema.sha256() == "5d66237535638cfc41282e7e8f934cb092dbb2735a2e5a3e13c14dc9cd51277a"
