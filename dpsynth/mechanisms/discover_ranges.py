"""DP schema discovery of numbers and dates: bounds, bin edges and point masses from noisy histograms.

The rules are public (docs/discovery.md): a histogram over a public log-scale grid (or a
calendar) gives the bounds, a second one over a fine grid inside them gives quantile bin
edges, and a noisy exact count of a few public candidates gives the point masses. Every
histogram goes through :class:`~dpsynth.privacy.frame_gate.PrivateFrame`, which charges it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from dpsynth.errors import ConfigError
from dpsynth.privacy.frame_gate import PrivateFrame

__all__ = ["ColumnFacts", "DiscoveryConfig", "discover_datetime", "discover_numeric", "sigma_for", "span_of"]

_GRID_MANTISSAS = (1.0, 2.0, 5.0)


@dataclass(frozen=True, kw_only=True)
class DiscoveryConfig:
    """Public rules of discovery.

    Attributes:
        bins: Bins per numeric column (before merging equal quantiles).
        delta_share: Share of the run's delta the thresholded histograms may use.
        min_share: Share of a column's values a class needs to decide its kind.
        occupied_sigmas: A grid cell is occupied when its noisy count clears this many sigmas.
    """

    bins: int = 16
    delta_share: float = 0.1
    min_share: float = 0.9
    occupied_sigmas: float = 4.5

    def __post_init__(self) -> None:
        if not 2 <= self.bins <= 1000:
            raise ConfigError(f"bins ({self.bins}) must be between 2 and 1000")
        if not 0 < self.delta_share < 1:
            raise ConfigError(f"delta_share ({self.delta_share}) must be > 0 and < 1")


@dataclass
class ColumnFacts:
    """One column's discovery: the facts found and what they cost (filled in as it goes)."""

    name: str
    rho: float
    delta: float
    spec: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def sigma_for(rho: float, sensitivity: float) -> float:
    return sensitivity / math.sqrt(2.0 * rho)


def log_grid() -> npt.NDArray[np.float64]:
    """Public grid points 0, ±{1, 2, 5} x 10^k for k in -3..12."""
    pos = [m * 10.0**k for k in range(-3, 13) for m in _GRID_MANTISSAS]
    return np.array(sorted({0.0, *pos, *(-p for p in pos)}), dtype=np.float64)


def _cells(points: npt.NDArray[np.float64], parse: Any) -> Any:
    """A cell map for :meth:`PrivateFrame.histogram`: the cell of each parsed value, -1 for none."""
    def cell_of(values: pd.Series) -> npt.NDArray[np.int64]:
        x = np.asarray(parse(values), dtype=np.float64)
        idx = np.searchsorted(points, x, side="right") - 1
        idx = np.clip(idx, 0, len(points) - 2)
        return np.where(np.isfinite(x), idx, -1).astype(np.int64)
    return cell_of


def _numbers(values: pd.Series) -> npt.NDArray[np.float64]:
    return pd.to_numeric(values.astype("string").str.strip(), errors="coerce").to_numpy(dtype=np.float64,
                                                                                          na_value=np.nan)


def span_of(noisy: npt.NDArray[np.int64], sigma: float, config: DiscoveryConfig,
          widths: Sequence[int] = (1, 2, 3)) -> tuple[int, int] | None:
    """The outermost cells holding real mass: a cell whose noisy count clears
    ``occupied_sigmas`` standard deviations, and, in a run of two or three cells whose summed
    noisy count clears that bar for the run (``sigma * sqrt(width)``) even without its largest
    cell, the cells above two standard deviations.

    Mass spread thinly over neighbouring cells is found; a lone value (a planted extreme)
    never clears the bar.
    """
    z = config.occupied_sigmas * sigma
    counts = noisy.astype(np.float64)
    starts: set[int] = set()
    ends: set[int] = set()
    for w in widths:
        if counts.size < w:
            continue
        sums = np.convolve(counts, np.ones(w), mode="valid")
        if w == 1:
            spread = sums > z
        else:  # the run must hold spread mass, not one heavy cell and its noisy neighbours
            peak = np.lib.stride_tricks.sliding_window_view(counts, w).max(axis=1)
            spread = (sums > z * math.sqrt(w)) & (sums - peak > z * math.sqrt(w - 1))
        for k in np.flatnonzero(spread):
            inside = k + np.flatnonzero(counts[k:k + w] > 2.0 * sigma)  # not the empty neighbours
            starts.update(int(i) for i in inside[:1])
            ends.update(int(i) for i in inside[-1:])
    if not starts:
        return None
    return min(starts), max(ends)


