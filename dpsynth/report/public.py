"""The public report of a release: synthetic data compared only with differentially private outputs.

Everything here is post-processing of the public transcript. Each column's synthetic
distribution is drawn against the *noisy* measured 1-way marginal (or a noisy marginal
projected to that column), with ±2σ error bars from the noise scale; measured k-way marginals
get an L1 distance next to the distance the noise alone would explain. The real data is never
read: ``report.json`` comes first, and ``index.html`` is rendered from it (one file, inline
SVG, no external resources).
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from dpsynth.report.charts import cell_order, column_chart, fmt_percent
from dpsynth.tabular.columns import DatetimeColumn, from_units
from dpsynth.tabular.table import Table

if TYPE_CHECKING:
    from dpsynth.synthesizer import Synthesizer

__all__ = [
    "TEMPLATES",
    "build_public_report",
    "fmt_number",
    "render_public_html",
    "style_matplotlib",
    "svg_of",
    "synthetic_table",
]

TEMPLATES = Path(__file__).with_name("templates")
_INK, _SYN, _GRID = "#1f2933", "#0b6bcb", "#e4e7eb"


def _counts(table: Table, clique: tuple[str, ...], shape: tuple[int, ...]) -> npt.NDArray[np.float64]:
    codes = table.column_codes(clique)
    flat = np.ravel_multi_index(tuple(codes.T), shape) if len(clique) > 1 else codes[:, 0]
    return np.bincount(flat, minlength=int(np.prod(shape))).reshape(shape).astype(np.float64)


def _schema_shape(synth: Synthesizer, clique: tuple[str, ...]) -> tuple[int, ...]:
    dom = synth.schema.domain()
    return tuple(dom[c] for c in clique)


def cell_labels(col: Any) -> tuple[list[str], list[float] | None]:
    """One public label per code of ``col``, and for datetimes each time cell's start.

    Datetime cells are labelled by their start at the precision that tells them apart (a date,
    or date and time for sub-daily cells), so hourly cells within one day never share a label.
    Other kinds use the schema's labels.
    """
    labels = [str(x) for x in col.labels()]
    if not isinstance(col, DatetimeColumn):
        return labels, None
    lo, hi = col.unit_bounds()
    starts = [float(math.ceil(e)) for e in np.linspace(lo, hi + 1, col.n_values + 1)[:-1]]
    stamps = [from_units(int(u), col.granularity, None) for u in starts]
    if all(t.hour == t.minute == t.second == 0 for t in stamps):
        text = [str(t.date()) for t in stamps]
    else:
        fmt = "%Y-%m-%d %H:%M" if all(t.second == 0 for t in stamps) else "%Y-%m-%d %H:%M:%S"
        text = [t.strftime(fmt) for t in stamps]
    tail = labels[col.n_values:]
    if len(text) + len(tail) != col.domain_size():
        return labels, None
    return text + tail, starts + [math.inf] * len(tail)


def _one_way(synth: Synthesizer, column: str) -> tuple[npt.NDArray[np.float64], float, str] | None:
    """The noisy 1-way marginal of ``column``: measured, else projected from the smallest clique."""
    best: tuple[npt.NDArray[np.float64], float, str] | None = None
    for m in synth.measurements:
        if column not in m.clique or tuple(m.values.shape) != _schema_shape(synth, m.clique):
            continue  # measured over a compressed domain: not comparable cell by cell
        axis = m.clique.index(column)
        others = [i for i in range(len(m.clique)) if i != axis]
        summed = int(np.prod([m.values.shape[i] for i in others])) if others else 1
        sigma = m.sigma * math.sqrt(summed)  # independent noise adds up over the summed cells
        values = m.values.sum(axis=tuple(others)).astype(np.float64) if others else m.values.astype(np.float64)
        source = "measured" if not others else f"projected from {' × '.join(m.clique)}"
        if best is None or sigma < best[1]:
            best = (values, sigma, source)
    return best


def _column_entry(synth: Synthesizer, col: Any, synthetic: Table, total: float) -> dict[str, Any]:
    """One column of the report: its cells (labels, display order), synthetic and noisy shares."""
    n_syn = max(synthetic.codes.shape[0], 1)
    size = col.domain_size()
    syn_share = _counts(synthetic, (col.name,), (size,)) / n_syn
    labels, starts = cell_labels(col)
    entry: dict[str, Any] = {"name": col.name, "kind": col.kind, "labels": labels,
                             "order": cell_order(col.kind, labels, starts),
                             "synthetic_share": [round(float(x), 6) for x in syn_share]}
    noisy = _one_way(synth, col.name)
    if noisy is None:
        entry.update(measured=False, source="not measured: the model spreads mass by the schema")
        return entry
    values, sigma, source = noisy
    share = values / total
    band = 2.0 * sigma / total
    inside = np.abs(syn_share - share) <= band
    entry.update(
        measured=True, source=source, sigma=sigma,
        noisy_share=[round(float(x), 6) for x in share], band_2sigma=band,
        l1=float(np.abs(syn_share - share).sum()),
        within_2sigma=float(inside.mean()),
    )
    return entry


def build_public_report(synth: Synthesizer, synthetic: Table, *, manifest: dict[str, Any]) -> dict[str, Any]:
    """The public report as a JSON-ready dict.

    Args:
        synth: The fitted synthesizer (public transcript only).
        synthetic: The released synthetic rows, encoded over the public domain.
        manifest: The release manifest (identity, budget, ledger, row choice).

    Returns:
        ``report.json``: per-column noisy vs synthetic shares with ±2σ bands, a summary of
        every measured marginal, and the privacy ledger.
    """
    total = max(float(synth.estimated_rows), 1.0)
    n_syn = max(synthetic.codes.shape[0], 1)
    columns = [_column_entry(synth, col, synthetic, total) for col in synth.schema.modelled]
    marginals = []
    for m in synth.measurements:
        shape = tuple(m.values.shape)
        if shape != _schema_shape(synth, m.clique) and synth.compression is not None:
            comp = synth.compression
            cols = list(synth.schema.domain())
            codes = comp.compress_codes(synthetic.codes, cols)
            compressed = Table(synthetic.columns, tuple(comp.domain().values()), codes)
            syn = _counts(compressed, m.clique, shape) / n_syn
        else:
            syn = _counts(synthetic, m.clique, shape) / n_syn
        cells = int(np.prod(shape))
        marginals.append({
            "clique": list(m.clique), "sigma": m.sigma, "cells": cells,
            "l1_synthetic_vs_noisy": float(np.abs(syn - m.values / total).sum()),
            # E|N(0, s^2)| = s * sqrt(2/pi) per cell, as shares of the estimated total
            "expected_noise_l1": float(cells * m.sigma * math.sqrt(2 / math.pi) / total),
        })
    p = manifest["privacy"]
    return {
        "report_version": 1,
        "kind": "public",
        "release_id": manifest["release_id"],
        "created_utc": manifest["created_utc"],
        "mechanism": synth.mechanism,
        "privacy": {k: p.get(k) for k in ("epsilon", "delta", "rho", "unit", "conversion", "neighbouring",
                                          "variant", "accounting", "noise", "in_mechanism_randomness",
                                          "seed_controls", "seed_never_touches")},
        "rows": manifest["rows"],
        "estimated_rows": synth.estimated_rows,
        "columns": columns,
        "marginals": marginals,
        "ledger": p["ledger"],
        "caveats": p["caveats"],
        "note": "Every number compared here is differentially private (noisy measurements) or "
        "computed from the synthetic data. Nothing was computed on the confidential data.",
    }


def svg_of(fig: Any) -> str:
    """Inline SVG text of a matplotlib figure (no XML prolog, deterministic ids), then closed."""
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buf.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text[text.index("<svg"):], flags=re.DOTALL)
    return text


def style_matplotlib() -> None:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update({
        "svg.fonttype": "none", "font.size": 9,
        "font.family": ["DejaVu Sans", "sans-serif"], "axes.edgecolor": _GRID,
        "axes.labelcolor": _INK, "xtick.color": _INK, "ytick.color": _INK,
        "axes.spines.top": False, "axes.spines.right": False,
    })


def _ledger_chart(ledger: list[dict[str, Any]]) -> str:
    import matplotlib.pyplot as plt

    rho = np.array([e["rho"] or 0.0 for e in ledger], dtype=float)
    fig, ax = plt.subplots(figsize=(11, 1.9))
    ax.bar(np.arange(len(rho)), np.cumsum(rho), color=_SYN, width=0.8)
    ax.set_xlabel("charged step")
    ax.set_ylabel("cumulative ρ")
    ax.grid(axis="y", color=_GRID, linewidth=0.6)
    ax.set_axisbelow(True)
    return svg_of(fig)


def render_public_html(report: dict[str, Any]) -> str:
    """Render ``index.html`` from ``report.json`` (self-contained, readable offline)."""
    import jinja2

    style_matplotlib()
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    charts = {c["name"]: column_chart(c) for c in report["columns"]}
    ledger_svg = _ledger_chart(report["ledger"]) if report["ledger"] else ""
    html = env.get_template("public.html.j2").render(
        r=report, charts=charts, ledger_svg=ledger_svg, fmt=fmt_number, pct=fmt_percent,
    )
    return re.sub(r"\n\s*\n+", "\n", html)


def fmt_number(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return f"{int(x):,}"
    v = float(x)
    if v == 0:
        return "0"
    return f"{v:.{digits}g}"


def synthetic_table(df: pd.DataFrame, synth: Synthesizer) -> Table:
    """Encode released synthetic rows over the public domain (post-processing)."""
    from dpsynth.tabular.encoding import encode

    return encode(df, synth.schema)
