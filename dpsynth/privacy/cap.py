"""One budget constraint and its arithmetic: how much room is left and why a charge does not fit.

An :class:`~dpsynth.privacy.accountant.Accountant` holds two caps, its run's budget and the
lifetime cap of its ledger file, and charges an event only when both say it fits. zCDP events
compose by adding rho; once a subsampled Gaussian (no finite rho) is spent, an ApproxDP cap is
checked on the RDP curve instead. Thresholded steps (:class:`~dpsynth.privacy.events.ApproxZCDPEvent`)
use up part of an ApproxDP cap's delta, so the rho that fits is computed at what is left.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from dpsynth.privacy.budget import ApproxDP, Budget, epsilon_to_rho, to_rho
from dpsynth.privacy.events import Event, all_finite, delta_of, rdp_of
from dpsynth.privacy.rdp import DEFAULT_ORDERS, rdp_to_epsilon, zcdp_room

__all__ = ["SLACK", "BudgetCap"]

#: Relative slack on a budget, so a budget split exactly into parts can be spent in full.
SLACK = 1e-12


class BudgetCap:
    """One budget constraint (the run's budget or the lifetime cap) and its arithmetic."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.total_rho = to_rho(budget)

    def _rho_cap(self, used_delta: float) -> float:
        """The rho this cap allows once ``used_delta`` of its delta is used up by thresholds."""
        if used_delta <= 0:
            return self.total_rho
        if not isinstance(self.budget, ApproxDP) or used_delta >= self.budget.delta:
            return 0.0
        return epsilon_to_rho(self.budget.epsilon, self.budget.delta - used_delta)

    def remaining_rho(self, spent: Sequence[Event], extra_delta: float = 0.0) -> float:
        """Largest extra rho that still fits after ``spent`` (and ``extra_delta`` more used by thresholds)."""
        used = delta_of(spent) + extra_delta
        if all_finite(spent):
            return max(0.0, self._rho_cap(used) - math.fsum(ev.rho for ev in spent))
        if not isinstance(self.budget, ApproxDP):
            return 0.0
        b = self.budget
        rest = b.delta - used
        return zcdp_room(DEFAULT_ORDERS, rdp_of(spent), b.epsilon, rest) if rest > 0 else 0.0

    def refusal(self, spent: Sequence[Event], event: Event, what: str) -> str | None:
        """``None`` if ``event`` fits after ``spent``; otherwise the reason it does not."""
        events = [*spent, event]
        label = f" (label {event.label!r})" if event.label else ""
        used = delta_of(events)
        if used > 0 and not isinstance(self.budget, ApproxDP):
            return (f"a thresholded step uses delta, so a {type(self.budget).__name__} {what} budget "
                    f"cannot cover it; use an ApproxDP budget{label}")
        if used > 0 and isinstance(self.budget, ApproxDP) and used >= self.budget.delta:
            return (f"thresholded steps would use delta {used:.3g}, all of the {what} "
                    f"delta={self.budget.delta:g}{label}")
        if all_finite(events):
            if math.fsum(ev.rho for ev in events) <= self._rho_cap(used) * (1.0 + SLACK):
                return None
            remaining = self.remaining_rho(spent)
            cap = "" if what == "budget" else f" under the {what} cap"
            return f"requested rho={event.rho:.6g}, remaining rho={remaining:.6g}{cap}{label}"
        if not isinstance(self.budget, ApproxDP):
            culprit = (
                type(event).__name__ if not math.isfinite(event.rho) else "an event in the ledger"
            )
            return (
                f"{culprit} has no finite zCDP cost, so a {type(self.budget).__name__} {what} "
                f"budget cannot cover it; use an ApproxDP budget{label}"
            )
        eps, _ = rdp_to_epsilon(DEFAULT_ORDERS, rdp_of(events), self.budget.delta - used)
        if eps <= self.budget.epsilon * (1.0 + SLACK):
            return None
        return (
            f"requested {type(event).__name__} would bring epsilon to {eps:.6g} at "
            f"delta={self.budget.delta:g}, over the {what} epsilon={self.budget.epsilon:g}{label}"
        )
