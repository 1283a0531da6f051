"""Schema readers, writers and the convenience drafter.

Readers for Private-PGM domain JSON and SDV single-table metadata, an SDV exporter, and
:func:`draft_schema`, which reads the (private) data to propose a schema and marks every fact
it derived ``private_inferred``.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any, Mapping

import numpy as np
import pandas as pd

from dpsynth.errors import SchemaError
from dpsynth.schema import (
    BooleanColumn,
    CategoricalColumn,
    DatetimeColumn,
    IdentifierColumn,
    NumericColumn,
    OrdinalColumn,
    Role,
    Schema,
    Source,
    canonical_key,
    parse_schema,
)

__all__ = ["from_pgm_domain", "from_sdv", "to_sdv", "draft_schema", "grid_bounds", "datetime_grid_bounds",
           "MIN_CATEGORY_COUNT"]

log = logging.getLogger(__name__)

#: A category seen fewer times than this in the data is never copied into a drafted schema.
MIN_CATEGORY_COUNT = 10

_ID_NAME = re.compile(r"(^|[_\W])(id|uuid|guid|ssn|e-?mail|phone|tel|name|surname|address|record|mrn)([_\W]|$)", re.I)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_PHONE = re.compile(r"^\+?[\d\s().-]{7,}$")
_SSN = re.compile(r"^\d{3}-\d{2}-\d{4}$")
_ISO_DATE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}([T ][\d:.]*)?([+-]\d{2}:?\d{2}|Z)?$")


def from_pgm_domain(domain: Mapping[str, int]) -> Schema:
    """Schema of integer-coded data from a Private-PGM domain (``{"col": cardinality}``).

    Each column becomes a categorical column with categories ``0 .. cardinality-1``.
    """
    cols: list[dict[str, Any]] = []
    for name, size in domain.items():
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise SchemaError(f"domain column {name!r}: cardinality must be an integer >= 1")
        cols.append({"name": name, "kind": "categorical", "categories": list(range(size))})
    return parse_schema({"columns": cols}, "domain")


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


def _looks_identifier(name: str, s: pd.Series) -> bool:
    nonnull = s.dropna().astype(str)
    if nonnull.empty:
        return False
    distinct = nonnull.nunique() / max(len(nonnull), 1)
    sample = nonnull.head(200)
    patterned = any(sample.str.match(p).mean() > 0.8 for p in (_EMAIL, _SSN))
    dates = pd.api.types.is_datetime64_any_dtype(s) or sample.str.match(_ISO_DATE).mean() > 0.8
    phone = not dates and sample.str.match(_PHONE).mean() > 0.8 and sample.str.count(r"\d").mean() >= 7
    named = bool(_ID_NAME.search(name))
    free_text = sample.str.len().mean() > 40 and distinct > 0.5
    return patterned or phone or free_text or (distinct > 0.9 and len(nonnull) >= 20) or (named and distinct > 0.5)


def grid_bounds(lo: float, hi: float) -> tuple[int, int]:
    """Bounds rounded outward to a coarse public grid (a power of ten), hiding the extremes.

    The step is ``10 ** floor(log10(max(|lo|, |hi|, 1)))``, so ``[3, 987654.321]`` becomes
    ``[0, 1000000]``. A bound equals a data value only when that value lies on the grid.
    """
    m = max(abs(lo), abs(hi), 1.0)
    step = 10 ** math.floor(math.log10(m))
    while step * 10 <= m:  # guard log10 rounding
        step *= 10
    while step > m:
        step //= 10
    g_lo, g_hi = math.floor(lo / step) * step, math.ceil(hi / step) * step
    while g_lo > lo:
        g_lo -= step
    while g_hi < hi:
        g_hi += step
    if g_lo == g_hi:
        g_hi += step
    return int(g_lo), int(g_hi)


def datetime_grid_bounds(lo: pd.Timestamp, hi: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Datetime bounds rounded outward to whole years, or whole months for spans under two years.

    Years: 1 January of the earliest value's year to 1 January of the year after the latest
    value's year. Months (when the data span less than 730 days): the first of the earliest
    value's month to the first of the month after the latest value's month.
    """
    tz = lo.tz
    if (hi - lo) >= pd.Timedelta(days=730):
        return pd.Timestamp(year=lo.year, month=1, day=1, tz=tz), pd.Timestamp(year=hi.year + 1, month=1, day=1, tz=tz)
    nxt_year, nxt_month = (hi.year + 1, 1) if hi.month == 12 else (hi.year, hi.month + 1)
    return (pd.Timestamp(year=lo.year, month=lo.month, day=1, tz=tz),
            pd.Timestamp(year=nxt_year, month=nxt_month, day=1, tz=tz))


