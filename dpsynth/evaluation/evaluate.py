"""The confidential evaluation: real against synthetic data, for the data controller only.

:func:`evaluate` computes the metrics of :mod:`dpsynth.evaluation.quality` on the real data and writes
``evaluation.json`` and ``evaluation.html``, both marked CONFIDENTIAL (the HTML on every
screen and every printed page). These are not differentially private statistics of the
confidential data, so :func:`evaluate` refuses to write into a release bundle.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.errors import ConfigError
from dpsynth.tabular.atomic import atomic_directory, write_text_atomic
from dpsynth.tabular.encoding import encode, read_frame
from dpsynth.tabular.schema import BooleanColumn, Role, Schema

__all__ = ["CONFIDENTIAL", "MIN_ROWS", "evaluate"]

MIN_ROWS = 10
"""Fewer real or synthetic rows than this leave the metrics undefined: evaluate refuses."""

log = logging.getLogger(__name__)

CONFIDENTIAL = ("CONFIDENTIAL: computed on the real data without differential privacy. "
                "For the data controller only; never attach to a release or share with a recipient.")


def _frame(data: pd.DataFrame | str | Path, schema: Schema) -> pd.DataFrame:
    return data if isinstance(data, pd.DataFrame) else read_frame(data, schema)


def _refuse_bundle(out: Path) -> None:
    for d in [out, *out.resolve().parents]:
        if (d / "manifest.json").is_file() and (d / "SHA256SUMS").is_file():
            raise ConfigError(f"evaluation output {out} is inside the release bundle {d}: the "
                              "confidential evaluation must never be written into a bundle")


def _default_target(schema: Schema) -> str | None:
    for name in schema.roles(Role.sensitive):
        col = schema.column(name)
        if isinstance(col, BooleanColumn) or getattr(col, "n_values", 0) == 2:
            return name
    return None


def evaluate(
    real: pd.DataFrame | str | Path,
    synthetic: pd.DataFrame | str | Path,
    schema: Schema,
    *,
    holdout: pd.DataFrame | str | Path | None = None,
    target: str | None = None,
    out: str | Path,
    overwrite: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Compare synthetic with real data and write the confidential evaluation to ``out``.

    Args:
        real: The real rows the generator was fitted on.
        synthetic: The synthetic rows.
        schema: The public schema.
        holdout: Real rows never fitted on: the test set of the train-on-synthetic AUC (and
            the train-on-real baseline is then trained on ``real``).
        target: Binary column for the AUC (default: the first binary sensitive column).
        out: Directory for ``evaluation.json`` and ``evaluation.html`` (not inside a bundle).
        overwrite: Replace an existing ``out``.
        seed: Seed of the classifiers and of marginal sampling.

    Returns:
        The evaluation (the content of ``evaluation.json``).
    """
    from dpsynth.evaluation import quality

    out_dir = Path(out)
    _refuse_bundle(out_dir)
    if out_dir.exists() and not overwrite:
        raise ConfigError(f"output {out_dir} already exists (pass overwrite / --overwrite to replace it)")
    real_df, syn_df = _frame(real, schema), _frame(synthetic, schema)
    if min(len(real_df), len(syn_df)) < MIN_ROWS:  # confidential: the steward's own data
        raise ConfigError(f"the evaluation needs at least {MIN_ROWS} real and {MIN_ROWS} synthetic rows; "
                          "check the files (dpsynth validate)")
    r, s = encode(real_df, schema), encode(syn_df, schema)
    target = target or _default_target(schema)
    result: dict[str, Any] = {
        "classification": CONFIDENTIAL,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "schema_sha256": schema.sha256(),
        "workload_error": quality.workload_error(r, s, rng=np.random.default_rng(seed)),
        "column_shapes": quality.column_shapes(real_df, syn_df, r, s, schema),
        "column_pair_trends": quality.column_pair_trends(real_df, syn_df, r, s, schema),
        "subgroups": quality.subgroup_rates(r, s, schema),
    }
    shapes = [v["score"] for v in result["column_shapes"].values() if np.isfinite(v["score"])]
    pairs = [p["score"] for p in result["column_pair_trends"]]
    result["scores"] = {"column_shapes": float(np.mean(shapes)) if shapes else None,
                        "column_pair_trends": float(np.mean(pairs)) if pairs else None}
    result["propensity"] = quality.pmse(r, s, schema, seed=seed)
    if target is not None:
        test = encode(_frame(holdout, schema), schema) if holdout is not None else r
        result["ml_efficacy"] = quality.tstr_auc(s, test, schema, target,
                                                 train_real=r if holdout is not None else None, seed=seed)
        result["ml_efficacy"]["test_set"] = "holdout" if holdout is not None else \
            "the fitted real rows (no holdout given)"
    else:
        result["ml_efficacy"] = None
    result = _clean(result)
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        write_text_atomic(tmp / "evaluation.json", json.dumps(result, indent=2, allow_nan=False))
        write_text_atomic(tmp / "evaluation.html", render_evaluation_html(result))
    log.info("confidential evaluation written to %s", out_dir)
    return result


def _clean(x: Any) -> Any:
    """NaN and infinities become ``None`` (strict JSON)."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def _charts(ev: dict[str, Any]) -> dict[str, str]:
    import matplotlib.pyplot as plt

    from dpsynth.report.public import svg_of

    charts: dict[str, str] = {}
    shapes = ev["column_shapes"]
    names = list(shapes)
    fig, ax = plt.subplots(figsize=(11, 0.6 + 0.26 * len(names)))
    vals = [shapes[n]["score"] or 0.0 for n in names]
    y = np.arange(len(names))[::-1]
    ax.barh(y, vals, color="#b42318", height=0.6)
    ax.set_yticks(y, names)
    ax.set_xlim(0, 1)
    ax.set_xlabel("column shape score (KSComplement / TVComplement; 1 = identical)")
    ax.grid(axis="x", color="#e4e7eb", linewidth=0.6)
    ax.set_axisbelow(True)
    charts["shapes"] = svg_of(fig)
    pairs = ev["column_pair_trends"]
    if pairs:
        idx = {n: i for i, n in enumerate(names)}
        mat = np.full((len(names), len(names)), np.nan)
        for p in pairs:
            a, b = (idx[c] for c in p["columns"])
            mat[a, b] = mat[b, a] = p["score"]
        fig, ax = plt.subplots(figsize=(7.5, 6.5))
        im = ax.imshow(mat, vmin=0.5, vmax=1.0, cmap="Reds_r")
        ax.set_xticks(range(len(names)), names, rotation=90)
        ax.set_yticks(range(len(names)), names)
        fig.colorbar(im, ax=ax, shrink=0.8, label="pair trend score")
        charts["pairs"] = svg_of(fig)
    return charts


def render_evaluation_html(ev: dict[str, Any]) -> str:
    """The confidential HTML page (self-contained, CONFIDENTIAL on screen and on every printed page)."""
    import jinja2

    from dpsynth.report.public import TEMPLATES, fmt_number, style_matplotlib

    style_matplotlib()
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    return env.get_template("evaluation.html.j2").render(e=ev, charts=_charts(ev), fmt=fmt_number,
                                                         banner=CONFIDENTIAL)
