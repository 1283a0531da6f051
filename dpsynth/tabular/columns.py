"""Column kinds of the public schema: one frozen model per kind, with its public domain.

Each kind (categorical, ordinal, numeric, datetime, boolean, identifier) validates its own
public facts on construction and answers the questions encoding and reports ask of it: how
many codes it has (:meth:`domain_size`) and a public label per code (:meth:`labels`). Also
here: the category matching key (:func:`canonical_key`), where a fact came from
(:class:`Source`), a column's audit role (:class:`Role`) and datetime granularity units.
"""

from __future__ import annotations

import itertools
import math
import unicodedata
from enum import StrEnum
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from dpsynth.errors import SchemaError

__all__ = [
    "GRANULARITY_UNITS",
    "KINDS",
    "BooleanColumn",
    "CategoricalColumn",
    "Column",
    "DatetimeColumn",
    "IdentifierColumn",
    "NumericColumn",
    "OrdinalColumn",
    "Role",
    "Source",
    "canonical_key",
    "from_units",
    "to_units",
    "units_of",
]

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
#: Facts on how the source file spells values; left out of the schema's dict when unset.
_SPELLING = ("null_token", "true_label", "false_label", "format", "atoms", "step", "decimals")
#: numpy datetime unit of each public granularity.
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
    null_token: str | None = Field(default=None, description=(
        "how the source file spells a null (e.g. 'NA'); read as null and written back as is"))
    dp_rho: float | None = Field(default=None, description=(
        "zCDP cost (rho) spent outside dpsynth to derive this column's facts of source 'dp'; "
        "required (> 0) exactly when the column has such a fact; fitting charges it"))
    dp_delta: float | None = Field(default=None, description=(
        "the part of delta used up by thresholded histograms while deriving this column's "
        "facts of source 'dp' (DP schema discovery); charged with dp_rho"))

    @model_serializer(mode="wrap")
    def _quiet(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Unset spelling facts are left out, so a schema written before they existed keeps its hash."""
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if not (k in _SPELLING and v in (None, []))}

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
        if self.dp_delta is not None and (self.dp_rho is None or not 0 < self.dp_delta < 1):
            raise ValueError(f"column {self.name!r}: dp_delta must be > 0 and < 1, and needs dp_rho")
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
        if self.null_token is not None and canonical_key(self.null_token) in keys:
            raise ValueError(f"column {self.name!r}: null_token is also a declared category")
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
    one cell per integer. Each of the ``atoms`` (exact values such as 0, a cap or a sentinel
    like -999, inside or outside the bounds) has a cell of its own after the bins, and decodes
    to exactly that value. ``step`` (values on ``bounds[0] + k * step``) and ``decimals``
    (digits after the point) describe the source's precision; decoding writes values on that
    grid.
    """

    kind: Literal["numeric"] = "numeric"
    dtype: Literal["int", "float"] = "float"
    bounds: tuple[float, float]
    atoms: list[int | float] = Field(default_factory=list, max_length=64)
    step: int | float | None = Field(default=None, gt=0)
    decimals: int | None = Field(default=None, ge=0, le=12)

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
        self._check_shape()
        return self

    def _check_shape(self) -> None:
        a = self.atoms
        if not all(math.isfinite(x) for x in a) or len(set(a)) != len(a) or list(a) != sorted(a):
            raise ValueError(f"column {self.name!r}: atoms must be finite, distinct and in increasing order")
        whole = [x for x in (*a, self.step or 1) if not float(x).is_integer()]
        if self.dtype == "int" and whole:
            raise ValueError(f"column {self.name!r}: an integer column's atoms and step must be integers")
        lo, hi = self.bounds
        if self.per_integer and any(lo <= x <= hi for x in a):
            raise ValueError(f"column {self.name!r}: each integer in the bounds already has its own cell; "
                             "atoms of a per-integer column must lie outside the bounds")
        if self.step is not None and (not math.isfinite(self.step) or self.step > hi - lo):
            raise ValueError(f"column {self.name!r}: step must be finite and at most the width of the bounds")
        if self.decimals is not None and self.dtype == "int":
            raise ValueError(f"column {self.name!r}: decimals apply to float columns only")

    def bin_edges(self) -> npt.NDArray[np.float64]:
        """The public bin edges, from ``bounds[0]`` to ``bounds[1]`` (atoms have no edges)."""
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
    def n_bins(self) -> int:
        """Number of range cells (bins, or integers): codes ``0 .. n_bins - 1``."""
        lo, hi = self.bounds
        if self.per_integer:
            return int(hi - lo + 1)
        return len(self.bin_edges()) - 1

    @property
    def n_values(self) -> int:
        """Number of value cells (without null): the range cells, then one per atom."""
        return self.n_bins + len(self.atoms)

    def domain_size(self) -> int:
        return self.n_values + int(self.nullable)

    def labels(self) -> list[str]:
        lo, _ = self.bounds
        if self.per_integer:
            out = [str(int(lo) + i) for i in range(self.n_bins)]
        else:
            e = self.bin_edges()
            out = [
                f"[{_fmt(a)}, {_fmt(b)}{']' if i == len(e) - 2 else ')'}"
                for i, (a, b) in enumerate(itertools.pairwise(e))
            ]
        out.extend(str(int(x)) if float(x).is_integer() else repr(float(x)) for x in self.atoms)
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
    format: str | None = Field(default=None, description=(
        "strftime format of the source text (e.g. '%Y-%m-%dT%H:%M:%SZ'); output is written in it"))

    @model_validator(mode="after")
    def _check(self) -> DatetimeColumn:
        if self.format is not None and "%" not in self.format:
            raise ValueError(f"column {self.name!r}: format must be a strftime format (e.g. '%Y-%m-%d')")
        try:
            lo, hi = (pd.Timestamp(b) for b in self.bounds)
        except (ValueError, TypeError):
            raise ValueError(f"column {self.name!r}: bounds must be ISO timestamps") from None
        if (lo.tzinfo is None) != (hi.tzinfo is None) or not lo < hi:
            raise ValueError(f"column {self.name!r}: bounds must satisfy lower < upper, same tz-ness")
        return self

    def zone(self) -> str | None:
        """The time zone values are shown in: ``timezone``, else the bounds' zone (None: naive UTC)."""
        first = pd.Timestamp(self.bounds[0])
        return self.timezone or (str(first.tz) if first.tzinfo else None)

    def unit_bounds(self) -> tuple[int, int]:
        """Bounds as integers counted in granularity units since the epoch (UTC)."""
        lo, hi = (to_units(pd.Timestamp(b), self.granularity) for b in self.bounds)
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
        out = [str(from_units(int(np.ceil(e)), self.granularity, None).date()) for e in edges[:-1]]
        if self.nullable:
            out.append("(null)")
        return out


def to_units(ts: pd.Timestamp, granularity: str) -> int:
    """``ts`` counted in ``granularity`` units since the epoch (an aware ``ts`` is read in UTC)."""
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(np.datetime64(ts.to_datetime64(), GRANULARITY_UNITS[granularity]).astype(np.int64))  # type: ignore[call-overload]


def from_units(units: int, granularity: str, tz: str | None) -> pd.Timestamp:
    """The timestamp ``units`` granularity steps after the epoch, shown in ``tz`` if given."""
    ts = pd.Timestamp(np.datetime64(int(units), GRANULARITY_UNITS[granularity]))  # type: ignore[call-overload]
    return ts.tz_localize("UTC").tz_convert(tz) if tz else ts


class BooleanColumn(_Base):
    """True/false (codes 0 = false, 1 = true)."""

    kind: Literal["boolean"] = "boolean"
    true_label: str | None = None
    false_label: str | None = None

    @model_validator(mode="after")
    def _spelling(self) -> BooleanColumn:
        labels = (self.true_label, self.false_label)
        if (labels[0] is None) != (labels[1] is None):
            raise ValueError(f"column {self.name!r}: declare both true_label and false_label, or neither")
        if labels[0] is not None:
            keys = {canonical_key(x).lower() for x in labels} | {canonical_key(self.null_token or "").lower()}
            if len(keys) != 3 or "" in {canonical_key(x) for x in labels}:
                raise ValueError(f"column {self.name!r}: true_label, false_label and null_token must be "
                                 "distinct and not empty")
        return self

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
KINDS = ("categorical", "ordinal", "numeric", "datetime", "boolean", "identifier")


def units_of(ts: pd.Timestamp, col: DatetimeColumn) -> int:
    """A timestamp in the column's granularity units (for tests and reports)."""
    return to_units(ts, col.granularity)
