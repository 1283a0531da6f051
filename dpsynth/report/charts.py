"""Column charts of the public report: cell order, bar grouping, percent axes, as HTML data.

Each modelled column becomes one horizontal bar chart drawn with plain HTML and CSS (no script,
no image): a grey bar per noisy measured share with its ±2σ whisker and a blue bar per
synthetic share. Cells are shown in their natural order: time order for datetimes, bin order
for numbers, schema order for ordinal, categorical and boolean columns, with ``(other)`` and
``(null)`` last. No cell is ever dropped: a column with more than :data:`MAX_BARS` cells is
drawn with neighbouring cells merged (ordered kinds) or with its smallest cells summed into one
labelled "N more cells" bar (categorical), the caption says which, and every cell is listed in
the chart's table. Everything here is post-processing of ``report.json``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["MAX_BARS", "Bar", "CellRow", "Chart", "cell_order", "column_chart", "fmt_percent", "percent_ticks"]

#: Most bars drawn in one column chart; larger columns are grouped (never silently cut).
MAX_BARS = 40
_SPECIAL = ("(other)", "(null)")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_MINUS = "\u2212"
_BIN = re.compile(r"^\[([^,\]]+), ([^,\]]+)([)\]])$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    """One drawn bar: one cell, or several cells summed.

    Attributes:
        label: Text next to the bar.
        title: Full description (hover text): label, shares and band.
        cells: The codes summed into this bar.
        noisy: Noisy measured share, or ``None`` if the column was not measured.
        band: Half-width of the ±2σ band of ``noisy`` (shares), or ``None``.
        synthetic: Synthetic share.
    """

    label: str
    title: str
    cells: tuple[int, ...]
    noisy: float | None
    band: float | None
    synthetic: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CellRow:
    """One cell of a column, for the chart's full table (display order)."""

    code: int
    label: str
    noisy: str
    band: str
    synthetic: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Chart:
    """Everything the template needs to draw one column chart.

    Attributes:
        column: Column name.
        kind: Column kind (``datetime``, ``numeric``, ...).
        bars: Bars in display order.
        rows: Every cell, in display order, with formatted shares.
        ticks: ``(position in percent of the plot width, label)`` of each axis tick.
        axis_max: Share at the right end of the axis.
        caption: What is drawn, in which order, and how cells were grouped.
    """

    column: str
    kind: str
    bars: tuple[Bar, ...]
    rows: tuple[CellRow, ...]
    ticks: tuple[tuple[float, str], ...]
    axis_max: float
    caption: str

    def position(self, share: float) -> float:
        """``share`` as a percentage of the plot width, clipped to ``[0, 100]``."""
        return round(min(max(share / self.axis_max, 0.0), 1.0) * 100.0, 3)


def fmt_percent(share: float) -> str:
    """A share as a percent: one decimal below 10%, none from 10% up (``0.034`` → ``3.4%``).

    Zero is ``0%``; a nonzero share that would round to zero is ``<0.1%`` (``>\u22120.1%``, a minus sign, if
    negative, as a noisy share can be).
    """
    v = 100.0 * float(share)
    if v == 0.0:
        return "0%"
    sign = _MINUS if v < 0 else ""
    a = abs(v)
    if a < 0.05:
        return f"{'>' + _MINUS if v < 0 else '<'}0.1%"
    text = f"{a:.1f}" if round(a, 1) < 10.0 else f"{a:.0f}"
    return f"{sign}{text}%"


def percent_ticks(top: float) -> tuple[float, list[float]]:
    """A round axis end at or above the share ``top`` and its ticks (3 to 6, steps 1-2-5 ×10ᵏ).

    The step is at least 0.1% so every tick label is exact with one decimal.
    """
    top = max(float(top), 0.005)
    raw = top / 5.0
    exp = math.floor(math.log10(raw))
    step = min(m * 10.0**exp for m in (1.0, 2.0, 5.0, 10.0) if m * 10.0**exp >= raw)
    step = max(step, 0.001)
    n = math.ceil(top / step - 1e-9)
    return round(n * step, 6), [round(i * step, 6) for i in range(n + 1)]


def _first_number(label: str) -> float | None:
    m = _NUMBER.search(label)
    return float(m.group()) if m else None


def cell_order(kind: str, labels: list[str], starts: list[float] | None = None) -> list[int]:
    """Codes in display order: time or bin order for datetimes and numbers, else schema order.

    ``(other)`` and ``(null)`` always come last. Numbers are ordered by the first number of
    their label (a bin's lower edge, or an exact value), ties kept in code order.

    Args:
        kind: Column kind.
        labels: One label per code.
        starts: For datetimes, each value cell's start (any monotone number), in code order.
    """
    regular = [i for i, lab in enumerate(labels) if lab not in _SPECIAL]
    special = [i for i, lab in enumerate(labels) if lab in _SPECIAL]
    if kind == "datetime" and starts is not None:
        regular.sort(key=lambda i: starts[i])
    elif kind == "numeric":
        keys = {i: _first_number(labels[i]) for i in regular}
        if all(k is not None for k in keys.values()):
            regular.sort(key=lambda i: float(keys[i] or 0.0))
    return regular + special


