"""The public schema: every fact about the data that dpsynth may use without spending budget.

A schema declares each column's kind and public domain (categories, bounds, bin edges,
datetime ranges, nullability), its role for audits, and where each fact came from
(``declared``, ``dp`` or ``private_inferred``). Fitting refuses a schema holding
``private_inferred`` facts unless the caller explicitly accepts that caveat.

This module holds the :class:`Schema` container (columns, privacy unit, constraints) and its
file format (load, parse, dump, JSON Schema). The column kinds live in
:mod:`dpsynth.tabular.columns` and are re-exported here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dpsynth.errors import SchemaError
from dpsynth.tabular.columns import (
    GRANULARITY_UNITS,
    KINDS,
    BooleanColumn,
    CategoricalColumn,
    Column,
    DatetimeColumn,
    IdentifierColumn,
    NumericColumn,
    OrdinalColumn,
    Role,
    Source,
    canonical_key,
)
from dpsynth.tabular.constraints import PARTS, check_constraints, constraint_kind

__all__ = [
    "GRANULARITY_UNITS",
    "BooleanColumn",
    "CategoricalColumn",
    "Column",
    "DatetimeColumn",
    "IdentifierColumn",
    "NumericColumn",
    "OrdinalColumn",
    "PrivacyUnit",
    "Role",
    "Schema",
    "Source",
    "canonical_key",
    "dump_schema",
    "load_schema",
    "read_document",
    "schema_json_schema",
]


class PrivacyUnit(BaseModel):
    """The unit of privacy: one row (default) or one person with at most ``max_rows`` rows."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["row", "person"] = "row"
    column: str | None = None
    max_rows: int | None = Field(default=None, ge=1, le=10_000)

    @model_validator(mode="after")
    def _check(self) -> PrivacyUnit:
        if self.kind == "person" and (self.column is None or self.max_rows is None):
            raise ValueError("privacy_unit of kind 'person' needs column and max_rows")
        if self.kind == "row" and (self.column is not None or self.max_rows is not None):
            raise ValueError("privacy_unit of kind 'row' takes no column or max_rows")
        return self

    @property
    def sensitivity_rows(self) -> int:
        """How many rows one unit of privacy can add or remove."""
        return 1 if self.kind == "row" else int(self.max_rows or 1)

    def describe(self) -> str:
        """Plain-language description of the unit."""
        if self.kind == "row":
            return "one row (add/remove one record)"
        return f"one person (column {self.column!r}, at most {self.max_rows} rows each, add/remove)"


#: JSON Schema of one ``constraints`` entry (the model keeps entries as plain mappings).
_CONSTRAINT_ITEMS: dict[str, Any] = {"anyOf": [
    {"type": "object", "title": "Inequality", "required": ["inequality"], "additionalProperties": False,
     "properties": {"inequality": {"type": "string", "pattern": "^[^<>]+(>=|<=|>|<)[^<>]+$",
                                   "description": "two numeric or two datetime columns, e.g. 'end >= start'"}}},
    {"type": "object", "title": "Derived columns", "required": ["derived", "from"], "additionalProperties": False,
     "properties": {
         "derived": {"anyOf": [
             {"type": "object", "additionalProperties": {"enum": sorted(PARTS)},
              "description": "derived column name -> part of the source"},
             {"type": "array", "items": {"type": "string"}, "minItems": 1,
              "description": "derived column names (equal to their parts unless 'parts' is given)"}]},
         "from": {"type": "string", "description": "the datetime column the parts are taken from"},
         "parts": {"type": "array", "items": {"enum": sorted(PARTS)}}}},
    {"type": "object", "title": "Forbidden combination",
     "additionalProperties": {"anyOf": [{"type": ["string", "integer", "boolean"]},
                                        {"type": "array", "items": {"type": ["string", "integer", "boolean"]}}]},
     "description": "column -> value or values that may not occur together"},
]}


