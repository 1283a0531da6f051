"""D1: white-box, worst-case transcript audits of MST and AIM (docs/self-audits.md, "Campaigns and their planted bugs").

World 0 is ``D-``: two rows. World 1 adds a target that disagrees with both on every column.
The domain is public (declared in a schema), the claim is ``rho = 0.02`` converted to
epsilon at ``delta = 1e-5`` by :func:`dpsynth.privacy.budget.zcdp_to_epsilon`. Each run calls the
mechanism (``fit_mst`` / ``fit_aim``) on a :class:`~dpsynth.backends.numpy.NumpyBackend` and
keeps its transcript: the domain, the selected cliques and the noisy marginals. The score is
the log-likelihood-ratio statistic of a Gaussian transcript, ``sum_m noisy_m[target cell] /
sigma_m**2``, plus a large constant when the released domain itself can represent the target.

Planted bugs:

* ``domain_from_data``: the schema is drafted from the private rows with
  :func:`dpsynth.tabular.schema_io.draft_schema` (its ``private_inferred`` facts accepted). ``D-``
  holds each of its two rows :data:`~dpsynth.tabular.schema_io.MIN_CATEGORY_COUNT` times so the drafter
  publishes their categories; the lone target's values are "rare", so the drafted domain
  gains an ``other`` bucket exactly when the target is present.
* ``half_sigma``: measurement noise at ``sigma/2`` while the accountant charges ``sigma``.
  Too subtle for 2x1000 transcript runs at this claim: D2 gates it.
* ``no_noise``: measurements without noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from audits.campaigns.common import (
    Expect,
    NoiseBug,
    Sizes,
    Timer,
    VariantResult,
    eps_verdict,
    epsilon_details,
    noise_bug,
)
from dpsynth.backends.numpy import NumpyBackend
from dpsynth.errors import SchemaError
from dpsynth.mechanisms.aim import AIMConfig, fit_aim
from dpsynth.mechanisms.base import MarginalFit
from dpsynth.mechanisms.mst import MSTConfig, fit_mst
from dpsynth.privacy.accountant import Accountant
from dpsynth.privacy.budget import ZCDP, zcdp_to_epsilon
from dpsynth.privacy.gate import PrivateData
from dpsynth.tabular.encoding import encode
from dpsynth.tabular.schema import Schema, parse_schema
from dpsynth.tabular.schema_io import MIN_CATEGORY_COUNT, draft_schema

__all__ = ["CLAIM_DELTA", "CLAIM_RHO", "claimed_epsilon", "frame", "public_schema", "run_aim",
           "run_mst", "score"]

CLAIM_RHO = 0.02
CLAIM_DELTA = 1e-5
COLUMNS = ("c0", "c1", "c2")
VALUES = ("v0", "v1", "v2")
Row = tuple[str, ...]
D_MINUS: tuple[Row, ...] = (("v0",) * 3, ("v1",) * 3)
TARGET: Row = ("v2",) * 3
DOMAIN_SIGNAL = 1e6  # score bonus when the released domain can represent the target

# A perfectly separating bug needs >= 21 evaluation runs per world for the bound to exceed
# 0.794 at alpha = 1e-3 (the held-out split halves the runs): 46 gives 0.94.
MST_FAST = Sizes(correct=60, planted=46, covered=30)
MST_FULL = Sizes(correct=1000, planted=500)
AIM_FULL = Sizes(correct=1000, planted=300)

Fit = Callable[[PrivateData], MarginalFit]


def claimed_epsilon() -> float:
    """Epsilon claimed for ``rho = CLAIM_RHO`` at ``delta = CLAIM_DELTA``."""
    return zcdp_to_epsilon(CLAIM_RHO, CLAIM_DELTA)


def public_schema() -> Schema:
    """The declared (public) schema of the audit table."""
    cols = [{"name": c, "kind": "categorical", "categories": list(VALUES)} for c in COLUMNS]
    return parse_schema({"name": "d1-audit", "columns": cols}, "d1 audit schema")


def frame(rows: Sequence[Row]) -> pd.DataFrame:
    """The audit table holding ``rows``."""
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _worlds(domain_bug: bool) -> list[tuple[pd.DataFrame, Schema]]:
    """``[(data, released schema)]`` for world 0 (``D-``) and world 1 (``D-`` + target)."""
    base = list(D_MINUS) * (MIN_CATEGORY_COUNT if domain_bug else 1)
    out = []
    for rows in (base, [*base, TARGET]):
        df = frame(rows)
        out.append((df, draft_schema(df)[0] if domain_bug else public_schema()))
    return out


def _target_cell(schema: Schema) -> dict[str, int] | None:
    """Codes of the target's cell in the released domain, or None if it cannot be encoded."""
    cell: dict[str, int] = {}
    for col, value in zip(COLUMNS, TARGET, strict=True):
        c = schema.column(col)
        try:
            cell[col] = schema.category_code(col, value)
        except SchemaError:
            if not getattr(c, "other", False):
                return None
            cell[col] = c.n_values  # the "other" bucket follows the declared categories
    return cell


