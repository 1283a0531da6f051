"""The lifetime ledger file: its record format, its lock, and what it says has been spent.

A ledger is an append-only JSON-lines file, one record per line, each with a ``type``:

- ``cap``: the lifetime cap, written once when the ledger is created (budget and delta).
- ``raise-cap``: an explicit raise of the cap (``dpsynth ledger raise-cap``): who, when, why.
- ``reserve``: a run reserves its whole budget (run id, time, label, budget, rho) before it
  reads anything; it is written only if the cap covers it, so a refused run writes nothing.
- ``charge``: one step of a run, written ahead of the read it pays for.
- ``end``: how a run ended: ``committed`` (its steps are what it spent), ``released`` (it
  failed before any private read; the reservation is returned) or ``failed`` (it failed after
  a read; the whole reservation stays spent).

A reservation without an ``end`` (a run still going, or killed) counts as fully spent.
Lines without ``type`` are charges written by dpsynth before reservations existed (format 1);
they are read as committed steps of the run named by their ``session``.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from dpsynth.errors import ConfigError
from dpsynth.privacy.budget import ZCDP, ApproxDP, Budget, PureDP, budget_from_json, to_rho
from dpsynth.privacy.events import Event, ZCDPEvent, event_from_json

__all__ = [
    "FORMAT",
    "CapChange",
    "LedgerEntry",
    "LedgerLock",
    "LedgerState",
    "RunRecord",
    "budget_text",
    "cap_record",
    "raise_cap",
    "read_state",
    "record_line",
    "same_budget",
]

FORMAT = 2


@dataclass(frozen=True)
class LedgerEntry:
    """One charged event.

    Attributes:
        index: Position among the charges (in the ledger file, when persistent).
        event: The event charged.
        rho: Its zCDP cost (``inf`` for a subsampled Gaussian, which has none).
        time: When it was charged (UTC).
        session: Id of the run (accountant) that charged it.
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


@dataclass(frozen=True)
class CapChange:
    """The lifetime cap being set (at creation) or raised."""

    time: datetime
    cap: Budget
    previous: Budget | None
    by: str
    reason: str


@dataclass(frozen=True)
class RunRecord:
    """One run as the ledger knows it.

    Attributes:
        run: The run id.
        label: What the run was (``fit``, ``release -> DIR``, ...).
        time: When it reserved (or first charged, for format-1 runs).
        budget: The budget it reserved (``None`` for format-1 runs).
        reserved_rho: The rho it reserved (``None`` for format-1 runs).
        status: ``reserved`` (no end record), ``committed``, ``released``, ``failed``,
            or ``legacy`` (format 1: no reservation, its steps are its spend).
        steps: Its charges, in order.
        ended: When its end record was written.
        pid: The process that reserved.
    """

    run: str
    label: str
    time: datetime
    budget: Budget | None
    reserved_rho: float | None
    status: str
    steps: tuple[LedgerEntry, ...] = ()
    ended: datetime | None = None
    pid: int | None = None

    @property
    def spent_rho(self) -> float:
        """rho of its steps (``inf`` with a subsampled Gaussian)."""
        return math.fsum(e.rho for e in self.steps)

    def counted(self) -> list[Event]:
        """The events this run counts against the lifetime cap.

        Committed and format-1 runs count their steps. A run that never ended, or failed after
        a read, counts its steps plus the rest of its reservation, so it counts in full.
        """
        events = [e.event for e in self.steps]
        if self.status in ("committed", "legacy", "released") or self.reserved_rho is None:
            return events
        finite = math.fsum(e.rho for e in self.steps if math.isfinite(e.rho))
        rest = self.reserved_rho - finite
        if rest > 0:
            events.append(ZCDPEvent(rest, label=f"unspent reservation of run {self.run}"))
        return events

    def explain(self) -> str:
        """One line saying how this run counts."""
        when = self.time.isoformat(timespec="seconds")
        if self.status == "reserved":
            return (f"reserved by run {self.run} at {when}, never committed (still running, or "
                    "killed): counted as spent in full")
        if self.status == "failed":
            return f"run {self.run} failed after reading private data: its reservation counts as spent"
        if self.status == "released":
            return f"run {self.run} failed before any private read: reservation returned"
        if self.status == "legacy":
            return f"run {self.run} (format-1 ledger, no reservation): its charges count"
        return f"run {self.run} committed: its {len(self.steps)} charged steps count"