class Schema(BaseModel):
    """A public table schema: columns in order, the privacy unit and structural constraints.

    ``constraints`` lists forbidden combinations (each maps column names to a value or list
    of values, categories, ordinal categories or booleans, that may not occur together),
    inequalities between columns and derived columns (:mod:`dpsynth.tabular.constraints`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    version: Literal[1] = 1
    name: str | None = None
    privacy_unit: PrivacyUnit = PrivacyUnit()
    missing_values: list[str] = Field(default_factory=lambda: ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"])
    columns: list[Column] = Field(min_length=1)
    constraints: list[dict[str, Any]] = Field(default_factory=list, json_schema_extra={"items": _CONSTRAINT_ITEMS})

    @model_validator(mode="after")
    def _check(self) -> Schema:
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate column names: {dupes}")
        unit = self.privacy_unit
        if unit.kind == "person":
            if unit.column not in names:
                raise ValueError(f"privacy_unit column {unit.column!r} is not a column")
            if self.column(str(unit.column)).modelled:
                raise ValueError(f"privacy_unit column {unit.column!r} must be of kind identifier")
        if not any(c.modelled for c in self.columns):
            raise ValueError("the schema needs at least one modelled (non-identifier) column")
        for i, con in enumerate(self.constraints):
            if constraint_kind(con, names) != "forbidden":
                continue  # inequalities and derived columns: check_constraints below
            for col, val in con.items():
                if col not in names:
                    raise ValueError(f"constraint {i}: column {col!r} is not in the schema")
                c = self.column(col)
                if not isinstance(c, (CategoricalColumn, OrdinalColumn, BooleanColumn)):
                    raise ValueError(f"constraint {i}: column {col!r} must be categorical, ordinal or boolean")
                for v in val if isinstance(val, list) else [val]:
                    self.category_code(col, v, where=f"constraint {i}")
        check_constraints(self.columns, self.constraints)
        return self

    def column(self, name: str) -> Any:
        """The column called ``name``."""
        for c in self.columns:
            if c.name == name:
                return c
        raise SchemaError(f"column {name!r} is not in the schema")

    def category_code(self, name: str, value: object, *, where: str = "value") -> int:
        """Code of a declared category (or boolean) of a column; raises naming the column."""
        c = self.column(name)
        if isinstance(c, BooleanColumn):
            key = canonical_key(value).lower()
            if key in ("true", "1", "yes"):
                return 1
            if key in ("false", "0", "no"):
                return 0
        elif isinstance(c, (CategoricalColumn, OrdinalColumn)):
            keys = [canonical_key(x) for x in c.categories]
            if canonical_key(value) in keys:
                return keys.index(canonical_key(value))
        raise SchemaError(f"{where}: column {name!r} has no declared category equal to the given value")

    @property
    def modelled(self) -> list[Any]:
        """The modelled (non-identifier) columns, in order."""
        return [c for c in self.columns if c.modelled]

    def domain(self) -> dict[str, int]:
        """The public domain: ``{column: number of codes}`` for modelled columns."""
        return {c.name: c.domain_size() for c in self.modelled}

    def private_inferred(self) -> list[str]:
        """Names of columns with any fact marked ``private_inferred``."""
        return [c.name for c in self.columns if Source.private_inferred in c.fact_sources()]

    def dp_fact_costs(self) -> list[tuple[str, float]]:
        """``(column, rho)`` for every column with a fact of source ``dp``, in schema order.

        dpsynth does not derive these facts itself; ``dp_rho`` is the zCDP cost the column's
        DP facts were bought with elsewhere, which a fit must charge so that the released
        guarantee covers it.
        """
        return [(c.name, float(c.dp_rho)) for c in self.columns if c.dp_rho is not None]

    def dp_fact_charges(self) -> list[tuple[str, float, float]]:
        """``(column, rho, delta)`` for every column with a fact of source ``dp`` (delta 0 if unused)."""
        return [(c.name, float(c.dp_rho), float(c.dp_delta or 0.0)) for c in self.columns if c.dp_rho is not None]

    def roles(self, role: Role) -> list[str]:
        """Names of modelled columns with the given role."""
        return [c.name for c in self.modelled if c.role == role]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (defaults included, except an unset ``dp_rho``).

        Leaving out an unset ``dp_rho`` keeps :meth:`sha256` of a schema written before that
        field existed unchanged, so older release bundles still verify.
        """
        data = self.model_dump(mode="json")
        for col in data["columns"]:
            for key in ("dp_rho", "dp_delta"):
                if col.get(key) is None:
                    col.pop(key, None)
        return data

    def sha256(self) -> str:
        """Hash of the canonical JSON form."""
        import hashlib

        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


