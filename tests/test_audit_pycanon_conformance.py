"""dpsynth's syntactic measures equal pyCANON 1.3.6's on fixed Adult tables (golden fixture).

``tests/data/conformance/pycanon_golden.json`` was computed once with pyCANON in its own
virtualenv by ``tests/data/conformance/pycanon_golden.py`` (see ``tests/data/README``); this
test rebuilds the same tables with that script's :func:`variants` (which needs only pandas)
and never imports pyCANON. Integers must be equal, floats equal to 1e-12. pyCANON's entropy l
is ``int(exp(min entropy))``; its recursive c ranks counts ascending (``pycanon_order=True``);
its ordered t-closeness of education runs on education's schema position, dpsynth's on the
text column with the schema's order.
"""

from __future__ import annotations

import importlib.util
import json
import math
from types import ModuleType
from typing import Any

import pandas as pd
import pytest

from dpsynth.audit.kanonymity import k_anonymity, t_closeness, worst_over_secrets
from dpsynth.audit.syntactic import (
    alpha_k_anonymity,
    beta_likeness,
    delta_disclosure,
    ordinal_orders,
    recursive_cl_diversity,
)
from dpsynth.tabular.schema import load_schema
from tests.paths import ADULT_SCHEMA, TEST_DATA

CONFORMANCE = TEST_DATA / "conformance"
GOLDEN = json.loads((CONFORMANCE / "pycanon_golden.json").read_text(encoding="utf-8"))
TOL = 1e-12


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pycanon_golden",
                                                  CONFORMANCE / "pycanon_golden.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = _script()
ORDERS = {"education": ordinal_orders(load_schema(ADULT_SCHEMA))["education"]}


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return dict(SCRIPT.variants())


def _secrets(name: str) -> list[str]:
    """The golden's secret set in dpsynth's terms: education_ord is the text column."""
    return ["education" if s == "education_ord" else s for s in GOLDEN["secret_sets"][name]]


def _dpsynth(df: pd.DataFrame, qis: list[str], secs: list[str]) -> dict[str, Any]:
    w = worst_over_secrets(df, qis, secs, orders=ORDERS)
    c, c_l = recursive_cl_diversity(df, qis, secs, pycanon_order=True)
    return {"k": k_anonymity(df, qis), "alpha": alpha_k_anonymity(df, qis, secs)[0],
            "l": w.l_distinct, "l_entropy": int(w.l_entropy), "c": c, "c_l": c_l,
            "t": w.t_closeness,
            "beta_basic": max(beta_likeness(df, qis, s) for s in secs),
            "beta_enhanced": w.beta_enhanced,
            "delta": max(delta_disclosure(df, qis, s) for s in secs)}


def _equal(ours: object, theirs: object) -> bool:
    if theirs is None or isinstance(theirs, int):
        return ours == theirs
    assert isinstance(ours, float) and isinstance(theirs, float)
    return math.isclose(ours, theirs, rel_tol=0.0, abs_tol=TOL)


def test_the_fixture_is_pycanon_1_3_6_on_the_schema_order() -> None:
    assert GOLDEN["pycanon"] == "1.3.6"
    assert SCRIPT.EDUCATION_ORDER == ORDERS["education"]
    assert GOLDEN["rows"] == 3000 and len(GOLDEN["cases"]) == 45


CASES = [c for c in GOLDEN["cases"] if c["secrets"] != "education_text"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['variant']}-{c['qis']}-{c['secrets']}")
def test_every_measure_equals_pycanon(case: dict[str, Any],
                                      tables: dict[str, pd.DataFrame]) -> None:
    df = tables[case["variant"]]
    ours = _dpsynth(df, GOLDEN["qi_sets"][case["qis"]], _secrets(case["secrets"]))
    wrong = {m: (ours[m], case[m]) for m in ours if not _equal(ours[m], case[m])}
    assert wrong == {}


@pytest.mark.parametrize("variant", ["real", "perturbed30", "shuffled"])
def test_education_t_closeness_equal_and_ordered(variant: str,
                                                 tables: dict[str, pd.DataFrame]) -> None:
    df = tables[variant]
    for qname, qis in GOLDEN["qi_sets"].items():
        gold = {c["secrets"]: c["t"] for c in GOLDEN["cases"]
                if c["variant"] == variant and c["qis"] == qname}
        as_text = t_closeness(df, qis, "education")
        in_order = t_closeness(df, qis, "education", order=ORDERS["education"])
        assert math.isclose(as_text, gold["education_text"], abs_tol=TOL)
        assert math.isclose(in_order, gold["education"], abs_tol=TOL)
        assert not math.isclose(in_order, as_text, abs_tol=1e-3)


def test_published_recursive_c_differs_from_pycanons_ranking(
        tables: dict[str, pd.DataFrame]) -> None:
    """pyCANON ranks ascending; the published rule (r_1 the most frequent) gives a larger c."""
    qis, secs = GOLDEN["qi_sets"]["coarse"], ["occupation"]
    published, ell = recursive_cl_diversity(tables["real"], qis, secs)
    theirs = next(c for c in GOLDEN["cases"] if c["variant"] == "real"
                  and c["qis"] == "coarse" and c["secrets"] == "occupation")
    assert ell == theirs["c_l"] and published is not None
    assert published > theirs["c"]
