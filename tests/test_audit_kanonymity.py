"""k-anonymity, l-diversity and t-closeness (ARX definitions) on hand-made frames."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dpsynth.audit.kanonymity import (
    k_anonymity,
    l_diversity_distinct,
    l_diversity_entropy,
    qi_group_ids,
    syntactic_report,
    t_closeness,
    unique_share,
)
from dpsynth.errors import SchemaError

QIS = ["zip (3 digits)", "âge band"]


@pytest.fixture()
def frame() -> pd.DataFrame:
    # groups: (x,1) x3, (x,2) x2, (y,1) x1
    return pd.DataFrame({
        "zip (3 digits)": ["x", "x", "x", "x", "x", "y"],
        "âge band": [1, 1, 1, 2, 2, 1],
        "diagnosis": ["p", "p", "q", "p", "q", "r"],
        "income": [1, 2, 3, 3, 3, 1],
    })


def test_k_and_unique_share(frame: pd.DataFrame) -> None:
    assert k_anonymity(frame, QIS) == 1
    assert unique_share(frame, QIS) == pytest.approx(1 / 6)
    two = frame.iloc[:5]
    assert k_anonymity(two, QIS) == 2
    assert unique_share(two, QIS) == 0.0
    assert k_anonymity(frame, ["zip (3 digits)"]) == 1


def test_nulls_form_their_own_group() -> None:
    df = pd.DataFrame({"q": ["a", "a", None, None, np.nan], "s": [1, 2, 3, 4, 5]})
    assert k_anonymity(df, ["q"]) == 2
    assert unique_share(df, ["q"]) == 0.0


def test_l_diversity(frame: pd.DataFrame) -> None:
    assert l_diversity_distinct(frame, QIS, "diagnosis") == 1
    assert l_diversity_entropy(frame, QIS, "diagnosis") == pytest.approx(1.0)
    two = frame.iloc[:5]
    assert l_diversity_distinct(two, QIS, "diagnosis") == 2
    h1 = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert l_diversity_entropy(two, QIS, "diagnosis") == pytest.approx(math.exp(h1))
    assert math.exp(h1) == pytest.approx(1.88988, abs=1e-5)


def test_t_closeness_equal_distance(frame: pd.DataFrame) -> None:
    # global (p,q,r) = (1/2, 1/3, 1/6); group (y,1) is all r: EMD = (1/2+1/3+5/6)/2 = 5/6.
    assert t_closeness(frame, QIS, "diagnosis") == pytest.approx(5 / 6)


def test_t_closeness_ordered(frame: pd.DataFrame) -> None:
    # values 1<2<3, global (2/6, 1/6, 3/6); group (y,1) = (1,0,0):
    # cumulative differences 2/3, 1/2 -> (2/3 + 1/2) / (3 - 1) = 7/12.
    assert t_closeness(frame, QIS, "income") == pytest.approx(7 / 12)
    # the same column treated as categorical: max over groups of TV distance
    assert t_closeness(frame, QIS, "income", ordered=False) == pytest.approx(2 / 3)


def test_report_and_missing_column(frame: pd.DataFrame) -> None:
    rep = syntactic_report(frame, QIS, ["diagnosis", "income"])
    assert rep.k == 1 and rep.n_groups == 3 and rep.n_records == 6
    assert rep.l_distinct == {"diagnosis": 1, "income": 1}
    assert rep.t_closeness["income"] == pytest.approx(7 / 12)
    with pytest.raises(SchemaError, match="no such"):
        k_anonymity(frame, ["no such"])


def test_group_ids_match_tuple_grouping_even_past_int64() -> None:
    # 8 columns of ~500 values: the mixed-radix key would overflow int64 without compaction.
    rng = np.random.default_rng(5)
    df = pd.DataFrame({f"c{i}": rng.integers(0, 500, size=2000) for i in range(8)})
    df = pd.concat([df, df.iloc[:300]], ignore_index=True)  # 300 groups of two
    df.loc[::7, "c3"] = np.nan
    ids = qi_group_ids(df, list(df.columns))
    tuples = [tuple(None if pd.isna(v) else v for v in row) for row in df.itertuples(index=False)]
    by_tuple: dict[tuple[object, ...], set[int]] = {}
    for t, g in zip(tuples, ids, strict=True):
        by_tuple.setdefault(t, set()).add(int(g))
    assert all(len(g) == 1 for g in by_tuple.values())
    assert len({next(iter(g)) for g in by_tuple.values()}) == len(by_tuple) == ids.max() + 1
    assert k_anonymity(df, list(df.columns)) == 1
    assert np.bincount(ids).max() == 2
