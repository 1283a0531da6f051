"""Seeded equivalence of two source trees: MST and AIM with OpenDP's samplers replaced by seeded ones.

DP noise cannot be seeded (OpenDP draws from the OS CSPRNG), so a refactoring is checked by
replacing the two samplers with seeded numpy stand-ins *in this process only* and comparing
what each tree measures, selects and samples on the integer-coded Adult. Usage:

    git worktree add /tmp/before <commit>
    .venv/bin/python benchmarks/equivalence.py /tmp/before > before.json
    .venv/bin/python benchmarks/equivalence.py "$PWD" > after.json
    diff before.json after.json   # no output: the same numbers before and after

Never use these stand-ins for a release: they are not differentially private samplers.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
from typing import Any

import numpy as np
import pandas as pd


def _seeded_samplers(noise: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)

    def discrete_gaussian(counts: Any, sigma: float) -> Any:
        c = np.asarray(counts, dtype=np.int64)
        return c + np.rint(rng.normal(0, sigma, size=c.shape)).astype(np.int64)

    def noisy_max(scores: Any, scale: float) -> int:
        s = np.asarray(scores, dtype=float).ravel()
        return int(np.argmax(s + rng.gumbel(0, scale, size=s.size)))

    noise.discrete_gaussian = discrete_gaussian
    noise.noisy_max = noisy_max


def main(tree: str) -> dict[str, Any]:
    sys.path.insert(0, tree)  # import the tree under test, not the installed package
    _seeded_samplers(importlib.import_module("dpsynth.privacy.noise"), 12345)
    api = importlib.import_module("dpsynth.api")
    from_pgm_domain = importlib.import_module("dpsynth.tabular.schema").from_pgm_domain
    with open(f"{tree}/tests/data/adult-coded-domain.json", encoding="utf-8") as fh:
        domain = json.load(fh)
    data = pd.read_csv(f"{tree}/tests/data/adult-coded.csv")
    schema = from_pgm_domain(domain)
    out: dict[str, Any] = {}
    for mech in ("mst", "aim"):
        synth = api.fit(data, schema, mechanism=mech, epsilon=1.0, delta=1e-9)
        digest = hashlib.sha256()
        for m in synth.measurements:
            digest.update(repr(m.clique).encode())
            digest.update(np.asarray(m.values).tobytes())
        codes = synth.sample_codes(2000, np.random.default_rng(0))
        out[mech] = {"measurements": digest.hexdigest()[:16], "selected": [list(c) for c in synth.selected],
                     "rows": synth.estimated_rows,
                     "sample": hashlib.sha256(np.ascontiguousarray(codes).tobytes()).hexdigest()[:16]}
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1]), indent=1))
