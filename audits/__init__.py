"""dpsynth's self-audits: empirical privacy lower bounds for its own mechanisms.

Each campaign plays the membership game of ``docs/self-audits.md`` ("The game") against a dpsynth mechanism
on worst-case neighbouring inputs, for the correct code and for planted privacy bugs, and
compares a Clopper-Pearson lower bound (on epsilon, or on the Gaussian-DP mu) with the claim.
Correct code must PASS (bound <= claim); every planted bug must be CAUGHT (bound > claim).
Run ``python -m audits run [--fast] [--only NAME]``; see ``audits/README.md``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from audits.campaigns import CAMPAIGNS, Campaign
from audits.campaigns.common import ALPHA, VariantResult

__all__ = [
    "ALPHA",
    "CAMPAIGNS",
    "RESULTS_DIR",
    "Campaign",
    "VariantResult",
    "all_ok",
    "run_campaigns",
]

log = logging.getLogger(__name__)

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def run_campaigns(*, fast: bool = True, only: Sequence[str] | None = None,
                  results_dir: Path | None = RESULTS_DIR, seed: int | None = None
                  ) -> dict[str, list[VariantResult]]:
    """Run campaigns and optionally write ``<results_dir>/<campaign>.json``.

    Args:
        fast: The CI subset and sizes (else every campaign at full size).
        only: Campaign names to run (default: all of the chosen mode).
        results_dir: Where to write one JSON file per campaign; ``None`` writes nothing.
        seed: Seed of the held-out split only (DP noise always comes from OpenDP's CSPRNG).

    Returns:
        ``{campaign name: results}`` in run order.
    """
    names = list(only) if only else [n for n, c in CAMPAIGNS.items() if c.in_fast or not fast]
    unknown = [n for n in names if n not in CAMPAIGNS]
    if unknown:
        raise KeyError(f"unknown campaign(s) {unknown}; known: {sorted(CAMPAIGNS)}")
    rng = np.random.default_rng(seed)
    out: dict[str, list[VariantResult]] = {}
    for name in names:
        log.info("audit campaign %s (%s mode)", name, "fast" if fast else "full")
        results = CAMPAIGNS[name].run(fast=fast, rng=rng)
        out[name] = results
        if results_dir is not None:
            results_dir.mkdir(parents=True, exist_ok=True)
            doc = {"campaign": name, "mode": "fast" if fast else "full", "alpha": ALPHA,
                   "summary": CAMPAIGNS[name].summary,
                   "ok": all(r.ok for r in results),
                   "variants": [r.to_json() for r in results]}
            (results_dir / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    return out


def all_ok(results: dict[str, list[VariantResult]]) -> bool:
    """True iff every correct variant passed and every gated planted bug was caught."""
    return all(r.ok for rs in results.values() for r in rs)
