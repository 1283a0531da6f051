"""The fitted graphical model: a junction tree with log-potentials, its marginals, and its files.

A :class:`Model` is a value. Its calibrated beliefs are computed once, lazily, and every
marginal query (``project``, ``project_many``, ``marginal``) is answered from them exactly.
Models are saved as ``model.json`` plus ``potentials.npz`` (no pickle anywhere).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from dpsynth.arrays import FloatArray
from dpsynth.errors import ConfigError
from dpsynth.pgm.clique_vector import CliqueVector
from dpsynth.pgm.constraints import Assignment, Normalized, assignment_mask, normalize_assignment
from dpsynth.pgm.domain import Domain
from dpsynth.pgm.factor import Factor
from dpsynth.pgm.inference import Beliefs, Calibrator
from dpsynth.pgm.junction_tree import JunctionTree
from dpsynth.pgm.marginals import MarginalCache

__all__ = ["FORMAT_VERSION", "Model", "load_model", "save_model"]

FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class Model:
    """A discrete distribution over ``domain`` that factorises over a junction tree.

    Attributes:
        domain: The public domain (every attribute is modelled).
        tree: The junction tree whose cliques carry the potentials.
        potentials: Log-potentials, one factor per tree clique (``-inf`` = structural zero).
        total: The (estimated) number of records; marginals are scaled by it.
        constraints: Forbidden partial assignments, normalised (their cells have mass 0).
        smoothness: The smoothness constant the accelerated fit ended with (a hint for a
            warm-started refit, see :class:`~dpsynth.pgm.optimizers.Smoothness`; not saved).
    """

    domain: Domain
    tree: JunctionTree
    potentials: CliqueVector
    total: float
    constraints: tuple[Normalized, ...] = ()
    smoothness: float | None = None

    def __post_init__(self) -> None:
        if list(self.potentials) != list(self.tree.cliques):
            raise ConfigError("model potentials must be given for exactly the tree's cliques")
        if not self.total > 0:
            raise ConfigError(f"model total ({self.total}) must be > 0")

    @property
    def cliques(self) -> tuple[tuple[str, ...], ...]:
        """The junction tree's maximal cliques."""
        return self.tree.cliques

    @cached_property
    def calibrator(self) -> Calibrator:
        """The compiled message schedule of the tree."""
        return Calibrator(self.tree)

    @cached_property
    def beliefs(self) -> Beliefs:
        """Calibrated clique marginals (probabilities)."""
        return self.calibrator.calibrate(self.log_potentials())

    @cached_property
    def _queries(self) -> MarginalCache:
        return MarginalCache(self.beliefs)

    def log_potentials(self) -> list[FloatArray]:
        """The log-potential arrays, aligned with ``tree.cliques``."""
        return [self.potentials[c].values for c in self.tree.cliques]

    def probability(self, attrs: Sequence[str]) -> FloatArray:
        """The probability table over ``attrs`` (axes in the order given; sums to 1)."""
        attrs = tuple(attrs)
        if len(set(attrs)) != len(attrs) or not attrs:
            raise ConfigError(f"marginal attributes {attrs} must be non-empty and distinct")
        self.domain.check(attrs)
        return self._queries.get(attrs)

    def project(self, attrs: Sequence[str]) -> Factor:
        """The marginal over ``attrs`` as a linear-space factor of expected counts.

        ``attrs`` need not lie in one clique: the query is answered exactly by variable
        elimination over the smallest covering subtree.
        """
        attrs = tuple(attrs)
        return Factor(self.domain.project(attrs), self.probability(attrs) * self.total)

    def project_many(self, cliques: Iterable[Sequence[str]]) -> list[Factor]:
        """``project`` for many cliques, sharing one calibration and a memo of subtables.

        The queries are answered largest first, so a smaller one that spans several tree
        cliques is summed out of a cached larger table instead of being eliminated again.
        """
        queries = [tuple(c) for c in cliques]
        for q in queries:
            if len(set(q)) != len(q) or not q:
                raise ConfigError(f"marginal attributes {q} must be non-empty and distinct")
            self.domain.check(q)
        self._queries.prefetch(queries)
        return [self.project(c) for c in queries]

    def marginal(self, clique: Sequence[str]) -> FloatArray:
        """Expected counts over ``clique`` (probability times ``total``) as an array."""
        return self.probability(tuple(clique)) * self.total

    def condition(self, evidence: Assignment) -> Model:
        """The model restricted to records that satisfy ``evidence`` (same total).

        Each attribute of the evidence keeps only its allowed codes: the other codes get
        ``-inf`` in one clique containing the attribute.

        Raises:
            ConfigError: Invalid evidence, or evidence with zero probability under the model.
        """
        norm = normalize_assignment(self.domain, evidence, what="evidence")
        arrays = {c: f.values.copy() for c, f in self.potentials.items()}
        for attr, codes in norm:
            node = self.tree.home((attr,))
            assert node is not None  # every attribute is in some clique
            home = self.tree.cliques[node]
            mask = assignment_mask(home, arrays[home].shape, ((attr, codes),))
            arrays[home][~mask] = -np.inf
        potentials = CliqueVector({c: Factor(self.domain.project(c), v) for c, v in arrays.items()})
        model = Model(self.domain, self.tree, potentials, self.total, self.constraints)
        try:
            model.beliefs  # noqa: B018 - calibrate now to report impossible evidence here
        except ConfigError as exc:
            attrs = [a for a, _ in norm]
            raise ConfigError(f"evidence on {attrs} has zero probability under the model") from exc
        return model


def save_model(model: Model, directory: str | Path) -> Path:
    """Write ``model.json`` and ``potentials.npz`` into ``directory`` (created if needed).

    Returns:
        The directory.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": "dpsynth.pgm.model",
        "format_version": FORMAT_VERSION,
        "domain": {"attrs": list(model.domain.attrs), "shape": list(model.domain.shape)},
        "cliques": [list(c) for c in model.tree.cliques],
        "edges": [list(e) for e in model.tree.edges],
        "total": model.total,
        "constraints": [{a: list(codes) for a, codes in c} for c in model.constraints],
    }
    arrays = {f"clique_{i}": model.potentials[c].values for i, c in enumerate(model.tree.cliques)}
    np.savez_compressed(path / "potentials.npz", **arrays)  # type: ignore[arg-type]
    (path / "model.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return path


def load_model(directory: str | Path) -> Model:
    """Read a model written by :func:`save_model` (``allow_pickle=False``).

    Raises:
        ConfigError: Missing files, unknown format version or inconsistent contents.
    """
    path = Path(directory)
    try:
        meta = json.loads((path / "model.json").read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"no model.json in {path}") from exc
    if meta.get("format_version") != FORMAT_VERSION:
        raise ConfigError(
            f"model format_version {meta.get('format_version')!r} is not supported "
            f"(expected {FORMAT_VERSION})"
        )
    domain = Domain(tuple(meta["domain"]["attrs"]), tuple(int(s) for s in meta["domain"]["shape"]))
    cliques = tuple(tuple(c) for c in meta["cliques"])
    tree = JunctionTree(domain, cliques, tuple((int(a), int(b)) for a, b in meta["edges"]))
    factors: dict[tuple[str, ...], Factor] = {}
    with np.load(path / "potentials.npz", allow_pickle=False) as data:
        for i, clique in enumerate(cliques):
            factors[clique] = Factor(domain.project(clique), np.asarray(data[f"clique_{i}"]))
    constraints = tuple(
        normalize_assignment(domain, c, what="constraint") for c in meta["constraints"]
    )
    return Model(domain, tree, CliqueVector(factors), float(meta["total"]), constraints)
