"""Marginal calibration of the neural generators: noisy 1-way marginals and raking.

At fit time, :func:`measure_one_way` spends a share of the fit's budget on a noisy 1-way
marginal of every modelled column (through the private-data gate,
:meth:`dpsynth.privacy.gate.PrivateData.measure`, which charges the accountant before each count) and
derives a DP row estimate from their sums. The
normalised marginals are part of the public transcript and are stored in the model.

At sampling time (post-processing only), :func:`calibrated_sample` draws ``oversample``
times more candidate rows than requested from the generator, finds candidate weights by
iterative proportional fitting (:func:`rake_weights`) so that the weighted 1-way marginals of
the candidates match the noisy ones, and resamples the requested rows with those weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from dpsynth.arrays import FloatArray
from dpsynth.errors import BudgetExceededError, ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from dpsynth.privacy.events import GaussianEvent
    from dpsynth.privacy.gate import PrivateData

__all__ = ["OneWay", "calibrated_sample", "measure_one_way", "rake_weights"]

CodeArray = npt.NDArray[np.int64]

#: Decimals kept of each stored marginal probability (public; keeps model.json compact).
DECIMALS = 6


@dataclass(frozen=True, eq=False)
class OneWay:
    """The noisy 1-way marginals of one fit (public transcript).

    Attributes:
        marginals: Per column, the noisy counts clipped at 0 and normalised (uniform when
            every noisy count is <= 0), rounded to :data:`DECIMALS` decimals.
        n_estimate: Inverse-variance weighted mean of the noisy marginals' sums (unclipped),
            rounded, at least 0: a DP row estimate that costs no extra budget.
        sigma: Discrete Gaussian scale of every cell.
        events: The charged events, one per column, in measurement order.
    """

    marginals: tuple[FloatArray, ...]
    n_estimate: int
    sigma: float
    events: tuple[GaussianEvent, ...]


def measure_one_way(data: PrivateData, *, rho: float, label: str) -> OneWay:
    """Measure a noisy 1-way marginal of every column behind ``data`` at total zCDP ``rho``.

    Each column gets ``rho / d`` (sigma ``sensitivity * sqrt(d / (2 rho))``, where the gate's
    sensitivity is the L2 sensitivity of a count). The total is checked against the gate's
    accountant before anything is counted; the gate then charges each marginal before its
    count.

    Raises:
        BudgetExceededError: If the ``d`` events do not fit; nothing was measured.
    """
    from dpsynth.privacy.events import GaussianEvent, ZCDPEvent

    domain = data.domain
    columns, sizes = list(domain), list(domain.values())
    d = len(columns)
    if not (math.isfinite(rho) and rho > 0):
        raise BudgetExceededError(f"requested 1-way marginals with rho={rho}")
    sigma = data.sensitivity * math.sqrt(d / (2.0 * rho))
    # d Gaussian events compose (in zCDP and RDP alike) to one event of their summed rho.
    total = ZCDPEvent(d * GaussianEvent(sigma, data.sensitivity).rho, label=f"{label} (all columns)")
    accountant = data.accountant
    if not accountant.can_afford(total):
        raise BudgetExceededError(
            f"{label}: requested rho={total.rho:.6g}, remaining rho={accountant.remaining_rho:.6g}"
        )
    before = len(accountant.ledger)
    measured = data.measure([(c,) for c in columns], sigma=sigma, label=label)
    events = tuple(
        e.event for e in accountant.ledger[before:] if isinstance(e.event, GaussianEvent)
    )
    margs, sums, inv_var = [], [], []
    for m, size in zip(measured, sizes, strict=True):
        raw = np.asarray(m.values, dtype=np.float64)
        sums.append(float(raw.sum()))
        inv_var.append(1.0 / size)  # the sum of `size` cells has variance size * sigma^2
        clipped = np.clip(raw, 0.0, None)
        p = clipped / clipped.sum() if clipped.sum() > 0 else np.full(size, 1.0 / size)
        margs.append(np.round(p, DECIMALS))
    n_hat = float(np.dot(sums, inv_var) / np.sum(inv_var))
    return OneWay(tuple(margs), max(0, round(n_hat)), sigma, events)


def rake_weights(
    codes: CodeArray,
    targets: Sequence[FloatArray],
    *,
    max_iter: int = 50,
    tol: float = 1e-6,
) -> FloatArray:
    """Weights (summing to 1) of the rows of ``codes`` whose weighted 1-way marginals match
    ``targets`` as closely as iterative proportional fitting gets within ``max_iter`` sweeps.

    A target cell that no row hits cannot be matched: each column's target is renormalised
    over the cells the rows hit (a column whose hit cells all have target 0 is skipped). Rows
    in a hit cell whose target is 0 get weight 0.

    Args:
        codes: ``(m, d)`` candidate codes, each inside its column's domain.
        targets: Per column, a non-negative vector over the column's domain.
        max_iter: Maximum number of sweeps over the columns.
        tol: Stop when no weighted marginal is more than ``tol`` (L-inf) from its target.

    Returns:
        ``(m,)`` non-negative weights summing to 1 (empty for ``m == 0``; uniform when no
        column can be matched).
    """
    m = codes.shape[0]
    if codes.ndim != 2 or codes.shape[1] != len(targets):
        raise ConfigError(f"codes must have shape (rows, {len(targets)})")
    if m == 0:
        return np.zeros(0, dtype=np.float64)
    w = np.full(m, 1.0 / m)
    cols = []
    for j, t in enumerate(targets):
        t = np.clip(np.asarray(t, dtype=np.float64), 0.0, None)
        hit = np.bincount(codes[:, j], minlength=t.size) > 0
        mass = float(t[hit].sum())
        if mass > 0:
            cols.append((j, np.where(hit, t / mass, 0.0), hit))
    for _ in range(max_iter):
        worst = 0.0
        for j, t, _hit in cols:
            cur = np.bincount(codes[:, j], weights=w, minlength=t.size)
            worst = max(worst, float(np.abs(cur - t).max()))
            ratio = np.divide(t, cur, out=np.zeros_like(t), where=cur > 0)
            w = w * ratio[codes[:, j]]
            s = w.sum()
            if s <= 0:  # pragma: no cover - cannot happen: some hit cell has target > 0
                return np.full(m, 1.0 / m)
            w /= s
        if worst <= tol:
            break
    return w


def calibrated_sample(
    draw: Callable[[int], CodeArray],
    rows: int,
    targets: Sequence[FloatArray],
    rng: np.random.Generator,
    *,
    oversample: int,
    max_iter: int,
    block: int = 50_000,
) -> CodeArray:
    """Draw ``rows`` rows: per block, ``oversample`` x candidates from ``draw``, raked to
    ``targets``, then resampled with replacement with the raked weights (``rng``-driven)."""
    chunks = []
    for start in range(0, rows, block):
        k = min(block, rows - start)
        cand = draw(oversample * k)
        w = rake_weights(cand, targets, max_iter=max_iter)
        pick = rng.choice(cand.shape[0], size=k, replace=True, p=w / w.sum())
        chunks.append(cand[pick])
    if not chunks:
        return np.zeros((0, len(targets)), dtype=np.int64)
    return np.concatenate(chunks, axis=0)
