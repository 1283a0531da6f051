"""Golden values of pyCANON 1.3.6's syntactic measures on fixed Adult tables.

Run ONCE, in its own virtualenv (pyCANON pins numpy/pandas versions that conflict with
dpsynth's), from the repository root::

    python3 -m venv /tmp/pycanon-venv
    /tmp/pycanon-venv/bin/pip install pycanon==1.3.6
    /tmp/pycanon-venv/bin/python tests/data/conformance/pycanon_golden.py

It writes ``tests/data/conformance/pycanon_golden.json``: pyCANON's version and, for every
table variant x quasi-identifier set x secret set, k, alpha of (alpha,k), l, entropy l,
(c,l), t, basic and enhanced beta and delta. ``tests/test_audit_pycanon_conformance.py``
rebuilds the same tables with :func:`variants` (this module imports pyCANON only inside
:func:`main`, so the test can import it under dpsynth's environment) and asserts that
dpsynth's values equal these.

The tables: ``tests/data/adult_sample.csv`` (3,000 real Adult training rows) with ``age``
binned on fixed public edges, and two fixed perturbed copies made without any RNG (so both
environments build them identically): ``perturbed30`` replaces about 30% of the cells of
each column with another row's value, ``shuffled`` permutes each column independently.
``education_ord`` is education's position in the schema's category order
(``examples/adult/schema.yaml``), the numeric column through which pyCANON computes the
ordered t-closeness of education in schema order (pyCANON has no other way to take an order).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent / "adult_sample.csv"
OUT = HERE / "pycanon_golden.json"

AGE_EDGES = [17, 25, 35, 45, 55, 65, 91]
EDUCATION_ORDER = ["Preschool", "1st-4th", "5th-6th", "7th-8th", "9th", "10th", "11th", "12th",
                   "HS-grad", "Some-college", "Assoc-voc", "Assoc-acdm", "Bachelors", "Masters",
                   "Prof-school", "Doctorate"]
COLUMNS = ["age_band", "sex", "race", "education", "marital-status", "income-per-year",
           "occupation"]
QI_SETS = {
    "full": ["age_band", "sex", "race", "education", "marital-status"],
    "demographic": ["age_band", "sex", "race"],
    "coarse": ["age_band", "sex"],
}
# education_ord is the ordinal secret; in dpsynth it is the text column with the schema order.
SECRET_SETS = {
    "income": ["income-per-year"],
    "occupation": ["occupation"],
    "education": ["education_ord"],
    "all": ["income-per-year", "occupation", "education_ord"],
}
PERTURB_SHARE = 300  # per mille of the cells replaced in "perturbed30"


def base_table() -> pd.DataFrame:
    """The 3,000 real rows: binned age, the audited columns, and ``education_ord``."""
    raw = pd.read_csv(SAMPLE, keep_default_na=False)
    band = pd.cut(raw["age"], bins=AGE_EDGES, right=False)
    df = pd.DataFrame({"age_band": band.astype(str)})
    for c in COLUMNS[1:]:
        df[c] = raw[c].astype(str)
    return df.reset_index(drop=True)


def _with_order(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["education_ord"] = [EDUCATION_ORDER.index(v) for v in out["education"]]
    return out


def _perturbed(df: pd.DataFrame) -> pd.DataFrame:
    n = len(df)
    out = {}
    for j, c in enumerate(COLUMNS):
        values = df[c].tolist()
        out[c] = [values[(i * 7919 + j * 104729 + 17) % n]
                  if (i * 2654435761 + j * 40503 + 12345) % 1000 < PERTURB_SHARE else values[i]
                  for i in range(n)]
    return pd.DataFrame(out)


def _shuffled(df: pd.DataFrame) -> pd.DataFrame:
    n = len(df)
    steps = [7, 11, 13, 17, 19, 23, 29]  # coprime with 3,000: each map is a permutation
    return pd.DataFrame({c: [df[c].iloc[(steps[j] * i + 31 * j) % n] for i in range(n)]
                         for j, c in enumerate(COLUMNS)})


def variants() -> dict[str, pd.DataFrame]:
    """The three fixed tables, each with ``education_ord`` added."""
    base = base_table()
    return {"real": _with_order(base), "perturbed30": _with_order(_perturbed(base)),
            "shuffled": _with_order(_shuffled(base))}


def _num(x: object) -> float | int | None:
    """An int stays an int, a float a float; NaN (pyCANON's "undefined") becomes None."""
    if isinstance(x, (int, np.integer)):
        return int(x)
    v = float(x)  # type: ignore[arg-type]
    return None if math.isnan(v) else v


def _measures(anon: Any, df: pd.DataFrame, qis: list[str], secs: list[str]) -> dict[str, Any]:
    alpha, k = anon.alpha_k_anonymity(df, qis, secs)
    c, l_c = anon.recursive_c_l_diversity(df, qis, secs)
    return {"k": _num(k), "alpha": _num(alpha),
            "l": _num(anon.l_diversity(df, qis, secs)),
            "l_entropy": _num(anon.entropy_l_diversity(df, qis, secs)),
            "c": _num(c), "c_l": _num(l_c),
            "t": _num(anon.t_closeness(df, qis, secs)),
            "beta_basic": _num(anon.basic_beta_likeness(df, qis, secs)),
            "beta_enhanced": _num(anon.enhanced_beta_likeness(df, qis, secs)),
            "delta": _num(anon.delta_disclosure(df, qis, secs))}


def main() -> None:
    """Compute every measure with pyCANON and write the JSON fixture."""
    from importlib.metadata import version

    from pycanon import anonymity

    cases = []
    for vname, df in variants().items():
        for qname, qis in QI_SETS.items():
            for sname, secs in SECRET_SETS.items():
                row = {"variant": vname, "qis": qname, "secrets": sname,
                       **_measures(anonymity, df, qis, secs)}
                cases.append(row)
                print(vname, qname, sname, row, file=sys.stderr, flush=True)
            # t-closeness of education as text: pyCANON's equal distance
            cases.append({"variant": vname, "qis": qname, "secrets": "education_text",
                          "t": _num(anonymity.t_closeness(df, qis, ["education"]))})
    payload = {"pycanon": version("pycanon"), "pandas": version("pandas"),
               "numpy": version("numpy"), "rows": len(variants()["real"]),
               "age_edges": AGE_EDGES, "qi_sets": QI_SETS, "secret_sets": SECRET_SETS,
               "cases": cases}
    OUT.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
