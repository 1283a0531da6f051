"""The public schema: every fact about the data that dpsynth may use without spending budget.

A schema declares each column's kind and public domain (categories, bounds, bin edges,
datetime ranges, nullability), its role for audits, and where each fact came from
(``declared``, ``dp`` or ``private_inferred``). Fitting refuses a schema holding
``private_inferred`` facts unless the caller explicitly accepts that caveat.
"""

from __future__ import annotations

import itertools
import json
import math
import unicodedata
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dpsynth.errors import SchemaError

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
    "schema_json_schema",
]

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
GRANULARITY_UNITS = {"year": "Y", "month": "M", "day": "D", "hour": "h", "minute": "m", "second": "s"}


def canonical_key(value: object) -> str:
    """The matching key of a category value: NFC text without zero-width characters.

    Integers and integral floats match their decimal form, so a category declared as ``1``
    matches the data values ``1``, ``1.0`` and ``"1"``.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    text = str(value)
    return unicodedata.normalize("NFC", text.translate(_ZERO_WIDTH)).strip()


class Source(StrEnum):
    """Where a public fact came from."""

    declared = "declared"
    dp = "dp"
    private_inferred = "private_inferred"


class Role(StrEnum):
    """The column's role in audits."""

    quasi_identifier = "quasi_identifier"
    sensitive = "sensitive"
    none = "none"


