"""Shared pieces of the public-report tests: a small release with every ordering case, and DOM checks.

The release has a datetime column of 60 daily cells (more than a chart draws, so neighbours are
merged), an ordinal column whose schema order is not alphabetical, a numeric column of 50 bins,
a categorical column of 45 categories plus null (the tail becomes an "N more cells" bar), a
boolean and a small categorical. :func:`check_report_dom` parses the report's HTML (as written,
or as Chromium serialised it) and checks every property the tests require.
"""

from __future__ import annotations

import json
import re
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from dpsynth.report.charts import MAX_BARS

LEVELS = ["none", "low", "medium", "high", "very high", "extreme"]  # schema order, not alphabetical
CANARY = "ZQXCANARYREPORT4471"
CITIES = [f"city-{i:02d}" for i in range(45)]
PERCENT = re.compile(r"^(0%|[<>]\u2212?0\.1%|\u2212?\d\.\d%|\u2212?[1-9]\d+%)$")


def write_release_inputs(tmp: Path, n: int = 1500, seed: int = 3) -> tuple[Path, Path]:
    """A CSV of ``n`` rows and its public schema, covering every chart ordering case."""
    rng = np.random.default_rng(seed)
    days = pd.Timestamp("2021-03-01") + pd.to_timedelta(rng.integers(0, 60, n), unit="D")
    df = pd.DataFrame({
        "visit": days.strftime("%Y-%m-%d"),
        "severity": rng.choice(LEVELS, n, p=[0.3, 0.25, 0.2, 0.12, 0.08, 0.05]),
        "load": np.round(rng.gamma(2.0, 10.0, n).clip(0, 99.9), 2),
        "city": [CITIES[i] if i < len(CITIES) else "" for i in rng.zipf(1.4, n) - 1],
        "member": rng.choice(["true", "false"], n),
        "tier": rng.choice(["gold", "silver", "bronze"], n),
    })
    df.loc[7, "city"] = CANARY  # an undeclared value: read as null, never shown
    data = tmp / "data.csv"
    df.to_csv(data, index=False)
    schema = {"version": 1, "name": "report-fixture", "missing_values": [""], "privacy_unit": {"kind": "row"},
              "columns": [
                  {"name": "visit", "kind": "datetime", "bounds": ["2021-03-01", "2021-04-29"],
                   "granularity": "day", "bins": 60},
                  {"name": "severity", "kind": "ordinal", "categories": LEVELS},
                  {"name": "load", "kind": "numeric", "bounds": [0, 100], "bins": 50},
                  {"name": "city", "kind": "categorical", "categories": CITIES, "nullable": True},
                  {"name": "member", "kind": "boolean"},
                  {"name": "tier", "kind": "categorical", "categories": ["gold", "silver", "bronze"]},
              ]}
    path = tmp / "schema.yaml"
    path.write_text(yaml.safe_dump(schema, sort_keys=False), encoding="utf-8")
    return data, path


def make_release(tmp: Path) -> Path:
    """Run ``dpsynth release`` on the fixture (independent mechanism, ε = 1) and return the bundle."""
    from dpsynth.cli import main

    data, schema = write_release_inputs(tmp)
    out = tmp / "bundle"
    code = main(["--debug", "release", str(data), "--schema", str(schema), "--mechanism", "independent",
                 "--epsilon", "1", "--delta", "1e-6", "--seed", "5", "--out", str(out)])
    if code != 0:
        raise RuntimeError(f"release exited with {code}")
    return out


class _Dom(HTMLParser):
    """Collect each chart figure: its bars (cells, label), table rows (code, label) and texts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.charts: list[dict[str, Any]] = []
        self._stack: list[tuple[str, dict[str, str]]] = []
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        cls = a.get("class", "").split()
        if tag == "figure" and "chart" in cls:
            self.charts.append({"column": a["data-column"], "kind": a["data-kind"], "cells": int(a["data-cells"]),
                                "bars": [], "rows": [], "ticks": [], "pcts": [], "caption": ""})
        elif self.charts and "bar-row" in cls:
            self.charts[-1]["bars"].append({"cells": [int(x) for x in a["data-cells"].split()], "label": ""})
        elif self.charts and tag == "tr" and "data-cell" in a:
            self.charts[-1]["rows"].append({"code": int(a["data-cell"]), "label": ""})
        if tag not in ("br", "meta", "link", "input", "img"):
            self._stack.append((tag, a))
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        a: dict[str, str] = {}
        while self._stack:
            t, a = self._stack.pop()
            if t == tag:
                break
        if not self.charts:
            return
        text = "".join(self._text).strip()
        cls = a.get("class", "").split()
        ch = self.charts[-1]
        if tag == "span" and "label" in cls and ch["bars"] and not ch["bars"][-1]["label"]:
            ch["bars"][-1]["label"] = text
        elif tag == "span" and "tick" in cls:
            ch["ticks"].append(text)
        elif tag == "td" and ch["rows"] and not ch["rows"][-1]["label"]:
            ch["rows"][-1]["label"] = text
        elif tag == "td" and "pct" in cls:
            ch["pcts"].append(text)
        elif tag == "figcaption":
            ch["caption"] = text
        self._text = []

    def handle_data(self, data: str) -> None:
        self._text.append(data)


def parse_charts(html: str) -> list[dict[str, Any]]:
    """Every chart figure of a report page, in page order."""
    dom = _Dom()
    dom.feed(html)
    return dom.charts


def check_report_dom(html: str, report: dict[str, Any], schema_levels: list[str] = LEVELS) -> None:
    """Assert the chart properties on a report page (raises AssertionError naming the column)."""
    charts = {c["column"]: c for c in parse_charts(html)}
    assert set(charts) == {c["name"] for c in report["columns"]}
    for col in report["columns"]:
        ch, name, labels = charts[col["name"]], col["name"], col["labels"]
        n = len(labels)
        assert ch["cells"] == n, name
        assert 1 <= len(ch["bars"]) <= MAX_BARS, f"{name}: {len(ch['bars'])} bars drawn, at most {MAX_BARS} allowed"
        drawn = sorted(i for b in ch["bars"] for i in b["cells"])
        assert drawn == list(range(n)), f"{name}: bars cover {len(drawn)} of {n} cells"
        assert sorted(r["code"] for r in ch["rows"]) == list(range(n)), f"{name}: table rows"
        assert [r["label"] for r in ch["rows"]] == [labels[i] for i in col["order"]], name
        shown = [r["label"] for r in ch["rows"] if r["label"] not in ("(null)", "(other)")]
        if col["kind"] == "datetime":
            days = [date.fromisoformat(s) for s in shown]
            assert days == sorted(days) and len(set(days)) == len(days), f"{name}: dates not ascending"
        if col["kind"] == "ordinal":
            assert shown == schema_levels, f"{name}: not in schema order"
        if col["kind"] == "numeric":
            lows = [float(s[1:].split(",")[0]) for s in shown]
            assert lows == sorted(lows), f"{name}: bins not in order"
        if n > 40:
            assert "Every cell is listed in the table below" in ch["caption"], name
        assert ch["ticks"] and ch["ticks"][0] == "0%", name
        for text in ch["ticks"] + ch["pcts"]:
            assert PERCENT.match(text), f"{name}: percent label {text!r}"
        assert len(ch["pcts"]) == n * (2 if col["measured"] else 1), name


def read_report(bundle: Path) -> tuple[str, dict[str, Any]]:
    """The report page and its JSON from a bundle."""
    html = (bundle / "report" / "index.html").read_text(encoding="utf-8")
    return html, json.loads((bundle / "report" / "report.json").read_text(encoding="utf-8"))
