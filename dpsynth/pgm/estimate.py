"""Estimation: fit junction-tree potentials to noisy marginals by entropic mirror descent.

The loss is Private-PGM's weighted L2 loss with a per-measurement scale,
``sum_m weight_m / sigma_m * ||total * mu_m(p) - y_m||^2``, minimised over the marginal
polytope by mirror descent in the log-potential space with Armijo backtracking (the step
doubles after each accepted iteration and halves until the decrease is sufficient).
Measurements are grouped by the tree clique that contains them, so one calibration plus one
sum per measurement gives the whole gradient; iteration stops once the relative loss
improvement over a window falls below ``tol``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dpsynth.arrays import FloatArray
from dpsynth.errors import ConfigError
from dpsynth.pgm.clique_vector import CliqueVector
from dpsynth.pgm.constraints import Assignment, Normalized, assignment_mask, normalize_assignment
from dpsynth.pgm.domain import Domain
from dpsynth.pgm.factor import Factor
from dpsynth.pgm.inference import Calibrator, MarginalCache, sum_axes
from dpsynth.pgm.junction_tree import JunctionTree, build_junction_tree
from dpsynth.pgm.measurement import Measurement
from dpsynth.pgm.model import Model

__all__ = [
    "MeasurementTerm",
    "Objective",
    "WarmStart",
    "accelerated_descent",
    "estimate",
    "estimate_total",
    "measurement_terms",
    "potentials_from_marginals",
    "warm_potentials",
]

logger = logging.getLogger(__name__)
_WINDOW = 10
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


@dataclass(frozen=True, eq=False)
class MeasurementTerm:
    """One measurement placed on its home clique of the junction tree (weights and axes precomputed)."""

    home: int  # index of the tree clique holding the measurement
    axes: tuple[int, ...]  # axes of the home clique summed out
    in_home: tuple[int, ...]  # broadcast shape of the measurement inside the home clique
    y: FloatArray  # noisy counts, axes in domain order
    coef: float  # weight / sigma


def _dot(a: FloatArray, b: FloatArray) -> float:
    """``sum(a * b)`` without BLAS: on these small tables a threaded ``vdot`` costs far more
    CPU in its worker threads' spin-wait than the arithmetic itself."""
    return float(np.sum(np.multiply(a, b)))


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


def _check(domain: Domain, m: Measurement) -> None:
    domain.check(m.clique)
    expected = tuple(domain.project(m.clique).shape)
    if tuple(m.values.shape) != expected:
        raise ConfigError(
            f"measurement on {m.clique} has shape {tuple(m.values.shape)}, expected {expected}"
        )
    if not m.weight >= 0:
        raise ConfigError(f"measurement weight ({m.weight}) on {m.clique} must be >= 0")


def measurement_terms(tree: JunctionTree, measurements: Sequence[Measurement]) -> list[MeasurementTerm]:
    domain = tree.domain
    out = []
    for m in measurements:
        canon = domain.canonical(m.clique)
        home = tree.home(canon)
        assert home is not None  # the tree was built from these cliques
        clique = tree.cliques[home]
        shape = domain.project(clique).shape
        perm = tuple(m.clique.index(a) for a in canon)
        out.append(
            MeasurementTerm(
                home=home,
                axes=tuple(i for i, a in enumerate(clique) if a not in canon),
                in_home=tuple(s if a in canon else 1 for a, s in zip(clique, shape, strict=True)),
                y=np.ascontiguousarray(np.transpose(m.values, perm), dtype=np.float64),
                coef=m.weight / m.sigma,
            )
        )
    return out


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


