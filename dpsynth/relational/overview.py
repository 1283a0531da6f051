"""The overview page of a linked-tables bundle (``report/index.html`` and ``index.json``).

One public page for the whole release: the one guarantee per person, each table's role, rows,
budget share and report, the budget ledger, and for each child table the distribution of child
rows per person (the root's noisy measurement against the released counts). Built from the
manifest and the tables' public reports only: post-processing, nothing read from the input.
"""

from __future__ import annotations

import re
from typing import Any

from dpsynth.relational.schema import count_column

__all__ = ["build_overview", "render_overview"]


def build_overview(manifest: dict[str, Any], reports: dict[str, dict[str, Any]],
                   parent_columns: dict[str, list[str]]) -> dict[str, Any]:
    """``index.json``: the release's identity and guarantee, its tables (root first), and the
    child-count columns of the root's public report."""
    root = manifest["root"]
    order = [root, *(n for n in manifest["tables"] if n != root)]
    blank = dict.fromkeys(("primary_key", "parent", "foreign_key", "max_rows_per_parent"))
    tables = [{"name": n, **blank, **manifest["tables"][n], "parent_columns": parent_columns.get(n, [])}
              for n in order]
    counts = []
    for entry in reports[root]["columns"]:
        for child in order[1:]:
            if entry["name"] == count_column(child):
                counts.append({**entry, "table": child})
    return {"report_version": 1, "kind": "public-relational", "name": manifest.get("name"),
            "release_id": manifest["release_id"], "created": manifest["created"],
            "mechanism": manifest["mechanism"], "engine": manifest["engine"], "root": root,
            "privacy": {k: manifest["privacy"][k] for k in ("epsilon", "delta", "rho", "unit", "ledger")},
            "tables": tables, "child_counts": counts}


def render_overview(overview: dict[str, Any]) -> str:
    """``index.html`` from :func:`build_overview` (self-contained, readable offline)."""
    import jinja2

    from dpsynth.report.charts import column_chart, fmt_percent
    from dpsynth.report.public import TEMPLATES, fmt_number

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    counts = [(c, column_chart(c)) for c in overview["child_counts"]]
    html = env.get_template("relational.html.j2").render(o=overview, counts=counts, fmt=fmt_number, pct=fmt_percent)
    return re.sub(r"\n\s*\n+", "\n", html)
