"""Estimation: fit junction-tree potentials to noisy marginals (the engine's entry point).

:func:`estimate` checks the measurements, builds the junction tree over their cliques (and the
constraints' scopes), picks the starting potentials (uniform or a warm start), and runs one of
the optimizers of :mod:`dpsynth.pgm.optimizers` on the loss of :mod:`dpsynth.pgm.objective`.

Two representations, one boundary: inside the engine (calibration, loss, optimizers) a set of
clique tables is a ``list`` of arrays aligned with ``tree.cliques``; the hot loops index by
clique position and never need attribute names. Only the fitted :class:`~dpsynth.pgm.model.Model`
carries named tables (:class:`~dpsynth.pgm.factor.Factor` in a
:class:`~dpsynth.pgm.clique_vector.CliqueVector`), built here once at the end of a fit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from dpsynth.arrays import FloatArray
from dpsynth.errors import ConfigError
from dpsynth.pgm.clique_vector import CliqueVector
from dpsynth.pgm.constraints import Assignment, Normalized, assignment_mask, normalize_assignment
from dpsynth.pgm.domain import Domain
from dpsynth.pgm.factor import Factor
from dpsynth.pgm.inference import Calibrator
from dpsynth.pgm.junction_tree import JunctionTree, build_junction_tree
from dpsynth.pgm.marginals import MarginalCache
from dpsynth.pgm.measurement import Measurement
from dpsynth.pgm.model import Model
from dpsynth.pgm.objective import MeasurementTerm, Objective, measurement_terms
from dpsynth.pgm.optimizers import Smoothness, accelerated_descent, mirror_descent

__all__ = [  # the loss and optimizers are re-exported from their modules
    "MeasurementTerm",
    "Objective",
    "WarmStart",
    "accelerated_descent",
    "estimate",
    "estimate_total",
    "independent_optimum",
    "measured_start",
    "measurement_terms",
    "mirror_descent",
    "potentials_from_marginals",
    "total_stderr",
    "warm_potentials",
]

_FLOAT64 = np.dtype(np.float64)

_FLOOR = 1e-30


class WarmStart:
    """A previous model handed to :func:`estimate` exactly once.

    ``estimate(..., warm_start=WarmStart(model))`` with no other reference to ``model`` lets
    the old potentials be freed as soon as they have seeded the new ones, instead of staying
    alive (model-sized) through every iteration of the new fit.
    """

    def __init__(self, model: Model) -> None:
        self._model: Model | None = model

    def take(self) -> Model:
        """The model, forgotten by this holder.

        Raises:
            ConfigError: If it was already taken.
        """
        if self._model is None:
            raise ConfigError("a WarmStart can seed only one estimate")
        model, self._model = self._model, None
        return model

    @property
    def smoothness(self) -> float | None:
        """The held model's last smoothness constant (``None`` once taken or if unknown)."""
        return None if self._model is None else self._model.smoothness


def estimate_total(measurements: Sequence[Measurement]) -> float:
    """Inverse-variance weighted mean of the measurements' sums, clipped to at least 1.

    The sum of a measurement over ``k`` cells has noise variance ``k * sigma**2``.
    """
    if not measurements:
        raise ConfigError("at least one measurement is needed to estimate the total")
    sums = np.array([float(np.sum(m.values)) for m in measurements])
    var = np.array([m.values.size * m.sigma**2 for m in measurements])
    est = float(np.sum(sums / var) / np.sum(1.0 / var))
    return max(est, 1.0)


def total_stderr(measurements: Sequence[Measurement]) -> float:
    """Standard error of :func:`estimate_total` (public: the noise scales and cell counts)."""
    if not measurements:
        raise ConfigError("at least one measurement is needed to estimate the total")
    var = np.array([m.values.size * m.sigma**2 for m in measurements])
    return float(np.sqrt(1.0 / np.sum(1.0 / var)))


def _check(domain: Domain, m: Measurement) -> None:
    domain.check(m.clique)
    expected = tuple(domain.project(m.clique).shape)
    if tuple(m.values.shape) != expected:
        raise ConfigError(
            f"measurement on {m.clique} has shape {tuple(m.values.shape)}, expected {expected}"
        )
    if not m.weight >= 0:
        raise ConfigError(f"measurement weight ({m.weight}) on {m.clique} must be >= 0")