class Objective:
    """Loss and gradient of all measurements given calibrated beliefs.

    Measurements are grouped by (home clique, attributes). A group whose attributes lie
    inside another group of the same clique is answered from that group's (small) marginal
    and sends its gradient through it, so each clique table is reduced and broadcast once per
    outermost group instead of once per measurement.
    """

    def __init__(self, tree: JunctionTree, terms: list[MeasurementTerm], total: float) -> None:
        self.terms = terms
        self.total = total
        self.shapes = [tuple(tree.domain.project(c).shape) for c in tree.cliques]
        keys: list[tuple[int, tuple[int, ...]]] = []  # (home, kept axes of the home clique)
        index: dict[tuple[int, tuple[int, ...]], int] = {}
        self.group_of: list[int] = []
        for t in terms:
            kept = tuple(i for i in range(len(self.shapes[t.home])) if i not in t.axes)
            key = (t.home, kept)
            if key not in index:
                index[key] = len(keys)
                keys.append(key)
            self.group_of.append(index[key])
        self.homes = [home for home, _ in keys]
        # Parent group: the smallest strict superset in the same clique (or -1: the clique).
        self.parent: list[int] = []
        self.axes: list[tuple[int, ...]] = []  # axes of the parent (or clique) summed out
        self.in_parent: list[tuple[int, ...]] = []  # broadcast shape inside the parent
        for home, kept in keys:
            best, best_size = -1, 0
            for j, (h2, k2) in enumerate(keys):
                if h2 == home and set(kept) < set(k2):
                    size = int(np.prod([self.shapes[home][i] for i in k2]))
                    if best < 0 or size < best_size:
                        best, best_size = j, size
            outer = keys[best][1] if best >= 0 else tuple(range(len(self.shapes[home])))
            self.parent.append(best)
            self.axes.append(tuple(p for p, i in enumerate(outer) if i not in kept))
            self.in_parent.append(tuple(self.shapes[home][i] if i in kept else 1 for i in outer))
        # Parents before children (a parent keeps strictly more axes).
        self.order = sorted(range(len(keys)), key=lambda g: -len(keys[g][1]))

    def marginals(self, tables: Sequence[FloatArray]) -> list[FloatArray]:
        groups: list[FloatArray] = [np.empty(0)] * len(self.homes)
        for g in self.order:
            par = self.parent[g]
            source = tables[self.homes[g]] if par < 0 else groups[par]
            axes = self.axes[g]
            groups[g] = sum_axes(source, axes)
        return [groups[g] for g in self.group_of]

    def loss(self, mus: list[FloatArray]) -> float:
        total = 0.0
        for t, mu in zip(self.terms, mus, strict=True):
            r = self.total * mu - t.y
            total += t.coef * _dot(r, r)
        return total

    def gradient(self, mus: list[FloatArray]) -> tuple[list[FloatArray], list[FloatArray]]:
        """Per-clique gradients (w.r.t. probabilities) and per-term gradients."""
        acc: list[FloatArray | None] = [None] * len(self.homes)
        per_term = []
        for t, g_idx, mu in zip(self.terms, self.group_of, mus, strict=True):
            g = (2.0 * self.total * t.coef) * (self.total * mu - t.y)
            per_term.append(g)
            prev = acc[g_idx]
            acc[g_idx] = g.copy() if prev is None else prev + g
        grads = [np.zeros(s) for s in self.shapes]
        for g_idx in reversed(self.order):  # children first (every group has a term)
            part = acc[g_idx]
            assert part is not None
            par = self.parent[g_idx]
            target = grads[self.homes[g_idx]] if par < 0 else acc[par]
            assert target is not None
            target += part.reshape(self.in_parent[g_idx])
        return grads, per_term


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

    Returns:
        The fitted model.

    Raises:
        ConfigError: Invalid measurements, constraints or parameters.
        ModelTooLargeError: The junction tree would exceed ``max_cells``.
    """
    if iters < 0:
        raise ConfigError(f"iters ({iters}) must be >= 0")
    for m in measurements:
        _check(domain, m)
    norm = tuple(normalize_assignment(domain, c, what="constraint") for c in constraints)
    scopes = [m.clique for m in measurements] + [tuple(a for a, _ in c) for c in norm]
    tree = build_junction_tree(domain, scopes, max_cells=max_cells)
    if total is None:
        total = estimate_total(measurements) if measurements else 1.0
    if not total > 0:
        raise ConfigError(f"total ({total}) must be > 0")
    masks = _structural_masks(tree, norm)
    shapes = [tuple(domain.project(c).shape) for c in tree.cliques]
    if warm_start is not None:
        previous = warm_start.take() if isinstance(warm_start, WarmStart) else warm_start
        warm_start = None
        theta = warm_potentials(tree, previous)
        del previous
    else:
        theta = [np.zeros(s) for s in shapes]
    for node, add in masks.items():
        theta[node] = theta[node] + add
    calibrator = Calibrator(tree)
    terms = measurement_terms(tree, measurements)
    if terms and iters > 0:
        if accelerated:
            tables = accelerated_descent(
                calibrator, Objective(tree, terms, total), theta, iters, tol, callback
            )
            theta.clear()  # the last potentials are not needed: rebuilt from the tables
            theta = potentials_from_marginals(tree, tables)
            del tables
            for node, add in masks.items():
                theta[node] = theta[node] + add
        else:
            theta = _mirror_descent(
                calibrator, Objective(tree, terms, total), theta, iters, tol, callback
            )
    potentials = CliqueVector(
        {c: Factor(domain.project(c), t) for c, t in zip(tree.cliques, theta, strict=True)}
    )
    return Model(domain, tree, potentials, float(total), norm)


def _mirror_descent(
    calibrator: Calibrator,
    objective: Objective,
    theta: list[FloatArray],
    iters: int,
    tol: float,
    callback: Callable[[int, float], None] | None,
) -> list[FloatArray]:
    beliefs = calibrator.calibrate(theta)
    mus = objective.marginals(beliefs.probs)
    loss = objective.loss(mus)
    grads, per_term = objective.gradient(mus)
    scale = 2.0 * objective.total**2 * sum(t.coef for t in objective.terms)
    alpha = 1.0 / scale
    history = [loss]
    for it in range(1, iters + 1):
        alpha *= 2.0
        for _ in range(30):
            cand = [t - alpha * g for t, g in zip(theta, grads, strict=True)]
            new_mus = objective.marginals(calibrator.calibrate(cand).probs)
            new_loss = objective.loss(new_mus)
            predicted = sum(_dot(g, mu - nu) for g, mu, nu in zip(per_term, mus, new_mus, strict=True))
            if loss - new_loss >= 0.5 * predicted:
                break
            alpha *= 0.5
        else:
            logger.debug("line search failed at iteration %d; stopping", it)
            break
        theta, mus, loss = cand, new_mus, new_loss
        grads, per_term = objective.gradient(mus)
        history.append(loss)
        if callback is not None:
            callback(it, loss)
        if len(history) > _WINDOW and history[-_WINDOW - 1] - loss <= tol * max(loss, 1e-12):
            logger.debug("converged after %d iterations (loss %.6g)", it, loss)
            break
    return theta


_CHUNK = 1 << 16  # cells per slice of the element-wise passes (512 KiB of float64)


def _flat(*arrays: FloatArray) -> list[FloatArray] | None:
    """1-d views of same-shaped C-contiguous arrays (``None`` if one is not: no view)."""
    if not all(a.flags.c_contiguous for a in arrays):
        return None
    return [a.reshape(-1) for a in arrays]


def _blend(out: FloatArray, x: FloatArray, z: FloatArray, tau: float, tmp: FloatArray) -> None:
    """``out = (1 - tau) * x + tau * z``, slice by slice (no model-sized temporary)."""
    flat = _flat(out, x, z)
    if flat is None:
        np.multiply(x, 1.0 - tau, out=out)
        out += tau * z
        return
    o, a, b = flat
    for lo in range(0, o.size, _CHUNK):
        hi = min(lo + _CHUNK, o.size)
        t = tmp[: hi - lo]
        np.multiply(b[lo:hi], tau, out=t)
        np.multiply(a[lo:hi], 1.0 - tau, out=o[lo:hi])
        o[lo:hi] += t


def _step_into(y: FloatArray, x: FloatArray, z: FloatArray, tau: float, tmp: FloatArray) -> float:
    """Overwrite ``y`` with ``(1 - tau) * x + tau * z``; return the L1 distance moved."""
    flat = _flat(y, x, z)
    if flat is None:
        new = (1.0 - tau) * x
        new += tau * z
        gap = np.subtract(new, y)
        dist = float(np.abs(gap, out=gap).sum())
        np.copyto(y, new)
        return dist
    o, a, b = flat
    t1, t2 = tmp[:_CHUNK], tmp[_CHUNK:]
    dist = 0.0
    for lo in range(0, o.size, _CHUNK):
        hi = min(lo + _CHUNK, o.size)
        n = hi - lo
        np.multiply(b[lo:hi], tau, out=t2[:n])
        np.multiply(a[lo:hi], 1.0 - tau, out=t1[:n])
        t1[:n] += t2[:n]
        np.subtract(t1[:n], o[lo:hi], out=t2[:n])
        dist += float(np.abs(t2[:n], out=t2[:n]).sum())
        o[lo:hi] = t1[:n]
    return dist


# Loops over the cliques live in helpers: a loop variable left in ``accelerated_descent``'s frame
# would keep a rejected trial's (possibly largest) table alive into the next trial.
def _blend_all(ys: list[FloatArray], xs: list[FloatArray], zs: Sequence[FloatArray], tau: float,
               tmp: FloatArray) -> None:
    for yc, xc, zc in zip(ys, xs, zs, strict=True):
        _blend(yc, xc, zc, tau, tmp)


def _step_all(ys: list[FloatArray], xs: list[FloatArray], zs: Sequence[FloatArray], tau: float,
              tmp: FloatArray) -> float:
    dist = 0.0
    for yc, xc, zc in zip(ys, xs, zs, strict=True):
        dist = max(dist, _step_into(yc, xc, zc, tau, tmp))
    return dist


def _descend(theta: list[FloatArray], grads: list[FloatArray], a: float) -> list[FloatArray]:
    """``theta - a * grads``, written over ``grads``."""
    for t, g in zip(theta, grads, strict=True):
        np.multiply(g, a, out=g)
        np.subtract(t, g, out=g)
    return grads


def accelerated_descent(
    calibrator: Calibrator,
    objective: Objective,
    theta: list[FloatArray],
    iters: int,
    tol: float,
    callback: Callable[[int, float], None] | None,
) -> list[FloatArray]:
    """Accelerated mirror descent (similar-triangles method) with backtracking on ``L``.

    ``z`` lives in log-potential space; ``x`` and ``y`` are convex combinations of calibrated
    clique tables (still locally consistent, hence realisable on the junction tree). Returns
    clique tables of the final ``x``; ``theta`` (the caller's list) is updated in place to
    the last accepted potentials, so the starting potentials are freed after one step.

    Memory: six model-sized sets of tables (``theta``, ``x``, ``z``, ``y``, the candidate
    potentials and their calibration) and nothing else model-sized. ``y`` is rebuilt in its
    own buffers, the candidate is written over its gradient, and the trial point
    ``(1 - tau) x + tau z_new`` is written over ``y`` once ``y`` has been used (an accepted
    trial swaps the roles of the two buffer sets). Element-wise passes go slice by slice.
    """
    x = list(calibrator.calibrate(theta).probs)
    x_mus = objective.marginals(x)
    f_x = objective.loss(x_mus)
    del x_mus
    lip = 2.0 * objective.total**2 * sum(t.coef for t in objective.terms) / 1e6
    big_a = 0.0
    history = [f_x]
    z = x
    y = [np.empty_like(xc) for xc in x]
    tmp = np.empty(2 * _CHUNK)
    # A group that is a whole clique is answered by the clique table itself (no copy): keep
    # a copy of those marginals of y before y is overwritten by the trial point.
    aliased = {i for i, g in enumerate(objective.group_of)
               if objective.parent[g] < 0 and not objective.axes[g]}
    cand: list[FloatArray] = []
    z_new: Sequence[FloatArray] = ()
    for it in range(1, iters + 1):
        for _ in range(60):
            cand, z_new = [], ()  # drop the last rejected trial before building the next
            a = (1.0 + np.sqrt(1.0 + 4.0 * lip * big_a)) / (2.0 * lip)
            tau = a / (big_a + a)
            _blend_all(y, x, z, tau, tmp)
            y_mus = objective.marginals(y)
            f_y = objective.loss(y_mus)
            grads, per_term = objective.gradient(y_mus)
            y_mus = [mu.copy() if i in aliased else mu for i, mu in enumerate(y_mus)]
            cand = _descend(theta, grads, a)
            del grads
            try:
                z_new = calibrator.calibrate(cand).probs
            except ConfigError:  # a step so long that everything underflowed: shorten it
                lip *= 2.0
                continue
            dist = _step_all(y, x, z_new, tau, tmp)  # y becomes the trial point
            x_new_mus = objective.marginals(y)
            f_new = objective.loss(x_new_mus)
            lin = sum(_dot(g, nm - ym) for g, nm, ym in zip(per_term, x_new_mus, y_mus, strict=True))
            del x_new_mus, y_mus
            if np.isfinite(f_new) and f_new <= f_y + lin + 0.5 * lip * dist**2 + 1e-12 * abs(f_y):
                break
            lip *= 2.0
        else:
            logger.debug("line search failed at iteration %d; stopping", it)
            break
        x, y = y, x  # the trial point is the new x; the old x's buffers hold the next y
        theta[:] = cand  # in place: the caller's list must not keep the first potentials
        z, big_a, f_x = list(z_new), big_a + a, f_new
        lip /= 2.0
        history.append(min(f_x, history[-1]))
        if callback is not None:
            callback(it, f_x)
        if len(history) > _WINDOW and history[-_WINDOW - 1] - history[-1] <= tol * history[-1]:
            break
    return x


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
