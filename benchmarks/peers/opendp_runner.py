"""Peer runner: OpenDP 0.16 ``opendp.extras.mbi`` MST or AIM (Private-PGM on JAX).

Runs inside benchmarks/.venvs/opendp. Every column's keys (0..size-1) are declared public, so
OpenDP needs no delta and the budget is given as rho-zCDP (converted from (eps, delta) by
benchmarks/synth.py with dpsynth's own conversion).
"""

from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import opendp.prelude as dp
import polars as pl
from _common import parse, timed_fit, write


def _prior(x: float) -> float:
    return float(np.nextafter(x, -np.inf))


def _up_add(a: float, b: float) -> float:
    s = a + b
    return float(np.nextafter(s, np.inf)) if Fraction(s) < Fraction(a) + Fraction(b) else s


def mst_safe_rho(rho: float, n_select: int) -> float:
    """Largest rho' <= rho (within ~1e-8 relative) that OpenDP 0.16's MST can spend.

    OpenDP 0.16 splits MST's selection budget into ``n_select`` equal parts and sums them with
    upward rounding; for some rho the sum exceeds the part it was split from by a few ulps and
    the release fails with "insufficient budget for query". This replays that arithmetic
    (defaults: one-way split 0.5, measure split 0.9) and steps rho down until it fits.
    """
    for i in range(10_000):
        r = rho * (1 - i * 1e-12)
        multi = _prior(_prior(r - r * 0.5))
        select = _prior(_prior(multi - multi * 0.9))
        each, total = _prior(select / n_select), 0.0
        for _ in range(n_select):
            total = _up_add(total, each)
        if total <= select:
            return r
    return rho


def main() -> None:
    args = parse()
    np.random.seed(args.seed)  # mbi's sampler uses numpy's global RNG; OpenDP's noise is unseedable
    dp.enable_features("contrib")
    domain = json.loads(Path(args.domain).read_text())
    columns = list(domain)
    with open(args.train, encoding="utf-8") as fh:
        n_rows = sum(1 for _ in fh) - 1
    algorithm = dp.mbi.MST() if args.mechanism == "mst" else dp.mbi.AIM()
    rho = mst_safe_rho(args.rho, len(columns) - 1) if args.mechanism == "mst" else args.rho

    def fit() -> object:
        context = dp.Context.compositor(
            data=pl.scan_csv(args.train), privacy_unit=dp.unit_of(contributions=1),
            privacy_loss=dp.loss_of(rho=rho))
        query = context.query(rho=rho).select(columns).contingency_table(
            keys={c: list(range(domain[c])) for c in columns}, algorithm=algorithm)
        return query.release()

    table, meta = timed_fit(fit)
    frame = table.synthesize(rows=n_rows).to_pandas()  # type: ignore[attr-defined]
    write(args.out, frame, columns, {**meta, "rho": rho, "rho_requested": args.rho})


if __name__ == "__main__":
    main()
