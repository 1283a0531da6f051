"""The public report's column charts, checked on the generated HTML and JSON (no browser needed).

Every cell of every column is drawn (grouped beyond 40 bars, with the caption saying so) and
listed; cells come in time, bin or schema order; percent labels have one decimal below 10% and
none above; the page stays self-contained and shows nothing but DP outputs and schema facts.
The same DOM properties are checked in headless Chromium by ``test_report_browser.py``.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from test_report_support import CANARY, CITIES, LEVELS, check_report_dom, make_release, read_report

from dpsynth.report.charts import MAX_BARS, cell_order, column_chart, fmt_percent, percent_ticks
from dpsynth.report.public import cell_labels
from dpsynth.tabular.columns import DatetimeColumn


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_release(tmp_path_factory.mktemp("report"))


@pytest.mark.parametrize(("share", "text"), [
    (0.0, "0%"), (0.0004, "<0.1%"), (-0.0004, ">\u22120.1%"), (0.034, "3.4%"), (0.0949, "9.5%"),
    (0.0996, "10%"), (0.123, "12%"), (-0.02, "\u22122.0%"), (1.0, "100%"), (0.005, "0.5%"),
])
def test_percent_has_one_decimal_below_ten_and_none_above(share: float, text: str) -> None:
    assert fmt_percent(share) == text


@pytest.mark.parametrize("top", [0.0, 0.0003, 0.004, 0.03, 0.087, 0.31, 0.6, 0.97, 1.0])
def test_percent_ticks_are_round_cover_the_top_and_label_exactly(top: float) -> None:
    end, ticks = percent_ticks(top)
    assert ticks[0] == 0.0 and ticks[-1] == end >= top
    assert 3 <= len(ticks) <= 6
    step = ticks[1] - ticks[0]
    assert step >= 0.001 - 1e-12
    assert all(abs((b - a) - step) < 1e-9 for a, b in itertools.pairwise(ticks))
    for t in ticks:  # the printed label is the tick's exact value
        text = fmt_percent(t).rstrip("%")
        assert abs(float(text) - 100 * t) < 1e-6


def test_cell_order_puts_numbers_in_bin_order_and_specials_last() -> None:
    # an exact value (an atom) listed after the bins still lands at its place on the line
    labels = ["[0, 10)", "[10, 20)", "(null)", "[20, 30]", "5"]
    assert cell_order("numeric", labels) == [0, 4, 1, 3, 2]
    assert cell_order("datetime", ["b", "a", "(null)"], [2.0, 1.0, float("inf")]) == [1, 0, 2]
    assert cell_order("ordinal", ["low", "(other)", "high"]) == [0, 2, 1]
    assert cell_order("categorical", ["z", "a"]) == [0, 1]  # schema order, not alphabetical


def test_sub_daily_datetime_cells_get_distinct_time_labels() -> None:
    col = DatetimeColumn(name="t", bounds=("2021-01-01T00:00", "2021-01-02T23:00"), granularity="hour",
                         bins=48, nullable=True)
    labels, starts = cell_labels(col)
    assert len(labels) == col.domain_size() == 49 and labels[-1] == "(null)"
    assert labels[0] == "2021-01-01 00:00" and labels[25] == "2021-01-02 01:00"
    assert len(set(labels)) == 49 and starts is not None and starts == sorted(starts)


def _col(kind: str, labels: list[str], measured: bool = True) -> dict[str, Any]:
    k = len(labels)
    share = [1.0 / k] * k
    entry: dict[str, Any] = {"name": "c", "kind": kind, "labels": labels, "order": list(range(k)),
                             "synthetic_share": share, "measured": measured}
    if measured:
        entry.update(noisy_share=[s + (0.001 if i % 2 else -0.001) for i, s in enumerate(share)],
                     band_2sigma=0.004)
    return entry


@pytest.mark.parametrize("kind", ["categorical", "numeric", "datetime", "ordinal"])
@pytest.mark.parametrize("k", [1, 40, 41, 97, 1000])
def test_no_cell_is_dropped_whatever_the_size(kind: str, k: int) -> None:
    labels = [f"[{i}, {i + 1})" for i in range(k)] if kind == "numeric" else [f"v{i}" for i in range(k)]
    chart = column_chart(_col(kind, [*labels, "(null)"]))
    assert len(chart.bars) <= MAX_BARS
    assert sorted(i for b in chart.bars for i in b.cells) == list(range(k + 1))
    assert [r.code for r in chart.rows] == list(range(k + 1))
    assert chart.bars[-1].label == "(null)"
    total = sum(b.synthetic for b in chart.bars)
    assert total == pytest.approx(1.0)
    if k + 1 > MAX_BARS:
        assert "Every cell is listed in the table below" in chart.caption
        if kind == "categorical":
            assert chart.bars[-2].label == f"{k + 1 - (MAX_BARS - 1)} more cells"
            assert "more cells" in chart.caption
        else:
            assert "merged" in chart.caption
            cells = [list(b.cells) for b in chart.bars[:-1]]
            assert [i for c in cells for i in c] == list(range(k))  # neighbours, in order


def test_merged_bins_read_as_one_interval_and_bands_add_in_quadrature() -> None:
    chart = column_chart(_col("numeric", [f"[{2 * i}, {2 * i + 2}{']' if i == 59 else ')'}" for i in range(60)]))
    assert chart.bars[0].label == "[0, 4)" and chart.bars[-1].label == "[116, 120]"
    assert chart.bars[0].band == pytest.approx(0.004 * 2**0.5)


def test_unmeasured_column_draws_synthetic_only() -> None:
    chart = column_chart(_col("categorical", ["a", "b"], measured=False))
    assert all(b.noisy is None and b.band is None for b in chart.bars)
    assert "not measured" in chart.caption and chart.rows[0].noisy == "–"


def test_real_release_report_shows_every_cell_in_order(bundle: Path) -> None:
    html, report = read_report(bundle)
    check_report_dom(html, report)
    by_name = {c["name"]: c for c in report["columns"]}
    assert [by_name["severity"]["labels"][i] for i in by_name["severity"]["order"]] == LEVELS
    city = by_name["city"]
    assert city["labels"] == [*CITIES, "(null)"] and len(city["order"]) == 46
    visit = by_name["visit"]
    assert visit["labels"][0] == "2021-03-01" and visit["labels"][-1] == "2021-04-29"


def test_report_is_self_contained_neutral_and_public_only(bundle: Path) -> None:
    html, report = read_report(bundle)
    assert "<script" not in html and "<img" not in html and "<link" not in html and "src=" not in html
    assert not re.search(r"url\((?!#)", html) and "@import" not in html
    assert "http" not in re.sub(r'xmlns(:\w+)?="[^"]*"', "", html)
    text = html + json.dumps(report)
    assert CANARY not in text and "ZQX" not in text  # an undeclared private value never shows
    assert "ssn" not in text
    # utility gaps are not coloured like alarms: no red or green class on the public page
    assert 'class="ok"' not in html and 'class="bad"' not in html
    css = html[html.index("<style>"):html.index("</style>")]
    chart_css = css[css.index(".chart {"):]
    assert not re.search(r"#(b42318|1a7f37|d62728|2ca02c|ff0000|00ff00)", chart_css, flags=re.IGNORECASE)
