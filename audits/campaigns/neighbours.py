"""Neighbours: exact-count sensitivity of every mechanism's reads, and the seed attack (issue 12).

Contribution bounding once ranked each person's rows with ``rng.permutation(n)`` seeded by the
published seed: adding one person moved every other person's kept rows, so a 1-way count moved
by L2 ~ 35 against an accounted sensitivity of 1, and an adversary who knew the seed told
``D`` from ``D + person`` with TPR 1.0 at FPR 0 at stated eps = 1. This campaign checks that
the fix (a keyed per-row hash, :mod:`dpsynth.backends.bounding`) holds on every engine:

1. **Sensitivity.** Each mechanism (independent, MST, AIM) runs on ``D`` through a gate whose
   observer records every exact read; then every read is replayed with the *same* audit key
   on each neighbour ``D'`` (one person added first, in the middle, last, with its rows
   interleaved among the others', and one person removed). The change must obey
   ``L1 <= sensitivity`` (hence L2), exactly. On ``D``, every read must also agree with every
   smaller read it contains (the same rows are kept in every counting pass).
2. **Attack.** The adversary knows ``D``, the target's rows and the published seed. Each
   release is a fresh run of ``fit_independent`` at eps = 1 with a fresh
   :class:`~dpsynth.privacy.randomness.MechanismKey`; the adversary replays the engine with the only
   key it can derive (``MechanismKey.for_audit(str(seed))``) and thresholds the Gaussian
   log-likelihood ratio at 0. It fails when ``TPR > e^eps FPR + delta + 3 SE``.

Planted bugs: ``seeded_bounding`` (the old positional bounding keyed by the seed; the
sensitivity check and the attack must both catch it) and ``rekey_per_pass`` (a fresh key for
every counting pass; the consistency check must catch it).
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from audits.campaigns.common import Expect, Timer, VariantResult, eps_verdict, epsilon_details
from dpsynth.backends.base import CountingBackend
from dpsynth.backends.factory import open_backend
from dpsynth.backends.numpy import NumpyBackend
from dpsynth.mechanisms.aim import AIMConfig, fit_aim
from dpsynth.mechanisms.independent import fit_independent
from dpsynth.mechanisms.mst import fit_mst
from dpsynth.privacy.accountant import Accountant
from dpsynth.privacy.budget import ZCDP, epsilon_to_rho
from dpsynth.privacy.gate import GateRead, PrivateData
from dpsynth.privacy.randomness import MechanismKey
from dpsynth.tabular.encoding import encode
from dpsynth.tabular.schema import Schema, parse_schema

__all__ = ["ATTACK_DELTA", "ATTACK_EPS", "MECHANISMS", "AttackOutcome", "BackendFactory",
           "SensitivityOutcome", "attack", "check_sensitivity", "consistency", "engine_factory",
           "make_frame", "make_schema", "neighbours", "rekey_per_pass", "run",
           "seeded_bounding"]

log = logging.getLogger(__name__)

CAMPAIGN = "neighbours"
ATTACK_EPS = 1.0
ATTACK_DELTA = 1e-9
COLUMNS = ("c0", "c1", "c2", "c3")
VALUES = ("v0", "v1", "v2", "v3", "v4")
SEED = 20240612  # the "published" seed of every audited release
SENS_RHO = 1.0  # the sensitivity check does not depend on the noise; low noise keeps fits stable
UNITS: dict[str, int | None] = {"row": None, "person1": 1, "person2": 2}
AIM_CONFIG = AIMConfig(max_rounds=4, round_iters=5, final_iters=5, degree=2)

Fit = Callable[[PrivateData, float], Any]
MECHANISMS: dict[str, Fit] = {
    "independent": lambda g, rho: fit_independent(g, rho=rho, iters=1),
    "mst": lambda g, rho: fit_mst(g, rho=rho),
    "aim": lambda g, rho: fit_aim(g, rho=rho, config=AIM_CONFIG),
}


class BackendFactory(Protocol):
    """Opens a counting backend over ``frame``; ``key`` is the run's secret, ``seed`` public."""

    def __call__(self, frame: pd.DataFrame, schema: Schema, *, key: MechanismKey,
                 seed: int) -> CountingBackend: ...


