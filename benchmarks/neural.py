"""Benchmark the DP-VAE and DP-GAN against the independent-marginals baseline on UCI Adult.

For each epsilon: fit on an 80% split, sample as many rows as the DP row estimate, and report
the 2-way workload error (mean L1 distance between normalised real and synthetic 2-way
marginals on codes, over all column pairs, against the training split), the train-on-synthetic
/ test-on-real AUC (HistGradientBoosting predicting income-per-year on the held-out 20%), the
epsilon the accountant ledger reports, and fit time. The baseline is implemented inline: every
column's 1-way marginal measured with discrete Gaussian noise (equal rho shares), columns
sampled independently. Neural rows are sampled with marginal calibration (the default); the
notes also report the same model sampled without it. The VAE runs with its own settings
(``--vae-latent-dim 8 --vae-lr 1e-2 --vae-beta 0.5``, the best of a small search on this
benchmark); pass ``--vae-latent-dim 32 --vae-lr 5e-3 --vae-beta 1`` for the library defaults.

    .venv/bin/python benchmarks/neural.py --eps 3   # ~2 min idle, ~12 min on a loaded 2-core box
    .venv/bin/python benchmarks/neural.py --eps 1 3 10 --seeds 2
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from dpsynth.accountant import Accountant
from dpsynth.budget import ApproxDP
from dpsynth.encoding import encode, read_frame
from dpsynth.events import GaussianEvent
from dpsynth.neural import NeuralConfig, fit_neural
from dpsynth.noise import discrete_gaussian
from dpsynth.schema import load_schema
from dpsynth.table import Table

ROOT = Path(__file__).resolve().parents[1]
TARGET = "income-per-year"


def independent(table: Table, accountant: Accountant, rows: int | None,
                rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Noisy 1-way marginals (equal rho per column), columns sampled independently."""
    rhos = accountant.remaining_split(len(table.columns))
    out, n_est = [], None
    for j, (size, rho) in enumerate(zip(table.sizes, rhos)):
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eps", type=float, nargs="+", default=[3.0])
    ap.add_argument("--delta", type=float, default=1e-9)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--gan-epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--generator-lr", type=float, default=1e-3)
    ap.add_argument("--beta", type=float, default=1.0)
    ap.add_argument("--latent-dim", type=int, default=32)
    ap.add_argument("--vae-latent-dim", type=int, default=8)
    ap.add_argument("--vae-lr", type=float, default=1e-2)
    ap.add_argument("--vae-beta", type=float, default=0.5)
    ap.add_argument("--marginal-share", type=float, default=0.25)
    ap.add_argument("--oversample", type=int, default=6)
    ap.add_argument("--only", nargs="+", default=["independent", "dpvae", "dpgan"])
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")

    schema = load_schema(ROOT / "examples/adult/schema.yaml")
    table = encode(read_frame(ROOT / "examples/adult/adult.csv", schema), schema)
    perm = np.random.default_rng(0).permutation(table.num_rows)
    cut = int(0.8 * len(perm))
    train = Table(table.columns, table.sizes, table.codes[perm[:cut]])
    test = table.codes[perm[cut:]]
    target = table.columns.index(TARGET)
    print(f"Adult: {train.num_rows} train / {len(test)} test rows, {len(table.columns)} columns, "
          f"one-hot width {sum(table.sizes)}, delta={args.delta:g}, torch threads={args.threads}")
    real_auc = tstr_auc(train.codes, test, target)
    print(f"real-data AUC (train on real train split): {real_auc:.3f}\n")
    header = f"{'eps':>5} {'method':<12} {'2-way L1':>9} {'AUC':>6} {'ledger eps':>10} {'fit s':>7}  notes"
    print(header)
    print("-" * len(header))
    for eps in args.eps:
        for seed in range(args.seeds):
            rng = np.random.default_rng(100 + seed)
            acc = Accountant(ApproxDP(eps, args.delta))
            t0 = time.perf_counter()
            synth, n = independent(train, acc, None, rng)
            dt = time.perf_counter() - t0
            if "independent" in args.only:
                print(f"{eps:>5g} {'independent':<12} {two_way_error(train.codes, synth, train.sizes):>9.4f} "
                  f"{tstr_auc(synth, test, target):>6.3f} {acc.epsilon():>10.4f} {dt:>7.2f}  rows={n}")
            for kind, epochs in (("dpvae", args.epochs), ("dpgan", args.gan_epochs)):
                if kind not in args.only:
                    continue
                acc = Accountant(ApproxDP(eps, args.delta))
                vae = kind == "dpvae"
                cfg = NeuralConfig(epochs=epochs, batch_size=args.batch_size,
                                   threads=args.threads, hidden=tuple(args.hidden),
                                   lr=args.vae_lr if vae else args.lr,
                                   generator_lr=args.generator_lr,
                                   marginal_share=args.marginal_share, oversample=args.oversample,
                                   beta=args.vae_beta if vae else args.beta,
                                   latent_dim=args.vae_latent_dim if vae else args.latent_dim)
                t0 = time.perf_counter()
                model = fit_neural(kind, train, schema, accountant=acc, config=cfg, seed=seed)
                dt = time.perf_counter() - t0
                raw = model.sample(model.estimated_rows, np.random.default_rng(rng.integers(2**32)),
                                   calibrate=False)
                synth = model.sample(model.estimated_rows, rng)
                p = model.privacy
                print(f"{eps:>5g} {kind:<12} {two_way_error(train.codes, synth, train.sizes):>9.4f} "
                      f"{tstr_auc(synth, test, target):>6.3f} {acc.epsilon():>10.4f} {dt:>7.2f}  "
                      f"sigma={p['noise_multiplier']:.3f} q={p['sample_rate']:.4f} "
                      f"steps={p['steps']} rows={model.estimated_rows} | uncalibrated: "
                      f"L1={two_way_error(train.codes, raw, train.sizes):.4f} "
                      f"AUC={tstr_auc(raw, test, target):.3f}")


if __name__ == "__main__":
    main()
