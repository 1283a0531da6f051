"""Benchmark the DP-VAE and DP-GAN against the independent-marginals baseline on UCI Adult
(or, with ``--table``, on a coded benchmark table of ``benchmarks/tables.py``).

For each epsilon: fit on an 80% split, sample as many rows as the DP row estimate, and report
the 2-way workload error (mean L1 distance between normalised real and synthetic 2-way
marginals on codes, over all column pairs, against the training split), the train-on-synthetic
/ test-on-real AUC (HistGradientBoosting predicting income-per-year on the held-out 20%), the
epsilon the accountant ledger reports, and fit time. The baseline is implemented inline: every
column's 1-way marginal measured with discrete Gaussian noise (equal rho shares), columns
sampled independently. Neural rows are sampled with marginal calibration (the default); the
notes also report the same model sampled without it. Both run with the library's per-model
defaults (``MODEL_DEFAULTS``) unless ``--vae-*`` / ``--lr`` / ``--latent-dim`` say otherwise.
``--only`` may add dpsynth's ``mst`` and ``aim`` (through ``dpsynth.api.fit``).

Peers (``--peers smartnoise``): smartnoise-synth's DPCTGAN and PATECTGAN run in their own
virtualenv (``benchmarks/.venvs/smartnoise``, made by benchmarks/synth.py) through
``benchmarks/peers/smartnoise_neural_runner.py``, one subprocess per fit, on the same training
codes. Their rows and timings are cached under ``benchmarks/.cache/neural/peers`` and reused;
every run of ours is appended to ``benchmarks/.cache/neural/runs.jsonl``, so
``--table-only`` re-prints the median table without fitting anything.

    .venv/bin/python benchmarks/neural.py --eps 3 --seeds 3   # ~3 min idle per seed
    .venv/bin/python benchmarks/neural.py --eps 1 3 10 --seeds 3 --peers smartnoise
    .venv/bin/python benchmarks/neural.py --table-only
    .venv/bin/python benchmarks/neural.py --table yrbss --eps 1 3 --seeds 2 --only independent dpvae

A ``dpvae``/``dpgan`` run with ``--allow-weak`` off (the library default) is refused when the
table is too small for DP-SGD at that epsilon; the refusal is recorded as the run's result.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from dpsynth.backends.numpy import NumpyBackend
from dpsynth.neural import NeuralConfig, fit_neural
from dpsynth.neural.limits import WeakDPSGDError
from dpsynth.privacy.accountant import Accountant
from dpsynth.privacy.budget import ApproxDP
from dpsynth.privacy.events import GaussianEvent
from dpsynth.privacy.gate import PrivateData
from dpsynth.privacy.noise import discrete_gaussian
from dpsynth.privacy.randomness import MechanismKey
from dpsynth.tabular.encoding import encode, read_frame
from dpsynth.tabular.schema import load_schema
from dpsynth.tabular.table import Table

ROOT = Path(__file__).resolve().parents[1]
TARGET = "income-per-year"
CACHE = ROOT / "benchmarks" / ".cache" / "neural"
RUNS = CACHE / "runs.jsonl"
PEER_VENV = ROOT / "benchmarks" / ".venvs" / "smartnoise"
PEER_MECHS = ("dpctgan", "patectgan")
PEER_TIMEOUT_S = 5400


def independent(table: Table, accountant: Accountant, rows: int | None,
                rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Noisy 1-way marginals (equal rho per column), columns sampled independently."""
    rhos = accountant.remaining_split(len(table.columns))
    out, n_est = [], None
    for j, (size, rho) in enumerate(zip(table.sizes, rhos, strict=True)):
        sigma = (1.0 / (2.0 * rho)) ** 0.5
        accountant.charge(GaussianEvent(sigma, 1.0, label=f"independent: {table.columns[j]}"))
        counts = np.bincount(table.codes[:, j], minlength=size).astype(np.int64)
        noisy = np.clip(discrete_gaussian(counts, sigma), 0, None).astype(float)
        if n_est is None:
            n_est = max(1, int(noisy.sum()))
        p = noisy / noisy.sum() if noisy.sum() > 0 else np.full(size, 1.0 / size)
        out.append(p)
    n = rows or n_est or 1
    return np.stack([rng.choice(len(p), size=n, p=p) for p in out], axis=1), n