@dataclass(frozen=True)
class LedgerState:
    """Everything a ledger file says: the cap and its history, and every run."""

    path: Path
    caps: tuple[CapChange, ...] = ()
    runs: tuple[RunRecord, ...] = ()
    n_charges: int = 0
    torn: int = -1  # byte offset of a torn final line, or -1
    legacy: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cap(self) -> Budget | None:
        """The lifetime cap in force (``None`` if the file never stored one)."""
        return self.caps[-1].cap if self.caps else None

    def run(self, run_id: str) -> RunRecord | None:
        """The record of ``run_id``, if any."""
        return next((r for r in self.runs if r.run == run_id), None)

    def counted(self, *, exclude: str | None = None) -> list[Event]:
        """Events counted against the cap by every run except ``exclude``."""
        return [ev for r in self.runs if r.run != exclude for ev in r.counted()]

    def own_records(self, run_id: str) -> int:
        """How many records (reservation + charges) the file holds for ``run_id``."""
        r = self.run(run_id)
        if r is None:
            return 0
        return len(r.steps) + (0 if r.status == "legacy" else 1)


def _budget_or_none(data: object) -> Budget | None:
    return budget_from_json(data) if isinstance(data, dict) else None


def budget_text(budget: Budget) -> str:
    """A budget as people write it: ``epsilon=1 (delta=1e-09)`` or ``rho=0.5``."""
    if isinstance(budget, ApproxDP):
        return f"epsilon={budget.epsilon:g} (delta={budget.delta:g})"
    if isinstance(budget, PureDP):
        return f"epsilon={budget.epsilon:g} (pure DP)"
    return f"rho={budget.rho:g}"


def same_budget(a: Budget, b: Budget) -> bool:
    """Whether two budgets are the same kind with the same parameters (relative 1e-12)."""
    ja, jb = a.to_json(), b.to_json()
    if ja.keys() != jb.keys():
        return False
    return all(
        ja[k] == jb[k] if isinstance(ja[k], str) or isinstance(jb[k], str)
        else math.isclose(float(ja[k]), float(jb[k]), rel_tol=1e-12)  # type: ignore[arg-type]
        for k in ja
    )