def _structural_masks(
    tree: JunctionTree, constraints: Sequence[Normalized]
) -> dict[int, FloatArray]:
    """Per clique, an additive array with ``-inf`` on forbidden cells (0 elsewhere)."""
    out: dict[int, FloatArray] = {}
    for constraint in constraints:
        home = tree.home(a for a, _ in constraint)
        assert home is not None  # constraint scopes were added as cliques
        clique = tree.cliques[home]
        shape = tuple(tree.domain.project(clique).shape)
        mask = assignment_mask(clique, shape, constraint)
        add = out.setdefault(home, np.zeros(shape))
        add[mask] = -np.inf
    return out


def warm_potentials(tree: JunctionTree, model: Model) -> list[FloatArray]:
    """Log-potentials on ``tree`` reproducing ``model``'s marginals on its cliques.

    The marginals come from a calibration and query cache local to this call, so nothing
    model-sized stays attached to ``model`` while the new model is fitted.
    """
    if set(model.domain.attrs) != set(tree.domain.attrs):
        raise ConfigError("warm_start model must have the same domain attributes")
    queries = MarginalCache(model.calibrator.calibrate(model.log_potentials()))
    out = []
    for node, clique in enumerate(tree.cliques):
        with np.errstate(divide="ignore"):
            theta = np.log(np.maximum(queries.get(clique), _FLOOR))
            parent = tree.parent[node]
            if parent >= 0:
                sep = tree.separator(node, parent)
                if sep:
                    shape = tuple(
                        s if a in sep else 1
                        for a, s in zip(clique, tree.domain.project(clique).shape, strict=True)
                    )
                    theta = theta - np.log(np.maximum(queries.get(sep), _FLOOR)).reshape(shape)
        out.append(theta)
    return out


def estimate(
    domain: Domain,
    measurements: Sequence[Measurement],
    *,
    iters: int = 1000,
    warm_start: Model | WarmStart | None = None,
    total: float | None = None,
    constraints: Sequence[Assignment] = (),
    callback: Callable[[int, float], None] | None = None,
    max_cells: int | None = None,
    tol: float = 1e-3,
    accelerated: bool = True,
    start: Literal["uniform", "measurements"] = "uniform",
    precision: Literal["float64", "float32"] = "float64",
) -> Model:
    """Fit a graphical model to noisy marginals.

    Args:
        domain: The public domain; unmeasured attributes are modelled as uniform.
        measurements: Noisy marginals (the public transcript).
        iters: Maximum number of mirror-descent iterations.
        warm_start: A previous model; its marginals seed the new potentials (the clique set
            may have grown). Wrapped in :class:`WarmStart`, it is released once used.
        total: Known number of records; estimated from the measurements when ``None``.
        constraints: Forbidden partial assignments, given probability exactly 0.
        callback: Called as ``callback(iteration, loss)`` after each iteration.
        max_cells: Cap on the junction tree's total cells, checked before allocating.
        tol: Stop when the loss improved by less than ``tol`` (relative) over 10 iterations.
        accelerated: Use accelerated mirror descent (default); ``False`` runs plain mirror
            descent with Armijo backtracking, as in Private-PGM.
        start: Without ``warm_start``, where descent begins: ``"uniform"`` potentials, or
            ``"measurements"``: each clique's table from the noisy measurement on exactly that
            clique (clipped at a small floor), else the product of the noisy 1-way marginals of
            its attributes (see :func:`measured_start`). Post-processing of the measurements.
        precision: Floating-point type of the clique tables during (accelerated) descent.
            ``"float32"`` halves the memory traffic of every pass over a large model; the
            fitted potentials are returned as float64 either way.

    Returns:
        The fitted model.

    Raises:
        ConfigError: Invalid measurements, constraints or parameters.
        ModelTooLargeError: The junction tree would exceed ``max_cells``.
    """
    if iters < 0:
        raise ConfigError(f"iters ({iters}) must be >= 0")
    if start not in ("uniform", "measurements"):
        raise ConfigError(f"start ({start!r}) must be 'uniform' or 'measurements'")
    if precision not in ("float64", "float32"):
        raise ConfigError(f"precision ({precision!r}) must be 'float64' or 'float32'")
    tree, norm = _tree_for(domain, measurements, constraints, max_cells)
    if total is None:
        total = estimate_total(measurements) if measurements else 1.0
    if not total > 0:
        raise ConfigError(f"total ({total}) must be > 0")
    masks = _structural_masks(tree, norm)
    smoothness = Smoothness(warm_start.smoothness if warm_start is not None else None)
    calibrator = Calibrator(tree)
    terms = measurement_terms(tree, measurements)
    descend = bool(terms) and iters > 0
    exact = descend and not masks and all(len(c) == 1 for c in tree.cliques)
    if exact:
        theta = independent_optimum(tree, terms, total)  # no start and no descent needed
    elif warm_start is None and start == "measurements" and measurements:
        theta = measured_start(tree, measurements)
        for node, add in masks.items():
            theta[node] = theta[node] + add
    else:
        theta = _starting_potentials(tree, masks, warm_start)
    if descend and not exact:
        if accelerated:
            dtype = np.dtype(precision)
            _accelerated_fit(tree, calibrator, Objective(tree, terms, total, dtype), theta, masks, iters, tol,
                             callback, smoothness, dtype)
        else:
            theta = mirror_descent(calibrator, Objective(tree, terms, total), theta, iters, tol, callback)
    potentials = CliqueVector(
        {c: Factor(domain.project(c), t) for c, t in zip(tree.cliques, theta, strict=True)}
    )
    return Model(domain, tree, potentials, float(total), norm, smoothness.value)


