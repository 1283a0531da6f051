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

``.venv/bin/python benchmarks/pgm_engine.py aim-profile EPS SEED`` fits AIM on the benchmark's
training split (``benchmarks/synth.py``) with a *seeded* noise stand-in (benchmark only: the
same seed gives the same measurements, so two versions of the engine can be compared run for
run) and prints, per round, the estimate's CPU seconds, the process RSS and peak RSS and the
junction tree's size; then the whole fit's CPU seconds and peak RSS.

``.venv/bin/python benchmarks/pgm_engine.py sampling [EPS]`` fits MST and AIM (real noise,
seed 0) and prints rows per CPU second of sampling 1,000,000 rows as integer codes (median of
five, what ``synth.py`` counts as sampling) and as a decoded DataFrame.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

from dpsynth.pgm import Domain, estimate, sample
from dpsynth.privacy.measure import Measurement

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
    from dpsynth.tabular.encoding import encode, read_frame
    from dpsynth.tabular.schema import load_schema
    from dpsynth.tabular.schema_io import from_pgm_domain

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


def _rss_mib() -> tuple[float, float]:
    """Current and peak resident set size of this process (Linux ``/proc``)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def aim_profile(eps: float, seed: int) -> None:
    """AIM with seeded stand-in noise (benchmark only), one line per re-estimation."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import synth

    from dpsynth.backends.numpy import NumpyBackend
    from dpsynth.mechanisms import aim
    from dpsynth.privacy import noise
    from dpsynth.privacy.accountant import Accountant
    from dpsynth.privacy.budget import ZCDP, epsilon_to_rho
    from dpsynth.tabular.encoding import encode
    from dpsynth.tabular.schema_io import from_pgm_domain

    fake = np.random.default_rng(1000 + seed)  # NOT private: reproducible stand-in noise

    def gaussian(counts: np.ndarray, sigma: float) -> np.ndarray:
        return (counts + np.rint(fake.normal(0.0, sigma, counts.shape))).astype(np.int64)

    def noisy_max(scores: list[float], scale: float) -> int:
        return int(np.argmax(np.asarray(scores) + fake.gumbel(0.0, scale, len(scores))))

    noise.discrete_gaussian = gaussian  # type: ignore[assignment]
    aim.noisy_max = noisy_max  # type: ignore[assignment]
    real_estimate = aim.estimate

    def logged(*args: object, **kwargs: object) -> object:
        cpu = time.process_time()
        model = real_estimate(*args, **kwargs)  # type: ignore[arg-type]
        rss, peak = _rss_mib()
        print(f"estimate cpu {time.process_time() - cpu:7.2f} s  rss {rss:6.0f} MiB  "
              f"peak {peak:6.0f} MiB  tree {model.tree.size():>9,d} cells", flush=True)
        return model

    aim.estimate = logged  # type: ignore[assignment]
    train, _, domain = synth.split()
    schema = from_pgm_domain(domain)
    backend = NumpyBackend(encode(train, schema))
    rho = epsilon_to_rho(eps, 1e-9)
    cpu = time.process_time()
    from dpsynth.privacy.gate import PrivateData

    fit = aim.fit_aim(PrivateData(backend, Accountant(ZCDP(rho))), rho=rho)
    cpu = time.process_time() - cpu
    print(f"AIM eps={eps:g} seed={seed}: {len(fit.selected)} rounds, fit {cpu:.1f} CPU s, "
          f"peak RSS {_rss_mib()[1]:.0f} MiB")
    print("selected:", [list(c) for c in fit.selected])


def sampling(eps: float) -> None:
    """Rows per CPU second of sampling 1M rows from MST and AIM fits on the coded Adult."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import synth

    from dpsynth import api
    from dpsynth.backends.numpy import NumpyBackend
    from dpsynth.tabular.encoding import encode
    from dpsynth.tabular.schema_io import from_pgm_domain

    train, _, domain = synth.split()
    schema = from_pgm_domain(domain)
    for mech in ("mst", "aim"):
        syn = api.fit(NumpyBackend(encode(train, schema)), schema, mechanism=mech,  # type: ignore[arg-type]
                      epsilon=eps, delta=1e-9, seed=0)
        codes, frames = [], []
        for rep in range(5):
            cpu = time.process_time()
            syn.sample_codes(1_000_000, np.random.default_rng(rep))
            codes.append(1.0 / (time.process_time() - cpu))
            cpu = time.process_time()
            syn.sample(rows=1_000_000, seed=rep)
            frames.append(1.0 / (time.process_time() - cpu))
        print(f"{mech}: {sorted(codes)[2]:.2f} M rows/CPU-s as codes, "
              f"{sorted(frames)[2]:.2f} M rows/CPU-s as a DataFrame (median of 5)", flush=True)


if __name__ == "__main__":
    import sys

    if len(sys.argv) > 1 and sys.argv[1] == "mechanisms":
        mechanisms(int(sys.argv[2]) if len(sys.argv) > 2 else 3)
    elif len(sys.argv) > 1 and sys.argv[1] == "aim-profile":
        aim_profile(float(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    elif len(sys.argv) > 1 and sys.argv[1] == "sampling":
        sampling(float(sys.argv[2]) if len(sys.argv) > 2 else 1.0)
    else:
        main()