# ----------------------------------------------------------------------------- tables

def make_schema(max_rows: int | None) -> Schema:
    """The public schema: ``pid`` identifier and four categoricals (row unit if ``None``)."""
    unit: dict[str, Any] = ({"kind": "row"} if max_rows is None else
                            {"kind": "person", "column": "pid", "max_rows": max_rows})
    return parse_schema({"privacy_unit": unit, "columns": [
        {"name": "pid", "kind": "identifier"},
        *({"name": c, "kind": "categorical", "categories": list(VALUES)} for c in COLUMNS)]})


def _rows(n: int, rng: np.random.Generator) -> dict[str, list[str]]:
    # c0 is skewed so MST compresses its rare values (its reads then carry a transform)
    probs = {"c0": [0.6, 0.3, 0.06, 0.02, 0.02]}
    return {c: [VALUES[i] for i in rng.choice(len(VALUES), n, p=probs.get(c))] for c in COLUMNS}


def make_frame(persons: int, *, rng: np.random.Generator, max_size: int = 6) -> pd.DataFrame:
    """Persons with 1..``max_size`` rows each, rows shuffled (persons not contiguous).

    About a third of the persons repeat one row verbatim (the bounding's duplicate index).
    """
    sizes = rng.integers(1, max_size + 1, persons)
    pid = np.repeat(np.arange(persons), sizes)
    frame = pd.DataFrame({"pid": pid, **_rows(pid.size, rng)})
    first = frame.groupby("pid").head(1).set_index("pid")
    dup = rng.random(pid.size) < 0.3
    frame.loc[dup, list(COLUMNS)] = first.loc[pid[dup], list(COLUMNS)].to_numpy()
    return frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)


def new_person(frame: pd.DataFrame, rows: int, rng: np.random.Generator) -> pd.DataFrame:
    """``rows`` rows of a person not in ``frame``."""
    return pd.DataFrame({"pid": [int(frame["pid"].max()) + 1] * rows, **_rows(rows, rng)})


def insert_rows(frame: pd.DataFrame, extra: pd.DataFrame, positions: Sequence[int]) -> pd.DataFrame:
    """``frame`` with the rows of ``extra`` placed before the given row positions, in order."""
    parts, prev = [], 0
    for j, pos in enumerate(sorted(positions)):
        parts += [frame.iloc[prev:pos], extra.iloc[j:j + 1]]
        prev = pos
    return pd.concat([*parts, frame.iloc[prev:]], ignore_index=True)


