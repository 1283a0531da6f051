"""DP schema discovery: every fact of a schema derived under differential privacy, and charged.

A data steward with a raw file and no codebook gets a schema whose every fact has
``source: dp`` and whose cost is in the ledger, so a release states one epsilon for schema and
model together. Each column's facts come from the gate (:class:`~dpsynth.privacy.frame_gate.PrivateFrame`)
only; the rules below are public and documented in docs/discovery.md:

- **Budget split.** The discovery budget ``rho`` is split equally over the columns to
  discover (identifiers found by name cost nothing). Within a column: 10% for the kind and
  nulls, the rest for the kind's facts (numbers: 30% bounds, 50% bin edges, of which 20%
  zoom in first when the bounds span one or two coarse cells, 10% point masses; dates: 45%
  and 45%; text: 90% for the categories; booleans: nothing more). What a column does not use
  is left for the model. Thresholded histograms share ``delta_share`` of the run's delta equally.
- **Kind and nulls.** Noisy counts of each value's class (null, integer, decimal, date,
  datetime, boolean, text) decide the kind (a class holding at least 90% of the values) and
  whether the column is nullable (noisy null count above two standard deviations).
- **Categories.** A Gaussian-thresholded histogram releases the values held by many units;
  a value held by few never appears, and the rest map to ``other``. A text column whose
  released values cover under half of its rows is free text or an identifier: it is dropped.
- **Bounds and bins.** A noisy histogram over a public log-scale grid gives the bounds
  (the outermost runs of up to three cells whose summed noisy counts clear 4.5 standard
  deviations of their noise, so a lone extreme value never becomes a bound); a second one
  over a fine grid inside the bounds (log-spaced when the values span three decades or
  more) gives bin edges at its quantiles, and a cell of its own to an integer holding more
  than one bin's share (such as the zeros of capital gains).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import pandas as pd

from dpsynth.errors import ConfigError
from dpsynth.mechanisms.discover_ranges import (
    ColumnFacts,
    DiscoveryConfig,
    discover_datetime,
    discover_numeric,
    sigma_for,
)
from dpsynth.privacy.frame_gate import PrivateFrame, threshold_rows
from dpsynth.tabular.columns import canonical_key

__all__ = ["LABELS", "DiscoveryConfig", "classify_values", "discover_columns", "preview"]

#: The public classes of a value, counted per column to decide its kind.
LABELS: tuple[str, ...] = ("null", "integer", "decimal", "date", "datetime", "boolean", "text")
_BOOL = {"true", "false", "yes", "no", "y", "n", "t", "f"}
_INT = re.compile(r"[+-]?(0|[1-9]\d*)")
_DEC = re.compile(r"[+-]?((\d+\.\d*|\.\d+)([eE][+-]?\d+)?|\d+[eE][+-]?\d+)")
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{4}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})?")
_CODE_NAME = re.compile(r"(^|[_\s-])(zip|zipcode|postal|postcode|fips|code)($|[_\s-])", re.I)
_ID_NAME = re.compile(r"(^|[_\s-])(id|uuid|guid|ssn|e-?mail|phone|name|address|url|ip)($|[_\s-])", re.I)


def classify_values(values: pd.Series) -> pd.Series:
    """The class of each value on its own (a public rule: no value depends on another)."""
    text = values.astype("string").str.strip()
    out = pd.Series("text", index=values.index, dtype="string")
    null = text.isna() | (text == "")
    filled = text.fillna("")
    lower = filled.str.lower()
    out[filled.str.fullmatch(_DEC.pattern)] = "decimal"
    out[filled.str.fullmatch(_INT.pattern)] = "integer"
    dates = filled.str.fullmatch(_DATE.pattern)
    times = filled.str.fullmatch(_DATETIME.pattern)
    for mask, label in ((dates, "date"), (times, "datetime")):
        if bool(mask.any()):
            ok = pd.to_datetime(filled[mask], errors="coerce", format="mixed", utc=True).notna()
            out[ok[ok].index] = label
    out[lower.isin(_BOOL)] = "boolean"
    out[null] = "null"
    return out


def _discover_text(gate: PrivateFrame, col: ColumnFacts, nonnull: int) -> None:
    sigma = sigma_for(0.9 * col.rho, gate.bound)
    found = gate.frequent_values(col.name, sigma=sigma, delta=col.delta,
                                 label=f"discover {col.name!r}: categories",
                                 canonical=lambda s: s.map(canonical_key))
    covered = sum(max(v, 0) for v in found.values())
    if not found or covered < 0.5 * max(nonnull, 1):
        col.spec, col.notes = {}, [f"{col.name}: values are mostly rare (free text or an identifier); dropped"]
        return
    cats = sorted(found, key=lambda k: (-found[k], k))
    other = "Other" if canonical_key("Other") not in {canonical_key(c) for c in cats} else "(other)"
    col.spec.update({"kind": "categorical", "categories": cats, "other": True, "other_label": other})


def _kind(counts: dict[str, int], sigma: float, config: DiscoveryConfig) -> tuple[str, int]:
    nonnull = sum(v for k, v in counts.items() if k != "null")
    if nonnull <= 3.0 * sigma * math.sqrt(len(LABELS) - 1):
        return "empty", nonnull
    share = {k: max(v, 0) / nonnull for k, v in counts.items()}
    if share["boolean"] >= config.min_share:
        return "boolean", nonnull
    if share["integer"] + share["decimal"] >= config.min_share:
        decimals = counts["decimal"] > 3.0 * sigma and share["decimal"] >= 0.01
        return ("decimal" if decimals else "integer"), nonnull
    if share["date"] + share["datetime"] >= config.min_share:
        return ("datetime" if share["datetime"] > share["date"] else "date"), nonnull
    return "text", nonnull


def _discover_column(gate: PrivateFrame, col: ColumnFacts, config: DiscoveryConfig) -> None:
    sigma = sigma_for(0.1 * col.rho, gate.bound)
    counts = gate.class_counts(col.name, classify_values, LABELS, sigma=sigma,
                               label=f"discover {col.name!r}: kind and nulls")
    kind, nonnull = _kind(counts, sigma, config)
    col.spec = {"nullable": counts["null"] > 2.0 * sigma}
    if kind == "empty":
        col.spec, col.notes = {}, [f"{col.name}: too few values to discover under DP; dropped"]
    elif kind == "boolean":
        col.spec["kind"] = "boolean"
    elif kind == "integer" and _CODE_NAME.search(col.name):  # ZIP, FIPS...: codes, not quantities
        _discover_text(gate, col, nonnull)
    elif kind in ("integer", "decimal"):
        discover_numeric(gate, col, kind == "integer", config)
    elif kind in ("date", "datetime"):
        discover_datetime(gate, col, kind == "datetime", config)
    else:
        _discover_text(gate, col, nonnull)


def discover_columns(gate: PrivateFrame, columns: Sequence[str], *, rho: float, delta: float,
                     config: DiscoveryConfig | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Discover the schema of ``columns`` under DP, charging at most ``rho`` and ``delta``.

    Args:
        gate: The raw table's gate (already bounded per person).
        columns: The columns to discover, in file order.
        rho: The zCDP budget of discovery.
        delta: The run's delta; thresholded histograms use ``config.delta_share`` of it.
        config: The public rules (default :class:`DiscoveryConfig`).

    Returns:
        One schema column dict per column (identifiers and undiscoverable columns become
        dropped ``identifier`` columns), and notes without data values.
    """
    config = config or DiscoveryConfig()
    if not rho > 0:
        raise ConfigError(f"the discovery budget rho ({rho}) must be > 0")
    named = [c for c in columns if _ID_NAME.search(c)]
    todo = [c for c in columns if c not in named]
    each_rho = rho / max(len(todo), 1)
    each_delta = delta * config.delta_share / max(len(todo), 1)
    specs: dict[str, dict[str, Any]] = {}
    notes = [f"{c}: identifier-like name; kept out of the model (no budget spent)" for c in named]
    for name in named:
        specs[name] = {"name": name, "kind": "identifier", "source": "declared"}
    for name in todo:
        col = ColumnFacts(name, each_rho, each_delta)
        spent_before = gate.accountant.spent_rho
        delta_before = _used_delta(gate)
        _discover_column(gate, col, config)
        notes.extend(col.notes)
        cost = gate.accountant.spent_rho - spent_before
        if not col.spec or "kind" not in col.spec:
            specs[name] = {"name": name, "kind": "identifier", "source": "declared"}
            continue
        spec = {"name": name, **col.spec, "source": "dp", "dp_rho": cost}
        used = _used_delta(gate) - delta_before
        if used > 0:
            spec["dp_delta"] = used
        specs[name] = spec
    return [specs[c] for c in columns], notes


