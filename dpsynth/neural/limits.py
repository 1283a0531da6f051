"""Whether DP-SGD can learn at all on a table: the expected noise-to-signal ratio of one step.

A DP-SGD step adds Gaussian noise of standard deviation ``sigma * C`` (noise multiplier times
clipping norm) to the sum of the batch's clipped gradients. With per-row gradient norms near
the clipping norm (typical under DP-SGD, where most rows are clipped) the signal of that sum is
about ``B * C`` for an expected batch of ``B`` rows, so the noise-to-signal ratio of a step is
``sigma / B``. Everything in it is public: ``sigma`` is calibrated from epsilon, delta, the
sample rate ``q = batch_size / n`` and the steps ``epochs * int(1 / q)``, where ``n`` is a
declared row count or the fit's DP estimate (never the exact count). Small tables force a small
``B`` and a large ``q``, so ``sigma / B`` grows fast; above :data:`MAX_NOISE_TO_SIGNAL` the
DP-VAE's rows were no better than a coin toss in the benchmark, and the fit is refused with a
recommendation (MST or AIM, or the epsilon at which DP-SGD would pass) unless
``NeuralConfig.allow_weak`` is set. See docs/neural.md, "When DP-SGD is refused".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dpsynth.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from dpsynth.neural.train import DPSGDPlan, NeuralConfig
    from dpsynth.tabular.schema import Schema

__all__ = ["MAX_NOISE_TO_SIGNAL", "DPSGDStrength", "WeakDPSGDError", "check_dpsgd", "epsilon_to_pass",
           "expected_plan", "refuse_if_weak", "strength_of"]

#: Largest accepted expected noise-to-signal ratio ``sigma / B`` of a DP-SGD step. Calibrated on
#: the benchmark (10 epochs, batch 2048, 25% of rho on 1-way marginals, delta 1e-9): Adult's
#: training split (n about 26,000) gives 1.1e-3 at epsilon 3 (DP-VAE TSTR AUC 0.85) and 2.9e-3
#: at epsilon 1 (AUC 0.82, better than independent columns); a 3,500-row table at epsilon 1
#: gives 6.2e-3 (AUC 0.48, a coin toss). 4e-3 lies between (close to their geometric mean).
MAX_NOISE_TO_SIGNAL = 4e-3

#: Largest epsilon :func:`epsilon_to_pass` searches.
_MAX_EPSILON = 100.0


class WeakDPSGDError(ConfigError):
    """DP-SGD's expected noise-to-signal ratio is above :data:`MAX_NOISE_TO_SIGNAL` (exit code 2)."""


@dataclass(frozen=True)
class DPSGDStrength:
    """The expected noise-to-signal ratio of a DP-SGD step (public).

    Attributes:
        noise_multiplier: The calibrated sigma.
        batch: Expected batch size ``B`` (``q * n``).
        rows: The row count used (declared or DP-estimated).
        epsilon: The target epsilon.
        width: One-hot width of the schema (the network's input and output size).
    """

    noise_multiplier: float
    batch: int
    rows: int
    epsilon: float
    width: int

    @property
    def ratio(self) -> float:
        """``sigma / B``."""
        return self.noise_multiplier / max(1, self.batch)

    @property
    def weak(self) -> bool:
        """True when the ratio is above :data:`MAX_NOISE_TO_SIGNAL`."""
        return self.ratio > MAX_NOISE_TO_SIGNAL

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"noise_multiplier": self.noise_multiplier, "expected_batch": self.batch,
                "rows": self.rows, "epsilon": self.epsilon, "one_hot_width": self.width,
                "noise_to_signal": self.ratio, "threshold": MAX_NOISE_TO_SIGNAL}


def expected_plan(config: NeuralConfig, *, rows: int, epsilon: float, delta: float) -> DPSGDPlan:
    """The DP-SGD plan a fit of this config would make on ``rows`` rows at ``(epsilon, delta)``.

    The same composition as :func:`dpsynth.neural.fit_neural` with the whole budget for this fit:
    ``marginal_share`` of rho on the 1-way marginals (or, without them and without a declared
    ``n_estimate``, ``count_share`` on a noisy count), the rest calibrated for DP-SGD.
    """
    from dpsynth.neural.train import plan_dpsgd
    from dpsynth.privacy.budget import epsilon_to_rho
    from dpsynth.privacy.rdp import DEFAULT_ORDERS

    rho = epsilon_to_rho(epsilon, delta)
    share = config.marginal_share
    if share == 0 and config.n_estimate is None:
        share = config.count_share
    extra = share * rho * np.asarray(DEFAULT_ORDERS, dtype=np.float64)  # Gaussian RDP: alpha * rho
    epochs, min_steps = config.epoch_rule()
    return plan_dpsgd(n_estimate=rows, batch_size=config.batch_size, epochs=epochs,
                      min_steps=min_steps, max_grad_norm=config.max_grad_norm,
                      target_epsilon=epsilon, delta=delta, extra_rdp=extra)


