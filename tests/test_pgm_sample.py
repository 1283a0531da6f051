"""Sampling: goodness of fit against the model, independence, evidence, constraints, files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from dpsynth.errors import ConfigError
from dpsynth.pgm import Domain, Model, estimate, load_model, sample, sample_with_shares, save_model
from dpsynth.privacy.measure import Measurement

DOMAIN = Domain.from_dict({"a": 3, "b": 4, "c": 2, "d": 5, "e": 3})
N = 100_000


def _model(cliques: list[tuple[str, ...]], seed: int = 0, constraints=()) -> Model:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(DOMAIN.size())).reshape(DOMAIN.shape)
    ms = []
    for c in cliques:
        axes = tuple(i for i, a in enumerate(DOMAIN.attrs) if a not in c)
        ms.append(
            Measurement(DOMAIN.canonical(c), np.round(p.sum(axis=axes) * N).astype(np.int64), 1.0)
        )
    return estimate(DOMAIN, ms, constraints=constraints)


def _joint(model: Model) -> np.ndarray:
    """Brute-force joint (axes in domain order) from the tree factorisation of the potentials."""
    log = np.zeros(DOMAIN.shape)
    for clique, factor in model.potentials.items():
        canon = DOMAIN.canonical(clique)
        table = np.transpose(factor.values, [clique.index(a) for a in canon])
        log = log + table.reshape([s if a in canon else 1 for a, s in zip(DOMAIN.attrs, DOMAIN.shape, strict=True)])
    joint = np.exp(log - log.max())
    return joint / joint.sum()


def _counts(rows: np.ndarray, attrs: tuple[str, ...]) -> np.ndarray:
    idx = [DOMAIN.attrs.index(a) for a in attrs]
    shape = DOMAIN.project(attrs).shape
    flat = np.ravel_multi_index(tuple(rows[:, i] for i in idx), shape)
    return np.bincount(flat, minlength=int(np.prod(shape))).reshape(shape)


def _chi2_pvalue(observed: np.ndarray, probs: np.ndarray) -> float:
    obs, p = observed.ravel().astype(float), probs.ravel()
    expected = p * obs.sum()
    assert np.all(obs[p == 0] == 0), "sampled a zero-probability cell"
    keep = expected >= 5
    obs_k = np.append(obs[keep], obs[~keep].sum())
    exp_k = np.append(expected[keep], expected[~keep].sum())
    if exp_k[-1] == 0:
        obs_k, exp_k = obs_k[:-1], exp_k[:-1]
    return float(stats.chisquare(obs_k, exp_k * obs_k.sum() / exp_k.sum()).pvalue)


CYCLIC = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]


def test_sampled_marginals_match_the_model_and_a_wrong_model_is_rejected() -> None:
    model = _model(CYCLIC)
    rows = sample(model, 50_000, np.random.default_rng(1))
    assert rows.shape == (50_000, 5) and rows.dtype == np.int64
    assert np.all(rows >= 0) and np.all(rows < np.array(DOMAIN.shape))
    pvalues = [
        _chi2_pvalue(_counts(rows, c), model.probability(c))
        for c in [("a",), ("d",), ("a", "b"), ("a", "c"), ("b", "d"), ("a", "b", "c")]
    ]
    assert min(pvalues) > 1e-4, pvalues
    wrong = _model(CYCLIC, seed=9)
    assert _chi2_pvalue(_counts(rows, ("a", "b")), wrong.probability(("a", "b"))) < 1e-6
    # power against a subtle error: the right marginals with 2% of mass moved between cells
    tilted = model.probability(("a", "b")).copy()
    tilted.flat[np.argmax(tilted)] -= 0.02
    tilted.flat[np.argmin(tilted)] += 0.02
    assert _chi2_pvalue(_counts(rows, ("a", "b")), tilted) < 1e-3


def test_unlinked_columns_are_independent_in_samples() -> None:
    # e is not measured with anything; a-b-c-d are linked. The sampler must not correlate them.
    model = _model(CYCLIC)
    rows = sample(model, 60_000, np.random.default_rng(2))
    for x in ("a", "b", "d"):
        table = _counts(rows, (x, "e"))
        assert stats.chi2_contingency(table).pvalue > 1e-4
    # and linked columns ARE dependent (power)
    assert stats.chi2_contingency(_counts(rows, ("a", "b"))).pvalue < 1e-6


def test_conditional_samples_follow_the_conditional_distribution() -> None:
    model = _model(CYCLIC)
    rows = sample(model, 30_000, np.random.default_rng(3), evidence={"a": 1, "d": [0, 2]})
    assert np.all(rows[:, 0] == 1)
    assert set(np.unique(rows[:, 3])) <= {0, 2}
    joint = model.probability(("a", "d", "b"))
    cond = joint[1, [0, 2], :]
    assert _chi2_pvalue(_counts(rows, ("d", "b"))[[0, 2], :], cond / cond.sum()) > 1e-4


def test_zero_probability_evidence_is_refused() -> None:
    model = _model(CYCLIC, constraints=[{"a": 0}])
    with pytest.raises(ConfigError, match="zero probability"):
        sample(model, 10, np.random.default_rng(0), evidence={"a": 0})
    with pytest.raises(ConfigError, match="not in the domain"):
        sample(model, 10, np.random.default_rng(0), evidence={"zz": 0})


def test_constraints_never_appear_in_samples() -> None:
    forbidden = [{"a": 0, "e": [1, 2]}, {"b": 3, "d": 4}]
    model = _model([*CYCLIC, ("d", "e")], constraints=forbidden)
    rows = sample(model, 100_000, np.random.default_rng(4))
    assert not np.any((rows[:, 0] == 0) & np.isin(rows[:, 4], [1, 2]))
    assert not np.any((rows[:, 1] == 3) & (rows[:, 3] == 4))
    assert model.probability(("b", "d"))[3, 4] == 0.0
    assert np.all(model.project(("e", "a")).values[1:, 0] == 0.0)


def test_shares_rebalance_a_column() -> None:
    model = _model(CYCLIC)
    rows = sample_with_shares(model, 40_000, np.random.default_rng(5), "c", {0: 0.5, 1: 0.5})
    share = np.mean(rows[:, 2] == 1)
    assert abs(share - 0.5) < 0.015
    given = rows[rows[:, 2] == 1]
    joint = model.probability(("c", "a"))[1]
    assert _chi2_pvalue(_counts(given, ("a",)), joint / joint.sum()) > 1e-4


def test_same_seed_same_sample_and_save_load_round_trip(tmp_path: Path) -> None:
    model = _model(CYCLIC, constraints=[{"a": 2, "b": 0}])
    first = sample(model, 5_000, np.random.default_rng(7))
    assert np.array_equal(first, sample(model, 5_000, np.random.default_rng(7)))
    assert not np.array_equal(first, sample(model, 5_000, np.random.default_rng(8)))
    save_model(model, tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} == {"model.json", "potentials.npz"}
    loaded = load_model(tmp_path / "m")
    assert loaded.total == model.total and loaded.constraints == model.constraints
    for c in [("a", "b"), ("c", "d", "e"), ("e",)]:
        np.testing.assert_array_equal(loaded.probability(c), model.probability(c))
    assert np.array_equal(first, sample(loaded, 5_000, np.random.default_rng(7)))


def test_project_many_matches_brute_force() -> None:
    model = _model([*CYCLIC, ("d", "e")])
    joint = _joint(model)
    queries = [("e", "a"), ("a", "d", "e"), ("b", "e", "c"), ("a", "b", "c", "d", "e")]
    for q, table in zip(queries, model.project_many(queries), strict=True):
        axes = tuple(i for i, a in enumerate(DOMAIN.attrs) if a not in q)
        canon = DOMAIN.canonical(q)
        expected = np.transpose(joint.sum(axis=axes), [canon.index(a) for a in q]) * model.total
        np.testing.assert_allclose(table.values, expected, rtol=1e-8, atol=1e-8)


def test_marginal_queries_by_upward_messages_match_brute_force(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Queries spanning several cliques are answered by variable elimination unless its plan
    # would build tables larger than the model; force the other path (upward messages along
    # the covering subtree) and check it is exact too, and that both paths agree.
    from dpsynth.pgm import marginals

    model = _model([*CYCLIC, ("d", "e"), ("b", "e")])
    joint = _joint(model)
    queries = [("e", "a"), ("a", "d", "e"), ("d", "b", "c"), ("a", "b", "c", "d", "e")]
    by_elimination = [marginals.marginal_of(model.beliefs, q) for q in queries]
    monkeypatch.setattr(marginals, "_eliminate", lambda *args: ([], 1 << 62))
    assert len(model.cliques) > 2
    for q, other in zip(queries, by_elimination, strict=True):
        table = marginals.marginal_of(model.beliefs, q)
        axes = tuple(i for i, a in enumerate(DOMAIN.attrs) if a not in q)
        canon = DOMAIN.canonical(q)
        expected = np.transpose(joint.sum(axis=axes), [canon.index(a) for a in q])
        np.testing.assert_allclose(table, expected, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(table, other, rtol=1e-10, atol=1e-12)


def test_guide_table_lookup_equals_a_binary_search_in_each_rows_cdf() -> None:
    from dpsynth.pgm.sample import InverseCDF

    rng = np.random.default_rng(11)
    for configs, cells in [(1, 1), (1, 7), (40, 3), (9, 50)]:
        table = rng.random((configs, cells)) * (rng.random((configs, cells)) < 0.6)
        table[0] = 0.0  # a configuration with no mass at all
        inverse = InverseCDF.build(table)
        parent = rng.integers(0, configs, 20_000)
        # uniforms plus the CDF steps themselves and 0 (the searches' edge cases)
        steps = inverse.cdf.reshape(configs, cells)[parent[:500], rng.integers(0, cells, 500)]
        u = np.concatenate([rng.random(20_000 - 501), np.minimum(steps, np.nextafter(1, 0)), [0.0]])
        flat = inverse.draw(parent, u)
        cdf = inverse.cdf.reshape(configs, cells)
        expected = np.array([np.searchsorted(cdf[p], x, side="right") for p, x in zip(parent, u, strict=True)])
        assert np.array_equal(flat - parent * cells, expected)
        drawn = table[parent[1:], (flat - parent * cells)[1:]]
        assert np.all((drawn > 0) | (table[parent[1:]].sum(axis=1) == 0))
