"""Privacy budgets as validated values, and the zCDP <-> (epsilon, delta) conversions.

A budget is a frozen dataclass checked on construction: :class:`PureDP`, :class:`ApproxDP`
and :class:`ZCDP`. Internally dpsynth accounts in zero-concentrated DP (rho); this module owns
the tight conversion of Canonne, Kamath and Steinke (2020, Prop. 12 / Cor. 13) from rho to
(epsilon, delta) -- the conversion OpenDP's ``make_zCDP_to_approxDP`` uses -- and its
conservative inverse. Both are computed here, numerically, and every rounding goes the safe
way: epsilons are rounded up, rhos are verified never to overshoot.

The conversion: a rho-zCDP mechanism is (epsilon, delta)-DP for every alpha > 1 with

    epsilon(alpha) = alpha*rho + log(1 - 1/alpha) + (log(1/delta) - log(alpha)) / (alpha - 1).

Any alpha gives a valid epsilon; the minimiser solves ``rho*(alpha-1)**2 = log(1/delta) -
log(alpha)`` (the derivative of epsilon(alpha) vanishes there), which has exactly one root.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from dpsynth.errors import ConfigError

__all__ = [
    "CONVERSION_ZCDP",
    "ZCDP",
    "ApproxDP",
    "Budget",
    "PureDP",
    "budget_summary",
    "epsilon_to_rho",
    "to_rho",
    "zcdp_to_epsilon",
]

#: Name of the zCDP -> (epsilon, delta) conversion, as reported in privacy statements.
CONVERSION_ZCDP = "zCDP->(eps,delta): Canonne, Kamath, Steinke 2020 (Prop. 12)"

# Relative and absolute upward nudge applied to every computed epsilon, far above the
# floating-point error of the few operations involved (about 1e-15 relative).
_EPS_ROUND_REL = 1e-13
_EPS_ROUND_ABS = 1e-300


def check_positive(name: str, value: float) -> float:
    """``value`` as a float, refused unless it is a finite number > 0 (every privacy parameter)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} ({value!r}) must be a number")
    if not math.isfinite(value) or not value > 0:
        raise ConfigError(f"{name} ({value}) must be > 0 and finite")
    return float(value)


