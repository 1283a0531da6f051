"""The relational schema: tables, their keys and links, and the person behind every row.

A relational release has one **root** table with one row per person (the privacy unit) and
child tables whose rows point at a root row through a foreign key. Everything here is public
and declared, like a table schema: which tables there are, each table's own schema file,
its primary key, each child's foreign key, the most rows a person may have in each child
table (``max_rows_per_parent``; contribution bounding drops the excess) and the parent columns
a child's rows are modelled with (``parent_columns``). Key columns are identifiers: never
modelled, written back as fresh keys that join.

The file (YAML or JSON)::

    version: 1
    name: nafld
    root: patients
    tables:
      - name: patients
        schema: patients.schema.yaml   # a table schema (dpsynth.tabular.schema)
        data: nafld1.csv               # optional: where release-tables reads it
        primary_key: id
      - name: labs
        schema: labs.schema.yaml
        data: nafld2.csv
        parent: patients
        foreign_key: id
        max_rows_per_parent: 50
        parent_columns: [age, male]
    budget_shares: {patients: 1, labs: 2}   # optional; default 1 per table

Relative paths are read from the file's folder. Only one level of children is supported:
every child's parent is the root.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dpsynth.errors import SchemaError
from dpsynth.tabular.schema import IdentifierColumn, Schema, dump_schema, load_schema, parse_schema, read_document

__all__ = ["RelationalSchema", "TableSpec", "count_column", "dump_relational", "load_relational"]

#: Most rows per person a child table may declare (the sensitivity of its counts).
MAX_ROWS_PER_PARENT = 1_000


class TableSpec(BaseModel):
    """One table of a relational schema (see the module docstring for the file)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    schema_file: str = Field(alias="schema")
    data: str | None = None
    primary_key: str | None = None
    parent: str | None = None
    foreign_key: str | None = None
    max_rows_per_parent: int | None = Field(default=None, ge=1, le=MAX_ROWS_PER_PARENT)
    parent_columns: tuple[str, ...] = ()
    sep: str | None = Field(default=None, min_length=1, max_length=1)

    @model_validator(mode="after")
    def _check(self) -> TableSpec:
        link = (self.parent, self.foreign_key, self.max_rows_per_parent)
        if any(v is not None for v in link) and any(v is None for v in link):
            raise ValueError(f"table {self.name!r}: a child table needs parent, foreign_key and max_rows_per_parent")
        if self.parent is None and self.parent_columns:
            raise ValueError(f"table {self.name!r}: parent_columns needs a parent")
        return self


