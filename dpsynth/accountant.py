"""The privacy accountant: the one mutable object, an append-only ledger of charged events.

Every mechanism calls :meth:`Accountant.charge` *before* it reads private data; a charge that
would exceed the budget raises :class:`~dpsynth.errors.BudgetExceededError` and leaves the
ledger unchanged. zCDP events compose by adding rho (``math.fsum``, with 1e-12 relative slack
so a budget split into parts can be spent exactly). Subsampled-Gaussian (DP-SGD) events have no
finite rho; once one is in the ledger, composition is done on RDP curves and an ApproxDP budget
is checked as "the would-be epsilon at the budget's delta does not exceed its epsilon".

With ``ledger_path`` the ledger is persistent (JSON lines). Prior entries count against the
``lifetime`` cap; each charge is appended and fsync'ed *before* ``charge`` returns (write-ahead),
under an exclusive ``flock``, so neither a crash nor a concurrent run can cause a silent
double spend.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dpsynth.budget import (
    ZCDP,
    ApproxDP,
    Budget,
    PureDP,
    budget_from_json,
    to_rho,
)
from dpsynth.errors import BudgetExceededError, ConfigError
from dpsynth.events import (
    Event,
    GaussianEvent,
    NoisyMaxEvent,
    SubsampledGaussianEvent,
    ZCDPEvent,
    all_finite,
    epsilon_of,
    event_from_json,
    rdp_of,
)
from dpsynth.rdp import DEFAULT_ORDERS, rdp_to_epsilon, zcdp_room

__all__ = ["Accountant", "LedgerEntry"]

logger = logging.getLogger(__name__)

_SLACK = 1e-12  # relative slack on the budget, so exactly-split budgets can be fully spent
_EVENT_TYPES = (GaussianEvent, NoisyMaxEvent, ZCDPEvent, SubsampledGaussianEvent)


@dataclass(frozen=True)
class LedgerEntry:
    """One charged event.

    Attributes:
        index: Position in the ledger (in the ledger file, when persistent).
        event: The event charged.
        rho: Its zCDP cost (``inf`` for a subsampled Gaussian, which has none).
        time: When it was charged (UTC).
        session: Id of the accountant that charged it.
    """

    index: int
    event: Event
    rho: float
    time: datetime
    session: str = ""

    def to_json(self) -> dict[str, Any]:
        """Serialise as a JSON-ready dict (an infinite rho is written as ``null``)."""
        return {
            "index": self.index,
            "time": self.time.isoformat(),
            "rho": self.rho if math.isfinite(self.rho) else None,
            "label": self.event.label,
            "event": self.event.to_json(),
            "session": self.session,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LedgerEntry:
        """Rebuild an entry from :meth:`to_json` (the cost is recomputed from the event)."""
        event = event_from_json(data["event"])
        time = datetime.fromisoformat(str(data["time"]))
        return cls(int(data["index"]), event, event.rho, time, str(data.get("session", "")))


def _needs_delta(budget: Budget) -> float | None:
    return budget.delta if isinstance(budget, ApproxDP) else None


class _Cap:
    """One budget constraint (the run's budget or the lifetime cap) and its arithmetic."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.total_rho = to_rho(budget)

    def remaining_rho(self, spent: Sequence[Event]) -> float:
        """Largest extra rho that still fits after ``spent``."""
        if all_finite(spent):
            return max(0.0, self.total_rho - math.fsum(ev.rho for ev in spent))
        if not isinstance(self.budget, ApproxDP):
            return 0.0
        b = self.budget
        return zcdp_room(DEFAULT_ORDERS, rdp_of(spent), b.epsilon, b.delta)

    def refusal(self, spent: Sequence[Event], event: Event, what: str) -> str | None:
        """``None`` if ``event`` fits after ``spent``; otherwise the reason it does not."""
        events = [*spent, event]
        label = f" (label {event.label!r})" if event.label else ""
        if all_finite(events):
            if math.fsum(ev.rho for ev in events) <= self.total_rho * (1.0 + _SLACK):
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
        eps, _ = rdp_to_epsilon(DEFAULT_ORDERS, rdp_of(events), self.budget.delta)
        if eps <= self.budget.epsilon * (1.0 + _SLACK):
            return None
        return (
            f"requested {type(event).__name__} would bring epsilon to {eps:.6g} at "
            f"delta={self.budget.delta:g}, over the {what} epsilon={self.budget.epsilon:g}{label}"
        )


class Accountant:
    """Charges privacy events against a budget, before any measurement, append-only.

    Args:
        budget: This run's budget.
        ledger_path: A JSON-lines ledger file to read at start and write ahead to.
        lifetime: Cap on everything ever charged to ``ledger_path`` (default: ``budget``).
    """

    def __init__(
        self,
        budget: Budget,
        *,
        ledger_path: Path | None = None,
        lifetime: Budget | None = None,
    ) -> None:
        self._setup(budget, ledger_path, lifetime, uuid.uuid4().hex)

    def _setup(
        self, budget: Budget, ledger_path: Path | None, lifetime: Budget | None, session: str
    ) -> None:
        if not isinstance(budget, (PureDP, ApproxDP, ZCDP)):
            raise ConfigError(f"budget ({type(budget).__name__}) must be PureDP, ApproxDP or ZCDP")
        if lifetime is not None and not isinstance(lifetime, (PureDP, ApproxDP, ZCDP)):
            raise ConfigError(f"lifetime ({type(lifetime).__name__}) must be ApproxDP or ZCDP")
        self._budget: Budget = budget
        self._lifetime: Budget = budget if lifetime is None else lifetime
        self._cap = _Cap(budget)
        self._life_cap = self._cap if lifetime is None else _Cap(lifetime)
        self._session = session
        self._path = None if ledger_path is None else Path(ledger_path)
        self._entries: list[LedgerEntry] = []
        self._prior: list[LedgerEntry] = []
        self._next_index = 0
        if self._path is not None:
            with self._locked() as fd:
                self._load(fd)

    # ----------------------------------------------------------------- persistent ledger
    def _locked(self) -> _Lock:
        assert self._path is not None
        return _Lock(self._path)

    def _load(self, fd: int) -> None:
        """(Re)read the ledger file: entries of this session are ours, the rest are prior."""
        assert self._path is not None
        data = _read_all(fd)
        if data and not data.endswith(b"\n"):
            # A write torn by a crash: its charge() never returned, nothing was measured.
            keep = data.rfind(b"\n") + 1
            logger.warning("ledger %s: dropping a torn final line (incomplete write)", self._path)
            os.ftruncate(fd, keep)
            os.fsync(fd)
            data = data[:keep]
        own: list[LedgerEntry] = []
        prior: list[LedgerEntry] = []
        for lineno, line in enumerate(data.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = LedgerEntry.from_json(json.loads(line))
            except (ValueError, KeyError, TypeError, ConfigError) as exc:
                raise ConfigError(
                    f"ledger {self._path} line {lineno} is not a valid ledger entry"
                ) from exc
            (own if entry.session == self._session else prior).append(entry)
        if len(own) < len(self._entries):
            raise ConfigError(
                f"ledger {self._path} lost entries of this run (truncated or replaced); "
                "refusing to continue"
            )
        self._entries, self._prior = own, prior
        self._next_index = len(own) + len(prior)

    # ----------------------------------------------------------------------- charging
    def _refusal(self, event: Event) -> str | None:
        session = [e.event for e in self._entries]
        reason = self._cap.refusal(session, event, "budget")
        if reason is None and (self._path is not None or self._life_cap is not self._cap):
            everything = [e.event for e in self._prior] + session
            reason = self._life_cap.refusal(everything, event, "lifetime")
        return reason

    def can_afford(self, event: Event) -> bool:
        """Whether :meth:`charge` would accept ``event`` now (nothing is recorded)."""
        _check_event(event)
        if self._path is not None:
            with self._locked() as fd:
                self._load(fd)
        return self._refusal(event) is None

    def charge(self, event: Event) -> None:
        """Record ``event``, or refuse it before anything is measured.

        With a persistent ledger, the entry is appended and fsync'ed before this returns.

        Raises:
            BudgetExceededError: If the event does not fit; the ledger is left unchanged.
        """
        _check_event(event)
        if self._path is None:
            self._commit(event, None)
            return
        with self._locked() as fd:
            self._load(fd)  # see charges made by other processes since we last looked
            self._commit(event, fd)

    def _commit(self, event: Event, fd: int | None) -> None:
        reason = self._refusal(event)
        if reason is not None:
            raise BudgetExceededError(f"{reason}; nothing was measured")
        entry = LedgerEntry(self._next_index, event, event.rho, datetime.now(UTC), self._session)
        if fd is not None:
            line = json.dumps(entry.to_json(), sort_keys=True, allow_nan=False) + "\n"
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        self._entries.append(entry)
        self._next_index += 1
        logger.info("charged %s rho=%.6g (%s)", type(event).__name__, event.rho, event.label)

    # -------------------------------------------------------------------- inspection
    @property
    def budget(self) -> Budget:
        """This run's budget."""
        return self._budget

    @property
    def lifetime(self) -> Budget:
        """The lifetime cap over the persistent ledger."""
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
        """rho charged to the persistent ledger by earlier runs."""
        return math.fsum(e.rho for e in self._prior)

    @property
    def remaining_rho(self) -> float:
        """Largest rho a next event may cost (under both the budget and the lifetime cap)."""
        session = [e.event for e in self._entries]
        rem = self._cap.remaining_rho(session)
        if self._path is not None or self._life_cap is not self._cap:
            rem = min(rem, self._life_cap.remaining_rho([e.event for e in self._prior] + session))
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
        """Entries read from the persistent ledger that earlier runs charged."""
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
        """Epsilon of everything in the persistent ledger (prior runs and this one)."""
        events = [e.event for e in self._prior] + [e.event for e in self._entries]
        return epsilon_of(events, self._delta(delta))[0]

    def statement(self, delta: float | None = None) -> dict[str, Any]:
        """A machine-readable statement of this run's guarantee and its ledger."""
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
        return {
            "epsilon": eps,
            "delta": d,
            "rho": rho if math.isfinite(rho) else None,
            "conversion": conversion,
            "budget": self._budget.to_json(),
            "lifetime": self._lifetime.to_json(),
            "prior_rho": self.prior_rho if math.isfinite(self.prior_rho) else None,
            "ledger": [e.to_json() for e in self._entries],
        }

    # ----------------------------------------------------------------- serialisation
    def to_json(self) -> dict[str, Any]:
        """Serialise the accountant (budget, caps, session and ledger)."""
        return {
            "budget": self._budget.to_json(),
            "lifetime": self._lifetime.to_json(),
            "ledger_path": None if self._path is None else str(self._path),
            "session": self._session,
            "ledger": [e.to_json() for e in self._entries],
            "prior_ledger": [e.to_json() for e in self._prior],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Accountant:
        """Rebuild an accountant; with a ledger path, its file is re-read (it is authoritative)."""
        self = cls.__new__(cls)
        path = data.get("ledger_path")
        self._setup(
            budget_from_json(data["budget"]),
            None if path is None else Path(path),
            budget_from_json(data["lifetime"]),
            str(data.get("session") or uuid.uuid4().hex),
        )
        if path is None:
            self._entries = [LedgerEntry.from_json(d) for d in data.get("ledger", [])]
            self._prior = [LedgerEntry.from_json(d) for d in data.get("prior_ledger", [])]
            self._next_index = len(self._entries) + len(self._prior)
        return self


def _check_event(event: object) -> None:
    if not isinstance(event, _EVENT_TYPES):
        raise ConfigError(f"event ({type(event).__name__}) must be a dpsynth.events event")


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


class _Lock:
    """Open the ledger file for appending and hold an exclusive ``flock`` on it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> int:
        created = not self.path.exists()
        self.fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        if created:  # make the new directory entry durable too
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self.fd

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
