"""What one fit spent, as a typed value: the accountant's answer to "what does this release cost?".

:meth:`dpsynth.privacy.accountant.Accountant.spend` builds a :class:`PrivacySpend` at the end of a
fit; the API attaches the unit of privacy and the caveats; the manifest, the CLI and a saved
model read its attributes. Its ledger holds :class:`ChargedStep` values, the public part of a
ledger entry: the event and its cost, never the time it was charged (the gaps between charge
times track counting time, which grows with the private number of rows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from dpsynth.errors import ConfigError
from dpsynth.privacy.budget import Budget, budget_from_json
from dpsynth.privacy.events import Event, event_from_json

__all__ = ["NEIGHBOURING", "ChargedStep", "PrivacySpend"]

#: The neighbouring relation every dpsynth guarantee is about.
NEIGHBOURING = "add/remove one unit of privacy"


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class ChargedStep:
    """One charged event as it may be published.

    Attributes:
        index: Position among the charges.
        event: The event charged.
        rho: Its zCDP cost (``None`` for a subsampled Gaussian, which has none).
    """

    index: int
    event: Event
    rho: float | None

    @property
    def label(self) -> str:
        """What the step measured (the event's label)."""
        return self.event.label

    def to_json(self) -> dict[str, Any]:
        """``{index, label, rho, event}``, the manifest's ledger entry."""
        return {"index": self.index, "label": self.label, "rho": self.rho, "event": self.event.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChargedStep:
        """Inverse of :meth:`to_json`; extra keys (such as an old ``time``) are ignored."""
        try:
            event = event_from_json(data["event"])
            return cls(int(data["index"]), event, _finite_or_none(event.rho))
        except (KeyError, TypeError, ValueError):
            raise ConfigError("privacy ledger: an entry is missing or malformed") from None


@dataclass(frozen=True, kw_only=True)
class PrivacySpend:
    """The guarantee one fit obtained and the charges it is made of.

    Attributes:
        epsilon: The (epsilon, delta)-DP epsilon of everything charged (``None`` without a delta).
        delta: The delta of that conversion.
        rho: The zCDP cost (``None`` once a DP-SGD step, which has no finite rho, was charged).
        conversion: How epsilon was obtained from the charges.
        ledger: The charged steps, in order.
        budget: The run's budget (``None`` for a fit that read no data).
        lifetime: The lifetime cap of the ledger file, or the budget when there is no file.
        prior_rho: What earlier runs of the same ledger file spent.
        unit: The unit of privacy, in words.
        caveats: Plain-language caveats every statement of this guarantee must carry.
        neighbouring: The neighbouring relation.
    """

    epsilon: float | None
    delta: float | None
    rho: float | None
    conversion: str | None
    ledger: tuple[ChargedStep, ...] = ()
    budget: Budget | None = None
    lifetime: Budget | None = None
    prior_rho: float | None = None
    unit: str = "one row"
    caveats: tuple[str, ...] = ()
    neighbouring: str = NEIGHBOURING

    @classmethod
    def nothing_read(cls, unit: str, caveats: Sequence[str] = ()) -> PrivacySpend:
        """The spend of a fit that read no private data."""
        return cls(epsilon=0.0, delta=0.0, rho=0.0, conversion="none (no private data read)",
                   unit=unit, caveats=tuple(caveats))

    def with_context(self, *, unit: str, caveats: Sequence[str]) -> PrivacySpend:
        """The same spend with the unit of privacy and the caveats attached."""
        return replace(self, unit=unit, caveats=tuple(caveats))

    def published(self) -> PrivacySpend:
        """The spend without the operational facts a manifest does not publish either: the
        ledger's lifetime cap and what earlier runs of the same ledger spent."""
        return replace(self, lifetime=None, prior_rho=None)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (saved with a model)."""
        return {
            "epsilon": self.epsilon, "delta": self.delta, "rho": self.rho,
            "conversion": self.conversion,
            "budget": None if self.budget is None else self.budget.to_json(),
            "lifetime": None if self.lifetime is None else self.lifetime.to_json(),
            "prior_rho": self.prior_rho,
            "ledger": [s.to_json() for s in self.ledger],
            "unit": self.unit, "caveats": list(self.caveats), "neighbouring": self.neighbouring,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PrivacySpend:
        """Inverse of :meth:`to_json` (also reads models saved before this type existed)."""
        def opt(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        try:
            return cls(
                epsilon=opt("epsilon"), delta=opt("delta"), rho=opt("rho"),
                conversion=None if data.get("conversion") is None else str(data["conversion"]),
                ledger=tuple(ChargedStep.from_json(e) for e in data.get("ledger", [])),
                budget=budget_from_json(data["budget"]) if data.get("budget") else None,
                lifetime=budget_from_json(data["lifetime"]) if data.get("lifetime") else None,
                prior_rho=opt("prior_rho"), unit=str(data.get("unit", "one row")),
                caveats=tuple(str(c) for c in data.get("caveats", [])),
                neighbouring=str(data.get("neighbouring", NEIGHBOURING)),
            )
        except (TypeError, ValueError):
            raise ConfigError("privacy spend: a field is missing or malformed") from None
