"""Singling-out: the search reaches the requested count or says why not; tail-directed
conditions; distinct predicates; column restriction; headline rule; control-size correction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpsynth.audit.distance import EncodedTable, MixedEncoder
from dpsynth.audit.risk import choose_headline, residual_risk
from dpsynth.audit.singling_out import (
    GE,
    LE,
    _keys,
    count_matches,
    search_multivariate,
    singling_out_risk,
)
from dpsynth.audit.stats import fit_size_correction, singling_out_probability_integral
from tests.paths import ADULT_SAMPLE


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return pd.read_csv(ADULT_SAMPLE)


def _encode(*frames: pd.DataFrame) -> list[EncodedTable]:
    enc = MixedEncoder(frames[0], list(frames[1:]))
    return [enc.encode(f) for f in frames]


def test_search_reaches_500_distinct_tail_directed_predicates_on_adult(
        adult: pd.DataFrame) -> None:
    (syn,) = _encode(adult.iloc[:2000])
    search = search_multivariate(syn, 500, n_cols=3, rng=np.random.default_rng(0))
    preds = search.predicates
    assert len(preds) == 500 and search.warning() is None
    assert (count_matches(syn, preds) == 1).all()
    assert len({k.tobytes() for k in _keys(preds)}) == 500  # no duplicates
    med = np.nanmedian(syn.num, axis=0)
    n_num = syn.num.shape[1]
    num = preds.cols < n_num
    assert num.any()
    v, m = preds.values[num], med[preds.cols[num]]
    ops = preds.ops[num]
    assert (ops[v > m] == GE).all() and (ops[v <= m] == LE).all()


def test_exhausted_search_says_the_data_cannot_give_more() -> None:
    # 6 distinct rows of 2 binary columns, each once: at most a handful of predicates exist.
    frame = pd.DataFrame({"a": ["x", "x", "y", "y", "z", "z"], "b": ["p", "q"] * 3})
    (syn,) = _encode(frame)
    search = search_multivariate(syn, 500, n_cols=2, rng=np.random.default_rng(1),
                                 batch_size=64)
    assert len(search.predicates) == 6 and search.exhausted
    note = search.warning()
    assert note is not None and "yields only 6" in note


def test_max_rounds_stop_is_reported_as_a_search_limit(adult: pd.DataFrame) -> None:
    (syn,) = _encode(adult.iloc[:1000])
    search = search_multivariate(syn, 500, n_cols=3, rng=np.random.default_rng(0),
                                 max_rounds=1, batch_size=100)
    note = search.warning()
    assert not search.exhausted and note is not None and "raise max_rounds" in note


def test_columns_restrict_predicates_and_headline_is_explained(adult: pd.DataFrame) -> None:
    real, hold = adult.iloc[:1000], adult.iloc[1000:2000]
    r, s, h = _encode(real, real.copy(), hold)
    cols = ["age", "education", "sex", "race"]
    res = singling_out_risk(r, s, h, n_attacks=200, rng=np.random.default_rng(2),
                            columns=cols, max_rounds=50)
    assert set(res.columns) == set(cols)
    # four columns of 1,000 rows hold fewer than 200 distinct 3-condition predicates: said so
    assert 50 <= res.multivariate.n_attacks < 200
    assert any("yields only" in w for w in res.multivariate.warnings)
    assert res.univariate.n_attacks < 50 and res.headline == "multivariate"
    js = res.to_json()
    assert js["mode"] == res.headline and str(js["headline_reason"]).startswith(res.headline)
    # an exact copy: predicates isolating one synthetic row isolate one real person
    assert res.multivariate.attack_rate == 1.0 and res.risk.ci.lo > 0.5


def _risk(n: int, ok: int, c_ok: int) -> object:
    return residual_risk(n_success=ok, n_attacks=n, n_baseline_success=0, n_baseline=n,
                         n_control_success=c_ok, n_control=n)


def test_a_tiny_sample_never_decides_the_headline() -> None:
    uni = _risk(4, 2, 0)       # 50% from 4 predicates: interval [0, 0.8]
    multi = _risk(500, 10, 9)  # ~0 from 500
    head, why = choose_headline(uni, multi)  # type: ignore[arg-type]
    assert head is multi and why.startswith("multivariate") and "50" in why
    both_small = choose_headline(_risk(4, 2, 0), _risk(30, 1, 1))  # type: ignore[arg-type]
    assert both_small[0].n_attacks == 30 and "no variant reached 50" in both_small[1]
    big_uni = _risk(80, 40, 2)
    assert choose_headline(big_uni, multi)[0] is big_uni  # type: ignore[arg-type]


def test_size_correction_recovers_the_model_ratio() -> None:
    w, norm = 2e-4, 300.0
    sizes = np.repeat(np.linspace(1000, 3000, 10), 5)
    succ = np.array([norm * singling_out_probability_integral(n, w) for n in sizes])
    factor = fit_size_correction(sizes, succ, 3000, 6000)
    truth = singling_out_probability_integral(6000, w) / singling_out_probability_integral(
        3000, w)
    assert factor == pytest.approx(truth, rel=1e-3)


def test_smaller_holdout_gets_its_control_rescaled(adult: pd.DataFrame) -> None:
    real, hold = adult.iloc[:2000], adult.iloc[2000:3000]
    r, s, h = _encode(real, adult.iloc[:2000].sample(frac=1.0, random_state=3), hold)
    res = singling_out_risk(r, s, h, n_attacks=100, rng=np.random.default_rng(4),
                            max_rounds=20)
    notes = " ".join(res.multivariate.warnings + res.univariate.warnings)
    assert "rescaled" in notes
    off = singling_out_risk(r, s, h, n_attacks=100, rng=np.random.default_rng(4),
                            max_rounds=20, size_correction=False)
    assert "rescaled" not in " ".join(off.multivariate.warnings)
    # a smaller control singles out more often; the correction lowers its rate
    assert res.multivariate.control_rate is not None
    assert off.multivariate.control_rate is not None
    assert res.multivariate.control_rate < off.multivariate.control_rate


@pytest.mark.parametrize("seed", [0, 1])
def test_count_matches_equals_a_plain_row_by_row_count(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    x = rng.integers(0, 5, size=n).astype(float)
    x[rng.random(n) < 0.1] = np.nan
    frame = pd.DataFrame({"x": x, "y": rng.normal(size=n).round(1),
                          "c": rng.choice(["a", "b", None], size=n)})
    (t,) = _encode(frame)
    search = search_multivariate(t, 50, n_cols=2, rng=rng, max_rounds=3, batch_size=200)
    preds = search.predicates
    vals = np.concatenate([t.num, t.cat.astype(float)], axis=1)
    ops = {0: lambda a, v: a == v, 1: lambda a, v: a <= v, 2: lambda a, v: a >= v,
           3: lambda a, v: np.isnan(a)}
    plain = [int(np.logical_and.reduce([ops[int(o)](vals[:, c], v) for c, o, v in
                                        zip(preds.cols[i], preds.ops[i], preds.values[i],
                                            strict=True)]).sum()) for i in range(len(preds))]
    assert count_matches(t, preds).tolist() == plain and set(plain) == {1}
    # screening on a subsample never drops a predicate that isolates one row
    big = pd.concat([frame] * 60, ignore_index=True)
    big["id"] = [f"k{i}" for i in range(len(big))]  # categorical: "id == v" isolates a row
    (tb,) = _encode(big)
    found = search_multivariate(tb, 40, n_cols=2, rng=rng, max_rounds=5)
    assert (count_matches(tb, found.predicates) == 1).all() and len(found.predicates) == 40
