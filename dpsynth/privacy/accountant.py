"""The privacy accountant: the one mutable object, an append-only ledger of charged events.

Every mechanism calls :meth:`Accountant.charge` *before* it reads private data; a charge that
would exceed the budget raises :class:`~dpsynth.errors.BudgetExceededError` and leaves the
ledger unchanged. zCDP events compose by adding rho (``math.fsum``, with 1e-12 relative slack
so a budget split into parts can be spent exactly). Subsampled-Gaussian (DP-SGD) events have no
finite rho; once one is in the ledger, composition is done on RDP curves and an ApproxDP budget
is checked as "the would-be epsilon at the budget's delta does not exceed its epsilon".

With ``ledger_path`` the ledger is persistent (:mod:`dpsynth.privacy.ledger`). All or nothing: the
accountant first *reserves* its whole budget under the lifetime cap stored in the ledger (or
refuses, writing nothing); each charge is then appended and fsync'ed *before* ``charge``
returns (write-ahead), under an exclusive ``flock``; :meth:`Accountant.commit` ends the run
and :meth:`Accountant.abort` ends a failed one. A reservation never ended counts as spent, so
neither a crash nor a concurrent run can cause a silent double spend.
"""

from __future__ import annotations

import logging
import math
import os
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dpsynth.errors import BudgetExceededError, ConfigError, DPSynthError
from dpsynth.privacy.budget import (
    ZCDP,
    ApproxDP,
    Budget,
    PureDP,
    budget_from_json,
)
from dpsynth.privacy.cap import BudgetCap
from dpsynth.privacy.events import (
    ApproxZCDPEvent,
    Event,
    GaussianEvent,
    NoisyMaxEvent,
    SubsampledGaussianEvent,
    ZCDPEvent,
    epsilon_of,
)
from dpsynth.privacy.ledger import (
    FORMAT,
    LedgerEntry,
    LedgerLock,
    LedgerState,
    budget_text,
    cap_record,
    same_budget,
)
from dpsynth.privacy.spend import ChargedStep, PrivacySpend

__all__ = ["Accountant", "LedgerEntry"]

logger = logging.getLogger(__name__)

_EVENT_TYPES = (GaussianEvent, NoisyMaxEvent, ZCDPEvent, ApproxZCDPEvent, SubsampledGaussianEvent)


def _needs_delta(budget: Budget) -> float | None:
    return budget.delta if isinstance(budget, ApproxDP) else None