def _groups(kind: str, order: list[int], labels: list[str], key: npt.NDArray[np.float64],
            key_name: str) -> tuple[list[tuple[str, list[int]]], str]:
    """Split ``order`` into at most MAX_BARS labelled groups, and the caption sentence saying how."""
    if len(order) <= MAX_BARS:
        return [(labels[i], [i]) for i in order], ""
    regular = [i for i in order if labels[i] not in _SPECIAL]
    special = [i for i in order if labels[i] in _SPECIAL]
    slots = MAX_BARS - len(special)
    if kind == "categorical":
        kept = set(sorted(regular, key=lambda i: (-key[i], i))[: slots - 1])
        tail = [i for i in regular if i not in kept]
        groups = [(labels[i], [i]) for i in regular if i in kept]
        groups.append((f"{len(tail)} more cells", tail))
        note = (f"The {len(kept)} largest cells (by {key_name} share) "
                f"are drawn in schema order; the other {len(tail)} are summed in the bar "
                f"'{len(tail)} more cells'.")
    else:
        size = math.ceil(len(regular) / slots)
        groups = []
        for s in range(0, len(regular), size):
            part = regular[s:s + size]
            text = labels[part[0]] if len(part) == 1 else _span(labels[part[0]], labels[part[-1]])
            groups.append((text, part))
        note = (f"Neighbouring cells are merged, up to {size} per bar, so that {len(groups)} bars "
                f"show all {len(regular)} value cells in order.")
    return groups + [(labels[i], [i]) for i in special], note + " Every cell is listed in the table below."


def _span(first: str, last: str) -> str:
    """The label of merged neighbouring cells: ``[0, 2)`` + ``[4, 6)`` → ``[0, 6)``, else ``a – b``."""
    a, b = _BIN.match(first), _BIN.match(last)
    if a and b:
        return f"[{a.group(1)}, {b.group(2)}{b.group(3)}"
    return f"{first} – {last}"


_ORDER_WORDS = {"datetime": "time order", "numeric": "bin order", "ordinal": "schema order",
                "categorical": "schema order", "boolean": "false, true"}


def column_chart(col: dict[str, Any]) -> Chart:
    """The chart of one ``report.json`` column entry (its ``order`` gives the display order)."""
    labels = [str(x) for x in col["labels"]]
    order = [int(i) for i in col.get("order", range(len(labels)))]
    syn = np.asarray(col["synthetic_share"], dtype=np.float64)
    measured = bool(col["measured"])
    noisy = np.asarray(col["noisy_share"], dtype=np.float64) if measured else None
    band = float(col["band_2sigma"]) if measured else 0.0
    groups, note = _groups(col["kind"], order, labels, noisy if noisy is not None else syn,
                          "noisy" if measured else "synthetic")
    bars = []
    for text, cells in groups:
        s = float(syn[cells].sum())
        n = float(noisy[cells].sum()) if noisy is not None else None
        b = band * math.sqrt(len(cells)) if measured else None  # independent noise adds in quadrature
        title = f"{text}: synthetic {fmt_percent(s)}"
        if n is not None and b is not None:
            title += f", noisy {fmt_percent(n)} ± {fmt_percent(b)} (2σ)"
        bars.append(Bar(label=text, title=title, cells=tuple(cells), noisy=n, band=b, synthetic=s))
    top = max(max(b.synthetic for b in bars),
              max(((b.noisy or 0.0) + (b.band or 0.0) for b in bars), default=0.0))
    axis_max, ticks = percent_ticks(top)
    rows = tuple(CellRow(code=i, label=labels[i], synthetic=fmt_percent(float(syn[i])),
                         noisy=fmt_percent(float(noisy[i])) if noisy is not None else "–",
                         band="± " + fmt_percent(band) if measured else "–") for i in order)
    caption = (f"{len(labels)} cells in {_ORDER_WORDS.get(col['kind'], 'schema order')}"
               + "".join(f", then {x}" for x in _SPECIAL if x in labels) + ". "
               + ("Grey: noisy measured share (DP) with its ±2σ noise band; blue: synthetic share. "
                  if measured else "Blue: synthetic share (this column was not measured). ")
               + note)
    return Chart(column=str(col["name"]), kind=str(col["kind"]), bars=tuple(bars), rows=rows,
                 ticks=tuple((round(t / axis_max * 100.0, 3), fmt_percent(t)) for t in ticks),
                 axis_max=axis_max, caption=caption.strip())
