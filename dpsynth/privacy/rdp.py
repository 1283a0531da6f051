"""Renyi-DP accounting of the Poisson-subsampled Gaussian mechanism (DP-SGD).

The RDP of the sampled Gaussian at order alpha is computed as in Mironov, Talwar and Zhang
(2019, "Renyi Differential Privacy of the Sampled Gaussian Mechanism"): an exact binomial
expansion for integer orders (Sec. 3.3) and the two-series expansion with erfc tails for
fractional orders (Sec. 3.4), all in log space. RDP curves compose by addition and are
converted to (epsilon, delta) with the tight bound of Balle et al. (2020, "Hypothesis Testing
Interpretations and Renyi DP", Thm. 21), the conversion Opacus's ``get_privacy_spent`` uses.
A rho-zCDP mechanism contributes ``rho * alpha`` at every order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from dpsynth.arrays import FloatArray
from dpsynth.errors import BudgetExceededError, ConfigError

__all__ = [
    "CONVERSION_RDP",
    "DEFAULT_ORDERS",
    "dpsgd_epsilon",
    "noise_multiplier_for_epsilon",
    "rdp_to_epsilon",
    "subsampled_gaussian_rdp",
    "zcdp_rdp",
]

#: Name of the RDP -> (epsilon, delta) conversion, as reported in privacy statements.
CONVERSION_RDP = "RDP->(eps,delta): Balle et al. 2020 (Thm. 21)"

#: Renyi orders: Opacus's defaults (1.1 .. 10.9 and 12 .. 63) plus 11 and a few large orders
#: up to 256. Orders at or near 1 are excluded: they make the conversion vacuous (TF-privacy#166).
DEFAULT_ORDERS: tuple[float, ...] = tuple(
    [1.0 + x / 10.0 for x in range(1, 100)]
    + [float(a) for a in range(11, 64)]
    + [64.0, 80.0, 96.0, 128.0, 160.0, 192.0, 256.0]
)


def _signed_logsumexp(log_abs: FloatArray, sign: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Row-wise log|sum(sign * exp(log_abs))| and the sign of the sum (sign 0 drops a term)."""
    masked = np.where(sign != 0, log_abs, -np.inf)
    peak = np.max(masked, axis=-1, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.sum(sign * np.exp(masked - peak), axis=-1)
    with np.errstate(divide="ignore"):
        log_total = np.log(np.abs(total)) + peak[..., 0]
    return np.asarray(log_total, dtype=np.float64), np.sign(total)


def _log_a_int(q: float, sigma: float, alpha: int) -> float:
    """log A_alpha for integer alpha: E_{z~mu0}[(mu(z)/mu0(z))^alpha] by the binomial sum."""
    from scipy import special  # lazy: only DP-SGD accounting needs scipy (~0.2-0.4 s to import)

    i = np.arange(alpha + 1, dtype=np.float64)
    log_binom = (
        special.gammaln(alpha + 1.0) - special.gammaln(i + 1.0) - special.gammaln(alpha - i + 1.0)
    )
    terms = (
        log_binom
        + i * math.log(q)
        + (alpha - i) * math.log1p(-q)
        + (i * i - i) / (2.0 * sigma * sigma)
    )
    return float(_signed_logsumexp(terms, np.ones_like(terms))[0])


def _log_a_frac(q: float, sigma: float, alphas: FloatArray) -> FloatArray:
    """log A_alpha for fractional orders: two convergent series with erfc tails (MTZ19 3.4).

    Evaluated for all orders at once, in growing chunks of terms; an order drops out once its
    series is done. Each series is summed up to (and including) the first index at which both
    terms are below exp(-30) -- the truncation rule of Opacus and TF-privacy.
    """
    from scipy import special  # lazy, as in _log_a_int

    z0 = sigma * sigma * math.log(1.0 / q - 1.0) + 0.5
    log_q, log_1q = math.log(q), math.log1p(-q)
    s2 = 2.0 * sigma * sigma
    scale = math.sqrt(2.0) * sigma
    parts: list[list[tuple[float, float]]] = [[] for _ in alphas]  # (log|partial sum|, sign)
    active = np.arange(alphas.size)
    start: int = 0
    chunk: int = 64
    while active.size and start < 1 << 22:
        alpha = alphas[active][:, None]
        i = np.arange(start, start + chunk, dtype=np.float64)[None, :]
        j = alpha - i
        coef = special.binom(alpha, i)
        with np.errstate(divide="ignore"):
            log_coef = np.log(np.abs(coef))
        log_s0 = (
            log_coef + i * log_q + j * log_1q + (i * i - i) / s2 + _log_half_erfc((i - z0) / scale)
        )
        log_s1 = (
            log_coef + j * log_q + i * log_1q + (j * j - j) / s2 + _log_half_erfc((z0 - j) / scale)
        )
        small = np.maximum(log_s0, log_s1) < -30.0
        done = small.any(axis=1)
        first = np.where(done, small.argmax(axis=1), chunk - 1)
        sign = np.where(np.arange(chunk)[None, :] <= first[:, None], np.sign(coef), 0.0)
        for log_s in (log_s0, log_s1):
            val, sg = _signed_logsumexp(log_s, sign)
            for row, v, g in zip(active, val, sg, strict=True):
                if g != 0:
                    parts[row].append((float(v), float(g)))
        active = active[~done]
        start += chunk
        chunk *= 2
    out = np.empty_like(alphas)
    for k, terms in enumerate(parts):
        total, sg = _signed_logsumexp(
            np.array([v for v, _ in terms]), np.array([g for _, g in terms])
        )
        out[k] = float(total) if float(sg) > 0 else -math.inf
    return out


def _log_half_erfc(x: FloatArray) -> FloatArray:
    """log(erfc(x) / 2) without underflow for large x."""
    from scipy import special  # lazy, as in _log_a_int

    return np.asarray(special.log_ndtr(-x * math.sqrt(2.0)), dtype=np.float64)


@lru_cache(maxsize=4096)
def _rdp_step(q: float, sigma: float, orders: tuple[float, ...]) -> FloatArray:
    """RDP at each order of one step of the Poisson-subsampled Gaussian."""
    arr = np.asarray(orders, dtype=np.float64)
    if q == 0.0:
        return np.zeros_like(arr)
    if q == 1.0:
        return arr / (2.0 * sigma * sigma)
    log_a = np.empty_like(arr)
    is_int = arr == np.round(arr)
    for k in np.flatnonzero(is_int):
        log_a[k] = _log_a_int(q, sigma, int(arr[k]))
    if not bool(np.all(is_int)):
        log_a[~is_int] = _log_a_frac(q, sigma, arr[~is_int])
    out = np.maximum(log_a, 0.0) / (arr - 1.0)
    out.setflags(write=False)
    return out


def _orders_array(orders: Sequence[float] | None) -> FloatArray:
    arr = np.asarray(DEFAULT_ORDERS if orders is None else orders, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 1.0):
        raise ConfigError("RDP orders must be a non-empty list of finite numbers > 1")
    return arr


def subsampled_gaussian_rdp(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    orders: Sequence[float] | None = None,
) -> FloatArray:
    """RDP curve of ``steps`` compositions of the Poisson-subsampled Gaussian.

    Args:
        noise_multiplier: Noise standard deviation divided by the L2 clipping norm, > 0.
        sample_rate: Poisson sampling probability q, 0 <= q <= 1.
        steps: Number of steps, >= 0.
        orders: Renyi orders (> 1); :data:`DEFAULT_ORDERS` by default.

    Returns:
        RDP value at each order.
    """
    if not (math.isfinite(noise_multiplier) and noise_multiplier > 0):
        raise ConfigError(f"noise_multiplier ({noise_multiplier}) must be > 0 and finite")
    if not 0.0 <= sample_rate <= 1.0:
        raise ConfigError(f"sample_rate ({sample_rate}) must be in [0, 1]")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ConfigError(f"steps ({steps!r}) must be an integer >= 0")
    arr = _orders_array(orders)
    one = _rdp_step(float(sample_rate), float(noise_multiplier), tuple(arr.tolist()))
    return one * float(steps)


def zcdp_rdp(rho: float, orders: Sequence[float] | None = None) -> FloatArray:
    """RDP curve ``rho * alpha`` of a rho-zCDP mechanism."""
    if not (math.isfinite(rho) and rho >= 0):
        raise ConfigError(f"rho ({rho}) must be >= 0 and finite")
    return _orders_array(orders) * float(rho)


def _conversion_terms(orders: FloatArray, delta: float) -> FloatArray:
    """Per-order additive term of Balle et al. Thm 21: epsilon = rdp + term(alpha)."""
    return np.log1p(-1.0 / orders) - (math.log(delta) + np.log(orders)) / (orders - 1.0)


def rdp_to_epsilon(
    orders: Sequence[float], rdp: Sequence[float] | FloatArray, delta: float
) -> tuple[float, float]:
    """Convert an RDP curve to (epsilon, delta)-DP (Balle et al. 2020, Thm. 21).

    Args:
        orders: Renyi orders (> 1).
        rdp: RDP value at each order (``inf`` allowed).
        delta: Target delta, 0 < delta < 1.

    Returns:
        ``(epsilon, best_order)``; epsilon is clipped at 0 (a negative bound certifies 0)
        and rounded upward.
    """
    if not 0.0 < delta < 1.0:
        raise ConfigError(f"delta ({delta}) must be > 0 and < 1")
    arr = _orders_array(orders)
    vals = np.asarray(rdp, dtype=np.float64)
    if vals.shape != arr.shape:
        raise ConfigError(f"rdp ({vals.shape}) and orders ({arr.shape}) must have the same length")
    if np.any(np.isnan(vals)) or np.any(vals < 0):
        raise ConfigError("rdp values must be >= 0 (NaN is not allowed)")
    if not np.any(vals):  # identical output distributions at every order: nothing leaks
        return 0.0, float(arr[0])
    eps = vals + _conversion_terms(arr, delta)
    idx = int(np.argmin(eps))
    best = float(eps[idx])
    if not math.isfinite(best):
        return math.inf, float(arr[idx])
    return max(best * (1.0 + 1e-13) + 1e-300 if best > 0 else 0.0, 0.0), float(arr[idx])


def zcdp_room(
    orders: Sequence[float], rdp: Sequence[float] | FloatArray, epsilon: float, delta: float
) -> float:
    """Largest rho such that ``rdp + rho * alpha`` still converts to at most ``epsilon``.

    The conversion is a minimum over orders of ``rdp + rho*alpha + term(alpha)``, so the
    room is the maximum over orders of ``(epsilon - rdp - term) / alpha``; the result is then
    verified against :func:`rdp_to_epsilon` (which rounds up) and backed off until it fits.
    """
    arr = _orders_array(orders)
    curve = np.asarray(rdp, dtype=np.float64)
    rho = float(np.max((epsilon - curve - _conversion_terms(arr, delta)) / arr))
    shrink = 1e-12
    while rho > 0 and rdp_to_epsilon(arr.tolist(), curve + rho * arr, delta)[0] > epsilon:
        rho *= 1.0 - shrink
        shrink *= 4.0
    return max(0.0, rho)


def dpsgd_epsilon(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    *,
    orders: Sequence[float] | None = None,
    extra_rdp: Sequence[float] | FloatArray | None = None,
) -> float:
    """Epsilon of DP-SGD (plus an optional already-spent RDP curve) at ``delta``."""
    arr = _orders_array(orders)
    rdp = subsampled_gaussian_rdp(noise_multiplier, sample_rate, steps, arr.tolist())
    if extra_rdp is not None:
        extra = np.asarray(extra_rdp, dtype=np.float64)
        if extra.shape != arr.shape:
            raise ConfigError("extra_rdp must have one value per order")
        rdp = rdp + extra
    return rdp_to_epsilon(arr.tolist(), rdp, delta)[0]


def noise_multiplier_for_epsilon(
    target_eps: float,
    delta: float,
    sample_rate: float,
    steps: int,
    *,
    extra_rdp: Sequence[float] | FloatArray | None = None,
    orders: Sequence[float] | None = None,
    rel_tol: float = 1e-4,
) -> float:
    """Smallest noise multiplier (to ``rel_tol``) whose DP-SGD epsilon is <= ``target_eps``.

    A bisection whose upper end is always a verified value, so the returned sigma never
    overshoots the target (unlike opacus#346): ``dpsgd_epsilon(result, ...) <= target_eps``.

    Args:
        target_eps: Target epsilon, > 0.
        delta: Target delta, 0 < delta < 1.
        sample_rate: Poisson sampling probability q, 0 < q <= 1.
        steps: Number of steps, >= 1.
        extra_rdp: RDP already spent by other mechanisms, one value per order.
        orders: Renyi orders; :data:`DEFAULT_ORDERS` by default.
        rel_tol: Relative width of the final bracket on sigma.

    Returns:
        The noise multiplier.

    Raises:
        BudgetExceededError: If ``extra_rdp`` alone already exceeds the target.
    """
    if not (math.isfinite(target_eps) and target_eps > 0):
        raise ConfigError(f"target_eps ({target_eps}) must be > 0 and finite")
    if not 0.0 < sample_rate <= 1.0:
        raise ConfigError(f"sample_rate ({sample_rate}) must be in (0, 1]")
    if not (isinstance(steps, int) and steps >= 1):
        raise ConfigError(f"steps ({steps!r}) must be an integer >= 1")
    if not 0.0 < rel_tol < 1.0:
        raise ConfigError(f"rel_tol ({rel_tol}) must be in (0, 1)")
    arr = _orders_array(orders)
    extra = np.zeros_like(arr) if extra_rdp is None else np.asarray(extra_rdp, dtype=np.float64)
    if extra.shape != arr.shape:
        raise ConfigError("extra_rdp must have one value per order")
    if rdp_to_epsilon(arr.tolist(), extra, delta)[0] >= target_eps:
        raise BudgetExceededError(
            f"target epsilon ({target_eps}) is already used up by extra_rdp at delta={delta}"
        )

    def eps_of(sigma: float) -> float:
        return dpsgd_epsilon(sigma, sample_rate, steps, delta, orders=arr.tolist(), extra_rdp=extra)

    lo, hi = 0.0, 1.0
    while eps_of(hi) > target_eps:
        lo, hi = hi, hi * 2.0
        if hi > 1e8:
            raise BudgetExceededError(
                f"no noise multiplier up to 1e8 reaches epsilon ({target_eps}) at delta={delta}"
            )
    while hi - lo > rel_tol * hi:
        mid = 0.5 * (lo + hi)
        if eps_of(mid) <= target_eps:
            hi = mid
        else:
            lo = mid
    return hi
