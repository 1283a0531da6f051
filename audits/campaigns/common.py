"""Shared pieces of the self-audit campaigns: results, verdicts, bounds and planted noise bugs.

Every campaign plays the distinguishing game of docs/self-audits.md ("The game"): run a mechanism on two
neighbouring inputs many times, score each run, pick a threshold on a held-out half and turn
the error counts of the other half into a Clopper-Pearson lower bound on epsilon (or on the
Gaussian-DP mu). A correct variant PASSES when the bound stays at or below its claim; a
planted bug is CAUGHT when the bound exceeds it.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Self
from unittest import mock

import numpy as np
import numpy.typing as npt
from scipy import stats as sps
from scipy.special import betaincinv

from dpsynth.audit.epsilon import empirical_epsilon, gdp_mu_lower_bound

__all__ = [
    "ALPHA",
    "Expect",
    "NoiseBug",
    "Sizes",
    "Timer",
    "VariantResult",
    "eps_verdict",
    "epsilon_details",
    "mu_holdout",
    "noise_bug",
]

#: Failure probability of each gated bound; with at most ten gated correct variants in a
#: suite run, Bonferroni keeps the chance of a false alarm anywhere at <= 1%.
ALPHA = 1e-3

Expect = Literal["pass", "caught", "covered"]


@dataclass(frozen=True, kw_only=True)
class Sizes:
    """Trial counts of one campaign run (per world, i.e. per neighbouring input).

    ``covered`` sizes planted bugs another campaign gates (0: same as ``planted``).
    """

    correct: int
    planted: int
    covered: int = 0

    def of(self, expect: Expect) -> int:
        """Runs per world for a variant with this expectation."""
        if expect == "pass":
            return self.correct
        return self.covered or self.planted if expect == "covered" else self.planted


@dataclass(frozen=True, kw_only=True)
class VariantResult:
    """Outcome of auditing one variant (the correct code or one planted bug).

    Attributes:
        campaign: Campaign name (also the results file name).
        variant: ``correct`` or the planted bug's name.
        expect: ``pass`` (correct code), ``caught`` (planted bug this audit must catch) or
            ``covered`` (planted bug this audit is not powerful enough for; another campaign,
            named in ``details["covered_by"]``, gates it).
        measure: ``eps`` or ``mu``.
        claim: The claimed epsilon or mu the bound is compared with.
        lower_bound: Empirical lower bound (probability >= 1 - alpha).
        verdict: ``PASS``/``FAIL`` for correct code, ``CAUGHT``/``MISSED`` for planted bugs.
        ok: Whether the verdict is the expected one (a covered miss counts as ok).
        trials: Runs per world.
        seconds: Wall time of the variant.
        details: Error counts, threshold, alpha, delta and campaign-specific facts.
    """

    campaign: str
    variant: str
    expect: Expect
    measure: Literal["eps", "mu", "l1"]
    claim: float
    lower_bound: float
    verdict: str
    ok: bool
    trials: int
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


def _verdict(expect: Expect, lb: float, claim: float) -> tuple[str, bool]:
    exceeded = lb > claim
    if expect == "pass":
        return ("FAIL", False) if exceeded else ("PASS", True)
    if exceeded:
        return "CAUGHT", True
    return "MISSED", expect == "covered"


def eps_verdict(*, campaign: str, variant: str, expect: Expect, measure: Literal["eps", "mu"],
                claim: float, lower_bound: float, trials: int, seconds: float,
                details: dict[str, Any]) -> VariantResult:
    """Build a :class:`VariantResult`, deciding the verdict from ``lower_bound`` vs ``claim``."""
    verdict, ok = _verdict(expect, lower_bound, claim)
    return VariantResult(campaign=campaign, variant=variant, expect=expect, measure=measure,
                         claim=float(claim), lower_bound=float(lower_bound), verdict=verdict,
                         ok=ok, trials=trials, seconds=round(seconds, 3), details=details)


def epsilon_details(member: npt.NDArray[np.float64], nonmember: npt.NDArray[np.float64], *,
                    rng: np.random.Generator, delta: float) -> tuple[float, dict[str, Any]]:
    """Held-out Clopper-Pearson epsilon bound and its bookkeeping (docs/self-audits.md)."""
    b = empirical_epsilon(member, nonmember, rng=rng, alpha=ALPHA, delta=delta)
    return b.epsilon, {"fp": b.fp, "fn": b.fn, "n_eval_nonmember": b.n_nonmembers,
                       "n_eval_member": b.n_members, "threshold": b.threshold,
                       "alpha": ALPHA, "delta": delta}


def _mu_many(fp: npt.NDArray[np.int64], n0: int, fn: npt.NDArray[np.int64], n1: int,
             alpha: float) -> npt.NDArray[np.float64]:
    """Vectorised :func:`gdp_mu_lower_bound` (alpha/4 per one-sided bound)."""
    g = 1.0 - alpha / 4.0
    fpr = np.where(fp >= n0, 1.0, betaincinv(fp + 1.0, np.maximum(n0 - fp, 1), g))
    fnr = np.where(fn >= n1, 1.0, betaincinv(fn + 1.0, np.maximum(n1 - fn, 1), g))
    with np.errstate(divide="ignore", invalid="ignore"):
        a = sps.norm.ppf(1.0 - fpr) - sps.norm.ppf(fnr)
        b = sps.norm.ppf(1.0 - fnr) - sps.norm.ppf(fpr)
    a = np.where((fpr < 1.0) & (fnr > 0.0), a, 0.0)
    b = np.where((fnr < 1.0) & (fpr > 0.0), b, 0.0)
    return np.asarray(np.maximum(0.0, np.maximum(a, b)), dtype=np.float64)


def mu_holdout(member: npt.NDArray[np.float64], nonmember: npt.NDArray[np.float64], *,
               rng: np.random.Generator, n_candidates: int = 200) -> tuple[float, dict[str, Any]]:
    """Gaussian-DP lower bound on mu with the threshold chosen on a held-out half.

    Each class is shuffled and split 50/50; up to ``n_candidates`` quantile thresholds are
    scanned on the first half for the largest mu bound, and the chosen threshold is evaluated
    once on the second half with :func:`dpsynth.audit.epsilon.gdp_mu_lower_bound` (one
    Bonferroni budget ``ALPHA`` over both directions).
    """
    mem = np.asarray(member, dtype=np.float64)[rng.permutation(len(member))]
    non = np.asarray(nonmember, dtype=np.float64)[rng.permutation(len(nonmember))]
    m_sel, m_ev = mem[: mem.size // 2], mem[mem.size // 2:]
    n_sel, n_ev = non[: non.size // 2], non[non.size // 2:]
    cands = np.unique(np.quantile(np.concatenate([m_sel, n_sel]),
                                  np.linspace(0.0, 1.0, n_candidates)))
    cands = np.unique(np.concatenate([cands, np.nextafter(cands, np.inf)]))
    fps = n_sel.size - np.searchsorted(np.sort(n_sel), cands, side="left")
    fns = np.searchsorted(np.sort(m_sel), cands, side="left")
    t = float(cands[int(np.argmax(_mu_many(fps, n_sel.size, fns, m_sel.size, ALPHA)))])
    fp, fn = int(np.sum(n_ev >= t)), int(np.sum(m_ev < t))
    mu = gdp_mu_lower_bound(fp, n_ev.size, fn, m_ev.size, alpha=ALPHA)
    return mu, {"fp": fp, "fn": fn, "n_eval_nonmember": int(n_ev.size),
                "n_eval_member": int(m_ev.size), "threshold": t, "alpha": ALPHA}


NoiseBug = Literal["none", "half_sigma", "no_noise"]


@contextlib.contextmanager
def noise_bug(bug: NoiseBug) -> Iterator[None]:
    """Plant a noise bug in the measurement step for the duration of the block.

    ``dpsynth.privacy.gate.PrivateData.measure`` looks up :func:`dpsynth.privacy.noise.discrete_gaussian` at
    call time, so patching the module attribute reaches it while the accountant still charges
    the stated sigma. ``half_sigma`` adds noise at ``sigma / 2``; ``no_noise`` adds none.
    The original function is restored on exit.
    """
    if bug == "none":
        yield
        return
    from dpsynth.privacy import noise

    original: Callable[..., npt.NDArray[np.int64]] = noise.discrete_gaussian

    def half(counts: npt.NDArray[np.int64], sigma: float) -> npt.NDArray[np.int64]:
        return original(counts, sigma / 2.0)

    def none(counts: npt.NDArray[np.int64], sigma: float) -> npt.NDArray[np.int64]:
        return np.asarray(counts, dtype=np.int64).copy()

    with mock.patch("dpsynth.privacy.noise.discrete_gaussian", half if bug == "half_sigma" else none):
        yield


class Timer:
    """Wall-clock stopwatch: ``with Timer() as t: ...; t.seconds``."""

    def __enter__(self) -> Self:
        self._t0 = time.perf_counter()
        self.seconds = math.nan
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._t0
