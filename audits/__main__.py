"""Command line: ``python -m audits run [--fast] [--only NAME] [--out DIR]``.

Prints one table row per variant and exits 1 if a correct variant fails or a gated planted
bug is not caught (2 on usage errors).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from audits import CAMPAIGNS, RESULTS_DIR, VariantResult, all_ok, run_campaigns


def _table(results: dict[str, list[VariantResult]]) -> str:
    head = ("campaign", "variant", "claim", "lower bound", "verdict", "trials", "seconds")
    rows = [head]
    for rs in results.values():
        for r in rs:
            verdict = r.verdict
            if r.expect == "covered" and r.verdict == "MISSED":
                verdict += f" (gated by {r.details.get('covered_by')})"
            rows.append((r.campaign, r.variant, f"{r.measure}={r.claim:.4f}",
                         f"{r.lower_bound:.4f}", verdict, f"2x{r.trials}", f"{r.seconds:.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    p = argparse.ArgumentParser(prog="python -m audits", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run audit campaigns")
    r.add_argument("--fast", action="store_true", help="CI subset with small trial counts")
    r.add_argument("--only", action="append", choices=sorted(CAMPAIGNS),
                   help="run only this campaign (repeatable)")
    r.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory")
    r.add_argument("--seed", type=int, default=None, help="seed of the held-out split only")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("audits").setLevel(logging.INFO)
    t0 = time.perf_counter()
    results = run_campaigns(fast=args.fast, only=args.only, results_dir=args.out, seed=args.seed)
    ok = all_ok(results)
    sys.stdout.write(_table(results) + "\n")
    sys.stdout.write(f"\n{'OK' if ok else 'FAILED'}: {sum(len(v) for v in results.values())} "
                     f"variants in {time.perf_counter() - t0:.1f} s ({'fast' if args.fast else 'full'}"
                     f" mode); results in {args.out}\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
