"""The private-data gate: the one object through which a mechanism reads confidential data.

A mechanism never holds a counting backend or a table. It holds a :class:`PrivateData`
handle, in the spirit of OpenDP's ``Measurement`` (a privacy map paired with a function):
every method first charges the accountant for a declared event and only then reads.

- :meth:`PrivateData.measure` — noisy marginals: one :class:`~dpsynth.privacy.events.GaussianEvent`
  per clique, then exact counts, then OpenDP's discrete Gaussian.
- :meth:`PrivateData.measure_total` — a noisy row count (one Gaussian event).
- :meth:`PrivateData.select` — private selection: one :class:`~dpsynth.privacy.events.NoisyMaxEvent`,
  then scores computed from exact counts *inside the gate*, then OpenDP's noisy max. Only the
  winner leaves.
- :meth:`PrivateData.train` — DP-SGD: one :class:`~dpsynth.privacy.events.SubsampledGaussianEvent`,
  then the trainer gets the encoded rows.

An overspend raises :class:`~dpsynth.errors.BudgetExceededError` before anything is read.
``mechanisms/``, ``pgm/`` and ``neural/`` may not import :mod:`dpsynth.backends` or
:mod:`dpsynth.privacy.noise` (tests/test_import_layers.py checks it), so this is the only path.

Self-audits may attach an *observer* that sees every exact count the gate reads, with the
sensitivity the mechanism declared for it (``audits/campaigns/neighbours.py`` checks that
counts on neighbouring datasets move by no more). The observer is confidential, in-process
only; nothing on a release path sets one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from dpsynth.errors import ConfigError, PrivateAccessError
from dpsynth.privacy import noise
from dpsynth.privacy.events import GaussianEvent, NoisyMaxEvent, SubsampledGaussianEvent
from dpsynth.privacy.measure import Measurement

if TYPE_CHECKING:
    from dpsynth.privacy.accountant import Accountant

__all__ = ["CHUNK_CELLS", "Clique", "CountTransform", "GateRead", "PrivateData", "Score"]

Clique = tuple[str, ...]
Counts = npt.NDArray[np.int64]
#: A public aggregation of exact counts before noise (e.g. merging cells); it must not raise
#: the sensitivity (summing cells does not).
CountTransform = Callable[[Clique, Counts], Counts]
#: A selection score from a clique and its exact counts; its sensitivity is declared by the
#: caller as a multiple (``weight``) of the unit's row bound.
Score = Callable[[Clique, Counts], float]
T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class GateRead:
    """One exact read, as an observer sees it (CONFIDENTIAL: exact counts inside).

    Attributes:
        kind: ``"measure"`` or ``"select"``.
        label: The ledger label of the charged step.
        clique: The marginal read.
        exact: The exact counts after the public transform, as the mechanism used them.
        sensitivity: The declared bound on how far one unit of privacy moves ``exact``
            (L1 and L2; integer counts with at most ``max_rows`` rows per unit).
        transform: The public aggregation applied to the raw counts (``None``: none), so an
            audit can replay the read on a neighbouring dataset.
    """

    kind: Literal["measure", "select"]
    label: str
    clique: Clique
    exact: Counts = field(repr=False)
    sensitivity: float
    transform: CountTransform | None = field(default=None, repr=False)


Observer = Callable[[GateRead], None]


class CountingBackend(Protocol):
    """What the gate needs of a counting engine (``dpsynth.backends`` implements it)."""

    @property
    def domain(self) -> dict[str, int]:
        """Public ``{column: domain size}``."""
        ...

    def count(self, cliques: Sequence[tuple[str, ...]]) -> list[npt.NDArray[np.int64]]:
        """Exact counts of each clique."""
        ...


#: The encoded private rows handed to a DP-SGD trainer (a :class:`dpsynth.tabular.table.Table`).
Table = Any

#: Raw cells counted per engine pass when a transform (compression) is applied: 16M int64
#: counts, 128 MiB (see :meth:`PrivateData._counts`).
CHUNK_CELLS = 1 << 24


class PrivateData:
    """A handle on confidential data whose every method charges, then reads.

    Args:
        backend: The counting engine over the private data (kept private to the gate).
        accountant: The accountant every read is charged to.
        sensitivity: How many rows one unit of privacy can contribute (1 for row-level, the
            schema's ``max_rows`` for person-level): the L1/L2 sensitivity of every count.
        observer: Self-audit hook receiving each distinct exact read (never on a release path).
    """

    def __init__(
        self,
        backend: CountingBackend,
        accountant: Accountant,
        *,
        sensitivity: float = 1.0,
        observer: Observer | None = None,
    ) -> None:
        if not sensitivity > 0:
            raise ConfigError(f"sensitivity ({sensitivity}) must be > 0")
        self._backend: CountingBackend | None = backend
        self._domain = dict(backend.domain)
        self._accountant = accountant
        self._sensitivity = float(sensitivity)
        self._observer = observer
        self._exact: dict[tuple[Clique, CountTransform | None], Counts] = {}
        self._seen: set[tuple[str, Clique, CountTransform | None]] = set()

    @property
    def domain(self) -> dict[str, int]:
        """Public ``{column: domain size}`` of the encoded columns, in schema order."""
        return dict(self._domain)

    @property
    def sensitivity(self) -> float:
        """Rows one unit of privacy can contribute (public)."""
        return self._sensitivity

    @property
    def accountant(self) -> Accountant:
        """The accountant charged by this gate (to read what remains; charging is the gate's)."""
        return self._accountant

    def _backend_or_raise(self) -> CountingBackend:
        if self._backend is None:
            raise PrivateAccessError("the private-data gate is closed")
        return self._backend

    def _counts(self, cliques: Sequence[Clique], transform: CountTransform | None) -> list[Counts]:
        """Exact (transformed) counts, all uncached cliques in as few backend passes as fit.

        Without a transform the gate and the engine share the same arrays, and every uncached
        clique is counted in one pass. With one, only the transformed counts are kept: the raw
        counts are requested in chunks of at most :data:`CHUNK_CELLS` cells and the engine is
        asked to forget them, so the raw and the transformed copies of a large candidate set
        (AIM over a column with thousands of values) are never in memory together.
        """
        backend = self._backend_or_raise()
        todo = list(dict.fromkeys(c for c in cliques if (c, transform) not in self._exact))
        for chunk in self._chunks(todo, transform):
            for clique, raw in zip(chunk, backend.count(chunk), strict=True):
                self._exact[(clique, transform)] = transform(clique, raw) if transform is not None else raw
            forget = getattr(backend, "forget", None)
            if transform is not None and forget is not None:
                forget(chunk)
        return [self._exact[(c, transform)] for c in cliques]

    def _chunks(self, todo: list[Clique], transform: CountTransform | None) -> list[list[Clique]]:
        if transform is None or not todo:
            return [todo] if todo else []
        chunks: list[list[Clique]] = [[]]
        cells = 0
        for clique in todo:
            size = math.prod(self._domain[c] for c in clique)
            if chunks[-1] and cells + size > CHUNK_CELLS:
                chunks.append([])
                cells = 0
            chunks[-1].append(clique)
            cells += size
        return chunks

    def _observe(self, kind: Literal["measure", "select"], label: str, clique: Clique,
                 transform: CountTransform | None, exact: Counts) -> None:
        if self._observer is None or (kind, clique, transform) in self._seen:
            return
        self._seen.add((kind, clique, transform))
        self._observer(GateRead(kind, label, clique, exact.copy(), self._sensitivity, transform))

    def measure(
        self,
        cliques: Sequence[Sequence[str]],
        *,
        sigma: float,
        label: str,
        transform: CountTransform | None = None,
    ) -> list[Measurement]:
        """Noisy marginals: charge a Gaussian event per clique, then count, then add noise.

        Args:
            cliques: Column tuples to measure.
            sigma: Discrete Gaussian scale per cell.
            label: Ledger label prefix.
            transform: Optional public aggregation of the exact counts before noise.

        Returns:
            One public :class:`~dpsynth.privacy.measure.Measurement` per clique, in order.
        """
        out: list[Measurement] = []
        for raw_clique in cliques:
            clique = tuple(raw_clique)
            self._check(clique)
            self._accountant.charge(GaussianEvent(
                sigma=sigma, sensitivity=self._sensitivity, label=f"{label} {'×'.join(clique)}"))
            (exact,) = self._counts([clique], transform)
            self._observe("measure", label, clique, transform, exact)
            out.append(Measurement(clique, noise.discrete_gaussian(exact, sigma), float(sigma)))
        return out

    def measure_total(self, *, sigma: float, label: str) -> int:
        """A noisy row count: charge a Gaussian event, count all rows, add discrete Gaussian noise."""
        self._accountant.charge(GaussianEvent(sigma=sigma, sensitivity=self._sensitivity, label=label))
        first = (next(iter(self._domain)),)
        (exact,) = self._counts([first], None)
        total = np.array([int(exact.sum())], dtype=np.int64)
        self._observe("measure", label, ("<rows>",), None, total)
        return int(noise.discrete_gaussian(total, sigma)[0])

    def select(
        self,
        candidates: Sequence[Clique],
        score: Score,
        *,
        scale: float,
        label: str,
        weight: float = 1.0,
        transform: CountTransform | None = None,
        count_also: Sequence[Clique] = (),
    ) -> Clique:
        """Private selection: charge a noisy-max event, score candidates inside, return the winner.

        ``score(clique, exact)`` must change by at most ``weight * sensitivity`` when one unit
        of privacy is added or removed (an L1 error against a public model, times a public
        weight, does); the charge is for that sensitivity.

        Args:
            candidates: The cliques to choose among.
            score: Score of a candidate from its exact (transformed) counts.
            scale: Gumbel scale of the noisy max.
            label: Ledger label.
            weight: Public multiplier of the score's sensitivity.
            transform: Public aggregation applied to the exact counts before scoring.
            count_also: Cliques later selections will score, counted in the same pass.

        Returns:
            The selected candidate.
        """
        cands = [tuple(c) for c in candidates]
        if not cands:
            raise ConfigError("select needs at least one candidate")
        if not weight > 0:
            raise ConfigError(f"weight ({weight}) must be > 0")
        for c in cands:
            self._check(c)
        self._accountant.charge(NoisyMaxEvent(
            scale=scale, sensitivity=self._sensitivity * weight, label=label))
        extra = [tuple(c) for c in count_also]
        exact = self._counts(cands + extra, transform)[: len(cands)]
        scores = []
        for c, x in zip(cands, exact, strict=True):
            self._observe("select", label, c, transform, x)
            scores.append(float(score(c, x)))
        return cands[noise.noisy_max(scores, scale)]

    def train(self, event: SubsampledGaussianEvent, trainer: Callable[[Table], T]) -> T:
        """DP-SGD: charge ``event``, then run ``trainer`` on the encoded private rows.

        The trainer must implement exactly the mechanism ``event`` describes (Poisson sampling
        at ``sample_rate``, per-sample clipping, Gaussian noise of ``noise_multiplier``, for
        ``steps`` steps) with in-mechanism randomness from the run's
        :class:`~dpsynth.privacy.randomness.MechanismKey`. Needs an in-memory engine.
        """
        if not isinstance(event, SubsampledGaussianEvent):
            raise ConfigError("train needs a SubsampledGaussianEvent")
        backend = self._backend_or_raise()
        rows = getattr(backend, "rows", None)
        if rows is None:
            raise ConfigError(f"DP-SGD needs row-level access: use the numpy engine, not "
                              f"{type(backend).__name__}")
        self._accountant.charge(event)
        table: Table = rows()
        return trainer(table)

    def _check(self, clique: Clique) -> None:
        if not clique or len(set(clique)) != len(clique):
            raise ConfigError(f"clique {clique} must be a non-empty tuple of distinct columns")
        for col in clique:
            if col not in self._domain:
                raise ConfigError(f"column {col!r} is not in the encoded table")

    def close(self) -> None:
        """Drop the exact counts and the backend reference (the caller closes the backend)."""
        self._exact.clear()
        self._backend = None