def _parse(data: Any, origin: str) -> Schema:
    if isinstance(data, dict) and "columns" not in data and data and all(
        isinstance(v, int) and not isinstance(v, bool) for v in data.values()
    ):
        return from_pgm_domain(data)
    try:
        return Schema.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
            name = _column_name(data, first["loc"])
            kinds = ", ".join(sorted(KINDS))
            got = (first.get("ctx") or {}).get("tag")
            msg = ((f"column {name!r}: " if name else "") + f"kind must be one of {kinds}"
                   + (f" (got {got!r})" if got else " (none given)"))
        raise SchemaError(f"{origin}: {loc or 'schema'}: {msg}") from None


def _column_name(data: Any, loc: tuple[Any, ...]) -> str | None:
    """The ``name`` of the column an error location points into, if it has one."""
    if len(loc) >= 2 and loc[0] == "columns" and isinstance(loc[1], int) and isinstance(data, dict):
        cols = data.get("columns")
        if isinstance(cols, list) and loc[1] < len(cols) and isinstance(cols[loc[1]], dict):
            name = cols[loc[1]].get("name")
            return str(name) if name is not None else None
    return None


def from_pgm_domain(domain: Mapping[str, int]) -> Schema:
    """Schema of integer-coded data from a Private-PGM domain (``{"col": cardinality}``).

    Each column becomes a categorical column with categories ``0 .. cardinality-1``.
    """
    cols: list[dict[str, Any]] = []
    for name, size in domain.items():
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise SchemaError(f"domain column {name!r}: cardinality must be an integer >= 1")
        cols.append({"name": name, "kind": "categorical", "categories": list(range(size))})
    return _parse({"columns": cols}, "domain")


def read_document(path: str | Path, what: str = "schema") -> Any:
    """The content of a YAML file (JSON by its ``.json`` suffix); errors name the file, never its text.

    Raises:
        SchemaError: The file cannot be read (``cannot read <what> <path>``) or parsed.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SchemaError(f"cannot read {what} {p}: {exc.strerror}") from None
    try:
        return json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SchemaError(f"{p.name}: not valid YAML/JSON ({type(exc).__name__})") from None


def load_schema(path: str | Path) -> Schema:
    """Read a dpsynth YAML/JSON schema or a Private-PGM domain JSON (``{"col": size}``)."""
    return _parse(read_document(path), Path(path).name)


def parse_schema(data: Any, origin: str = "schema") -> Schema:
    """Validate a schema given as a dict (as read from YAML/JSON)."""
    return _parse(data, origin)


def dump_schema(schema: Schema, path: str | Path | None = None) -> str:
    """Serialise to YAML (without defaults that add noise), optionally writing ``path``."""
    data = schema.model_dump(mode="json", exclude_defaults=True)
    data = {"version": 1, **data}
    data["columns"] = [
        {"name": c["name"], "kind": schema.column(c["name"]).kind, **{k: v for k, v in c.items() if k != "name"}}
        for c in data["columns"]
    ]
    for c in data["columns"]:  # integral numeric bounds are written as integers
        if c["kind"] == "numeric" and all(float(b).is_integer() for b in c["bounds"]):
            c["bounds"] = [int(b) for b in c["bounds"]]
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    if path is not None:
        from dpsynth.tabular.atomic import write_text_atomic

        write_text_atomic(Path(path), text)
    return text


def schema_json_schema() -> dict[str, Any]:
    """The published JSON Schema of the schema file format."""
    out = Schema.model_json_schema()
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["title"] = "dpsynth public schema"
    return out