def two_way_error(real: np.ndarray, synth: np.ndarray, sizes: tuple[int, ...]) -> float:
    """Mean over all column pairs of the L1 distance between normalised 2-way marginals."""
    errs = []
    for a, b in itertools.combinations(range(len(sizes)), 2):
        shape = (sizes[a], sizes[b])
        r = np.bincount(real[:, a] * sizes[b] + real[:, b], minlength=shape[0] * shape[1])
        s = np.bincount(synth[:, a] * sizes[b] + synth[:, b], minlength=shape[0] * shape[1])
        errs.append(np.abs(r / max(1, r.sum()) - s / max(1, s.sum())).sum())
    return float(np.mean(errs))


def tstr_auc(synth: np.ndarray, test: np.ndarray, target: int) -> float:
    """Train on synthetic codes, test on real: ROC AUC for the target's positive class."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    feats = [j for j in range(synth.shape[1]) if j != target]
    y = (synth[:, target] == 1).astype(int)
    if y.min() == y.max():
        return 0.5
    clf = HistGradientBoostingClassifier(max_iter=200, random_state=0)
    clf.fit(synth[:, feats], y)
    return float(roc_auc_score((test[:, target] == 1).astype(int),
                               clf.predict_proba(test[:, feats])[:, 1]))


def split(name: str = "adult") -> tuple[Any, Table, np.ndarray]:
    """The schema, the 80% training table and the 20% held-out codes (permutation seed 0)."""
    if name == "adult":
        schema = load_schema(ROOT / "examples/adult/schema.yaml")
        table = encode(read_frame(ROOT / "examples/adult/adult.csv", schema), schema)
    else:
        from dpsynth.tabular.schema_io import from_pgm_domain

        sys.path.insert(0, str(ROOT / "benchmarks"))
        from tables import load

        frame, domain = load(name)
        schema = from_pgm_domain(domain)
        table = encode(frame, schema)
    perm = np.random.default_rng(0).permutation(table.num_rows)
    cut = int(0.8 * len(perm))
    return (schema, Table(table.columns, table.sizes, table.codes[perm[:cut]]),
            table.codes[perm[cut:]])


def _runs(name: str) -> Path:
    return RUNS if name == "adult" else CACHE / name / "runs.jsonl"


def record(row: dict[str, Any], name: str = "adult") -> None:
    """Print one run and append it to the run cache."""
    print(f"{row['eps']:>5g} {row['method']:<12} {row['l1']:>9.4f} {row['auc']:>6.3f} "
          f"{row.get('ledger_eps', float('nan')):>10.4f} {row['fit_s']:>7.1f}  {row.get('notes', '')}")
    runs = _runs(name)
    runs.parent.mkdir(parents=True, exist_ok=True)
    with runs.open("a") as fh:
        fh.write(json.dumps(row) + "\n")


def run_peer(mech: str, eps: float, seed: int, train: Table, delta: float,
             test: np.ndarray, target: int) -> dict[str, Any]:
    """One smartnoise-synth fit in its virtualenv (cached), scored like ours."""
    import pandas as pd

    out = CACHE / "peers" / f"smartnoise-{mech}-eps{eps:g}-seed{seed}".replace(".", "p")
    meta_path = out.with_suffix(".json")
    if not meta_path.exists():
        data = CACHE / "data"
        data.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(train.codes, columns=list(train.columns)).to_csv(data / "train.csv", index=False)
        (data / "domain.json").write_text(json.dumps(dict(zip(train.columns, map(int, train.sizes), strict=True))))
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [str(PEER_VENV / "bin" / "python"),
               str(ROOT / "benchmarks" / "peers" / "smartnoise_neural_runner.py"),
               "--train", str(data / "train.csv"), "--domain", str(data / "domain.json"),
               "--mechanism", mech, "--epsilon", str(eps), "--delta", str(delta), "--rho", "0",
               "--seed", str(seed), "--out", str(out)]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PEER_TIMEOUT_S,
                                  check=False)
            if proc.returncode != 0 or not meta_path.exists():
                meta_path.write_text(json.dumps({"status": "failed",
                                                 "error": proc.stderr.strip()[-1500:]}))
        except (subprocess.TimeoutExpired, FileNotFoundError) as exc:
            meta_path.write_text(json.dumps({"status": "failed", "error": repr(exc)[:300]}))
        print(f"  (smartnoise {mech} eps={eps:g} seed={seed}: {time.perf_counter() - t0:.0f} s)")
    meta = json.loads(meta_path.read_text())
    row: dict[str, Any] = {"eps": eps, "method": f"sn-{mech}", "seed": seed,
                           "fit_s": float(meta.get("fit_s", float("nan")))}
    if meta.get("status") != "ok":
        err = str(meta.get("error", "?")).strip().splitlines() or ["?"]
        return {**row, "l1": float("nan"), "auc": float("nan"), "notes": f"FAILED: {err[-1][:150]}"}
    synth = pd.read_csv(out.with_suffix(".csv"))[list(train.columns)].to_numpy(np.int64)
    return {**row, "l1": two_way_error(train.codes, synth, train.sizes),
            "auc": tstr_auc(synth, test, target), "ledger_eps": meta.get("epsilon_reported", float("nan")),
            "notes": f"smartnoise's own accounting; epochs run={meta.get('epochs_run')}, "
                     f"cpu {meta.get('cpu_s', float('nan')):.0f} s"}


def run_ours(kind: str, eps: float, seed: int, args: argparse.Namespace, schema: Any,
             train: Table, test: np.ndarray, target: int) -> dict[str, Any]:
    """One fit of ours (independent, mst, aim, dpvae or dpgan), scored."""
    rng = np.random.default_rng(100 + seed)
    acc = Accountant(ApproxDP(eps, args.delta))
    row: dict[str, Any] = {"eps": eps, "method": kind, "seed": seed}
    notes = ""
    t0 = time.perf_counter()
    if kind == "independent":
        synth, n = independent(train, acc, None, rng)
        notes = f"rows={n}"
    elif kind in ("mst", "aim"):
        from dpsynth import api

        model = api.fit(NumpyBackend(train), schema, mechanism=kind,  # type: ignore[arg-type]
                        epsilon=eps, delta=args.delta, seed=seed)
        synth = model.sample_codes(train.num_rows, rng)
        row["ledger_eps"] = eps
    else:
        vae = kind == "dpvae"
        cfg = NeuralConfig(epochs=args.epochs if vae else args.gan_epochs, min_steps=args.min_steps,
                           batch_size=args.batch_size, threads=args.threads,
                           hidden=tuple(args.hidden), lr=args.vae_lr if vae else args.lr,
                           generator_lr=args.generator_lr, marginal_share=args.marginal_share,
                           oversample=args.oversample, beta=args.vae_beta if vae else None,
                           latent_dim=args.vae_latent_dim if vae else args.latent_dim,
                           init_from_marginals=None if args.vae_init == "default"
                           else args.vae_init == "on",
                           kl_warmup=args.vae_kl_warmup if vae else None,
                           allow_weak=args.allow_weak)  # on: measure what the refusal would prevent
        # Training randomness comes from a fresh secret key; ``seed`` drives sampling only.
        gate = PrivateData(NumpyBackend(train), acc, sensitivity=1.0)
        try:
            model = fit_neural(kind, gate, schema, key=MechanismKey.fresh(), config=cfg)
        except WeakDPSGDError as exc:
            return {**row, "l1": float("nan"), "auc": float("nan"), "fit_s": time.perf_counter() - t0,
                    "ledger_eps": acc.epsilon(), "refused": True, "notes": f"REFUSED: {exc}"}
        row["fit_s"] = time.perf_counter() - t0
        raw = model.sample(model.estimated_rows, np.random.default_rng(rng.integers(2**32)),
                           calibrate=False)
        synth = model.sample(model.estimated_rows, rng)
        p = model.privacy
        notes = (f"sigma={p['noise_multiplier']:.3f} q={p['sample_rate']:.4f} steps={p['steps']} "
                 f"{p['model_settings']} | uncalibrated: "
                 f"L1={two_way_error(train.codes, raw, train.sizes):.4f} "
                 f"AUC={tstr_auc(raw, test, target):.3f}")
        row["ledger_eps"] = acc.epsilon()
    row.setdefault("fit_s", time.perf_counter() - t0)
    row.setdefault("ledger_eps", acc.epsilon())
    return {**row, "l1": two_way_error(train.codes, synth, train.sizes),
            "auc": tstr_auc(synth, test, target), "notes": notes}


def summary(rows: list[dict[str, Any]]) -> None:
    """Median over seeds per (eps, method)."""
    groups: dict[tuple[float, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["eps"], r["method"]), []).append(r)
    print(f"\n{'eps':>5} {'method':<14} {'seeds':>5} {'2-way L1 (med)':>14} {'min..max':>15} "
          f"{'AUC (med)':>9} {'fit s (med)':>11}")
    for (eps, method), rs in sorted(groups.items()):
        ok = [r for r in rs if r["l1"] == r["l1"]]
        if not ok:
            print(f"{eps:>5g} {method:<14} {0:>5}  {rs[-1].get('notes', '')}")
            continue
        l1 = [r["l1"] for r in ok]
        print(f"{eps:>5g} {method:<14} {len(ok):>5} {statistics.median(l1):>14.4f} "
              f"{min(l1):>7.4f}..{max(l1):.4f} {statistics.median(r['auc'] for r in ok):>9.3f} "
              f"{statistics.median(r['fit_s'] for r in ok):>11.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--eps", type=float, nargs="+", default=[3.0])
    ap.add_argument("--delta", type=float, default=1e-9)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=None, help="VAE epochs (default: the library's rule)")
    ap.add_argument("--gan-epochs", type=int, default=None, help="GAN epochs (default: the library's rule)")
    ap.add_argument("--min-steps", type=int, default=NeuralConfig().min_steps,
                    help="fewest DP-SGD steps (the library default; 0: epochs alone)")
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    # Model settings: None keeps the library's per-model default (MODEL_DEFAULTS).
    ap.add_argument("--lr", type=float, default=None, help="GAN discriminator lr")
    ap.add_argument("--generator-lr", type=float, default=1e-3)
    ap.add_argument("--latent-dim", type=int, default=None, help="GAN noise size")
    ap.add_argument("--vae-latent-dim", type=int, default=None)
    ap.add_argument("--vae-lr", type=float, default=None)
    ap.add_argument("--vae-beta", type=float, default=None)
    ap.add_argument("--vae-init", choices=["default", "on", "off"], default="default",
                    help="start the VAE decoder's output biases at the noisy 1-way marginals")
    ap.add_argument("--vae-kl-warmup", type=float, default=None)
    ap.add_argument("--marginal-share", type=float, default=0.25)
    ap.add_argument("--oversample", type=int, default=6)
    ap.add_argument("--only", nargs="+", default=["independent", "dpvae", "dpgan"],
                    choices=["independent", "mst", "aim", "dpvae", "dpgan"])
    ap.add_argument("--peers", nargs="*", default=[], choices=["smartnoise"])
    ap.add_argument("--peer-mechs", nargs="+", default=list(PEER_MECHS), choices=PEER_MECHS)
    ap.add_argument("--peer-seeds", type=int, default=1)
    ap.add_argument("--table-only", action="store_true",
                    help="print the median table of every cached run; fit nothing")
    ap.add_argument("--table", default="adult", help="adult or a table of benchmarks/tables.py")
    ap.add_argument("--allow-weak", action=argparse.BooleanOptionalAction, default=True,
                    help="fit DP-SGD even where the library would refuse (default on: measure it)")
    ap.add_argument("--train-rows", type=int, default=None,
                    help="keep only this many training rows (a small table; cached as <table>-n<rows>)")
    args = ap.parse_args()
    args.table_key = args.table
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    key = args.table if args.train_rows is None else f"{args.table}-n{args.train_rows}"
    if args.table_only:  # the latest cached run per (eps, method, seed)
        latest = {(r["eps"], r["method"], r["seed"]): r for r in
                  (json.loads(line) for line in (_runs(key).read_text().splitlines()
                                                 if _runs(key).exists() else []))}
        summary(list(latest.values()))
        return

    schema, train, test = split(args.table)
    if args.train_rows is not None:  # the first rows of the (shuffled) training split: a small table
        train = Table(train.columns, train.sizes, train.codes[:args.train_rows])
        args.table_key = f"{args.table}-n{train.num_rows}"
    if args.table == "adult":
        target = train.columns.index(TARGET)
    else:
        from tables import TABLES

        target = train.columns.index(TABLES[args.table].target)
    print(f"{args.table}: {train.num_rows} train / {len(test)} test rows, {len(train.columns)} columns, "
          f"one-hot width {sum(train.sizes)}, delta={args.delta:g}, torch threads={args.threads}")
    print(f"real-data AUC (train on real train split): {tstr_auc(train.codes, test, target):.3f}\n")
    header = f"{'eps':>5} {'method':<12} {'2-way L1':>9} {'AUC':>6} {'ledger eps':>10} {'fit s':>7}  notes"
    print(header)
    print("-" * len(header))
    rows: list[dict[str, Any]] = []
    for eps in args.eps:
        for seed in range(args.seeds):
            for kind in args.only:
                rows.append(run_ours(kind, eps, seed, args, schema, train, test, target))
                record(rows[-1], args.table_key)
        if "smartnoise" in args.peers:
            for mech in args.peer_mechs:
                for seed in range(args.peer_seeds):
                    rows.append(run_peer(mech, eps, seed, train, args.delta, test, target))
                    record(rows[-1], args.table_key)
    summary(rows)


if __name__ == "__main__":
    main()