def neighbours(frame: pd.DataFrame, *, person: bool, rng: np.random.Generator
               ) -> list[tuple[str, pd.DataFrame]]:
    """The neighbours of ``frame`` under the unit: one unit added at four places, one removed."""
    n, m = len(frame), (4 if person else 1)
    extra = new_person(frame, m, rng)
    out = [("add_first", insert_rows(frame, extra, [0] * m)),
           ("add_middle", insert_rows(frame, extra, [n // 2] * m)),
           ("add_last", insert_rows(frame, extra, [n] * m))]
    if person:
        out.append(("add_interleaved", insert_rows(frame, extra, [n * (j + 1) // (m + 1) for j in range(m)])))
        victim = frame["pid"].value_counts().index[0]
        out.append(("remove_person", frame[frame["pid"] != victim].reset_index(drop=True)))
    else:
        out.append(("remove_row", frame.drop(index=n // 3).reset_index(drop=True)))
    return out


# ----------------------------------------------------------------------------- backends

def engine_factory(engine: str, **options: Any) -> BackendFactory:
    """The product's backend for ``engine`` (the seed is ignored, as it must be)."""
    def open_(frame: pd.DataFrame, schema: Schema, *, key: MechanismKey, seed: int) -> CountingBackend:
        source: Any = frame
        if engine == "spark":
            source = options["spark"].createDataFrame(frame)
        return open_backend(engine, source, schema, key=key, **options)
    return open_


def _engine_options(engine: str, spark: Any) -> dict[str, Any]:
    return {"spark": spark} if engine == "spark" else {"threads": 1} if engine in ("arrow", "duckdb") else {}


def seeded_bounding(frame: pd.DataFrame, schema: Schema, *, key: MechanismKey, seed: int
                    ) -> CountingBackend:
    """PLANTED BUG: the old bounding, keyed by the published seed and the rows' positions.

    The rows are shuffled with ``default_rng(seed).permutation(n)`` and each person keeps its
    first ``max_rows`` rows in that order, so the choice depends on ``n`` and on where every
    row sits. ``key`` is ignored.
    """
    unit = schema.privacy_unit
    if unit.kind != "person":
        return NumpyBackend(encode(frame, schema))
    shuffled = frame.iloc[np.random.default_rng(seed).permutation(len(frame))]
    rank = shuffled.groupby(str(unit.column), sort=False).cumcount()
    return NumpyBackend(encode(shuffled[rank < int(unit.max_rows or 1)].reset_index(drop=True), schema))


class _RekeyEachPass:
    """PLANTED BUG: every counting pass opens the engine afresh with a new key."""

    def __init__(self, inner: BackendFactory, frame: pd.DataFrame, schema: Schema, seed: int) -> None:
        self._inner, self._frame, self._schema, self._seed = inner, frame, schema, seed
        self.domain = schema.domain()

    def count(self, cliques: Sequence[tuple[str, ...]]) -> list[npt.NDArray[np.int64]]:
        backend = self._inner(self._frame, self._schema, key=MechanismKey.fresh(), seed=self._seed)
        try:
            return backend.count(cliques)
        finally:
            backend.close()

    def close(self) -> None:
        pass


def rekey_per_pass(inner: BackendFactory) -> BackendFactory:
    """Wrap ``inner`` so that each ``count`` call bounds with a fresh key (planted bug)."""
    def open_(frame: pd.DataFrame, schema: Schema, *, key: MechanismKey, seed: int) -> CountingBackend:
        return cast(CountingBackend, _RekeyEachPass(inner, frame, schema, seed))
    return open_


# ----------------------------------------------------------------------------- sensitivity

def _replay(backend: CountingBackend, reads: Sequence[GateRead]) -> list[npt.NDArray[np.int64]]:
    """Every read recomputed on ``backend`` (one counting pass)."""
    first = (next(iter(backend.domain)),)
    cliques = list(dict.fromkeys([first, *(r.clique for r in reads if r.clique != ("<rows>",))]))
    raw = dict(zip(cliques, backend.count(cliques), strict=True))
    out = []
    for r in reads:
        if r.clique == ("<rows>",):
            out.append(np.array([int(raw[first].sum())], dtype=np.int64))
        else:
            x = raw[r.clique]
            out.append(r.transform(r.clique, x) if r.transform is not None else x)
    return out


def consistency(reads: Sequence[GateRead]) -> tuple[int, int]:
    """``(checked, bad)``: pairs of reads where the smaller clique's counts must be the
    larger one's margin (transform of the smaller read: none, or the larger's), and every read's
    total must equal the row-count read."""
    checked = bad = 0
    totals = {int(r.exact.sum()) for r in reads}
    if len(totals) > 1:
        bad += 1
    for big in reads:
        for small in reads:
            if small is big or small.clique == ("<rows>",) or not set(small.clique) < set(big.clique):
                continue
            if small.transform is big.transform:
                want = small.exact
            elif small.transform is None and big.transform is not None:
                want = big.transform(small.clique, small.exact)
            else:
                continue
            axes = tuple(i for i, c in enumerate(big.clique) if c not in small.clique)
            kept = [c for c in big.clique if c in small.clique]
            margin = big.exact.sum(axis=axes).transpose([kept.index(c) for c in small.clique])
            checked += 1
            bad += int(not np.array_equal(margin, want))
    return checked, bad


@dataclass(frozen=True, kw_only=True)
class SensitivityOutcome:
    """Largest change of any exact read between ``D`` and its neighbours, and consistency."""

    sensitivity: int
    reads: int
    neighbours: int
    max_l1: int
    max_l2: float
    worst: str
    checked_pairs: int
    inconsistent_pairs: int

    @property
    def violated(self) -> bool:
        """A read moved by more than the sensitivity, or two reads of ``D`` disagree."""
        return self.max_l1 > self.sensitivity or self.max_l2 > self.sensitivity or self.inconsistent_pairs > 0


def check_sensitivity(frame: pd.DataFrame, schema: Schema, fit: Fit, factory: BackendFactory, *,
                      key: MechanismKey, rng: np.random.Generator, seed: int = SEED) -> SensitivityOutcome:
    """Run ``fit`` on ``frame`` and replay its reads on every neighbour with the same ``key``."""
    sens = schema.privacy_unit.sensitivity_rows
    reads: list[GateRead] = []
    backend = factory(frame, schema, key=key, seed=seed)
    try:
        fit(PrivateData(backend, Accountant(ZCDP(SENS_RHO)), sensitivity=sens, observer=reads.append), SENS_RHO)
    finally:
        backend.close()
    checked, bad = consistency(reads)
    max_l1, max_l2, worst = 0, 0.0, ""
    nbrs = neighbours(frame, person=schema.privacy_unit.kind == "person", rng=rng)
    for name, other in nbrs:
        nb = factory(other, schema, key=key, seed=seed)
        try:
            again = _replay(nb, reads)
        finally:
            nb.close()
        for r, x in zip(reads, again, strict=True):
            diff = (x - r.exact).astype(np.int64)
            l1, l2 = int(np.abs(diff).sum()), float(np.sqrt((diff.astype(np.float64) ** 2).sum()))
            if l1 > max_l1:
                worst = f"{name} {'x'.join(r.clique)}"
            max_l1, max_l2 = max(max_l1, l1), max(max_l2, l2)
    return SensitivityOutcome(sensitivity=sens, reads=len(reads), neighbours=len(nbrs), max_l1=max_l1,
                              max_l2=round(max_l2, 4), worst=worst, checked_pairs=checked,
                              inconsistent_pairs=bad)


# ----------------------------------------------------------------------------- attack

@dataclass(frozen=True, kw_only=True)
class AttackOutcome:
    """Log-likelihood ratios of the releases of both worlds (world 1 holds the target)."""

    llr0: npt.NDArray[np.float64]
    llr1: npt.NDArray[np.float64]
    sigma: float

    @property
    def tpr(self) -> float:
        return float(np.mean(self.llr1 > 0))

    @property
    def fpr(self) -> float:
        return float(np.mean(self.llr0 > 0))

    def epsilon_estimate(self, delta: float) -> float:
        """Largest eps with ``TPR - delta - 3 SE > e^eps FPR`` (either direction; FPR floored
        at half a trial so a perfect split stays finite)."""
        best = 0.0
        for hit, miss, n_hit, n_miss in ((self.tpr, self.fpr, self.llr1.size, self.llr0.size),
                                         (1 - self.fpr, 1 - self.tpr, self.llr0.size, self.llr1.size)):
            lo = hit - delta - 3.0 * math.sqrt(hit * (1 - hit) / n_hit)
            if lo > 0:
                best = max(best, math.log(lo / max(miss, 0.5 / n_miss)))
        return best


def attack(factory: BackendFactory, *, world0: pd.DataFrame, world1: pd.DataFrame,
           schema: Schema, releases: int, seed: int = SEED) -> AttackOutcome:
    """Distinguish ``world0`` from ``world1`` given ``releases`` fresh runs of each.

    Every release runs ``fit_independent`` at (ATTACK_EPS, ATTACK_DELTA) with a fresh secret
    key; the adversary's expected counts come from the same factory keyed with the seed.
    """
    rho = epsilon_to_rho(ATTACK_EPS, ATTACK_DELTA)
    sens = schema.privacy_unit.sensitivity_rows
    attrs = [(c,) for c in schema.domain()]
    guess = MechanismKey.for_audit(str(seed))
    expected = []
    for frame in (world0, world1):
        b = factory(frame, schema, key=guess, seed=seed)
        expected.append(np.concatenate([x.ravel() for x in b.count(attrs)]).astype(np.float64))
        b.close()
    llrs: list[list[float]] = [[], []]
    sigma = math.nan
    for i in range(2 * releases):
        w = i % 2
        backend = factory(world1 if w else world0, schema, key=MechanismKey.fresh(), seed=seed)
        try:
            fitted = fit_independent(PrivateData(backend, Accountant(ZCDP(rho)), sensitivity=sens),
                                     rho=rho, iters=1)
        finally:
            backend.close()
        sigma = float(fitted.params["sigma"])
        y = np.concatenate([m.values.ravel() for m in fitted.measurements]).astype(np.float64)
        llrs[w].append(float(((y - expected[0]) ** 2).sum() - ((y - expected[1]) ** 2).sum()) / (2 * sigma**2))
    return AttackOutcome(llr0=np.array(llrs[0]), llr1=np.array(llrs[1]), sigma=sigma)


def attack_worlds(rng: np.random.Generator, persons: int) -> tuple[pd.DataFrame, pd.DataFrame, Schema]:
    """``D`` (``persons`` persons, max_rows 1) and ``D`` plus a 3-row target in the middle."""
    d = make_frame(persons, rng=rng)
    target = new_person(d, 3, rng)
    return d, insert_rows(d, target, [len(d) // 2] * 3), make_schema(1)


# ----------------------------------------------------------------------------- campaign

@dataclass(frozen=True, kw_only=True)
class Plan:
    """What one campaign run covers."""

    engines: tuple[str, ...]
    attack_releases: dict[str, int]
    planted_releases: int
    planted_mechanisms: tuple[str, ...]
    attack_persons: int = 500
    sens_persons: int = 60


FAST = Plan(engines=("numpy", "arrow", "duckdb"),
            attack_releases={"numpy": 100},
            planted_releases=40, planted_mechanisms=("independent",))
FULL = Plan(engines=("numpy", "arrow", "duckdb", "spark"),
            attack_releases={"numpy": 300, "arrow": 200, "duckdb": 200, "spark": 30},
            planted_releases=100, planted_mechanisms=("independent", "mst", "aim"))


def _sens_result(variant: str, expect: Expect, out: SensitivityOutcome, seconds: float) -> VariantResult:
    bad = out.violated
    verdict, ok = (("FAIL", False) if bad else ("PASS", True)) if expect == "pass" else \
        (("CAUGHT", True) if bad else ("MISSED", False))
    details: dict[str, Any] = {k: getattr(out, k) for k in (
        "sensitivity", "reads", "neighbours", "max_l1", "max_l2", "worst", "checked_pairs",
        "inconsistent_pairs")}
    details["check"] = "L1 and L2 change of every exact read <= sensitivity; reads consistent"
    log.info("neighbours %s: max L1 %d (sensitivity %d), %d inconsistent read pair(s)", variant,
             out.max_l1, out.sensitivity, out.inconsistent_pairs)
    # measure "l1": claim = accounted sensitivity, lower_bound = largest L1 change observed
    return VariantResult(campaign=CAMPAIGN, variant=variant, expect=expect, measure="l1",
                         claim=float(out.sensitivity), lower_bound=float(out.max_l1), verdict=verdict,
                         ok=ok, trials=out.neighbours, seconds=round(seconds, 3), details=details)


def _attack_result(variant: str, expect: Expect, out: AttackOutcome, releases: int, seconds: float,
                   rng: np.random.Generator) -> VariantResult:
    cp, cp_details = epsilon_details(out.llr1, out.llr0, rng=rng, delta=ATTACK_DELTA)
    log.info("neighbours %s: TPR %.3f FPR %.3f over 2x%d releases", variant, out.tpr, out.fpr, releases)
    details = {"tpr": out.tpr, "fpr": out.fpr, "threshold": 0.0, "delta": ATTACK_DELTA,
               "sigma": out.sigma, "rule": "fail when TPR > e^eps FPR + delta + 3 SE(TPR)",
               "cp_epsilon_lower_bound": cp, "cp": cp_details}
    return eps_verdict(campaign=CAMPAIGN, variant=variant, expect=expect, measure="eps",
                       claim=ATTACK_EPS, lower_bound=out.epsilon_estimate(ATTACK_DELTA),
                       trials=releases, seconds=seconds, details=details)


def _spark_session() -> tuple[Any, bool]:
    """``(session, created_here)``, or ``(None, False)`` when Java or pyspark is missing."""
    if shutil.which("java") is None:
        log.warning("neighbours: no Java, Spark skipped")
        return None, False
    try:
        from pyspark.sql import SparkSession

        from dpsynth.backends.spark import local_session
    except ImportError:
        log.warning("neighbours: pyspark missing, Spark skipped")
        return None, False
    active = SparkSession.getActiveSession()
    return (active, False) if active is not None else (local_session(cores=2, driver_memory="1g"), True)


def run(*, fast: bool, rng: np.random.Generator) -> list[VariantResult]:
    """The campaign: sensitivity rows per (mechanism, engine, unit), attacks, planted bugs."""
    plan = FAST if fast else FULL
    spark, created = _spark_session() if "spark" in plan.engines else (None, False)
    engines = [e for e in plan.engines if e != "spark" or spark is not None]
    data_rng = np.random.default_rng(12)  # the audit tables are fixed; rng is the split's
    d = make_frame(plan.sens_persons, rng=data_rng)
    results: list[VariantResult] = []
    try:
        for engine in engines:
            factory = engine_factory(engine, **_engine_options(engine, spark))
            for mech, fit in MECHANISMS.items():
                for unit, k in UNITS.items():
                    with Timer() as t:
                        out = check_sensitivity(d, make_schema(k), fit, factory, rng=np.random.default_rng(5),
                                                key=MechanismKey.for_audit(f"{CAMPAIGN}|{engine}|{mech}|{unit}"))
                    results.append(_sens_result(f"sens/{mech}/{engine}/{unit}", "pass", out, t.seconds))
        for mech in plan.planted_mechanisms:
            for unit in ("person1", "person2"):
                with Timer() as t:
                    out = check_sensitivity(d, make_schema(UNITS[unit]), MECHANISMS[mech], seeded_bounding,
                                            key=MechanismKey.for_audit(CAMPAIGN), rng=np.random.default_rng(5))
                results.append(_sens_result(f"seeded_bounding/sens/{mech}/{unit}", "caught", out, t.seconds))
        for engine in (engines if not fast else ["numpy"]):
            with Timer() as t:
                out = check_sensitivity(d, make_schema(2), MECHANISMS["mst"],
                                        rekey_per_pass(engine_factory(engine, **_engine_options(engine, spark))),
                                        key=MechanismKey.for_audit(CAMPAIGN), rng=np.random.default_rng(5))
            results.append(_sens_result(f"rekey_per_pass/consistency/mst/{engine}", "caught", out, t.seconds))
        w0, w1, schema = attack_worlds(np.random.default_rng(13), plan.attack_persons)
        for engine in [e for e in engines if e in plan.attack_releases]:
            n = plan.attack_releases[engine]
            with Timer() as t:
                res = attack(engine_factory(engine, **_engine_options(engine, spark)), world0=w0, world1=w1,
                             schema=schema, releases=n)
            results.append(_attack_result(f"attack/independent/{engine}", "pass", res, n, t.seconds, rng))
        with Timer() as t:
            res = attack(seeded_bounding, world0=w0, world1=w1, schema=schema, releases=plan.planted_releases)
        results.append(_attack_result("seeded_bounding/attack/independent", "caught", res,
                                      plan.planted_releases, t.seconds, rng))
        from audits.campaigns import linked  # one person with all their rows in linked tables

        results += linked.run(rng=rng)
    finally:
        if created and spark is not None:
            spark.stop()
    return results