def _quantile_edges(points: npt.NDArray[np.float64], noisy: npt.NDArray[np.int64], bins: int,
                    integer: bool, atoms: dict[float, int] | None = None) -> list[float]:
    """Edges at the quantiles of the noisy fine histogram (negative counts count as 0).

    ``atoms`` (value -> noisy count) have cells of their own, so their mass is taken out of
    the fine cells that hold them first. In an integer column, an integer whose cell still
    holds more than a bin's share gets a cell of its own too; the other bins split the rest.
    """
    mass = np.clip(noisy, 0, None).astype(np.float64)
    for value, count in (atoms or {}).items():
        j = int(np.clip(np.searchsorted(points, value, side="right") - 1, 0, mass.size - 1))
        mass[j] = max(mass[j] - count, 0.0)
    total = mass.sum()
    edges = {float(points[0]), float(points[-1])}
    if total <= 0:
        return sorted(edges)
    own = [int(j) for j in np.flatnonzero(mass / total > 1.0 / bins)
           if float(points[j]).is_integer() and points[j + 1] == points[j] + 1] if integer else []
    for k in own:
        edges.update({float(points[k]), float(points[k]) + 1.0})
    rest = mass.copy()
    rest[own] = 0.0
    left = max(bins - len(own), 1)
    if rest.sum() > 0:
        cdf = np.cumsum(rest) / rest.sum()
        for k in range(1, left):
            i = int(np.searchsorted(cdf, k / left))
            edges.add(float(points[min(i + 1, len(points) - 1)]))
    return sorted({float(round(e)) if integer else e for e in edges})


def _discover_atoms(gate: PrivateFrame, col: ColumnFacts, points: npt.NDArray[np.float64],
                    noisy: npt.NDArray[np.int64], config: DiscoveryConfig) -> dict[float, int]:
    """Point masses: among the left edges of fine cells holding more than a bin's share (a
    public choice made from the noisy histogram), the values whose noisy exact count does too."""
    mass = np.clip(noisy, 0, None).astype(np.float64)
    total = float(mass.sum())
    if total <= 0:
        return {}
    candidates = sorted({float(points[j]) for j in np.flatnonzero(mass / total > 1.0 / config.bins)})[:8]
    if not candidates:
        return {}
    values = np.array(candidates)

    def exact(column: pd.Series) -> npt.NDArray[np.int64]:
        x = _numbers(column)
        hit = x[:, None] == values[None, :]
        return np.where(hit.any(axis=1), hit.argmax(axis=1), -1).astype(np.int64)

    sigma = sigma_for(0.1 * col.rho, gate.bound)
    counts = gate.histogram(col.name, exact, len(candidates), sigma=sigma, label=f"discover {col.name!r}: atoms")
    floor = max(config.occupied_sigmas * sigma, total / config.bins)
    return {v: int(n) for v, n in zip(candidates, counts, strict=True) if n > floor}


def _fine_points(lo: float, hi: float, integer: bool, skewed: bool, positive_from: float) -> npt.NDArray[np.float64]:
    if skewed:
        start = max(positive_from, 1.0 if integer else positive_from)
        pts = np.concatenate([[lo], np.geomspace(start, hi, 96)])
        if lo < start:
            pts = np.concatenate([pts, [lo + 1.0] if integer and lo + 1.0 < start else []])
    else:
        pts = np.linspace(lo, hi, 129)
    if integer:
        pts = np.round(pts)
        if lo <= 0 < hi:  # zero gets a unit cell (a point mass there is common)
            pts = np.concatenate([pts, [0.0, 1.0]])
    return np.unique(pts)


def _coarse(gate: PrivateFrame, col: ColumnFacts, grid: npt.NDArray[np.float64], parse: Any, sigma: float,
            step: str, config: DiscoveryConfig) -> tuple[npt.NDArray[np.int64], tuple[int, int] | None]:
    """The noisy histogram over a public coarse grid and the span of cells holding real mass.

    With no span the column is marked dropped (too few values to find bounds under DP).
    """
    noisy = gate.histogram(col.name, _cells(grid, parse), len(grid) - 1, sigma=sigma,
                           label=f"discover {col.name!r}: {step}")
    span = span_of(noisy, sigma, config)
    if span is None:
        col.spec, col.notes = {}, [f"{col.name}: too few values to find bounds under DP; dropped"]
    return noisy, span


