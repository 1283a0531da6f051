"""The grouped objective (nested measurements answered from each other) equals the naive one."""

from __future__ import annotations

import numpy as np

from dpsynth.pgm import Domain, build_junction_tree
from dpsynth.pgm.objective import Objective, measurement_terms
from dpsynth.privacy.measure import Measurement


def test_grouped_marginals_and_gradient_equal_per_term_reduction() -> None:
    rng = np.random.default_rng(0)
    domain = Domain.from_dict({"a": 3, "b": 4, "c": 2, "d": 5, "e": 3})
    cliques = [
        ("a",),
        ("b",),
        ("a", "b"),
        ("a", "b", "c"),
        ("c", "d"),
        ("d",),
        ("a", "b"),
        ("b", "c"),
        ("e",),
        ("d", "e"),
    ]
    ms = [
        Measurement(c, rng.integers(0, 50, domain.project(c).shape), float(rng.uniform(1, 3)))
        for c in cliques
    ]
    tree = build_junction_tree(domain, [m.clique for m in ms])
    terms = measurement_terms(tree, ms)
    obj = Objective(tree, terms, total=100.0)
    tables = []
    for c in tree.cliques:
        t = rng.random(domain.project(c).shape)
        tables.append(t / t.sum())
    # Locally consistent tables are not needed: every group reduces from its home clique.
    mus = obj.marginals(tables)
    grads, per_term = obj.gradient(mus)
    want_grads = [np.zeros(domain.project(c).shape) for c in tree.cliques]
    for t, mu, g in zip(terms, mus, per_term, strict=True):
        direct = np.add.reduce(tables[t.home], axis=t.axes) if t.axes else tables[t.home]
        np.testing.assert_allclose(mu, direct, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(g, 2 * 100.0 * t.coef * (100.0 * direct - t.y), rtol=1e-12)
        want_grads[t.home] += g.reshape(t.in_home)
    for got, want in zip(grads, want_grads, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)
