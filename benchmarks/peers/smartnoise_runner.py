"""Peer runner: smartnoise-synth's MST or AIM (mbi 1.x inside).

Runs inside benchmarks/.venvs/smartnoise. smartnoise reads each column's categories from the
data unless given a fitted transformer, so one label transformer per column is fitted on the
public domain (every code 0..size-1) before the private fit: no budget is spent on it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import pandas as pd
from _common import parse, timed_fit, write_rows
from snsynth import Synthesizer
from snsynth.transform import LabelTransformer, TableTransformer


def main() -> None:
    args = parse()
    np.random.seed(args.seed)  # smartnoise's mechanisms draw from numpy's global RNG
    domain = json.loads(Path(args.domain).read_text())
    columns = list(domain)
    train = pd.read_csv(args.train)[columns]
    width = max(domain.values())
    public = pd.DataFrame({c: [i % domain[c] for i in range(width)] for c in columns})
    transformer = TableTransformer([LabelTransformer(nullable=False) for _ in columns])
    transformer.fit(public)
    synth = Synthesizer.create(args.mechanism, epsilon=args.epsilon, delta=args.delta)

    def fit() -> None:
        synth.fit(train, transformer=transformer)

    _, meta = timed_fit(fit)
    write_rows(args.out, synth.sample(len(train)), columns, meta)


if __name__ == "__main__":
    main()