def discover_numeric(gate: PrivateFrame, col: ColumnFacts, integer: bool, config: DiscoveryConfig) -> None:
    grid = log_grid()
    if integer:  # whole numbers: no cells finer than 1
        grid = grid[(grid == 0) | (np.abs(grid) >= 1)]
    s1 = sigma_for(0.3 * col.rho, gate.bound)
    h1, span = _coarse(gate, col, grid, _numbers, s1, "bounds", config)
    if span is None:
        return
    lo, hi = float(grid[span[0]]), float(grid[span[1] + 1])
    if integer:
        lo, hi = math.floor(lo), max(math.ceil(hi), math.floor(lo) + 1)
    cells = np.arange(span[0], span[1] + 1)
    positive = cells[(grid[cells] > 0) & (h1[cells] > config.occupied_sigmas * s1)]
    positive_from = float(grid[positive[0]]) if positive.size else hi
    skewed = lo >= 0 and positive.size > 0 and hi / max(positive_from, 1e-12) >= 1000
    if integer and hi - lo + 1 <= 64:  # one cell per integer
        col.spec.update({"kind": "numeric", "dtype": "int", "bounds": [int(lo), int(hi)]})
        return
    points = _fine_points(lo, hi, integer, skewed, positive_from)
    edges_share = 0.5
    if span[1] - span[0] < 2:  # all values in one or two coarse cells (latitudes, years): zoom in
        edges_share = 0.3
        s_zoom = sigma_for(0.2 * col.rho, gate.bound)
        h_zoom = gate.histogram(col.name, _cells(points, _numbers), len(points) - 1, sigma=s_zoom,
                                label=f"discover {col.name!r}: zoom")
        inner = span_of(h_zoom, s_zoom, config)
        if inner is not None:
            lo, hi = float(points[inner[0]]), float(points[inner[1] + 1])
            if integer:
                lo, hi = math.floor(lo), max(math.ceil(hi), math.floor(lo) + 1)
            if integer and hi - lo + 1 <= 64:
                col.spec.update({"kind": "numeric", "dtype": "int", "bounds": [int(lo), int(hi)]})
                return
            points = _fine_points(lo, hi, integer, False, lo)
    s2 = sigma_for(edges_share * col.rho, gate.bound)
    h2 = gate.histogram(col.name, _cells(points, _numbers), len(points) - 1, sigma=s2,
                        label=f"discover {col.name!r}: bin edges")
    atoms = _discover_atoms(gate, col, points, h2, config)
    edges = _quantile_edges(points, h2, config.bins, integer, atoms)
    bounds: list[float] = [int(lo), int(hi)] if integer else [lo, hi]
    written: list[float] = [int(e) for e in edges] if integer else edges
    col.spec.update({"kind": "numeric", "dtype": "int" if integer else "float", "bounds": bounds,
                     "edges": written})
    if atoms:
        col.spec["atoms"] = [int(v) if integer else v for v in sorted(atoms)]


def _epoch_days(values: pd.Series) -> npt.NDArray[np.float64]:
    ts = pd.to_datetime(values.astype("string").str.strip(), errors="coerce", format="mixed", utc=True)
    days = (ts - pd.Timestamp("1970-01-01", tz="UTC")) / pd.Timedelta(days=1)
    return np.asarray(days.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def discover_datetime(gate: PrivateFrame, col: ColumnFacts, with_time: bool, config: DiscoveryConfig) -> None:
    years = pd.date_range("1900-01-01", "2101-01-01", freq="YS", tz="UTC")
    grid = ((years - pd.Timestamp("1970-01-01", tz="UTC")) / pd.Timedelta(days=1)).to_numpy(dtype=np.float64)
    _, span = _coarse(gate, col, grid, _epoch_days, sigma_for(0.45 * col.rho, gate.bound), "years", config)
    if span is None:
        return
    months = pd.date_range(years[span[0]], years[span[1] + 1], freq="MS")
    mgrid = ((months - pd.Timestamp("1970-01-01", tz="UTC")) / pd.Timedelta(days=1)).to_numpy(dtype=np.float64)
    s2 = sigma_for(0.45 * col.rho, gate.bound)
    h2 = gate.histogram(col.name, _cells(mgrid, _epoch_days), len(mgrid) - 1, sigma=s2,
                        label=f"discover {col.name!r}: months")
    mspan = span_of(h2, s2, config)
    lo, hi = (months[mspan[0]], months[mspan[1] + 1]) if mspan else (months[0], months[-1])
    fmt = "%Y-%m-%dT%H:%M:%S" if with_time else "%Y-%m-%d"
    col.spec.update({"kind": "datetime", "bounds": [lo.strftime(fmt), hi.strftime(fmt)],
                     "granularity": "second" if with_time else "day", "bins": 32})