class _Base(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    nullable: bool = False
    role: Role = Role.none
    source: Source = Source.declared
    sources: dict[str, Source] = Field(default_factory=dict)
    description: str | None = None
    dp_rho: float | None = Field(default=None, description=(
        "zCDP cost (rho) spent outside dpsynth to derive this column's facts of source 'dp'; "
        "required (> 0) exactly when the column has such a fact; fitting charges it"))

    @model_validator(mode="after")
    def _dp_cost(self) -> _Base:
        has_dp = Source.dp in self.fact_sources()
        if self.dp_rho is not None and not (math.isfinite(self.dp_rho) and self.dp_rho > 0):
            raise ValueError(f"column {self.name!r}: dp_rho must be a finite number > 0")
        if has_dp and self.dp_rho is None:
            raise ValueError(f"column {self.name!r}: source 'dp' needs dp_rho > 0 "
                             "(the zCDP cost spent to derive it)")
        if not has_dp and self.dp_rho is not None:
            raise ValueError(f"column {self.name!r}: dp_rho is set but no fact has source 'dp'")
        return self

    def fact_sources(self) -> set[Source]:
        """The sources of all of this column's facts."""
        return {self.source, *self.sources.values()}

    @property
    def modelled(self) -> bool:
        """Whether the column is part of the model's domain."""
        return True

    def domain_size(self) -> int:  # pragma: no cover - overridden
        """Number of codes: values, then ``other`` if declared, then null if nullable."""
        raise SchemaError(f"column {self.name!r} has no domain")

    def labels(self) -> list[str]:  # pragma: no cover - overridden
        """One public label per code, for reports."""
        raise SchemaError(f"column {self.name!r} has no domain")


class _Categories(_Base):
    categories: list[str | int] = Field(min_length=1)
    other: bool = False
    other_label: str = "Other"

    @model_validator(mode="after")
    def _unique(self) -> _Categories:
        keys = [canonical_key(c) for c in self.categories]
        if len(set(keys)) != len(keys):
            raise ValueError(f"column {self.name!r}: categories must be unique after normalisation")
        if self.other and canonical_key(self.other_label) in keys:
            raise ValueError(f"column {self.name!r}: other_label {self.other_label!r} is also a declared "
                             "category, so the two would be indistinguishable; set other_label to a "
                             "name that is not a category (e.g. other_label: '(other)')")
        return self

    @property
    def n_values(self) -> int:
        """Number of declared categories."""
        return len(self.categories)

    def domain_size(self) -> int:
        return len(self.categories) + int(self.other) + int(self.nullable)

    def labels(self) -> list[str]:
        out = [str(c) for c in self.categories]
        if self.other:
            out.append("(other)")
        if self.nullable:
            out.append("(null)")
        return out


class CategoricalColumn(_Categories):
    """Unordered categories declared in the schema, with an optional ``other`` bucket."""

    kind: Literal["categorical"] = "categorical"


class OrdinalColumn(_Categories):
    """Ordered categories (order as listed)."""

    kind: Literal["ordinal"] = "ordinal"


class _Binned(_Base):
    bins: int | None = Field(default=None, ge=1, le=100_000)
    edges: list[float] | None = None

    def _check_edges(self, lo: float, hi: float) -> None:
        if self.edges is not None:
            e = self.edges
            if len(e) < 2 or any(b <= a for a, b in itertools.pairwise(e)):
                raise ValueError(f"column {self.name!r}: edges must be strictly increasing (>= 2)")
            if e[0] != lo or e[-1] != hi:
                raise ValueError(f"column {self.name!r}: edges must start and end at the bounds")
            if self.bins is not None and self.bins != len(e) - 1:
                raise ValueError(f"column {self.name!r}: bins must equal len(edges) - 1")


class NumericColumn(_Binned):
    """A number within public bounds, modelled by bins (equal width or declared edges).

    An integer column without ``bins`` or ``edges`` whose range holds at most 64 values gets
    one cell per integer.
    """

    kind: Literal["numeric"] = "numeric"
    dtype: Literal["int", "float"] = "float"
    bounds: tuple[float, float]

    @model_validator(mode="after")
    def _check(self) -> NumericColumn:
        lo, hi = self.bounds
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"column {self.name!r}: bounds must be finite with lower < upper")
        self._check_edges(lo, hi)
        if self.dtype == "float" and self.bins is None and self.edges is None:
            raise ValueError(f"column {self.name!r}: a float column needs bins or edges")
        if self.dtype == "int" and self.bins is None and self.edges is None and hi - lo + 1 > 64:
            raise ValueError(
                f"column {self.name!r}: an integer range of more than 64 values needs bins or edges"
            )
        return self

    def bin_edges(self) -> npt.NDArray[np.float64]:
        """The public bin edges, from ``bounds[0]`` to ``bounds[1]``."""
        lo, hi = self.bounds
        if self.edges is not None:
            return np.asarray(self.edges, dtype=np.float64)
        if self.bins is None:  # one cell per integer
            return np.arange(lo, hi + 2, dtype=np.float64)
        return np.linspace(lo, hi, self.bins + 1)

    @property
    def per_integer(self) -> bool:
        """Whether each integer in the bounds has its own cell."""
        return self.dtype == "int" and self.bins is None and self.edges is None

    @property
    def n_values(self) -> int:
        """Number of value cells (without null)."""
        lo, hi = self.bounds
        if self.per_integer:
            return int(hi - lo + 1)
        return len(self.bin_edges()) - 1

    def domain_size(self) -> int:
        return self.n_values + int(self.nullable)

    def labels(self) -> list[str]:
        lo, _ = self.bounds
        if self.per_integer:
            out = [str(int(lo) + i) for i in range(self.n_values)]
        else:
            e = self.bin_edges()
            out = [
                f"[{_fmt(a)}, {_fmt(b)}{']' if i == len(e) - 2 else ')'}"
                for i, (a, b) in enumerate(itertools.pairwise(e))
            ]
        if self.nullable:
            out.append("(null)")
        return out


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.4g}"


