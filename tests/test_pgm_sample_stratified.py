"""Stratified sampling: systematic counts per separator group, the right distribution, less noise."""

from __future__ import annotations

import numpy as np
from scipy import stats

from dpsynth.pgm import Domain, Model, estimate, sample
from dpsynth.privacy.measure import Measurement

DOMAIN = Domain.from_dict({"a": 3, "b": 4, "c": 2, "d": 5, "e": 3})
CYCLIC: list[tuple[str, ...]] = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]


def _model(cliques: list[tuple[str, ...]], seed: int = 0) -> Model:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(DOMAIN.size())).reshape(DOMAIN.shape)
    ms = []
    for c in cliques:
        axes = tuple(i for i, a in enumerate(DOMAIN.attrs) if a not in c)
        counts = np.round(p.sum(axis=axes) * 100_000).astype(np.int64)
        ms.append(Measurement(DOMAIN.canonical(c), counts, 1.0))
    return estimate(DOMAIN, ms)


def _counts(rows: np.ndarray, attrs: tuple[str, ...]) -> np.ndarray:
    idx = [DOMAIN.attrs.index(a) for a in attrs]
    shape = DOMAIN.project(attrs).shape
    flat = np.ravel_multi_index(tuple(rows[:, i] for i in idx), shape)
    return np.bincount(flat, minlength=int(np.prod(shape))).reshape(shape)


def test_every_clique_gets_floor_or_ceiling_counts_within_each_separator_group() -> None:
    model = _model([*CYCLIC, ("d", "e")])
    rows = sample(model, 20_011, np.random.default_rng(0), stratified=True)
    tree, probs = model.tree, model.beliefs.probs
    for node in tree.order:
        clique = tree.cliques[node]
        parent = tree.parent[node]
        sep = tree.separator(node, parent) if parent >= 0 else ()
        new = tuple(a for a in clique if a not in sep)
        if not new:
            continue
        joint = _counts(rows, sep + new).reshape(-1, int(np.prod(DOMAIN.project(new).shape)))
        table = np.transpose(probs[node], [clique.index(a) for a in sep + new])
        cond = table.reshape(joint.shape[0], -1)
        cond = cond / np.maximum(cond.sum(axis=1, keepdims=True), 1e-300)
        expected = joint.sum(axis=1, keepdims=True) * cond
        assert np.all(joint >= np.floor(expected - 1e-6)), (clique, sep)
        assert np.all(joint <= np.ceil(expected + 1e-6)), (clique, sep)


def test_stratified_rows_follow_the_model_and_unlinked_columns_stay_independent() -> None:
    model = _model(CYCLIC)
    rows = sample(model, 60_000, np.random.default_rng(2), stratified=True)
    assert rows.shape == (60_000, 5) and np.all(rows < np.array(DOMAIN.shape))
    # Far less noise than independent rows on the marginals the tree holds (the point of it;
    # a marginal across cliques gains less) ...
    iid = sample(model, 60_000, np.random.default_rng(2), stratified=False)
    for c in [("a", "b", "c"), ("c", "d"), ("a",), ("d",)]:
        truth = model.probability(c) * 60_000
        err_strat = np.abs(_counts(rows, c) - truth).sum()
        err_iid = np.abs(_counts(iid, c) - truth).sum()
        assert err_strat < 0.5 * err_iid, (c, err_strat, err_iid)
    # ... while a column the model leaves independent is not correlated by the rounding.
    for x in ("a", "b", "d"):
        assert stats.chi2_contingency(_counts(rows, (x, "e"))).pvalue > 1e-4


def test_stratified_conditional_sampling_and_same_seed_same_sample() -> None:
    model = _model(CYCLIC)
    rows = sample(model, 9_000, np.random.default_rng(3), evidence={"a": 1}, stratified=True)
    assert np.all(rows[:, 0] == 1)
    again = sample(model, 9_000, np.random.default_rng(3), evidence={"a": 1}, stratified=True)
    np.testing.assert_array_equal(rows, again)
    cond = model.probability(("a", "b"))[1]
    expected = 9_000 * cond / cond.sum()
    assert np.all(np.abs(_counts(rows, ("b",)) - expected) <= 1.0 + 1e-9)
