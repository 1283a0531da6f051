"""Privacy events: frozen records of what a mechanism is about to measure, and what it costs.

An event says which noise a step adds (Gaussian counts, Gumbel noisy max, DP-SGD, a
thresholded histogram, or a generic zCDP cost) and knows its own privacy cost: ``rho`` (zCDP)
where that is finite, an RDP curve at any orders, and ``delta``, the part of the final delta
it uses up (0 for every event but :class:`ApproxZCDPEvent`). The accountant composes events;
events never touch data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from dpsynth.errors import ConfigError
from dpsynth.privacy.budget import CONVERSION_ZCDP, check_positive, zcdp_to_epsilon
from dpsynth.privacy.rdp import (
    CONVERSION_RDP,
    DEFAULT_ORDERS,
    rdp_to_epsilon,
    subsampled_gaussian_rdp,
    zcdp_rdp,
)

__all__ = [
    "ApproxZCDPEvent",
    "Event",
    "GaussianEvent",
    "NoisyMaxEvent",
    "SubsampledGaussianEvent",
    "ZCDPEvent",
    "all_finite",
    "delta_of",
    "epsilon_of",
    "event_from_json",
    "gumbel_scale_for_rho",
    "rdp_of",
]


def _label(value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"label ({type(value).__name__}) must be a string")
    return value


@dataclass(frozen=True)
class GaussianEvent:
    """Discrete Gaussian noise of scale ``sigma`` on a query of L2 ``sensitivity``.

    Costs ``rho = sensitivity**2 / (2 * sigma**2)`` (Canonne, Kamath, Steinke 2020 for the
    discrete Gaussian; Bun and Steinke 2016 for the continuous one).
    """

    sigma: float
    sensitivity: float = 1.0
    label: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", check_positive("sigma", self.sigma))
        object.__setattr__(self, "sensitivity", check_positive("sensitivity", self.sensitivity))
        _label(self.label)

    @property
    def rho(self) -> float:
        """zCDP cost."""
        return self.sensitivity**2 / (2.0 * self.sigma**2)

    def rdp(self, orders: Sequence[float]) -> npt.NDArray[np.float64]:
        """RDP curve ``rho * alpha``."""
        return zcdp_rdp(self.rho, orders)

    def to_json(self) -> dict[str, Any]:
        """Serialise as a JSON-ready dict."""
        return {
            "type": "GaussianEvent",
            "sigma": self.sigma,
            "sensitivity": self.sensitivity,
            "label": self.label,
            "rho": self.rho,
        }


def gumbel_scale_for_rho(rho: float, sensitivity: float) -> float:
    """Gumbel scale at which report-noisy-max over scores of L-inf ``sensitivity`` is rho-zCDP.

    The exponential mechanism with ``epsilon = 2 * sensitivity / scale`` is ``epsilon**2 / 8``
    zCDP (bounded range, Cesar and Rogers 2021), so ``scale = sensitivity / sqrt(2 * rho)``.
    """
    if not (rho > 0 and sensitivity > 0):
        raise ConfigError(f"rho ({rho}) and sensitivity ({sensitivity}) must be > 0")
    return float(sensitivity / math.sqrt(2.0 * rho))



@dataclass(frozen=True)
class NoisyMaxEvent:
    """Report-noisy-max with Gumbel noise of ``scale`` over scores of L-inf ``sensitivity``.

    Equivalent to the exponential mechanism with ``epsilon = 2 * sensitivity / scale``, which
    is ``epsilon**2 / 8``-zCDP (Cesar and Rogers 2021), i.e. ``rho = sensitivity**2 /
    (2 * scale**2)`` -- what OpenDP's ``make_noisy_max`` reports under
    ``zero_concentrated_divergence`` and what :func:`dpsynth.privacy.noise.gumbel_scale_for_rho` inverts.
    """

    scale: float
    sensitivity: float = 1.0
    label: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", check_positive("scale", self.scale))
        object.__setattr__(self, "sensitivity", check_positive("sensitivity", self.sensitivity))
        _label(self.label)

    @property
    def rho(self) -> float:
        """zCDP cost."""
        return self.sensitivity**2 / (2.0 * self.scale**2)

    def rdp(self, orders: Sequence[float]) -> npt.NDArray[np.float64]:
        """RDP curve ``rho * alpha``."""
        return zcdp_rdp(self.rho, orders)

    def to_json(self) -> dict[str, Any]:
        """Serialise as a JSON-ready dict."""
        return {
            "type": "NoisyMaxEvent",
            "scale": self.scale,
            "sensitivity": self.sensitivity,
            "label": self.label,
            "rho": self.rho,
        }


@dataclass(frozen=True)
class ZCDPEvent:
    """A step with a stated zCDP cost ``rho`` (e.g. a composed sub-mechanism)."""

    rho: float
    label: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "rho", check_positive("rho", self.rho))
        _label(self.label)

    def rdp(self, orders: Sequence[float]) -> npt.NDArray[np.float64]:
        """RDP curve ``rho * alpha``."""
        return zcdp_rdp(self.rho, orders)

    def to_json(self) -> dict[str, Any]:
        """Serialise as a JSON-ready dict."""
        return {"type": "ZCDPEvent", "rho": self.rho, "label": self.label}


@dataclass(frozen=True)
class ApproxZCDPEvent:
    """A step that is (rho, delta)-approximate zCDP, such as a thresholded noisy histogram.

    Releasing only the values whose noisy count clears a threshold (stability-based
    histogram, OpenDP's ``make_gaussian_threshold``) is rho-zCDP except with probability
    ``delta``: a value held by one unit could pass the threshold. Composition adds rhos and
    adds deltas; the conversion to (epsilon, delta)-DP then uses what is left of delta
    (Rogers 2023, a unifying analysis of unknown-domain algorithms).
    """

    rho: float
    delta: float
    label: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "rho", check_positive("rho", self.rho))
        d = self.delta
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.0 < d < 1.0:
            raise ConfigError(f"delta ({d!r}) of an approximate zCDP event must be > 0 and < 1")
        object.__setattr__(self, "delta", float(d))
        _label(self.label)

    def rdp(self, orders: Sequence[float]) -> npt.NDArray[np.float64]:
        """RDP curve ``rho * alpha`` (of the part that holds except with probability delta)."""
        return zcdp_rdp(self.rho, orders)

    def to_json(self) -> dict[str, Any]:
        """Serialise as a JSON-ready dict."""
        return {"type": "ApproxZCDPEvent", "rho": self.rho, "delta": self.delta, "label": self.label}


@dataclass(frozen=True)
class SubsampledGaussianEvent:
    """DP-SGD: ``steps`` Poisson-subsampled Gaussian steps (accounted in RDP).

    Attributes:
        noise_multiplier: Noise standard deviation over the clipping norm, > 0.
        sample_rate: Poisson sampling probability q, 0 < q <= 1.
        steps: Number of noisy steps, >= 1.
        label: Free-text description for the ledger.
    """

    noise_multiplier: float
    sample_rate: float
    steps: int
    label: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "noise_multiplier", check_positive("noise_multiplier", self.noise_multiplier)
        )
        q = self.sample_rate
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0.0 < q <= 1.0:
            raise ConfigError(f"sample_rate ({q!r}) must be > 0 and <= 1")
        object.__setattr__(self, "sample_rate", float(q))
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"steps ({self.steps!r}) must be an integer >= 1")
        _label(self.label)

    @property
    def rho(self) -> float:
        """zCDP cost: ``inf`` under subsampling (no finite rho); a plain Gaussian when q = 1."""
        if self.sample_rate < 1.0:
            return math.inf
        return self.steps / (2.0 * self.noise_multiplier**2)

    def rdp(self, orders: Sequence[float]) -> npt.NDArray[np.float64]:
        """RDP curve of all steps (Mironov, Talwar, Zhang 2019)."""
        return subsampled_gaussian_rdp(
            self.noise_multiplier, self.sample_rate, self.steps, list(orders)
        )

    def to_json(self) -> dict[str, Any]:
        """Serialise as a JSON-ready dict (``rho`` is ``None`` when not finite)."""
        rho = self.rho
        return {
            "type": "SubsampledGaussianEvent",
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate,
            "steps": self.steps,
            "label": self.label,
            "rho": rho if math.isfinite(rho) else None,
        }


Event = GaussianEvent | NoisyMaxEvent | ZCDPEvent | ApproxZCDPEvent | SubsampledGaussianEvent


def event_from_json(data: dict[str, Any]) -> Event:
    """Rebuild an event from its ``to_json`` dict (derived keys such as ``rho`` are ignored).

    Raises:
        ConfigError: If the type is unknown or a field is missing or invalid.
    """
    if not isinstance(data, dict):
        raise ConfigError("an event must be a JSON object")
    kind = data.get("type")
    label = data.get("label", "")
    try:
        if kind == "GaussianEvent":
            return GaussianEvent(data["sigma"], data.get("sensitivity", 1.0), label)
        if kind == "NoisyMaxEvent":
            return NoisyMaxEvent(data["scale"], data.get("sensitivity", 1.0), label)
        if kind == "ZCDPEvent":
            return ZCDPEvent(data["rho"], label)
        if kind == "ApproxZCDPEvent":
            return ApproxZCDPEvent(data["rho"], data["delta"], label)
        if kind == "SubsampledGaussianEvent":
            return SubsampledGaussianEvent(
                data["noise_multiplier"], data["sample_rate"], data["steps"], label
            )
    except KeyError as exc:
        raise ConfigError(f"event of type {kind} is missing field {exc.args[0]!r}") from exc
    raise ConfigError(
        f"event type ({kind!r}) must be one of GaussianEvent, NoisyMaxEvent, ZCDPEvent, ApproxZCDPEvent, "
        "SubsampledGaussianEvent"
    )


def all_finite(events: Sequence[Event]) -> bool:
    """Whether every event has a finite zCDP cost (so rhos can simply be added)."""
    return all(math.isfinite(ev.rho) for ev in events)


def rdp_of(
    events: Sequence[Event], orders: Sequence[float] = DEFAULT_ORDERS
) -> npt.NDArray[np.float64]:
    """Composed RDP curve of ``events`` at ``orders`` (curves add)."""
    total = np.zeros(len(orders), dtype=np.float64)
    for ev in events:
        total = total + ev.rdp(orders)
    return total


def delta_of(events: Sequence[Event]) -> float:
    """The delta the events use up themselves (thresholds), before any conversion."""
    return math.fsum(ev.delta for ev in events if isinstance(ev, ApproxZCDPEvent))


def epsilon_of(events: Sequence[Event], delta: float) -> tuple[float, str]:
    """Epsilon at ``delta`` of the composition of ``events``, and the conversion used.

    With only finite-rho events both the tight zCDP conversion and the RDP one are valid and
    the smaller is returned; otherwise the composed RDP curve is converted. Events that use up
    delta themselves (:class:`ApproxZCDPEvent`) leave ``delta - delta_of(events)`` for the
    conversion.

    Raises:
        ConfigError: If the events use up all of ``delta``.
    """
    if not events:
        return 0.0, CONVERSION_ZCDP
    used = delta_of(events)
    rest = delta - used
    if not rest > 0:
        raise ConfigError(f"the thresholded steps use delta {used:.3g}, all of the delta {delta:.3g}")
    suffix = f"; plus delta {used:.3g} used by thresholded histograms" if used > 0 else ""
    eps_rdp, _ = rdp_to_epsilon(DEFAULT_ORDERS, rdp_of(events), rest)
    if all_finite(events):
        eps_z = zcdp_to_epsilon(math.fsum(ev.rho for ev in events), rest)
        if eps_z <= eps_rdp:
            return eps_z, CONVERSION_ZCDP + suffix
    return eps_rdp, CONVERSION_RDP + suffix