def _draft_datetime(base: dict[str, Any], dt: pd.Series) -> dict[str, Any]:
    lo, hi = datetime_grid_bounds(dt.min(), dt.max())
    return {**base, "kind": "datetime", "bounds": [lo.isoformat(), hi.isoformat()], "granularity": "day"}


def draft_schema(df: pd.DataFrame, *, name: str | None = None) -> tuple[Schema, list[str]]:
    """Propose a schema by reading the data. NOT PRIVATE: every derived fact is marked.

    No single record's value is copied: numeric bounds are rounded outward to a power-of-ten
    grid (:func:`grid_bounds`), datetime bounds to whole years or months
    (:func:`datetime_grid_bounds`), and every modelled column is drafted ``nullable`` whether
    or not the data hold nulls. Likely direct identifiers (nearly unique values; e-mail, phone
    or SSN-like text; id-like names) and free text become ``identifier`` columns, and their
    values are never copied. Categories seen fewer than :data:`MIN_CATEGORY_COUNT` times are
    not copied either; the column gets an ``other`` bucket instead.

    Returns:
        The schema and a list of human-readable notes (no data values in them).
    """
    notes: list[str] = []
    cols: list[dict[str, Any]] = []
    inferred = Source.private_inferred.value
    for col in df.columns:
        name_c = str(col)
        s = df[col]
        base: dict[str, Any] = {"name": name_c, "nullable": True, "source": inferred}
        if _looks_identifier(name_c, s):
            cols.append({**base, "kind": "identifier", "nullable": False})
            notes.append(f"{name_c}: looks like a direct identifier or free text; it will not be modelled")
            continue
        nonnull = s.dropna()
        if len(nonnull) and pd.api.types.is_datetime64_any_dtype(s):
            cols.append(_draft_datetime(base, nonnull))
            notes.append(f"{name_c}: datetime bounds were read from the data and widened to whole years "
                         "or months (private); declare public bounds")
            continue
        as_num = pd.to_numeric(nonnull, errors="coerce")
        keys = nonnull.map(canonical_key)
        if len(nonnull) and set(keys.str.lower().unique()) <= {"true", "false", "yes", "no"}:
            cols.append({**base, "kind": "boolean"})
            continue
        if len(nonnull) and as_num.notna().mean() > 0.98 and keys.nunique() > 12:
            vals = as_num.dropna()
            lo, hi = grid_bounds(float(vals.min()), float(vals.max()))
            is_int = bool(np.all(np.isclose(vals, np.round(vals))))
            spec: dict[str, Any] = {**base, "kind": "numeric", "dtype": "int" if is_int else "float", "bounds": [lo, hi]}
            if not (is_int and hi - lo + 1 <= 64):
                spec["bins"] = 32
            cols.append(spec)
            notes.append(f"{name_c}: numeric bounds were read from the data and rounded outward to a power "
                         "of ten (private); declare public bounds")
            continue
        if len(nonnull) and (pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)):
            dt = pd.to_datetime(nonnull, errors="coerce", utc=False, format="mixed")
            if dt.notna().mean() > 0.98 and as_num.notna().mean() < 0.5:
                cols.append(_draft_datetime(base, dt.dropna()))
                notes.append(f"{name_c}: datetime bounds were read from the data and widened to whole years "
                             "or months (private); declare public bounds")
                continue
        counts = keys.value_counts()
        kept = sorted(str(k) for k, v in counts.items() if v >= MIN_CATEGORY_COUNT)
        rare = int((counts < MIN_CATEGORY_COUNT).sum())
        if not kept:
            cols.append({**base, "kind": "identifier", "nullable": False})
            notes.append(f"{name_c}: no category is frequent enough to publish; treated as identifier")
            continue
        cols.append({**base, "kind": "categorical", "categories": kept, "other": rare > 0})
        if rare:
            notes.append(f"{name_c}: {rare} rare categories were not copied; they map to (other)")
    schema = parse_schema({"name": name, "columns": cols}, "draft")
    notes.insert(0, "This schema was read off the data and is NOT differentially private: every derived "
                 "fact is marked private_inferred. Replace them with public facts before fitting.")
    notes.insert(1, "every modelled column is drafted nullable (nulls were not looked up); set "
                 "nullable: false where the public definition of the data rules nulls out")
    return schema, notes


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