class Accountant:
    """Charges privacy events against a budget, before any measurement, append-only.

    Args:
        budget: This run's budget.
        ledger_path: A JSON-lines ledger file (:mod:`dpsynth.privacy.ledger`): the whole ``budget`` is
            reserved in it now, or :class:`~dpsynth.errors.BudgetExceededError` is raised and
            the file is left byte-identical (not created, if it did not exist).
        lifetime: Cap on everything ever spent from ``ledger_path``. Stored when the ledger is
            created (default: ``budget``); later it must be omitted or equal to the stored
            cap (:class:`~dpsynth.errors.ConfigError` otherwise).
        label: What the run is, recorded with its reservation (``fit``, ``release -> DIR``).
    """

    def __init__(
        self,
        budget: Budget,
        *,
        ledger_path: Path | None = None,
        lifetime: Budget | None = None,
        label: str = "run",
    ) -> None:
        self._setup(budget, ledger_path, lifetime, uuid.uuid4().hex, label)

    def _setup(
        self,
        budget: Budget,
        ledger_path: Path | None,
        lifetime: Budget | None,
        session: str,
        label: str = "run",
    ) -> None:
        if not isinstance(budget, (PureDP, ApproxDP, ZCDP)):
            raise ConfigError(f"budget ({type(budget).__name__}) must be PureDP, ApproxDP or ZCDP")
        if lifetime is not None and not isinstance(lifetime, (PureDP, ApproxDP, ZCDP)):
            raise ConfigError(f"lifetime ({type(lifetime).__name__}) must be ApproxDP or ZCDP")
        self._budget: Budget = budget
        self._lifetime: Budget = budget if lifetime is None else lifetime
        self._cap = BudgetCap(budget)
        self._life_cap = self._cap if lifetime is None else BudgetCap(lifetime)
        self._session = session
        self._label = label
        self._path = None if ledger_path is None else Path(ledger_path)
        self._entries: list[LedgerEntry] = []
        self._prior: list[LedgerEntry] = []
        self._others: list[Event] = []  # what other runs count against the lifetime cap
        self._next_index = 0
        self._own_records = 0
        self._ended: str | None = None
        if self._path is not None:
            self._reserve(self._path, lifetime)

    # ----------------------------------------------------------------- persistent ledger
    def _reservation(self) -> ZCDPEvent:
        return ZCDPEvent(self._cap.total_rho, label=f"reservation of run {self._session}")

    def _reserve(self, path: Path, lifetime: Budget | None) -> None:
        """Reserve this run's whole budget under the lifetime cap, or refuse writing nothing."""
        if not path.exists():  # a new ledger: refuse without creating the file
            first = BudgetCap(self._budget if lifetime is None else lifetime)
            reason = first.refusal([], self._reservation(), "lifetime")
            if reason is not None:
                raise BudgetExceededError(f"{reason}; nothing was measured or reserved "
                                          f"(ledger {path} not created)")
        with LedgerLock(path) as lock:
            state = lock.state()
            stored = state.cap
            if stored is not None and lifetime is not None and not same_budget(stored, lifetime):
                raise ConfigError(
                    f"ledger {path} has the lifetime cap {budget_text(stored)}, stored when it "
                    f"was created; a different cap ({budget_text(lifetime)}) cannot be given "
                    "later: omit it, or raise the cap explicitly with `dpsynth ledger raise-cap`")
            cap = stored if stored is not None else (self._budget if lifetime is None else lifetime)
            self._lifetime, self._life_cap = cap, BudgetCap(cap)
            self._absorb(state)
            if state.run(self._session) is not None:  # the same run, restored: already reserved
                return
            reason = self._life_cap.refusal(self._others, self._reservation(), "lifetime")
            if reason is not None:
                raise BudgetExceededError(f"{reason}; nothing was measured or reserved "
                                          f"(ledger {path} unchanged)")
            records: list[dict[str, Any]] = []
            if stored is None:
                why = ("set at creation" if not state.runs
                       else "stored on first use of a format-1 ledger (no cap stored)")
                records.append(cap_record(cap, by=f"run {self._session}", reason=why))
            records.append({
                "type": "reserve", "format": FORMAT, "run": self._session,
                "time": datetime.now(UTC).isoformat(), "label": self._label,
                "budget": self._budget.to_json(), "rho": self._cap.total_rho, "pid": os.getpid(),
            })
            lock.append(state, *records)
            self._own_records = 1

    def _absorb(self, state: LedgerState) -> None:
        """Take the file's view: this run's steps are ours, the other runs count as prior."""
        if state.own_records(self._session) < self._own_records:
            raise ConfigError(
                f"ledger {state.path} lost entries of this run (truncated or replaced); "
                "refusing to continue"
            )
        own = state.run(self._session)
        self._entries = [] if own is None else list(own.steps)
        self._prior = [e for r in state.runs if r.run != self._session for e in r.steps]
        self._others = state.counted(exclude=self._session)
        self._next_index = state.n_charges
        self._own_records = state.own_records(self._session)

    # ----------------------------------------------------------------------- charging
    def _refusal(self, event: Event) -> str | None:
        session = [e.event for e in self._entries]
        reason = self._cap.refusal(session, event, "budget")
        if reason is None and (self._path is not None or self._life_cap is not self._cap):
            reason = self._life_cap.refusal(self._others + session, event, "lifetime")
        return reason

    def can_afford(self, event: Event) -> bool:
        """Whether :meth:`charge` would accept ``event`` now (nothing is recorded)."""
        _check_event(event)
        if self._path is not None:
            with LedgerLock(self._path) as lock:
                self._absorb(lock.state())
        return self._ended is None and self._refusal(event) is None

    def charge(self, event: Event) -> None:
        """Record ``event``, or refuse it before anything is measured.

        With a persistent ledger, the entry is appended and fsync'ed before this returns.

        Raises:
            BudgetExceededError: If the event does not fit; the ledger is left unchanged.
            ConfigError: If this run has already ended (:meth:`commit` / :meth:`abort`).
        """
        _check_event(event)
        if self._ended is not None:
            raise ConfigError(f"run {self._session} has ended ({self._ended}); "
                              "a new run needs a new accountant")
        if self._path is None:
            self._commit(event, None)
            return
        with LedgerLock(self._path) as lock:
            state = lock.state()
            self._absorb(state)  # see what other processes wrote since we last looked
            self._commit(event, (lock, state))

    def _commit(self, event: Event, sink: tuple[LedgerLock, LedgerState] | None) -> None:
        reason = self._refusal(event)
        if reason is not None:
            raise BudgetExceededError(f"{reason}; nothing was measured")
        entry = LedgerEntry(self._next_index, event, event.rho, datetime.now(UTC), self._session)
        if sink is not None:
            sink[0].append(sink[1], {"type": "charge", "run": self._session, **entry.to_json()})
            self._own_records += 1
        self._entries.append(entry)
        self._next_index += 1
        logger.info("charged %s rho=%.6g (%s)", type(event).__name__, event.rho, event.label)

    def commit(self) -> None:
        """End the run: its charged steps are what it spent; the rest of its reservation returns.

        Idempotent; a no-op without a persistent ledger (except that the run is over).
        """
        self._end("committed")

    def abort(self) -> None:
        """End a failed run, never masking the failure that caused it.

        Nothing charged (so nothing read): the reservation is returned (``released``).
        Otherwise the whole reservation stays spent (``failed``). If the ledger cannot be
        written, the reservation stays open, which also counts as spent.
        """
        try:
            self._end("failed")
        except (OSError, DPSynthError) as exc:
            logger.warning("ledger %s: could not end run %s (%s); its reservation counts as spent",
                           self._path, self._session, exc)

    def _end(self, status: str) -> None:
        if self._ended is not None:
            return
        if self._path is not None:
            with LedgerLock(self._path) as lock:
                state = lock.state()
                self._absorb(state)
                if status == "failed" and not self._entries:
                    status = "released"
                spent = self.spent_rho
                lock.append(state, {
                    "type": "end", "run": self._session, "time": datetime.now(UTC).isoformat(),
                    "status": status, "steps": len(self._entries),
                    "spent_rho": spent if math.isfinite(spent) else None,
                })
        elif status == "failed" and not self._entries:
            status = "released"
        self._ended = status
        logger.info("run %s ended: %s", self._session, status)

    @property
    def run_id(self) -> str:
        """This run's id (the ``run`` of its ledger records)."""
        return self._session

    @property
    def ended(self) -> str | None:
        """``committed``, ``released`` or ``failed`` once the run has ended, else ``None``."""
        return self._ended

    # -------------------------------------------------------------------- inspection
    @property
    def budget(self) -> Budget:
        """This run's budget."""
        return self._budget

    @property
    def lifetime(self) -> Budget:
        """The lifetime cap over the persistent ledger (the stored one, with a ledger)."""
        return self._lifetime

    @property
    def total_rho(self) -> float:
        """rho allowed by this run's budget."""
        return self._cap.total_rho

    @property
    def spent_rho(self) -> float:
        """rho charged in this run (``inf`` once a subsampled Gaussian is charged)."""
        return math.fsum(e.rho for e in self._entries)

    @property
    def prior_rho(self) -> float:
        """rho other runs count against the lifetime cap (open reservations in full)."""
        return math.fsum(ev.rho for ev in self._others)

    @property
    def remaining_rho(self) -> float:
        """Largest rho a next event may cost (under both the budget and the lifetime cap)."""
        return self.room(0.0)

    def room(self, extra_delta: float) -> float:
        """Largest rho still spendable if thresholded steps will use ``extra_delta`` more of delta."""
        session = [e.event for e in self._entries]
        rem = self._cap.remaining_rho(session, extra_delta)
        if self._path is not None or self._life_cap is not self._cap:
            rem = min(rem, self._life_cap.remaining_rho(self._others + session, extra_delta))
        return rem

    def remaining_split(self, parts: int | Sequence[float]) -> tuple[float, ...]:
        """Split the remaining rho into parts (summing to at most it) by count or weights."""
        rem = self.remaining_rho
        if rem <= 0:
            raise BudgetExceededError("requested a split of the remaining rho=0")
        return tuple(z.rho for z in ZCDP(rem).split(parts))

    @property
    def ledger(self) -> tuple[LedgerEntry, ...]:
        """Entries charged in this run, in order."""
        return tuple(self._entries)

    @property
    def prior_ledger(self) -> tuple[LedgerEntry, ...]:
        """Entries read from the persistent ledger that other runs charged."""
        return tuple(self._prior)

    def _delta(self, delta: float | None) -> float:
        if delta is not None:
            return delta
        found = _needs_delta(self._budget) or _needs_delta(self._lifetime)
        if found is None:
            raise ConfigError("delta is required: the budget is not an ApproxDP budget")
        return found

    def epsilon(self, delta: float | None = None) -> float:
        """Epsilon of this run's spend at ``delta`` (default: the budget's delta).

        Only zCDP events: the tight zCDP conversion (or the RDP one if smaller). With
        subsampled events: all RDP curves are composed and converted.
        """
        return epsilon_of([e.event for e in self._entries], self._delta(delta))[0]

    def lifetime_epsilon(self, delta: float | None = None) -> float:
        """Epsilon of everything counted in the persistent ledger (other runs and this one)."""
        events = self._others + [e.event for e in self._entries]
        return epsilon_of(events, self._delta(delta))[0]

    def spend(self, delta: float | None = None) -> PrivacySpend:
        """What this run spent: the guarantee (epsilon at ``delta``, rho) and its charged steps."""
        events = [e.event for e in self._entries]
        d = (
            delta
            if delta is not None
            else (_needs_delta(self._budget) or _needs_delta(self._lifetime))
        )
        eps: float | None = None
        conversion: str | None = None
        if d is not None:
            eps, conversion = epsilon_of(events, d)
        rho = self.spent_rho
        prior = self.prior_rho
        return PrivacySpend(
            epsilon=eps, delta=d, rho=rho if math.isfinite(rho) else None, conversion=conversion,
            ledger=tuple(ChargedStep(e.index, e.event, e.rho if math.isfinite(e.rho) else None)
                         for e in self._entries),
            budget=self._budget, lifetime=self._lifetime,
            prior_rho=prior if math.isfinite(prior) else None,
        )

    # ----------------------------------------------------------------- serialisation
    def to_json(self) -> dict[str, Any]:
        """Serialise the accountant (budget, caps, session and ledger)."""
        return {
            "budget": self._budget.to_json(),
            "lifetime": self._lifetime.to_json(),
            "ledger_path": None if self._path is None else str(self._path),
            "session": self._session,
            "label": self._label,
            "ended": self._ended,
            "ledger": [e.to_json() for e in self._entries],
            "prior_ledger": [e.to_json() for e in self._prior],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Accountant:
        """Rebuild an accountant; with a ledger path, its file is re-read (it is authoritative).

        The same run (session) keeps its reservation; the cap is the one stored in the file.
        """
        self = cls.__new__(cls)
        path = data.get("ledger_path")
        self._setup(
            budget_from_json(data["budget"]),
            None if path is None else Path(path),
            budget_from_json(data["lifetime"]) if path is None else None,
            str(data.get("session") or uuid.uuid4().hex),
            str(data.get("label") or "run"),
        )
        self._ended = data.get("ended")
        if path is None:
            self._entries = [LedgerEntry.from_json(d) for d in data.get("ledger", [])]
            self._prior = [LedgerEntry.from_json(d) for d in data.get("prior_ledger", [])]
            self._next_index = len(self._entries) + len(self._prior)
        return self


def _check_event(event: object) -> None:
    if not isinstance(event, _EVENT_TYPES):
        raise ConfigError(f"event ({type(event).__name__}) must be a dpsynth.privacy.events event")
