"""Schema converters: Private-PGM domain JSON and SDV single-table metadata in, SDV out.

Also :func:`set_role`, which changes a column's audit role. The convenience drafter lives in
:mod:`dpsynth.tabular.draft` (the one module that reads data to propose a schema); its public
names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dpsynth.errors import SchemaError
from dpsynth.tabular.columns import (
    BooleanColumn,
    CategoricalColumn,
    DatetimeColumn,
    IdentifierColumn,
    NumericColumn,
    OrdinalColumn,
    Role,
)
from dpsynth.tabular.draft import MIN_CATEGORY_COUNT, datetime_grid_bounds, draft_schema, grid_bounds
from dpsynth.tabular.schema import Schema, from_pgm_domain, parse_schema

__all__ = [
    "MIN_CATEGORY_COUNT",
    "datetime_grid_bounds",
    "draft_schema",
    "from_pgm_domain",
    "from_sdv",
    "grid_bounds",
    "to_sdv",
]


def from_sdv(metadata: Mapping[str, Any], facts: Mapping[str, Mapping[str, Any]]) -> Schema:
    """Schema from SDV single-table metadata plus the public facts SDV metadata lacks.

    Args:
        metadata: SDV ``SingleTableMetadata`` dict (``{"columns": {name: {"sdtype": ...}}}``).
        facts: Per column, the public facts: ``categories`` (categorical), ``bounds`` and
            optionally ``bins`` / ``edges`` (numerical), ``bounds`` (datetime), ``nullable``.
    """
    columns = metadata.get("columns")
    if not isinstance(columns, Mapping):
        raise SchemaError("SDV metadata has no 'columns' mapping")
    out: list[dict[str, Any]] = []
    for name, spec in columns.items():
        sdtype = spec.get("sdtype")
        extra = dict(facts.get(name, {}))
        base: dict[str, Any] = {"name": name, "nullable": bool(extra.pop("nullable", False))}
        if sdtype == "id" or name == metadata.get("primary_key") or spec.get("pii"):
            out.append({**base, "kind": "identifier", "nullable": False})
        elif sdtype == "categorical":
            if "categories" not in extra:
                raise SchemaError(f"column {name!r}: SDV metadata lacks categories; give them in facts")
            out.append({**base, "kind": "categorical", **extra})
        elif sdtype == "boolean":
            out.append({**base, "kind": "boolean"})
        elif sdtype == "numerical":
            if "bounds" not in extra:
                raise SchemaError(f"column {name!r}: SDV metadata lacks bounds; give them in facts")
            rep = str(spec.get("computer_representation", "Float"))
            dtype = "int" if rep.lower().startswith(("int", "uint")) else "float"
            if dtype == "float" and "bins" not in extra and "edges" not in extra:
                extra["bins"] = 32
            out.append({**base, "kind": "numeric", "dtype": dtype, **extra})
        elif sdtype == "datetime":
            if "bounds" not in extra:
                raise SchemaError(f"column {name!r}: SDV metadata lacks bounds; give them in facts")
            out.append({**base, "kind": "datetime", **extra})
        else:
            raise SchemaError(f"column {name!r}: SDV sdtype {sdtype!r} is not supported")
    return parse_schema({"columns": out}, "SDV metadata")


def to_sdv(schema: Schema) -> dict[str, Any]:
    """SDV single-table metadata (v1 dict) for a dpsynth schema."""
    cols: dict[str, Any] = {}
    for c in schema.columns:
        if isinstance(c, IdentifierColumn):
            if c.output == "token":
                cols[c.name] = {"sdtype": "id"}
        elif isinstance(c, (CategoricalColumn, OrdinalColumn)):
            cols[c.name] = {"sdtype": "categorical"}
        elif isinstance(c, BooleanColumn):
            cols[c.name] = {"sdtype": "boolean"}
        elif isinstance(c, NumericColumn):
            cols[c.name] = {"sdtype": "numerical", "computer_representation": "Int64" if c.dtype == "int" else "Float"}
        elif isinstance(c, DatetimeColumn):
            cols[c.name] = {"sdtype": "datetime", "datetime_format": "%Y-%m-%dT%H:%M:%S"}
    return {"METADATA_SPEC_VERSION": "SINGLE_TABLE_V1", "columns": cols}


def set_role(schema: Schema, column: str, role: Role) -> Schema:
    """A copy of ``schema`` with ``column``'s audit role changed."""
    data = schema.to_dict()
    for c in data["columns"]:
        if c["name"] == column:
            c["role"] = role.value
            break
    else:
        raise SchemaError(f"column {column!r} is not in the schema")
    return parse_schema(data)
