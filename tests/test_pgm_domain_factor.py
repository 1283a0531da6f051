"""Domain, Factor and CliqueVector: shapes and names checked; log-space tables through calibration.

Factors carry no arithmetic (the engine computes on arrays); the log-space behaviour they
once covered is tested here on the real path: potentials with ``-inf`` cells, calibrated.
"""

from __future__ import annotations

import numpy as np
import pytest

from dpsynth.errors import ConfigError
from dpsynth.pgm import CliqueVector, Domain, Factor, Model, build_junction_tree


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


def test_factor_and_clique_vector_check_shapes_and_names() -> None:
    d = Domain.from_dict({"a": 2, "b": 3})
    f = Factor(d, np.zeros((2, 3)))
    assert f.attrs == ("a", "b")
    with pytest.raises(ConfigError, match=r"shape \(3, 2\)"):
        Factor(d, np.zeros((3, 2)))
    v = CliqueVector({("a", "b"): f})
    assert v.cliques == [("a", "b")] and len(v) == 1 and v[("a", "b")] is f
    with pytest.raises(ConfigError, match="stored under clique"):
        CliqueVector({("b", "a"): f})


def _joint(model: Model) -> np.ndarray:
    """Brute-force joint (in domain order) from the model's log-potentials."""
    domain = model.domain
    log = np.zeros(domain.shape)
    for clique, factor in model.potentials.items():
        canon = domain.canonical(clique)
        table = np.transpose(factor.values, [clique.index(a) for a in canon])
        shape = [s if a in canon else 1 for a, s in zip(domain.attrs, domain.shape, strict=True)]
        log = log + table.reshape(shape)
    p = np.exp(log - log.max())
    return p / p.sum()


def test_log_potentials_with_structural_zeros_calibrate_to_the_brute_force_joint() -> None:
    rng = np.random.default_rng(0)
    d = Domain.from_dict({"a": 2, "b": 3, "c": 4})
    tree = build_junction_tree(d, [("b", "a"), ("c", "b")])
    tables = {c: np.log(rng.random(d.project(c).shape)) for c in tree.cliques}
    ab = next(c for c in tree.cliques if set(c) == {"a", "b"})
    tables[ab][tuple({"a": 0, "b": 1}[x] for x in ab)] = -np.inf  # a structural zero: a=0, b=1
    potentials = CliqueVector({c: Factor(d.project(c), t) for c, t in tables.items()})
    model = Model(d, tree, potentials, total=8.0)
    joint = _joint(model)
    assert np.all(joint[0, 1, :] == 0.0) and np.all(joint[1, 1, :] > 0.0)
    np.testing.assert_array_equal(model.probability(("a", "b"))[0, 1], 0.0)
    np.testing.assert_allclose(model.probability(("c", "a")), joint.sum(axis=1).T, rtol=1e-12)
    counts = model.project(("b",))
    assert counts.attrs == ("b",)
    np.testing.assert_allclose(counts.values, 8.0 * joint.sum(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(float(model.project(("a", "b", "c")).values.sum()), 8.0)
