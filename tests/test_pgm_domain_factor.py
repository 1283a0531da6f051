"""Domain, Factor and CliqueVector: shapes, broadcasting, log-space marginalisation."""

from __future__ import annotations

import numpy as np
import pytest

from dpsynth.errors import ConfigError
from dpsynth.pgm import CliqueVector, Domain, Factor


def test_domain_basics() -> None:
    d = Domain.from_dict({"a": 2, "b": 3, "c": 4})
    assert d.size() == 24
    assert d.size(("a", "c")) == 8
    assert d.project(("c", "a")) == Domain(("c", "a"), (4, 2))
    assert d.canonical(("c", "a")) == ("a", "c")
    with pytest.raises(ConfigError, match="'z'"):
        d.project(("z",))
    with pytest.raises(ConfigError):
        Domain(("a", "a"), (1, 2))


def test_factor_project_logsumexp_and_reorder() -> None:
    rng = np.random.default_rng(0)
    d = Domain.from_dict({"a": 2, "b": 3, "c": 4})
    p = rng.random(d.shape)
    f = Factor(d, np.log(p))
    proj = f.project(("c", "a"))
    assert proj.attrs == ("c", "a")
    np.testing.assert_allclose(np.exp(proj.values), p.sum(axis=1).T)
    lin = Factor(d, p).project(("b",), log=False)
    np.testing.assert_allclose(lin.values, p.sum(axis=(0, 2)))


def test_factor_arithmetic_broadcasts_to_union() -> None:
    d = Domain.from_dict({"a": 2, "b": 3})
    fa = Factor(d.project(("a",)), np.array([1.0, 2.0]))
    fb = Factor(d.project(("b",)), np.array([10.0, 20.0, 30.0]))
    s = fa + fb
    assert s.attrs == ("a", "b")
    np.testing.assert_allclose(s.values, [[11, 21, 31], [12, 22, 32]])
    np.testing.assert_allclose(
        (fb - fa).transpose(("a", "b")).values, -s.values + 2 * fb.expand(d).values
    )
    np.testing.assert_allclose((fa * 2.0).values, [2.0, 4.0])
    e = fa.expand(d)
    np.testing.assert_allclose(e.values, [[1, 1, 1], [2, 2, 2]])


def test_factor_normalize_and_inf() -> None:
    d = Domain.from_dict({"a": 3})
    f = Factor(d, np.array([0.0, -np.inf, np.log(3.0)]))
    n = f.normalize()
    np.testing.assert_allclose(np.exp(n.values), [0.25, 0.0, 0.75])
    assert f.logsumexp().values.shape == ()
    np.testing.assert_allclose(float(f.logsumexp().values), np.log(4.0))
    lin = Factor(d, np.array([1.0, 1.0, 2.0])).normalize(8.0, log=False)
    np.testing.assert_allclose(lin.values, [2.0, 2.0, 4.0])


def test_clique_vector_arithmetic_and_expand() -> None:
    d = Domain.from_dict({"a": 2, "b": 3, "c": 2})
    v = CliqueVector.zeros(d, [("a",), ("b", "c")])
    w = (v + 1.0) * 2.0
    assert w.dot(w) == pytest.approx(4.0 * (2 + 6))
    big = w.expand(d, [("a", "b", "c")])
    np.testing.assert_allclose(big[("a", "b", "c")].values, 4.0)
    back = big.exp().project([("a",)], log=False)
    np.testing.assert_allclose(back[("a",)].values, np.exp(4.0) * 6)
