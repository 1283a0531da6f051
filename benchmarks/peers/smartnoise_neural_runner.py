"""Peer runner: smartnoise-synth's neural synthesizers (DPCTGAN, PATECTGAN) on coded rows.

Runs inside benchmarks/.venvs/smartnoise (made by benchmarks/synth.py), called by
benchmarks/neural.py. Every column is categorical; its one-hot transformer is fitted on the
public domain (every code 0..size-1) before the private fit, so no preprocessor budget is
spent. Library defaults otherwise (epochs=300, batch 500; both stop early once their own
accountant reaches epsilon), with ``delta`` passed explicitly and torch on one thread.
smartnoise's own privacy accounting is taken as is; it is not checked here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import pandas as pd
import torch
from _common import parse, timed_fit, write_rows
from snsynth import Synthesizer
from snsynth.transform import TableTransformer


def main() -> None:
    args = parse()
    torch.set_num_threads(1)
    np.random.seed(args.seed)  # smartnoise draws from the global numpy and torch RNGs
    torch.manual_seed(args.seed)
    domain = json.loads(Path(args.domain).read_text())
    columns = list(domain)
    train = pd.read_csv(args.train)[columns]
    width = max(domain.values())
    public = pd.DataFrame({c: [i % domain[c] for i in range(width)] for c in columns})
    transformer = TableTransformer.from_column_names(columns, style="gan", categorical_columns=columns)
    transformer.fit(public)
    synth = Synthesizer.create(args.mechanism, epsilon=args.epsilon, delta=args.delta,
                               verbose=False, cuda=False)

    def fit() -> None:
        synth.fit(train, transformer=transformer, categorical_columns=columns)

    _, meta = timed_fit(fit)
    model = getattr(synth, "_model", synth)
    spent = getattr(model, "epsilon_list", None)
    if spent:
        meta["epsilon_reported"] = float(spent[-1])
    meta["epochs_run"] = len(spent) if spent else float("nan")
    write_rows(args.out, synth.sample(len(train)), columns, meta)


if __name__ == "__main__":
    main()
