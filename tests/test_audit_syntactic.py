"""(alpha,k)-anonymity, recursive (c,l)-diversity, beta-likeness, delta-disclosure, several
secrets at once and ordinal t-closeness in schema order, on hand-made frames."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dpsynth.audit.kanonymity import syntactic_report, t_closeness, worst_over_secrets
from dpsynth.audit.syntactic import (
    alpha_anonymity,
    alpha_k_anonymity,
    beta_likeness,
    delta_disclosure,
    ordinal_orders,
    recursive_c,
    recursive_cl_diversity,
)
from dpsynth.errors import ConfigError, SchemaError
from dpsynth.tabular.schema import load_schema
from tests.paths import ADULT_SCHEMA

QIS = ["zip", "band"]


@pytest.fixture()
def frame() -> pd.DataFrame:
    # groups: (x,1) diagnosis p,p,q; (x,2) p,q; (y,1) r. Table-wide p 1/2, q 1/3, r 1/6.
    return pd.DataFrame({
        "zip": ["x", "x", "x", "x", "x", "y"],
        "band": [1, 1, 1, 2, 2, 1],
        "diagnosis": ["p", "p", "q", "p", "q", "r"],
        "income": [1, 2, 3, 3, 3, 1],
    })


def test_alpha_k(frame: pd.DataFrame) -> None:
    assert alpha_anonymity(frame, QIS, "diagnosis") == 1.0  # the lone (y,1) record
    two = frame.iloc[:5]
    assert alpha_anonymity(two, QIS, "diagnosis") == pytest.approx(2 / 3)
    assert alpha_k_anonymity(two, QIS, ["diagnosis"]) == (pytest.approx(2 / 3), 2)
    # income in (x,2) is 3,3: alpha 1 dominates the pair
    assert alpha_k_anonymity(two, QIS, ["diagnosis", "income"])[0] == 1.0


def test_recursive_c_both_orders(frame: pd.DataFrame) -> None:
    two = frame.iloc[:5]
    # (x,1) counts 2,1: floor(2/1)+1 = 3; (x,2) counts 1,1: floor(1/1)+1 = 2.
    assert recursive_c(two, QIS, "diagnosis", ell=2) == 3
    # pyCANON ranks ascending: (x,1) -> floor(1/2)+1 = 1; (x,2) -> 2.
    assert recursive_c(two, QIS, "diagnosis", ell=2, pycanon_order=True) == 2
    assert recursive_c(two, QIS, "diagnosis", ell=1) is None
    assert recursive_cl_diversity(two, QIS, ["diagnosis"]) == (3, 2)
    assert recursive_cl_diversity(frame, QIS, ["diagnosis"]) == (None, 1)
    with pytest.raises(ConfigError, match="fewer than l=3"):
        recursive_c(two, QIS, "diagnosis", ell=3)


def test_beta_and_delta(frame: pd.DataFrame) -> None:
    two = frame.iloc[:5]  # table-wide p 3/5, q 2/5
    # (x,2) has q at 1/2: (1/2 - 2/5) / (2/5) = 1/4 is the largest gain.
    assert beta_likeness(two, QIS, "diagnosis") == pytest.approx(1 / 4)
    assert beta_likeness(two, QIS, "diagnosis", enhanced=True) == pytest.approx(1 / 4)
    # the lone r record: (1 - 1/6) / (1/6) = 5; enhanced caps it at -ln(1/6).
    assert beta_likeness(frame, QIS, "diagnosis") == pytest.approx(5.0)
    assert beta_likeness(frame, QIS, "diagnosis", enhanced=True) == pytest.approx(math.log(6))
    # |ln(q/p)| over present values: ln(10/9), ln(6/5), ln(6/5), ln(5/4) -> ln(5/4)
    assert delta_disclosure(two, QIS, "diagnosis") == pytest.approx(math.log(5 / 4))
    assert delta_disclosure(frame, QIS, "diagnosis") == pytest.approx(math.log(6))


def test_worst_over_secrets_takes_the_worst_of_each(frame: pd.DataFrame) -> None:
    two = frame.iloc[:5]
    w = worst_over_secrets(two, QIS, ["diagnosis", "income"])
    assert w.k == 2 and w.l_distinct == 1 and w.recursive_c is None
    assert w.alpha == 1.0
    assert w.beta_basic == max(beta_likeness(two, QIS, s) for s in ("diagnosis", "income"))
    assert w.delta_disclosure == max(delta_disclosure(two, QIS, s)
                                     for s in ("diagnosis", "income"))
    assert w.t_closeness == max(t_closeness(two, QIS, s) for s in ("diagnosis", "income"))
    assert set(w.to_json()) >= {"alpha", "recursive_c", "beta_likeness_basic",
                                "beta_likeness_enhanced", "delta_disclosure", "t_closeness"}
    with pytest.raises(ConfigError, match="non-empty list"):
        worst_over_secrets(two, QIS, "diagnosis")


EDU = ["1st-4th", "10th", "11th", "Bachelors"]  # schema order; alphabetical puts 10th first


def test_ordinal_t_closeness_uses_the_given_order() -> None:
    df = pd.DataFrame({"g": ["A", "A", "B", "B"], "edu": EDU})
    # A = (1/2, 1/2, 0, 0) against (1/4,)*4: cumulative 1/4, 1/2, 1/4 -> 1/(4-1) = 1/3.
    assert t_closeness(df, ["g"], "edu", order=EDU) == pytest.approx(1 / 3)
    # alphabetical order would give 1/6; the equal distance 1/2.
    assert t_closeness(df, ["g"], "edu", order=sorted(EDU)) == pytest.approx(1 / 6)
    assert t_closeness(df, ["g"], "edu") == pytest.approx(1 / 2)
    # unused categories of the schema do not change the distance (m counts present values)
    assert t_closeness(df, ["g"], "edu", order=["Preschool", *EDU, "Doctorate"]) == \
        pytest.approx(1 / 3)
    cat = df.assign(edu=pd.Categorical(df["edu"], categories=EDU, ordered=True))
    assert t_closeness(cat, ["g"], "edu") == pytest.approx(1 / 3)


def test_ordered_text_without_an_order_is_refused() -> None:
    df = pd.DataFrame({"g": ["A", "A", "B", "B"], "edu": EDU})
    with pytest.raises(ConfigError, match="no order of its own"):
        t_closeness(df, ["g"], "edu", ordered=True)
    with pytest.raises(ConfigError, match="ordered=False"):
        t_closeness(df, ["g"], "edu", ordered=False, order=EDU)
    with pytest.raises(SchemaError, match="1 values are not in its declared order") as err:
        t_closeness(df, ["g"], "edu", order=EDU[:3])
    assert "Bachelors" not in str(err.value)  # never a data value in a message
    with pytest.raises(ConfigError, match="twice"):
        t_closeness(df, ["g"], "edu", order=[*EDU, "10th"])


def test_ordinal_orders_come_from_the_schema() -> None:
    orders = ordinal_orders(load_schema(ADULT_SCHEMA))
    assert orders["education"][:3] == ["Preschool", "1st-4th", "5th-6th"]
    assert orders["education"][-1] == "Doctorate" and len(orders["education"]) == 16


def test_report_carries_every_measure(frame: pd.DataFrame) -> None:
    df = frame.assign(edu=["1st-4th", "10th", "10th", "11th", "Bachelors", "1st-4th"])
    rep = syntactic_report(df, QIS, ["diagnosis", "edu"], orders={"edu": EDU})
    assert rep.t_closeness["edu"] == t_closeness(df, QIS, "edu", order=EDU)
    assert rep.alpha["diagnosis"] == 1.0 and rep.recursive_c["diagnosis"] is None
    assert rep.beta_basic["diagnosis"] == pytest.approx(5.0)
    js = rep.to_json()
    assert js["all_secrets"]["t_closeness"] == max(rep.t_closeness.values())  # type: ignore[index]
    for key in ("alpha", "recursive_c", "beta_likeness_basic", "beta_likeness_enhanced",
                "delta_disclosure"):
        assert set(js[key]) == {"diagnosis", "edu"}  # type: ignore[arg-type]
    assert syntactic_report(df.iloc[:0], QIS, ["diagnosis"]).worst == {}


def _naive(groups: list[tuple[int, int]]) -> dict[str, float | int]:
    """Textbook definitions with plain loops (an independent reference)."""
    n = len(groups)
    glob = Counter(s for _, s in groups)
    by: dict[int, Counter[int]] = {}
    for g, s in groups:
        by.setdefault(g, Counter())[s] += 1
    alpha, beta, delta, c = 0.0, -math.inf, 0.0, 0
    ell = min(len(cnt) for cnt in by.values())
    for cnt in by.values():
        size = sum(cnt.values())
        alpha = max(alpha, max(cnt.values()) / size)
        for v, nv in glob.items():
            q, p = cnt.get(v, 0) / size, nv / n
            beta = max(beta, (q - p) / p)
            if q > 0:
                delta = max(delta, abs(math.log(q / p)))
        r = sorted(cnt.values(), reverse=True)
        c = max(c, r[0] // sum(r[ell - 1:]) + 1)
    return {"alpha": alpha, "beta": beta, "delta": delta, "c": c if ell >= 2 else -1}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3)), min_size=1, max_size=40))
def test_vectorised_measures_equal_plain_loops(groups: list[tuple[int, int]]) -> None:
    df = pd.DataFrame(groups, columns=["g", "s"]).astype({"s": str})
    ref = _naive(groups)
    assert alpha_anonymity(df, ["g"], "s") == pytest.approx(ref["alpha"], abs=1e-12)
    assert beta_likeness(df, ["g"], "s") == pytest.approx(ref["beta"], abs=1e-12)
    assert delta_disclosure(df, ["g"], "s") == pytest.approx(ref["delta"], abs=1e-12)
    c, _ = recursive_cl_diversity(df, ["g"], ["s"])
    assert (c if c is not None else -1) == ref["c"]
    assert np.isfinite(beta_likeness(df, ["g"], "s", enhanced=True))


def test_audit_falls_back_to_the_equal_distance_for_values_outside_the_order() -> None:
    import numpy as np

    from dpsynth.audit.runner import AuditOptions, run_audit

    rng = np.random.default_rng(0)
    n = 300
    real = pd.DataFrame({"sex": rng.choice(["F", "M"], n), "edu": rng.choice(["lo", "mid", "hi", "rare"], n)})
    synthetic = pd.DataFrame({"sex": rng.choice(["F", "M"], n), "edu": rng.choice(["lo", "mid", "hi"], n)})
    result = run_audit(real, synthetic, holdout=None, quasi_identifiers=["sex"], secrets=["edu"],
                       options=AuditOptions(ordinal_orders={"edu": ["lo", "mid", "hi"]}),
                       n_attacks=50, rng=rng)
    assert result.k_anonymity is not None and result.k_anonymity_real is not None
    assert any("outside its schema order" in w for w in result.warnings)
