"""Benchmark: noisy cells per second, OpenDP's exact discrete Gaussian vs numpy's float normal.

dpsynth adds noise only with OpenDP's vector discrete Gaussian (exact, CSPRNG, integer
output). numpy's ``Generator.normal`` is shown side by side as the insecure, floating-point
baseline that peers use (vulnerable to precision attacks, Mironov 2012); it is never used on a
private path. Run: ``python benchmarks/noise.py [--sizes 1000 10000 100000] [--sigma 3]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from dpsynth.privacy.noise import discrete_gaussian


def _best_rate(fn: Callable[[], object], cells: int, repeats: int) -> float:
    """Cells per second of the fastest of ``repeats`` runs."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return cells / best


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--sigma", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)  # benchmark only: the float baseline's generator
    discrete_gaussian(np.zeros(10, dtype=np.int64), args.sigma)  # build the measurement once
    print(f"noisy cells per second, sigma={args.sigma}, best of {args.repeats}")
    header = f"{'cells':>10} | {'OpenDP discrete Gaussian':>25} | {'numpy normal (float)':>21}"
    print(header + f" | {'numpy / OpenDP':>14}")
    print("-" * (len(header) + 17))
    for n in args.sizes:
        counts = np.zeros(n, dtype=np.int64)
        ours = _best_rate(lambda c=counts: discrete_gaussian(c, args.sigma), n, args.repeats)
        theirs = _best_rate(
            lambda c=counts: c + rng.normal(0.0, args.sigma, size=c.size), n, args.repeats
        )
        print(f"{n:>10,} | {ours:>25,.0f} | {theirs:>21,.0f} | {theirs / ours:>13,.0f}x")


if __name__ == "__main__":
    main()
