"""Micro-benchmark of the graphical-model engine on the integer-coded Adult data.

Fits an MST-like model (15 one-way + 14 two-way tree measurements) and an AIM-like model with
a few extra 3-way cliques, then times ``project_many`` over all 3-way cliques and sampling.
Noise is a seeded Gaussian stand-in (benchmark only: nothing here is private).

Run: ``.venv/bin/python benchmarks/pgm_engine.py``

``.venv/bin/python benchmarks/pgm_engine.py mechanisms [runs]`` instead runs the real AIM and
MST end to end (OpenDP noise, eps=1, delta=1e-9) on ``examples/adult`` and on the integer-coded
Adult, and prints fit wall/CPU time, 1/2/3-way workload error of a same-size synthetic sample
(mean L1 between normalised real and synthetic marginals on codes) and peak RSS. CPU time is
the number to compare on a shared machine.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

from dpsynth.measure import Measurement
from dpsynth.pgm import Domain, estimate, sample

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def main() -> None:
    """Run the benchmark and print a table of timings and errors."""
    sizes = json.loads((DATA / "adult-coded-domain.json").read_text())
    frame = pd.read_csv(DATA / "adult-coded.csv")
    domain = Domain.from_dict({c: sizes[c] for c in frame.columns})
    codes = frame.to_numpy(dtype=np.int64)
    rng = np.random.default_rng(0)

    def exact(clique: tuple[str, ...]) -> np.ndarray:
        idx = [domain.attrs.index(a) for a in clique]
        shape = domain.project(clique).shape
        flat = np.ravel_multi_index(tuple(codes[:, i] for i in idx), shape)
        return np.bincount(flat, minlength=int(np.prod(shape))).reshape(shape)

    def noisy(clique: tuple[str, ...], sigma: float) -> Measurement:
        y = exact(clique) + np.round(rng.normal(0, sigma, domain.project(clique).shape))
        return Measurement(clique, y.astype(np.int64), sigma)

    pairs = list(itertools.combinations(domain.attrs, 2))
    graph = nx.Graph()
    for a, b in pairs:
        t = exact((a, b)).astype(float) / len(codes)
        pa, pb = t.sum(1, keepdims=True), t.sum(0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            mi = np.nansum(t * np.log(t / (pa * pb)))
        graph.add_edge(a, b, weight=mi)
    tree = [tuple(e) for e in nx.maximum_spanning_tree(graph).edges()]
    sigma = 10.0
    ms = [noisy((a,), sigma) for a in domain.attrs] + [noisy(e, sigma) for e in tree]

    def err(model_probs: dict[tuple[str, ...], np.ndarray], k: int) -> float:
        out = []
        for c in itertools.combinations(domain.attrs, k):
            out.append(np.abs(model_probs[c] - exact(c) / len(codes)).sum())
        return float(np.mean(out))

    rows = []
    start = time.perf_counter()
    losses: list[float] = []
    model = estimate(domain, ms, callback=lambda i, loss: losses.append(loss))
    rows.append(("estimate MST-like (29 measurements)", time.perf_counter() - start, len(losses)))
    triples = list(itertools.combinations(domain.attrs, 3))
    start = time.perf_counter()
    tables = model.project_many(triples)
    rows.append(("project_many 455 3-way", time.perf_counter() - start, len(tables)))
    start = time.perf_counter()
    synth = sample(model, 1_000_000, np.random.default_rng(1))
    rows.append(("sample 1M rows", time.perf_counter() - start, synth.shape[0]))

    extra = [
        noisy(c, sigma)
        for c in [
            ("age", "education", "income>50K"),
            ("occupation", "sex", "hours-per-week"),
            ("marital-status", "relationship", "age"),
        ]
    ]
    start = time.perf_counter()
    losses2: list[float] = []
    model2 = estimate(
        domain, ms + extra, warm_start=model, callback=lambda i, loss: losses2.append(loss)
    )
    rows.append(("estimate +3 3-way, warm start", time.perf_counter() - start, len(losses2)))
    start = time.perf_counter()
    model2.project_many(triples)
    rows.append(
        ("project_many 455 3-way (cyclic)", time.perf_counter() - start, len(model2.cliques))
    )

    print(f"{'step':42s} {'seconds':>9s} {'n':>8s}")
    for name, secs, n in rows:
        print(f"{name:42s} {secs:9.3f} {n:8d}")
    probs = {
        c: model.probability(c) for k in (1, 2, 3) for c in itertools.combinations(domain.attrs, k)
    }
    print(
        "workload L1 error of MST-like model (1,2,3-way):",
        [round(err(probs, k), 4) for k in (1, 2, 3)],
    )


def _workload_error(real: np.ndarray, synth: np.ndarray, sizes: tuple[int, ...], k: int) -> float:
    def table(codes: np.ndarray, cols: tuple[int, ...]) -> np.ndarray:
        shape = tuple(sizes[i] for i in cols)
        flat = np.ravel_multi_index(tuple(codes[:, i] for i in cols), shape)
        counts = np.bincount(flat, minlength=int(np.prod(shape))).astype(float)
        return counts / counts.sum()

    cols = itertools.combinations(range(real.shape[1]), k)
    return float(np.mean([np.abs(table(real, c) - table(synth, c)).sum() for c in cols]))


def mechanisms(runs: int) -> None:
    """End-to-end AIM and MST on both Adult versions; one line per run."""
    import resource

    from dpsynth import api
    from dpsynth.backends.numpy import NumpyBackend
    from dpsynth.encoding import encode, read_frame
    from dpsynth.schema import load_schema
    from dpsynth.schema_io import from_pgm_domain

    root = Path(__file__).resolve().parents[1]
    schema = load_schema(root / "examples" / "adult" / "schema.yaml")
    datasets = {
        "examples/adult": (schema, read_frame(root / "examples" / "adult" / "adult.csv", schema))
    }
    sizes = json.loads((DATA / "adult-coded-domain.json").read_text())
    datasets["adult-coded"] = (from_pgm_domain(sizes), pd.read_csv(DATA / "adult-coded.csv"))
    print(
        f"{'data':15s} {'mech':4s} {'wall s':>7s} {'cpu s':>7s} {'err1':>6s} {'err2':>6s} "
        f"{'err3':>6s} {'rounds':>6s} {'RSS MB':>7s}"
    )
    for name, (sch, frame) in datasets.items():
        table = encode(frame, sch)
        for mech in ("aim", "mst"):
            for r in range(runs if mech == "aim" else 1):
                wall, cpu = time.perf_counter(), time.process_time()
                syn = api.fit(NumpyBackend(table), sch, mechanism=mech, epsilon=1.0, delta=1e-9)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                codes = syn.sample_codes(table.codes.shape[0], np.random.default_rng(r))
                errs = [_workload_error(table.codes, codes, table.sizes, k) for k in (1, 2, 3)]
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                print(
                    f"{name:15s} {mech:4s} {wall:7.1f} {cpu:7.1f} {errs[0]:6.4f} {errs[1]:6.4f} "
                    f"{errs[2]:6.4f} {syn.params.get('rounds', '')!s:>6s} {rss:7.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    import sys

    if len(sys.argv) > 1 and sys.argv[1] == "mechanisms":
        mechanisms(int(sys.argv[2]) if len(sys.argv) > 2 else 3)
    else:
        main()