def record_line(record: dict[str, Any]) -> bytes:
    """One ledger record as a line of bytes."""
    return (json.dumps(record, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


def _time(data: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(data["time"]))


def parse(path: Path, data: bytes) -> LedgerState:
    """Parse a ledger file's bytes (a torn final line, from a killed write, is skipped).

    Raises:
        ConfigError: A complete line that is not a valid record (naming the file and line).
    """
    torn = -1
    if data and not data.endswith(b"\n"):
        torn = data.rfind(b"\n") + 1
        data = data[:torn]
    caps: list[CapChange] = []
    runs: dict[str, dict[str, Any]] = {}
    n_charges = 0
    legacy = False
    for lineno, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            kind = rec.get("type", "charge" if "event" in rec else None)
            if kind in ("cap", "raise-cap"):
                caps.append(CapChange(_time(rec), budget_from_json(rec["cap"]),
                                      _budget_or_none(rec.get("previous")), str(rec.get("by", "")),
                                      str(rec.get("reason", ""))))
            elif kind == "reserve":
                runs.setdefault(str(rec["run"]), {"steps": []}).update(
                    label=str(rec.get("label", "")), time=_time(rec), status="reserved",
                    budget=budget_from_json(rec["budget"]), rho=float(rec["rho"]),
                    pid=rec.get("pid"))
            elif kind == "charge":
                legacy = legacy or "type" not in rec
                run = str(rec.get("run", rec.get("session", "")))
                entry = LedgerEntry.from_json({**rec, "session": run})
                info = runs.setdefault(run, {"steps": [], "status": "legacy", "time": entry.time,
                                             "label": entry.event.label, "budget": None,
                                             "rho": None})
                info["steps"].append(entry)
                n_charges += 1
            elif kind == "end":
                info = runs[str(rec["run"])]
                info.update(status=str(rec["status"]), ended=_time(rec))
            else:
                raise ValueError(f"unknown record type {kind!r}")
        except (ValueError, KeyError, TypeError, AttributeError, ConfigError) as exc:
            raise ConfigError(f"ledger {path} line {lineno} is not a valid ledger entry") from exc
    records = tuple(
        RunRecord(run, str(i.get("label", "")), i["time"], i.get("budget"), i.get("rho"),
                  str(i["status"]), tuple(i["steps"]), i.get("ended"), i.get("pid"))
        for run, i in runs.items()
    )
    return LedgerState(path, tuple(caps), records, n_charges, torn, legacy)


def read_all(fd: int) -> bytes:
    """Read a whole file from its start."""
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


class LedgerLock:
    """Open the ledger file and hold an ``flock`` on it (exclusive, to append; shared, to read).

    The exclusive lock creates the file; :meth:`append` first cuts a torn final line (a write
    cut by a crash never returned, so nothing was measured for it) and fsyncs after writing.
    """

    def __init__(self, path: Path, *, shared: bool = False) -> None:
        self.path = path
        self.shared = shared
        self.fd = -1

    def __enter__(self) -> Self:
        if self.shared:
            try:
                self.fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                raise ConfigError(f"ledger {self.path} does not exist") from None
            fcntl.flock(self.fd, fcntl.LOCK_SH)
            return self
        created = not self.path.exists()
        self.fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        if created:  # make the new directory entry durable too
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)

    def state(self) -> LedgerState:
        """Parse the file as it is now."""
        return parse(self.path, read_all(self.fd))

    def append(self, state: LedgerState, *records: dict[str, Any]) -> None:
        """Append ``records`` durably (after cutting a torn final line found in ``state``)."""
        if state.torn >= 0:
            os.ftruncate(self.fd, state.torn)
        os.write(self.fd, b"".join(record_line(r) for r in records))
        os.fsync(self.fd)


def cap_record(cap: Budget, *, by: str, reason: str, previous: Budget | None = None) -> dict[str, Any]:
    """A ``cap`` (``previous`` is None) or ``raise-cap`` record."""
    rec: dict[str, Any] = {
        "type": "cap" if previous is None else "raise-cap", "format": FORMAT,
        "time": datetime.now(UTC).isoformat(), "cap": cap.to_json(),
        "delta": cap.delta if isinstance(cap, ApproxDP) else None, "by": by, "reason": reason,
    }
    if previous is not None:
        rec["previous"] = previous.to_json()
    return rec


def raise_cap(path: Path, new: Budget, *, reason: str, by: str | None = None) -> CapChange:
    """Raise a ledger's lifetime cap, recording who, when and why.

    Raises:
        ConfigError: No such ledger, an empty reason, or a cap that is not larger.
    """
    if not reason.strip():
        raise ConfigError("raise-cap needs a --reason (it is recorded in the ledger)")
    if not Path(path).exists():
        raise ConfigError(f"ledger {path} does not exist")
    if not isinstance(new, (ApproxDP, ZCDP, PureDP)):
        raise ConfigError(f"cap ({type(new).__name__}) must be ApproxDP or ZCDP")
    who = by or getpass.getuser()
    with LedgerLock(Path(path)) as lock:
        state = lock.state()
        old = state.cap
        if old is not None:
            larger = to_rho(new) > to_rho(old) * (1 + 1e-12)
            if isinstance(old, ApproxDP) and isinstance(new, ApproxDP):
                larger = larger and new.epsilon > old.epsilon and new.delta >= old.delta
            if not larger:
                raise ConfigError(f"new cap {budget_text(new)} must exceed the stored lifetime cap "
                                  f"{budget_text(old)} of ledger {path}")
        rec = cap_record(new, by=who, reason=reason, previous=old)
        if old is None:  # a format-1 ledger never stored a cap: this sets it
            rec["type"], rec["reason"] = "cap", f"set by raise-cap: {reason}"
        lock.append(state, rec)
        return CapChange(_time(rec), new, old, who, str(rec["reason"]))


def read_state(path: Path) -> LedgerState:
    """Read a ledger under a shared lock (nothing is written).

    Raises:
        ConfigError: No such ledger, or an invalid line.
    """
    with LedgerLock(Path(path), shared=True) as lock:
        return lock.state()