def score(fit: MarginalFit, schema: Schema) -> float:
    """Likelihood-ratio score of a transcript, plus the domain signal.

    A released domain that cannot represent the target scores 0; one that can scores
    ``DOMAIN_SIGNAL`` plus the noisy counts. With a public schema every run gets the constant,
    so only the counts separate the worlds.
    """
    cell = _target_cell(schema)
    if cell is None:
        return 0.0
    total = DOMAIN_SIGNAL
    sizes = schema.domain()
    comp = fit.compression
    for m in fit.measurements:
        idx = tuple(cell[c] for c in m.clique)
        if comp is not None and m.values.shape != tuple(sizes[c] for c in m.clique):
            # MST measured this marginal over its compressed domain: the target's compressed cell
            idx = tuple(int(comp.maps[c][cell[c]]) if c in comp.maps else cell[c] for c in m.clique)
        total += float(m.values[idx]) / m.sigma**2
    return total


def _scores(fit: Fit, world: tuple[pd.DataFrame, Schema], n: int) -> npt.NDArray[np.float64]:
    df, schema = world
    table = encode(df, schema)
    out = np.empty(n)
    for i in range(n):
        out[i] = score(fit(PrivateData(NumpyBackend(table), Accountant(ZCDP(CLAIM_RHO)))), schema)
    return out


def _expect(variant: str) -> Expect:
    return "pass" if variant == "correct" else "covered" if variant == "half_sigma" else "caught"


def _audit(name: str, fit: Fit, variant: str, n: int, rng: np.random.Generator,
           info: dict[str, Any]) -> VariantResult:
    bug: NoiseBug = variant if variant in ("half_sigma", "no_noise") else "none"  # type: ignore[assignment]
    worlds = _worlds(variant == "domain_from_data")
    with Timer() as t, noise_bug(bug):
        non = _scores(fit, worlds[0], n)
        mem = _scores(fit, worlds[1], n)
    eps, det = epsilon_details(mem, non, rng=rng, delta=CLAIM_DELTA)
    det.update(info)
    det.update({"rho": CLAIM_RHO, "domain_sizes": [w[1].domain() for w in worlds],
                "mean_score": [float(non.mean()), float(mem.mean())]})
    expect = _expect(variant)
    if expect == "covered":
        det["covered_by"] = "d2_measure"
    return eps_verdict(campaign=name, variant=variant, expect=expect, measure="eps",
                       claim=claimed_epsilon(), lower_bound=eps, trials=n,
                       seconds=t.seconds, details=det)


VARIANTS = ("correct", "domain_from_data", "no_noise", "half_sigma")


def run_mst(*, fast: bool, rng: np.random.Generator) -> list[VariantResult]:
    """D1 for MST (final estimate cut to one iteration: it is post-processing)."""
    cfg = MSTConfig(iters=1)
    sizes = MST_FAST if fast else MST_FULL

    def fit(data: PrivateData) -> MarginalFit:
        return fit_mst(data, rho=CLAIM_RHO, config=cfg)

    info = {"mechanism": "mst", "config": {"iters": cfg.iters}}
    return [_audit("d1_mst", fit, v, sizes.of(_expect(v)), rng, info) for v in VARIANTS]


def run_aim(*, fast: bool, rng: np.random.Generator) -> list[VariantResult]:
    """D1 for AIM with a small configuration (4 rounds, 5 estimation iterations, 2-way)."""
    cfg = AIMConfig(max_rounds=4, round_iters=5, final_iters=5, degree=2)
    sizes = Sizes(correct=60, planted=46, covered=30) if fast else AIM_FULL

    def fit(data: PrivateData) -> MarginalFit:
        return fit_aim(data, rho=CLAIM_RHO, config=cfg)

    info = {"mechanism": "aim", "config": {"max_rounds": 4, "round_iters": 5,
                                           "final_iters": 5, "degree": 2}}
    return [_audit("d1_aim", fit, v, sizes.of(_expect(v)), rng, info) for v in VARIANTS]