def _used_delta(gate: PrivateFrame) -> float:
    from dpsynth.privacy.events import delta_of

    return delta_of([e.event for e in gate.accountant.ledger])


def preview(columns: Sequence[str], *, rho: float, delta: float, bound: int = 1,
            config: DiscoveryConfig | None = None) -> dict[str, Any]:
    """What a discovery budget buys, from public facts only (the header, rho, delta, the unit).

    Returns:
        The per-column noise scales and the rows a category needs to be kept (a value held
        by fewer rows is never released), and the rows a grid cell needs to count as occupied.
    """
    config = config or DiscoveryConfig()
    todo = [c for c in columns if not _ID_NAME.search(c)]
    each = rho / max(len(todo), 1)
    each_delta = delta * config.delta_share / max(len(todo), 1)
    text_sigma = sigma_for(0.9 * each, bound)
    bounds_sigma = sigma_for(0.3 * each, bound)
    return {
        "columns_discovered": len(todo),
        "identifier_names": [c for c in columns if c not in todo],
        "rho_per_column": each,
        "delta_per_column": each_delta,
        "kind_sigma": sigma_for(0.1 * each, bound),
        "category_sigma": text_sigma,
        "rows_to_keep_a_category": threshold_rows(text_sigma, each_delta, bound),
        "bounds_sigma": bounds_sigma,
        "rows_for_an_occupied_cell": math.ceil(config.occupied_sigmas * bounds_sigma),
        "edges_sigma": sigma_for(0.6 * each, bound),
    }