class DatetimeColumn(_Base):
    """A timestamp within public bounds, at a public granularity, binned in time."""

    kind: Literal["datetime"] = "datetime"
    bounds: tuple[str, str]
    granularity: Literal["year", "month", "day", "hour", "minute", "second"] = "day"
    bins: int = Field(default=32, ge=1, le=100_000)
    timezone: str | None = None

    @model_validator(mode="after")
    def _check(self) -> DatetimeColumn:
        try:
            lo, hi = (pd.Timestamp(b) for b in self.bounds)
        except (ValueError, TypeError):
            raise ValueError(f"column {self.name!r}: bounds must be ISO timestamps") from None
        if (lo.tzinfo is None) != (hi.tzinfo is None) or not lo < hi:
            raise ValueError(f"column {self.name!r}: bounds must satisfy lower < upper, same tz-ness")
        return self

    def unit_bounds(self) -> tuple[int, int]:
        """Bounds as integers counted in granularity units since the epoch (UTC)."""
        lo, hi = (_to_units(pd.Timestamp(b), self.granularity) for b in self.bounds)
        return lo, hi

    @property
    def n_values(self) -> int:
        """Number of time bins (at most the number of granularity steps in the bounds)."""
        lo, hi = self.unit_bounds()
        return int(min(self.bins, hi - lo + 1))

    def domain_size(self) -> int:
        return self.n_values + int(self.nullable)

    def labels(self) -> list[str]:
        lo, hi = self.unit_bounds()
        edges = np.linspace(lo, hi + 1, self.n_values + 1)
        out = [str(_from_units(int(np.ceil(e)), self.granularity, None).date()) for e in edges[:-1]]
        if self.nullable:
            out.append("(null)")
        return out


def _to_units(ts: pd.Timestamp, granularity: str) -> int:
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(np.datetime64(ts.to_datetime64(), GRANULARITY_UNITS[granularity]).astype(np.int64))  # type: ignore[call-overload]


def _from_units(units: int, granularity: str, tz: str | None) -> pd.Timestamp:
    ts = pd.Timestamp(np.datetime64(int(units), GRANULARITY_UNITS[granularity]))  # type: ignore[call-overload]
    return ts.tz_localize("UTC").tz_convert(tz) if tz else ts


class BooleanColumn(_Base):
    """True/false (codes 0 = false, 1 = true)."""

    kind: Literal["boolean"] = "boolean"

    def domain_size(self) -> int:
        return 2 + int(self.nullable)

    def labels(self) -> list[str]:
        return ["false", "true"] + (["(null)"] if self.nullable else [])


class IdentifierColumn(_Base):
    """A direct identifier: never modelled; dropped, or replaced by fresh random tokens."""

    kind: Literal["identifier"] = "identifier"
    output: Literal["drop", "token"] = "drop"

    @property
    def modelled(self) -> bool:
        return False

    def domain_size(self) -> int:
        raise SchemaError(f"column {self.name!r} is an identifier and has no domain")

    def labels(self) -> list[str]:
        return []


Column = Annotated[
    CategoricalColumn | OrdinalColumn | NumericColumn | DatetimeColumn | BooleanColumn | IdentifierColumn,
    Field(discriminator="kind"),
]
#: The column kinds a schema may declare.
_KINDS = ("categorical", "ordinal", "numeric", "datetime", "boolean", "identifier")


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


class Schema(BaseModel):
    """A public table schema: columns in order, the privacy unit and structural constraints.

    ``constraints`` lists forbidden combinations: each maps column names to a value or list
    of values (categories, ordinal categories or booleans) that may not occur together.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    version: Literal[1] = 1
    name: str | None = None
    privacy_unit: PrivacyUnit = PrivacyUnit()
    missing_values: list[str] = Field(default_factory=lambda: ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"])
    columns: list[Column] = Field(min_length=1)
    constraints: list[dict[str, Any]] = Field(default_factory=list)

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
            for col, val in con.items():
                if col not in names:
                    raise ValueError(f"constraint {i}: column {col!r} is not in the schema")
                c = self.column(col)
                if not isinstance(c, (CategoricalColumn, OrdinalColumn, BooleanColumn)):
                    raise ValueError(f"constraint {i}: column {col!r} must be categorical, ordinal or boolean")
                for v in val if isinstance(val, list) else [val]:
                    self.category_code(col, v, where=f"constraint {i}")
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
            if col.get("dp_rho") is None:
                col.pop("dp_rho", None)
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
            kinds = ", ".join(sorted(_KINDS))
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


def load_schema(path: str | Path) -> Schema:
    """Read a dpsynth YAML/JSON schema or a Private-PGM domain JSON (``{"col": size}``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SchemaError(f"cannot read schema {p}: {exc.strerror}") from None
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SchemaError(f"{p.name}: not valid YAML/JSON ({type(exc).__name__})") from None
    return _parse(data, p.name)


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
