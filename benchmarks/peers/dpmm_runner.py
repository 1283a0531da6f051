"""Peer runner: dpmm's MST or AIM pipeline (its own Private-PGM port, numpy).

Runs inside benchmarks/.venvs/dpmm. The data is already integer-coded, so dpmm's binning
preprocessor is disabled and the public domain (column -> size) is handed to the model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd
from _common import parse, timed_fit, write
from dpmm.pipelines import AIMPipeline, MSTPipeline


def main() -> None:
    args = parse()
    domain = json.loads(Path(args.domain).read_text())
    columns = list(domain)
    train = pd.read_csv(args.train)[columns]
    cls = MSTPipeline if args.mechanism == "mst" else AIMPipeline
    pipe = cls(epsilon=args.epsilon, delta=args.delta, disable_processing=True)

    def fit() -> None:
        pipe.fit(train, domain=dict(domain), random_state=args.seed)

    _, meta = timed_fit(fit)
    frame = pipe.generate(n_records=len(train), random_state=args.seed)
    write(args.out, frame, columns, meta)


if __name__ == "__main__":
    main()