def independent_optimum(tree: JunctionTree, terms: Sequence[MeasurementTerm], total: float) -> list[FloatArray]:
    """The exact minimiser of the loss when every clique is one attribute (no constraints).

    The loss then separates by attribute: ``sum_m c_m ||total * p - y_m||^2`` over the simplex,
    whose minimiser is the Euclidean projection of ``sum_m c_m y_m / (total * sum_m c_m)`` onto
    the simplex. Cells the projection sets to zero get probability 1e-12 of their table (so a
    later warm start can still move them). Returns log-potentials.
    """
    num: dict[int, FloatArray] = {}
    den: dict[int, float] = {}
    for t in terms:
        num[t.home] = num.get(t.home, 0.0) + t.coef * t.y.reshape(-1)
        den[t.home] = den.get(t.home, 0.0) + t.coef
    out = []
    for node, clique in enumerate(tree.cliques):
        size = tree.domain.project(clique).shape[0]
        if node not in num or den[node] <= 0:
            out.append(np.zeros(size))
            continue
        p = np.maximum(_project_simplex(num[node] / (total * den[node])), 1e-12)
        out.append(np.log(p / p.sum()))
    return out


def _project_simplex(v: FloatArray) -> FloatArray:
    """Euclidean projection of ``v`` onto the probability simplex (sort-based, exact)."""
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    k = np.arange(1, v.size + 1)
    rho = int(np.nonzero(u - css / k > 0)[0][-1])
    return np.asarray(np.maximum(v - css[rho] / (rho + 1), 0.0), dtype=np.float64)


def measured_start(tree: JunctionTree, measurements: Sequence[Measurement]) -> list[FloatArray]:
    """Log-potentials whose clique tables come straight from the noisy measurements.

    A clique measured as a whole takes its noisy table; any other clique takes the product of
    the noisy 1-way marginals of its attributes (uniform where an attribute has none). Each
    table is clipped below at 1% of its mean cell so that no cell starts at probability zero
    (descent in log space could not leave it), then normalised. The tables need not agree on
    shared attributes: :func:`potentials_from_marginals` turns them into a root marginal and
    conditionals, which is a proper distribution on the tree. Reads only the measurements.
    """
    whole: dict[tuple[str, ...], FloatArray] = {}
    ones: dict[str, FloatArray] = {}
    for m in measurements:  # the first measurement of a clique wins; later ones are refinements
        whole.setdefault(tuple(m.clique), np.asarray(m.values, dtype=np.float64))
        if len(m.clique) == 1:
            ones.setdefault(m.clique[0], _clipped(np.asarray(m.values, dtype=np.float64)))
    tables = []
    for clique in tree.cliques:
        shape = tuple(tree.domain.project(clique).shape)
        if tuple(clique) in whole:
            tables.append(_clipped(whole[tuple(clique)]))
            continue
        table = np.ones(shape)
        for i, a in enumerate(clique):
            if a in ones:
                table = table * ones[a].reshape([-1 if j == i else 1 for j in range(len(clique))])
        tables.append(table / table.sum())
    return potentials_from_marginals(tree, tables)


