"""SQL expressions that encode raw columns into codes inside an engine, with numpy's semantics.

The expressions built here reproduce :mod:`dpsynth.tabular.encoding` inside a SQL engine (DuckDB or
Spark SQL): nulls become the null code (or the fallback), undeclared categories become
``other`` (or null, or the fallback), category matching uses :func:`~dpsynth.tabular.schema.canonical_key`
(NFC, zero-width characters removed, surrounding whitespace stripped, integral floats match
integers), numbers are clamped to the public bounds (integers rounded half to even) and binned
with ``searchsorted(interior_edges, v, side="right")``, and timestamps are taken to UTC units
of the column's granularity, clamped and binned on ``linspace(lo, hi + 1, bins + 1)``.

Only public schema facts enter the SQL text; no data value is ever embedded in it. The two
engines differ only in a few spellings, captured by a :class:`Dialect`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from dpsynth.errors import DPSynthError
from dpsynth.tabular.encoding import _fallback
from dpsynth.tabular.schema import (
    BooleanColumn,
    CategoricalColumn,
    DatetimeColumn,
    NumericColumn,
    OrdinalColumn,
    canonical_key,
)

__all__ = [
    "DUCKDB",
    "SPARK",
    "WHITESPACE",
    "Dialect",
    "code_expr",
    "missing_expr",
    "null_code",
    "prepared_expr",
    "source_kind",
]

_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
#: Every character Python's ``str.strip()`` removes (``str.isspace``), in code point order.
WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
_TRUE = ("true", "1", "yes", "t", "y")
_FALSE = ("false", "0", "no", "f", "n")
_US = {"day": 86_400_000_000, "hour": 3_600_000_000, "minute": 60_000_000, "second": 1_000_000}


@dataclass(frozen=True, kw_only=True)
class Dialect:
    """The spellings that differ between SQL engines.

    Attributes:
        name: ``"duckdb"`` or ``"spark"``.
        backslash_escapes: Whether string literals treat ``\\`` as an escape (Spark does).
        ident_quote: The identifier quote character.
        text_type: The name of the string type.
        nfc: Template turning ``{x}`` into its NFC normal form.
        epoch_us: Template giving microseconds since the epoch of timestamp ``{x}``.
        text_to_ts: Template parsing ISO text ``{x}`` into a timestamp (naive text as UTC).
        round_even: Template rounding double ``{x}`` half to even.
        hash_fn: Name of a 64-bit hash function taking several arguments.
        int_div: Integer division operator.
    """

    name: str
    backslash_escapes: bool
    ident_quote: str
    text_type: str
    nfc: str
    epoch_us: str
    text_to_ts: str
    round_even: str
    hash_fn: str
    int_div: str

    def ident(self, name: str) -> str:
        """A quoted identifier (any characters allowed)."""
        q = self.ident_quote
        return q + name.replace(q, q + q) + q

    def string(self, text: str) -> str:
        """A string literal holding ``text`` exactly."""
        if self.backslash_escapes:
            return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return "'" + text.replace("'", "''") + "'"

    def trim(self, x: str, chars: str) -> str:
        """Strip every character of ``chars`` from both ends of ``x``."""
        if self.name == "spark":
            return f"trim(BOTH {self.string(chars)} FROM {x})"
        return f"trim({x}, {self.string(chars)})"

    def ltrim_spaces(self, x: str) -> str:
        """Strip leading ASCII spaces (pandas' ``skipinitialspace``)."""
        if self.name == "spark":
            return f"ltrim(' ', {x})"
        return f"ltrim({x}, ' ')"


DUCKDB = Dialect(
    name="duckdb",
    backslash_escapes=False,
    ident_quote='"',
    text_type="VARCHAR",
    nfc="nfc_normalize({x})",
    epoch_us="epoch_us({x})",
    text_to_ts="TRY_CAST({x} AS TIMESTAMPTZ)",
    round_even="round_even({x}, 0)",
    hash_fn="hash",
    int_div="//",
)

SPARK = Dialect(
    name="spark",
    backslash_escapes=True,
    ident_quote="`",
    text_type="STRING",
    nfc="reflect('com.ibm.icu.text.Normalizer', 'compose', {x}, false)",
    epoch_us="unix_micros(CAST({x} AS TIMESTAMP))",
    text_to_ts="TRY_CAST({x} AS TIMESTAMP)",
    round_even="bround({x}, 0)",
    hash_fn="xxhash64",
    int_div="div",
)


def source_kind(type_name: str) -> str:
    """Classify an engine type name as text, bool, int, float, date, timestamp or other."""
    t = type_name.strip().lower()
    if t in ("varchar", "string", "text") or t.startswith(("varchar", "char")):
        return "text"
    if t in ("boolean", "bool"):
        return "bool"
    ints = ("tinyint", "smallint", "int", "integer", "bigint", "hugeint", "long", "short", "byte")
    if t in ints or (t.startswith("u") and t[1:] in ints):
        return "int"
    if t in ("float", "double", "real") or t.startswith("decimal"):
        return "float"
    if t == "date":
        return "date"
    if t.startswith("timestamp"):
        return "timestamp"
    return "other"


def _key_of_text(d: Dialect, x: str) -> str:
    stripped = x
    for ch in _ZERO_WIDTH:
        stripped = f"replace({stripped}, {d.string(ch)}, '')"
    return d.trim(d.nfc.format(x=stripped), WHITESPACE)


def _key_expr(d: Dialect, x: str, kind: str) -> tuple[str, str]:
    """``(null test, canonical text key)`` of a value of source kind ``kind``."""
    if kind == "text":
        return f"{x} IS NULL", _key_of_text(d, x)
    if kind == "int":
        return f"{x} IS NULL", f"CAST({x} AS {d.text_type})"
    if kind == "float":
        v = f"CAST({x} AS DOUBLE)"
        integral = f"(abs({v}) < 1e30 AND {v} = floor({v}))"
        as_int = f"CAST(CAST({v} AS DECIMAL(38, 0)) AS {d.text_type})"
        key = f"CASE WHEN {integral} THEN {as_int} ELSE CAST({v} AS {d.text_type}) END"
        return f"({x} IS NULL OR isnan({v}))", key
    if kind == "bool":
        return f"{x} IS NULL", f"CASE WHEN {x} THEN 'True' ELSE 'False' END"
    return f"{x} IS NULL", _key_of_text(d, f"CAST({x} AS {d.text_type})")


def _case_map(d: Dialect, key: str, mapping: dict[str, int], default: int) -> str:
    if not mapping:
        return str(default)
    whens = " ".join(f"WHEN {d.string(k)} THEN {v}" for k, v in mapping.items())
    return f"(CASE {key} {whens} ELSE {default} END)"


def _bin_tree(x: str, edges: npt.NDArray[np.float64], lo: int, hi: int) -> str:
    """Code in ``lo..hi``: the number of interior edges ``<= x`` (searchsorted, right)."""
    if lo == hi:
        return str(lo)
    mid = (lo + hi + 1) // 2
    cut = f"CAST('{float(edges[mid])!r}' AS DOUBLE)"
    return f"(CASE WHEN {x} >= {cut} THEN {_bin_tree(x, edges, mid, hi)} ELSE {_bin_tree(x, edges, lo, mid - 1)} END)"


def null_code(col: Any) -> int:
    """The code a null cell of ``col`` gets (its null code, or the fallback when not nullable)."""
    return int(col.domain_size() - 1) if col.nullable else _fallback(col)


def _double(x: float) -> str:
    return f"CAST('{float(x)!r}' AS DOUBLE)"


def _numeric_value(d: Dialect, x: str, kind: str) -> str:
    if kind == "text":
        guard = f"instr({x}, '_') > 0"
        if d.name == "spark":  # Java's parser accepts a trailing d/f type suffix; pandas does not
            guard += f" OR {x} RLIKE {d.string('[0-9.][dDfF][ ]*$')}"
        return f"(CASE WHEN {guard} THEN NULL ELSE TRY_CAST({x} AS DOUBLE) END)"
    if kind == "bool":
        return f"(CASE WHEN {x} THEN 1.0 WHEN NOT {x} THEN 0.0 END)"
    if kind in ("int", "float"):
        return f"CAST({x} AS DOUBLE)"
    return "CAST(NULL AS DOUBLE)"


def _binned(v: str, col: Any, edges: npt.NDArray[np.float64]) -> str:
    return f"(CASE WHEN {v} IS NULL THEN {null_code(col)} ELSE {_bin_tree(v, edges, 0, len(edges) - 2)} END)"


def _numeric(d: Dialect, x: str, kind: str, col: NumericColumn) -> str:
    v = _numeric_value(d, x, kind)
    lo, hi = col.bounds
    clipped = f"least(greatest({v}, {_double(lo)}), {_double(hi)})"
    if col.dtype == "int":
        r = d.round_even.format(x=clipped)
        clipped = f"least(greatest({r}, {_double(np.ceil(lo))}), {_double(np.floor(hi))})"
    if col.atoms:  # an atom matches before clamping (a sentinel outside the bounds keeps its value)
        exact = d.round_even.format(x=v) if col.dtype == "int" else v
        hit = " OR ".join(f"{exact} = {_double(a)}" for a in col.atoms)
        clipped = f"(CASE WHEN {hit} THEN {exact} ELSE {clipped} END)"
    if col.per_integer:
        clipped = f"floor({clipped} - {_double(lo)})"
    return f"(CASE WHEN {v} IS NULL OR isnan({v}) THEN NULL ELSE {clipped} END)"


def _datetime(d: Dialect, x: str, kind: str, col: DatetimeColumn) -> str:
    if kind == "text":
        ts = d.text_to_ts.format(x=x)
    elif kind in ("date", "timestamp"):
        ts = f"CAST({x} AS TIMESTAMP)" if kind == "date" else x
    else:
        ts = "CAST(NULL AS TIMESTAMP)"
    us = d.epoch_us.format(x=ts)
    g = col.granularity
    if g in _US:
        n = _US[g]
        units = f"(({us} - ((({us} % {n}) + {n}) % {n})) {d.int_div} {n})"
    else:
        naive = f"make_timestamp({us})" if d.name == "duckdb" else f"timestamp_micros({us})"
        yr, mo = f"year({naive})", f"month({naive})"
        units = f"({yr} - 1970)" if g == "year" else f"(({yr} - 1970) * 12 + {mo} - 1)"
    lo, hi = col.unit_bounds()
    clipped = f"least(greatest(CAST({units} AS DOUBLE), {_double(lo)}), {_double(hi)})"
    return f"(CASE WHEN {ts} IS NULL THEN NULL ELSE {clipped} END)"


def prepared_expr(d: Dialect, x: str, kind: str, col: Any) -> str:
    """SQL for the cleaned value of ``col`` read from expression ``x`` of source ``kind``.

    The cleaned value is NULL for a null cell; otherwise the canonical text key
    (categorical), the lower-cased key or the boolean itself (boolean), the clamped and
    rounded number (numeric) or the clamped time units (datetime). :func:`code_expr` turns it
    into the code. Splitting the two keeps the SQL small (the bin search repeats its input).

    Args:
        d: The engine's dialect.
        x: A SQL expression (usually a quoted identifier) holding the raw value.
        kind: The source kind of ``x`` (see :func:`source_kind`).
        col: The schema column (categorical, ordinal, numeric, datetime or boolean).
    """
    if kind == "text" and getattr(col, "null_token", None) is not None:
        x = f"(CASE WHEN {d.trim(x, WHITESPACE)} = {d.string(col.null_token.strip())} THEN NULL ELSE {x} END)"
    if isinstance(col, (CategoricalColumn, OrdinalColumn)):
        is_null, key = _key_expr(d, x, kind)
        return f"(CASE WHEN {is_null} THEN NULL ELSE {key} END)"
    if isinstance(col, BooleanColumn):
        if kind == "bool":
            return f"(CASE WHEN {x} THEN 'true' WHEN NOT {x} THEN 'false' END)"
        is_null, key = _key_expr(d, x, kind)
        return f"(CASE WHEN {is_null} THEN NULL ELSE lower({key}) END)"
    if isinstance(col, NumericColumn):
        return _numeric(d, x, kind, col)
    if isinstance(col, DatetimeColumn):
        return _datetime(d, x, kind, col)
    raise DPSynthError(f"column {col.name!r} of kind {col.kind!r} is not modelled")


def code_expr(d: Dialect, v: str, col: Any) -> str:
    """SQL for the integer code of ``col`` from its cleaned value ``v`` (see :func:`prepared_expr`)."""
    if isinstance(col, (CategoricalColumn, OrdinalColumn)):
        mapping = {canonical_key(c): i for i, c in enumerate(col.categories)}
        return f"(CASE WHEN {v} IS NULL THEN {null_code(col)} ELSE {_case_map(d, v, mapping, _fallback(col))} END)"
    if isinstance(col, BooleanColumn):
        mapping = {**dict.fromkeys(_TRUE, 1), **dict.fromkeys(_FALSE, 0)}
        if col.true_label is not None and col.false_label is not None:  # the source's own spelling
            mapping |= {canonical_key(col.true_label).lower(): 1, canonical_key(col.false_label).lower(): 0}
        bad = 2 if col.nullable else 0
        return f"(CASE WHEN {v} IS NULL THEN {null_code(col)} ELSE {_case_map(d, v, mapping, bad)} END)"
    if isinstance(col, NumericColumn):
        shift = col.bounds[0] if col.per_integer else 0.0  # per-integer values are offsets from lo
        atoms = "".join(f"WHEN {v} = {_double(a - shift)} THEN {col.n_bins + k} " for k, a in enumerate(col.atoms))
        if col.per_integer:
            return f"(CASE WHEN {v} IS NULL THEN {null_code(col)} {atoms}ELSE CAST({v} AS BIGINT) END)"
        edges = col.bin_edges()
        return f"(CASE WHEN {v} IS NULL THEN {null_code(col)} {atoms}ELSE {_bin_tree(v, edges, 0, len(edges) - 2)} END)"
    if isinstance(col, DatetimeColumn):
        lo, hi = col.unit_bounds()
        return _binned(v, col, np.linspace(lo, hi + 1, col.n_values + 1))
    raise DPSynthError(f"column {col.name!r} of kind {col.kind!r} is not modelled")


def missing_expr(d: Dialect, x: str, missing: Sequence[str]) -> str:
    """CSV text cell ``x`` after pandas' ``skipinitialspace`` and ``missing_values`` rules."""
    v = d.ltrim_spaces(x)
    if not missing:
        return v
    listed = ", ".join(d.string(m) for m in missing)
    return f"(CASE WHEN {v} IN ({listed}) THEN NULL ELSE {v} END)"

