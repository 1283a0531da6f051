"""Optimizers for the estimation loss: entropic mirror descent over the marginal polytope.

Both work in the engine's representation, a ``list`` of arrays aligned with ``tree.cliques``
(log-potentials in, calibrated via :class:`~dpsynth.pgm.inference.Calibrator`), and both stop
once the loss improved by less than ``tol`` (relative) over the last ten iterations.

- :func:`mirror_descent`: plain mirror descent with Armijo backtracking, as in Private-PGM
  (the step doubles after each accepted iteration and halves until the decrease is
  sufficient). Returns the final log-potentials.
- :func:`accelerated_descent`: accelerated mirror descent (similar-triangles method) with
  backtracking on the smoothness constant, written to keep a fixed number of model-sized
  tables alive. Returns the final clique tables (the caller turns them into potentials).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dpsynth.arrays import FloatArray
from dpsynth.errors import ConfigError
from dpsynth.pgm.inference import Calibrator
from dpsynth.pgm.objective import Objective, inner

__all__ = ["Smoothness", "accelerated_descent", "mirror_descent"]

logger = logging.getLogger(__name__)
_WINDOW = 10


@dataclass
class Smoothness:
    """The smoothness constant ``L`` an accelerated fit ended with, handed to the next one.

    The line search starts from a safe underestimate (the worst-case constant / 10^6) and
    doubles until a step is accepted: about 14 rejected trials, each a full calibration, on
    Adult. AIM refits the model after every round on one more measurement, so the last fit's
    constant is a far better start; a start too high only shortens the first steps, since
    ``L`` halves after every accepted one.
    """

    value: float | None = None


def mirror_descent(
    calibrator: Calibrator,
    objective: Objective,
    theta: list[FloatArray],
    iters: int,
    tol: float,
    callback: Callable[[int, float], None] | None,
) -> list[FloatArray]:
    """Mirror descent with Armijo backtracking, from the log-potentials ``theta``.

    Args:
        calibrator: The compiled message schedule of the tree.
        objective: The loss over the measurements.
        theta: Starting log-potentials, one per tree clique (not modified).
        iters: Maximum number of iterations.
        tol: Relative loss improvement over ten iterations below which iteration stops.
        callback: Called as ``callback(iteration, loss)`` after each accepted iteration.

    Returns:
        The log-potentials of the last accepted iterate.
    """
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
            predicted = sum(inner(g, mu - nu) for g, mu, nu in zip(per_term, mus, new_mus, strict=True))
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
    smoothness: Smoothness | None = None,
) -> list[FloatArray]:
    """Accelerated mirror descent (similar-triangles method) with backtracking on ``L``.

    ``smoothness``, when given, holds the starting ``L`` (``None``: the worst case / 10^6) and
    receives the last one.

    ``z`` lives in log-potential space; ``x`` and ``y`` are convex combinations of calibrated
    clique tables (still locally consistent, hence realisable on the junction tree). Returns
    clique tables of the final ``x``; ``theta`` (the caller's list) is updated in place to
    the last accepted potentials, so the starting potentials are freed after one step.

    Memory: six model-sized sets of tables (``theta``, ``x``, ``z``, ``y``, the candidate
    potentials and their calibration) and nothing else model-sized. ``y`` is rebuilt in its
    own buffers, the candidate is written over its gradient, and the trial point
    ``(1 - tau) x + tau z_new`` is written over ``y`` once ``y`` has been used (an accepted
    trial swaps the roles of the two buffer sets). Element-wise passes go slice by slice.

    Kept as one function (about 75 lines) on purpose: which model-sized tables are alive at
    each point of an iteration is decided by the local names of this frame (``cand``,
    ``z_new``, the swapped ``x``/``y``); splitting the line search out would spread that
    bookkeeping over two frames, and the memory bound above with it.
    """
    x = list(calibrator.calibrate(theta).probs)
    x_mus = objective.marginals(x)
    f_x = objective.loss(x_mus)
    del x_mus
    lip = 2.0 * objective.total**2 * sum(t.coef for t in objective.terms) / 1e6
    if smoothness is not None and smoothness.value is not None:
        lip = smoothness.value
    big_a = 0.0
    history = [f_x]
    z = x
    y = [np.empty_like(xc) for xc in x]
    tmp = np.empty(2 * _CHUNK, dtype=x[0].dtype)
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
            lin = sum(inner(g, nm - ym) for g, nm, ym in zip(per_term, x_new_mus, y_mus, strict=True))
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
    if smoothness is not None:
        smoothness.value = lip
    return x