def strength_of(plan: DPSGDPlan, *, epsilon: float, width: int) -> DPSGDStrength:
    """The strength of a (planned or calibrated) DP-SGD run."""
    return DPSGDStrength(plan.noise_multiplier, plan.expected_batch_size, plan.n_estimate, epsilon, width)


def epsilon_to_pass(config: NeuralConfig, *, rows: int, delta: float, start: float) -> float | None:
    """The smallest epsilon (two significant digits, rounded up) above ``start`` at which a table
    of ``rows`` rows passes, or ``None`` if none up to 100 does."""
    def passes(eps: float) -> bool:
        plan = expected_plan(config, rows=rows, epsilon=eps, delta=delta)
        return plan.noise_multiplier / max(1, plan.expected_batch_size) <= MAX_NOISE_TO_SIGNAL

    if not passes(_MAX_EPSILON):
        return None
    lo, hi = start, _MAX_EPSILON
    while hi / lo > 1.02:
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if passes(mid) else (mid, hi)
    digits = 1 - math.floor(math.log10(hi))
    return float(math.ceil(hi * 10**digits) / 10**digits)


def _message(kind: str, s: DPSGDStrength, config: NeuralConfig, delta: float, *, spent: str) -> str:
    better = epsilon_to_pass(config, rows=s.rows, delta=delta, start=s.epsilon)
    at = (f"it would pass at epsilon >= {better:g} on this many rows" if better is not None
          else "no epsilon up to 100 passes on this many rows")
    return (f"{kind} would be too noisy to learn: on about {s.rows:,} rows at epsilon {s.epsilon:g}, a "
            f"DP-SGD step has noise multiplier {s.noise_multiplier:.3g} over an expected batch of "
            f"{s.batch:,} rows (one-hot width {s.width}), a noise-to-signal ratio of {s.ratio:.2g}, above "
            f"the limit {MAX_NOISE_TO_SIGNAL:g}; use --mechanism mst or aim instead ({at}), or pass "
            f"allow_weak=True / --allow-weak-neural to fit anyway{spent}")


def check_dpsgd(schema: Schema, config: Any, *, epsilon: float, delta: float, rows: int | None) -> list[str]:
    """Plan-time check: notes for the plan, or :class:`WeakDPSGDError` for a weak fit.

    ``rows`` is a declared (public) row count; without it, ``config.n_estimate`` is used, and
    without either the check waits for the fit's DP row estimate (a note says so).
    """
    from dpsynth.neural.data import layout_of_schema
    from dpsynth.neural.train import NeuralConfig

    if not isinstance(config, NeuralConfig):
        return []
    n = rows if rows is not None else config.n_estimate
    if n is None:
        return ["DP-SGD's noise-to-signal ratio is checked on the fit's DP row estimate; declare the "
                "row count (rows= / --rows) to check it here"]
    width = layout_of_schema(schema).width
    s = strength_of(expected_plan(config, rows=int(n), epsilon=epsilon, delta=delta),
                    epsilon=epsilon, width=width)
    if s.weak and not config.allow_weak:
        raise WeakDPSGDError(_message("DP-SGD", s, config, delta, spent=""))
    note = (f"DP-SGD noise-to-signal {s.ratio:.2g} (noise multiplier {s.noise_multiplier:.3g} / "
            f"expected batch {s.batch:,}; limit {MAX_NOISE_TO_SIGNAL:g})")
    return [note + (": weak, accepted by allow_weak" if s.weak else "")]


def refuse_if_weak(kind: str, plan: DPSGDPlan, config: NeuralConfig, *, epsilon: float, delta: float,
                   width: int) -> DPSGDStrength:
    """Fit-time check on the calibrated plan (after the DP row estimate, before training).

    Raises:
        WeakDPSGDError: The ratio is over the limit and ``config.allow_weak`` is False. The
            1-way marginals (or noisy count) behind the row estimate were already charged.
    """
    s = strength_of(plan, epsilon=epsilon, width=width)
    if s.weak and not config.allow_weak:
        raise WeakDPSGDError(_message(kind, s, config, delta, spent=(
            "; the row estimate's share of the budget was spent, training was not")))
    return s