class _File(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    version: int = 1
    name: str | None = None
    root: str
    tables: list[TableSpec] = Field(min_length=1)
    budget_shares: dict[str, float] | None = None


def count_column(child: str) -> str:
    """Name of the root's modelled column that holds a person's number of ``child`` rows."""
    return f"n_{child}"


@dataclass(frozen=True)
class RelationalSchema:
    """A checked relational schema: the specs, each table's schema, and the budget shares.

    Attributes:
        name: The dataset's name (optional).
        root: The root table (one row per person).
        specs: Table specs by name, root first, then the children in file order.
        schemas: Each table's own schema (keys declared as identifier columns).
        shares: Each table's share of the budget (they sum to 1).
        folder: Where relative ``data`` paths are read from.
    """

    name: str | None
    root: str
    specs: dict[str, TableSpec]
    schemas: dict[str, Schema]
    shares: dict[str, float]
    folder: Path = field(default=Path("."))

    @property
    def children(self) -> list[str]:
        """The child tables, in file order."""
        return [t for t in self.specs if t != self.root]

    def data_path(self, table: str) -> Path | None:
        """The table's declared data file, or ``None``."""
        data = self.specs[table].data
        return None if data is None else self.folder / data

    def describe_unit(self) -> str:
        """The privacy unit in words, for the manifest."""
        root = self.specs[self.root]
        rows = ", ".join(f"at most {self.specs[c].max_rows_per_parent} rows in {c!r}" for c in self.children)
        return (f"one person (a row of {self.root!r}, key {root.primary_key!r}) with all their rows in "
                f"the child tables ({rows}), add/remove")

    def to_json(self) -> dict[str, Any]:
        """The file's content without data paths (what a bundle publishes)."""
        tables = []
        for spec in self.specs.values():
            entry = spec.model_dump(by_alias=True, exclude_none=True, exclude={"data"})
            entry["schema"] = f"schemas/{spec.name}.schema.yaml"
            entry["parent_columns"] = list(spec.parent_columns)
            if not entry["parent_columns"]:
                del entry["parent_columns"]
            tables.append(entry)
        out: dict[str, Any] = {"version": 1, "root": self.root, "tables": tables, "budget_shares": dict(self.shares)}
        if self.name is not None:
            out = {"version": 1, "name": self.name, **{k: v for k, v in out.items() if k != "version"}}
        return out


def _check_keys(spec: TableSpec, schema: Schema) -> None:
    for role, key in (("primary_key", spec.primary_key), ("foreign_key", spec.foreign_key)):
        if key is None:
            continue
        names = [c.name for c in schema.columns]
        if key not in names:
            raise SchemaError(f"table {spec.name!r}: {role} {key!r} is not a column of its schema")
        if not isinstance(schema.column(key), IdentifierColumn):
            raise SchemaError(f"table {spec.name!r}: {role} {key!r} must be of kind identifier")
    if schema.privacy_unit.kind != "row":
        raise SchemaError(f"table {spec.name!r}: leave privacy_unit out of a table schema; "
                          "the relational schema sets it (the person of the root table)")


def _check_tables(data: _File, schemas: dict[str, Schema]) -> None:
    names = [t.name for t in data.tables]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SchemaError(f"duplicate table names: {dupes}")
    if data.root not in names:
        raise SchemaError(f"root {data.root!r} is not a table")
    for spec in data.tables:
        schema = schemas[spec.name]
        _check_keys(spec, schema)
        if spec.name == data.root:
            if spec.parent is not None:
                raise SchemaError(f"root table {spec.name!r} cannot have a parent")
            if spec.primary_key is None:
                raise SchemaError(f"root table {spec.name!r} needs a primary_key (the person)")
            continue
        if spec.parent is None:
            raise SchemaError(f"table {spec.name!r} needs a parent (only the root has none)")
        if spec.parent != data.root:
            raise SchemaError(f"table {spec.name!r}: parent {spec.parent!r} must be the root "
                              f"{data.root!r} (one level of child tables is supported)")
        parent = schemas[data.root]
        own = {c.name for c in schema.columns}
        for col in spec.parent_columns:
            if col not in [c.name for c in parent.modelled]:
                raise SchemaError(f"table {spec.name!r}: parent column {col!r} is not a modelled "
                                  f"column of {data.root!r}")
            if col in own:
                raise SchemaError(f"table {spec.name!r}: parent column {col!r} clashes with its own "
                                  "column of that name")
        if count_column(spec.name) in {c.name for c in parent.columns}:
            raise SchemaError(f"root table {data.root!r} has a column {count_column(spec.name)!r}, the name of "
                              f"the child count of {spec.name!r}; rename it")


def _shares(data: _File) -> dict[str, float]:
    names = [t.name for t in data.tables]
    given = data.budget_shares
    if given is None:
        return {n: 1 / len(names) for n in names}
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise SchemaError(f"budget_shares names unknown tables: {unknown}")
    missing = sorted(set(names) - set(given))
    if missing:
        raise SchemaError(f"budget_shares must give every table a share (missing: {missing})")
    if any(not v > 0 for v in given.values()):
        raise SchemaError("budget_shares must be > 0")
    total = sum(given.values())
    return {n: given[n] / total for n in names}


def parse_relational(data: Any, folder: Path, origin: str = "relational schema",
                     schemas: dict[str, Schema] | None = None) -> RelationalSchema:
    """Validate a relational schema given as a dict; table schemas are read from ``folder``
    unless given in ``schemas``."""
    try:
        parsed = _File.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SchemaError(f"{origin}: {where}: {first['msg']}") from None
    tables: dict[str, Schema] = {}
    for spec in parsed.tables:
        tables[spec.name] = (schemas[spec.name] if schemas and spec.name in schemas
                             else load_schema(folder / spec.schema_file))
    _check_tables(parsed, tables)
    order = [parsed.root] + [t.name for t in parsed.tables if t.name != parsed.root]
    specs = {t.name: t for t in parsed.tables}
    return RelationalSchema(parsed.name, parsed.root, {n: specs[n] for n in order},
                            {n: tables[n] for n in order}, _shares(parsed), folder)


def load_relational(path: str | Path) -> RelationalSchema:
    """Read a relational schema file and the table schemas it names."""
    p = Path(path)
    return parse_relational(read_document(p, "relational schema"), p.parent, p.name)


def dump_relational(rel: RelationalSchema, folder: Path) -> None:
    """Write ``relational.yaml`` and ``schemas/<table>.schema.yaml`` into ``folder``."""
    (folder / "schemas").mkdir(parents=True, exist_ok=True)
    for name, schema in rel.schemas.items():
        dump_schema(schema, folder / "schemas" / f"{name}.schema.yaml")
    from dpsynth.tabular.atomic import write_text_atomic

    write_text_atomic(folder / "relational.yaml", yaml.safe_dump(rel.to_json(), sort_keys=False, allow_unicode=True))


def reload_relational(folder: Path) -> RelationalSchema:
    """Read back what :func:`dump_relational` wrote."""
    text = (folder / "relational.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    schemas = {t["name"]: parse_schema(yaml.safe_load((folder / t["schema"]).read_text(encoding="utf-8")),
                                       t["schema"]) for t in data["tables"]}
    return parse_relational(data, folder, "relational.yaml", schemas)