def _clipped(values: FloatArray) -> FloatArray:
    """``values`` clipped below at 1% of their mean (at least a tiny positive floor), summing to 1."""
    floor = max(0.01 * float(np.mean(np.maximum(values, 0.0))), 1e-12)
    out = np.maximum(values, floor)
    return np.asarray(out / out.sum(), dtype=np.float64)


def _tree_for(
    domain: Domain,
    measurements: Sequence[Measurement],
    constraints: Sequence[Assignment],
    max_cells: int | None,
) -> tuple[JunctionTree, tuple[Normalized, ...]]:
    """The junction tree over the measurements' cliques and constraints' scopes, and the
    normalised constraints (after checking both)."""
    for m in measurements:
        _check(domain, m)
    norm = tuple(normalize_assignment(domain, c, what="constraint") for c in constraints)
    scopes = [m.clique for m in measurements] + [tuple(a for a, _ in c) for c in norm]
    return build_junction_tree(domain, scopes, max_cells=max_cells), norm


def _starting_potentials(
    tree: JunctionTree, masks: dict[int, FloatArray], warm_start: Model | WarmStart | None
) -> list[FloatArray]:
    """Uniform (or warm-started) log-potentials with the structural zeros added."""
    if warm_start is not None:
        previous = warm_start.take() if isinstance(warm_start, WarmStart) else warm_start
        warm_start = None
        theta = warm_potentials(tree, previous)
        del previous
    else:
        theta = [np.zeros(tuple(tree.domain.project(c).shape)) for c in tree.cliques]
    for node, add in masks.items():
        theta[node] = theta[node] + add
    return theta


def _accelerated_fit(
    tree: JunctionTree,
    calibrator: Calibrator,
    objective: Objective,
    theta: list[FloatArray],
    masks: dict[int, FloatArray],
    iters: int,
    tol: float,
    callback: Callable[[int, float], None] | None,
    smoothness: Smoothness,
    dtype: np.dtype[Any] = _FLOAT64,
) -> None:
    """Run :func:`accelerated_descent` and write the fitted log-potentials into ``theta``.

    The optimizer returns clique tables; the last potentials are dropped first (they are
    rebuilt from the tables), so no more than one model-sized set is alive besides them.
    The descent runs on tables of ``dtype``; the potentials written back are float64.
    """
    for i, t in enumerate(theta):  # one table at a time: no second model-sized set
        if t.dtype != dtype:
            theta[i] = t.astype(dtype)
    tables = accelerated_descent(calibrator, objective, theta, iters, tol, callback, smoothness)
    theta.clear()  # the last potentials are not needed: rebuilt from the tables
    for t in potentials_from_marginals(tree, tables):
        theta.append(t if t.dtype == np.float64 else t.astype(np.float64))
    del tables
    for node, add in masks.items():
        theta[node] = theta[node] + add


def potentials_from_marginals(tree: JunctionTree, tables: list[FloatArray]) -> list[FloatArray]:
    """Log-potentials of the tree distribution whose clique marginals are ``tables``."""
    out = []
    with np.errstate(divide="ignore"):
        for node, clique in enumerate(tree.cliques):
            theta = np.log(np.maximum(tables[node], _FLOOR))
            parent = tree.parent[node]
            sep = tree.separator(node, parent) if parent >= 0 else ()
            if sep:
                axes = tuple(i for i, a in enumerate(clique) if a not in sep)
                theta = theta - np.log(
                    np.maximum(np.add.reduce(tables[node], axis=axes, keepdims=True), _FLOOR)
                )
            out.append(theta)
    return out