def check_delta(value: float) -> float:
    """``value`` as a float, refused unless 0 < delta < 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"delta ({value!r}) must be a number")
    if not 0.0 < value < 1.0:
        raise ConfigError(f"delta ({value}) must be > 0 and < 1")
    return float(value)


@dataclass(frozen=True)
class PureDP:
    """A pure epsilon-DP budget. dpsynth accounts it as ``rho = epsilon**2 / 2`` zCDP.

    Attributes:
        epsilon: The privacy-loss bound, > 0.
    """

    epsilon: float

    def __post_init__(self) -> None:
        check_positive("epsilon", self.epsilon)
        object.__setattr__(self, "epsilon", float(self.epsilon))

    @property
    def rho(self) -> float:
        """The zCDP parameter implied by pure epsilon-DP (Bun and Steinke 2016, Prop. 1.4)."""
        return self.epsilon * self.epsilon / 2.0

    def to_json(self) -> dict[str, object]:
        """Serialise as a JSON-ready dict."""
        return {"type": "PureDP", "epsilon": self.epsilon}


@dataclass(frozen=True)
class ApproxDP:
    """An (epsilon, delta)-DP budget.

    Attributes:
        epsilon: The privacy-loss bound, > 0.
        delta: The failure probability, 0 < delta < 1.
    """

    epsilon: float
    delta: float

    def __post_init__(self) -> None:
        check_positive("epsilon", self.epsilon)
        check_delta(self.delta)
        object.__setattr__(self, "epsilon", float(self.epsilon))
        object.__setattr__(self, "delta", float(self.delta))

    @property
    def rho(self) -> float:
        """The largest rho whose tight conversion at ``delta`` stays within ``epsilon``."""
        return epsilon_to_rho(self.epsilon, self.delta)

    def to_json(self) -> dict[str, object]:
        """Serialise as a JSON-ready dict."""
        return {"type": "ApproxDP", "epsilon": self.epsilon, "delta": self.delta}


@dataclass(frozen=True)
class ZCDP:
    """A rho-zCDP budget (Bun and Steinke 2016).

    Attributes:
        rho: The zCDP parameter, > 0.
    """

    rho: float

    def __post_init__(self) -> None:
        check_positive("rho", self.rho)
        object.__setattr__(self, "rho", float(self.rho))

    def __add__(self, other: ZCDP) -> ZCDP:
        """Sequential composition: rhos add."""
        if not isinstance(other, ZCDP):
            return NotImplemented
        return ZCDP(math.fsum([self.rho, other.rho]))

    def epsilon(self, delta: float) -> float:
        """The (epsilon, delta) guarantee implied by this budget at ``delta``."""
        return zcdp_to_epsilon(self.rho, delta)

    def split(self, weights: int | Sequence[float]) -> tuple[ZCDP, ...]:
        """Split into parts proportional to ``weights`` whose rhos sum to at most ``rho``.

        Args:
            weights: A number of equal parts, or positive relative weights.

        Returns:
            One budget per part; ``math.fsum`` of their rhos never exceeds ``self.rho``.
        """
        if isinstance(weights, int):
            if weights < 1:
                raise ConfigError(f"number of parts ({weights}) must be >= 1")
            ws = [1.0] * weights
        else:
            ws = [float(w) for w in weights]
            if not ws or not all(math.isfinite(w) and w > 0 for w in ws):
                raise ConfigError("split weights must be a non-empty list of finite numbers > 0")
        total = math.fsum(ws)
        parts = [self.rho * w / total for w in ws]
        while math.fsum(parts) > self.rho:
            parts = [math.nextafter(p, 0.0) for p in parts]
        return tuple(ZCDP(p) for p in parts)

    def to_json(self) -> dict[str, object]:
        """Serialise as a JSON-ready dict."""
        return {"type": "ZCDP", "rho": self.rho}


Budget = PureDP | ApproxDP | ZCDP


def budget_from_json(data: dict[str, object]) -> Budget:
    """Rebuild a budget serialised by its ``to_json``."""
    kind = data.get("type")
    if kind == "PureDP":
        return PureDP(float(data["epsilon"]))  # type: ignore[arg-type]
    if kind == "ApproxDP":
        return ApproxDP(float(data["epsilon"]), float(data["delta"]))  # type: ignore[arg-type]
    if kind == "ZCDP":
        return ZCDP(float(data["rho"]))  # type: ignore[arg-type]
    raise ConfigError(f"budget type ({kind!r}) must be one of PureDP, ApproxDP, ZCDP")


def _epsilon_at(alpha_minus_1: float, rho: float, log_inv_delta: float) -> float:
    """epsilon(alpha) of the CKS conversion, written in ``t = alpha - 1`` for accuracy."""
    t = alpha_minus_1
    return (1.0 + t) * rho + math.log1p(-1.0 / (1.0 + t)) + (log_inv_delta - math.log1p(t)) / t


def _optimal_t(rho: float, log_inv_delta: float) -> float:
    """Root of ``g(t) = rho*t**2 + log1p(t) - L`` (t = alpha - 1), by safeguarded Newton."""
    lo, hi = 0.0, math.sqrt(log_inv_delta / rho)  # g(lo) = -L < 0 <= g(hi)
    t = hi
    for _ in range(200):
        g = rho * t * t + math.log1p(t) - log_inv_delta
        if g > 0:
            hi = t
        else:
            lo = t
        step = g / (2.0 * rho * t + 1.0 / (1.0 + t))
        new = t - step
        if not lo < new < hi:
            new = 0.5 * (lo + hi)
        if abs(new - t) <= 1e-15 * t or hi - lo <= 1e-15 * hi:
            return new
        t = new
    return t


def zcdp_to_epsilon(rho: float, delta: float) -> float:
    """Tight epsilon such that rho-zCDP implies (epsilon, delta)-DP (CKS 2020, Prop. 12).

    Any order alpha > 1 yields a valid bound, so the numerical optimum can only be
    pessimistic; the result is also nudged upward to cover floating-point rounding.

    Args:
        rho: zCDP parameter, >= 0 (``0`` gives ``0``).
        delta: Target delta, 0 < delta < 1.

    Returns:
        The smallest epsilon (>= 0) the conversion certifies, rounded up.
    """
    check_delta(delta)
    if not (math.isfinite(rho) and rho >= 0):
        raise ConfigError(f"rho ({rho}) must be >= 0 and finite")
    if rho == 0:
        return 0.0
    log_inv_delta = -math.log(delta)
    t = _optimal_t(rho, log_inv_delta)
    eps = _epsilon_at(t, rho, log_inv_delta)
    if eps <= 0:
        return 0.0
    return eps * (1.0 + _EPS_ROUND_REL) + _EPS_ROUND_ABS


def _rho_guess(epsilon: float, log_inv_delta: float) -> float:
    """Approximate inverse of :func:`zcdp_to_epsilon` along the stationarity curve.

    At the optimal order, ``rho = (L - log alpha) / (alpha-1)**2``; the resulting epsilon
    decreases in ``t = alpha - 1``, so bisect ``t`` (in log scale) for the target epsilon.
    """
    lo, hi = math.log(1e-12), math.log(math.expm1(log_inv_delta))  # rho -> inf .. rho -> 0
    for _ in range(120):
        mid = 0.5 * (lo + hi)
        t = math.exp(mid)
        rho = (log_inv_delta - math.log1p(t)) / (t * t)
        if rho <= 0 or _epsilon_at(t, rho, log_inv_delta) <= epsilon:
            hi = mid
        else:
            lo = mid
    t = math.exp(hi)
    return max((log_inv_delta - math.log1p(t)) / (t * t), 0.0)


def epsilon_to_rho(epsilon: float, delta: float) -> float:
    """Largest rho whose conversion at ``delta`` does not exceed ``epsilon``.

    A bisection on rho whose lower end is always a verified value: the returned rho
    satisfies ``zcdp_to_epsilon(rho, delta) <= epsilon`` exactly (as computed by
    :func:`zcdp_to_epsilon`), and is within about 1e-12 relative of the largest such rho.

    Args:
        epsilon: Target epsilon, > 0.
        delta: Target delta, 0 < delta < 1.

    Returns:
        rho > 0.
    """
    check_positive("epsilon", epsilon)
    check_delta(delta)
    log_inv_delta = -math.log(delta)

    def ok(r: float) -> bool:
        return zcdp_to_epsilon(r, delta) <= epsilon

    guess = _rho_guess(epsilon, log_inv_delta)
    if guess > 0 and ok(guess * (1 - 1e-9)) and not ok(guess * (1 + 1e-9)):
        lo, hi = guess * (1 - 1e-9), guess * (1 + 1e-9)
    else:  # fall back to a wide, verified bracket
        # rho + 2 sqrt(rho L) >= the tight epsilon, so this rho is (analytically) enough.
        lo = (math.sqrt(log_inv_delta + epsilon) - math.sqrt(log_inv_delta)) ** 2
        while not ok(lo):
            lo /= 2.0
            if lo < 1e-300:
                raise ConfigError(f"epsilon ({epsilon}) is too small to convert at delta")
        hi = max(2.0 * lo, epsilon)
        while ok(hi):
            hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if not lo < mid < hi or (hi - lo) <= 1e-14 * lo:
            break
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo


def to_rho(budget: Budget) -> float:
    """The zCDP parameter a budget allows (ApproxDP via :func:`epsilon_to_rho`)."""
    if isinstance(budget, (ZCDP, PureDP, ApproxDP)):
        return budget.rho  # each type owns its conversion
    raise ConfigError(f"budget ({type(budget).__name__}) must be PureDP, ApproxDP or ZCDP")


def budget_of(*, epsilon: float | None, delta: float | None, rho: float | None) -> ApproxDP | ZCDP:
    """The budget a caller asked for: exactly one of ``epsilon`` (with ``delta``) or ``rho``.

    The one place the "exactly one of" rule lives (API, plan and CLI all call it).
    """
    if (epsilon is None) == (rho is None):
        raise ConfigError("give exactly one of epsilon or rho")
    if rho is not None:
        return ZCDP(rho)
    if delta is None:
        raise ConfigError("an epsilon budget needs a delta")
    assert epsilon is not None
    return ApproxDP(epsilon, delta)


def budget_summary(*, rho: float | None, epsilon: float | None, delta: float) -> dict[str, object]:
    """Convert one of ``rho`` / ``epsilon`` to the other at ``delta`` (for ``dpsynth budget``).

    Args:
        rho: A zCDP parameter to convert to epsilon, or ``None``.
        epsilon: An epsilon to convert to the largest rho within it, or ``None``.
        delta: The delta of the (epsilon, delta) side.

    Returns:
        ``{"epsilon", "delta", "rho", "conversion"}``.
    """
    budget = budget_of(epsilon=epsilon, delta=delta, rho=rho)
    check_delta(delta)
    if isinstance(budget, ZCDP):
        eps = zcdp_to_epsilon(budget.rho, delta)
        return {"epsilon": eps, "delta": delta, "rho": budget.rho, "conversion": CONVERSION_ZCDP}
    r = epsilon_to_rho(budget.epsilon, delta)
    return {"epsilon": budget.epsilon, "delta": delta, "rho": r, "conversion": CONVERSION_ZCDP}
