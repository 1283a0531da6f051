"""Compute Anonymeter's golden risks on fixed Adult splits (conformance fixture generator).

This script is run ONCE, by hand, in a separate virtual environment that has Anonymeter
(its numpy/pandas pins conflict with dpsynth's, so it is never installed into the project
environment)::

    python3 -m venv /tmp/anon-venv
    /tmp/anon-venv/bin/pip install anonymeter==1.1.0
    /tmp/anon-venv/bin/python tests/data/conformance/anonymeter_golden.py
    /tmp/anon-venv/bin/python tests/data/conformance/anonymeter_golden.py --numeric   # adds a block

It writes ``tests/data/conformance/anonymeter_golden.json``: for each candidate synthetic
table, Anonymeter's singling-out (univariate and multivariate), linkability and inference
results (raw success counts, the Wilson-centre rates with their errors, and the risk with its
interval), plus the versions used. ``--numeric`` keeps every existing number and adds (or
replaces) one block, ``inference_numeric``: inference on numeric secrets, where Anonymeter
counts a guess right when ``|guess - truth| / guess <= 0.05``. ``tests/test_audit_anonymeter_conformance.py`` reads that
JSON and checks dpsynth's estimators on the very same splits, without Anonymeter.

The splits are made with Python's ``random.Random`` (whose stream is stable across Python and
numpy versions), so the test rebuilds them exactly with :func:`make_splits`; a SHA-256 of each
split is stored to prove it. Data: ``examples/adult/adult.csv`` (UCI Adult, CC BY 4.0).

* training set: 2,000 rows; control: 2,000 other rows (disjoint);
* candidates: ``copy`` (the training set itself) and ``perturbed`` (each cell of the training
  set replaced, with probability 0.3, by the same column's value in a random training row).

Anonymeter's own randomness: the singling-out queries come from the evaluator's ``seed``;
linkability and inference attack every training and control record (``n_attacks`` = 2,000),
so their counts depend only on Anonymeter's tie-breaking among equally near synthetic records
(numpy's unstable ``argsort``) and, for the baselines, on unseeded generators. Compare
intervals, not exact values.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
ADULT = REPO / "examples" / "adult" / "adult.csv"
OUT = HERE / "anonymeter_golden.json"

SEED = 20261202
N_TRAIN = 2000
N_CONTROL = 2000
PERTURB = 0.3
N_ATTACKS_SO = 500
N_COLS_SO = 3
SO_SEEDS = (1, 2, 3)
LINK_A = ["workclass", "education", "hours-per-week", "capital-loss", "capital-gain"]
LINK_B = ["race", "sex", "fnlwgt", "age", "native-country"]
SECRETS = ["income-per-year", "marital-status"]
NUMERIC_SECRETS = ["age", "hours-per-week"]
CONFIDENCE = 0.95


def make_splits(adult: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The training set, the control set and the two candidates (deterministic)."""
    rnd = random.Random(SEED)
    order = list(range(len(adult)))
    rnd.shuffle(order)
    train = adult.iloc[order[:N_TRAIN]].reset_index(drop=True)
    control = adult.iloc[order[N_TRAIN:N_TRAIN + N_CONTROL]].reset_index(drop=True)
    columns = {c: train[c].tolist() for c in train.columns}
    for values in columns.values():
        source = list(values)
        for i in range(len(values)):
            if rnd.random() < PERTURB:
                values[i] = source[rnd.randrange(len(source))]
    perturbed = pd.DataFrame(columns)[list(train.columns)].astype(train.dtypes.to_dict())
    return {"train": train, "control": control, "copy": train.copy(), "perturbed": perturbed}


def split_digest(frame: pd.DataFrame) -> str:
    """SHA-256 of a frame's values, row by row, as text (independent of pandas' CSV writer)."""
    h = hashlib.sha256()
    for row in frame.itertuples(index=False):
        h.update(("\x1f".join(str(v) for v in row) + "\n").encode())
    return h.hexdigest()


def _results(ev: Any) -> dict[str, Any]:
    return _from_results(ev.results(confidence_level=CONFIDENCE))


def _from_results(res: Any) -> dict[str, Any]:
    risk = res.risk()
    out: dict[str, Any] = {
        "n_attacks": [int(res.n_attacks_ori), int(res.n_attacks_baseline),
                      int(res.n_attacks_control)],
        "n_success": float(res.n_success),
        "n_baseline": float(res.n_baseline),
        "n_control": None if res.n_control is None else float(res.n_control),
        "attack_rate": [float(res.attack_rate.value), float(res.attack_rate.error)],
        "control_rate": None if res.control_rate is None else
        [float(res.control_rate.value), float(res.control_rate.error)],
        "risk": float(risk.value), "ci": [float(risk.ci[0]), float(risk.ci[1])],
    }
    return out


def run(splits: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Anonymeter's evaluators on every candidate."""
    from anonymeter.evaluators import InferenceEvaluator, LinkabilityEvaluator, SinglingOutEvaluator

    train, control = splits["train"], splits["control"]
    out: dict[str, Any] = {}
    for name in ("copy", "perturbed"):
        syn = splits[name]
        cand: dict[str, Any] = {"singling_out": {"univariate": [], "multivariate": []}}
        for seed in SO_SEEDS:
            for mode in ("univariate", "multivariate"):
                ev = SinglingOutEvaluator(ori=train, syn=syn, control=control,
                                          n_attacks=N_ATTACKS_SO, n_cols=N_COLS_SO, seed=seed)
                ev.evaluate(mode=mode)
                r = _results(ev)
                r["seed"] = seed
                r["n_queries"] = len(ev.queries())
                cand["singling_out"][mode].append(r)
                print(name, mode, seed, r["risk"], r["ci"], file=sys.stderr)
        ev = LinkabilityEvaluator(ori=train, syn=syn, control=control, n_attacks=N_TRAIN,
                                  aux_cols=(LINK_A, LINK_B), n_neighbors=1)
        ev.evaluate(n_jobs=1)
        cand["linkability"] = _results(ev)
        print(name, "linkability", cand["linkability"]["risk"], file=sys.stderr)
        cand["inference"] = {}
        for secret in SECRETS:
            aux = [c for c in train.columns if c != secret]
            ev = InferenceEvaluator(ori=train, syn=syn, control=control, aux_cols=aux,
                                    secret=secret, n_attacks=N_TRAIN)
            ev.evaluate(n_jobs=1)
            cand["inference"][secret] = _results(ev)
            cand["inference"][secret]["per_value"] = {
                str(v): _from_results(r)
                for v, r in ev.risk_for_groups(confidence_level=CONFIDENCE).items()}
            print(name, "inference", secret, cand["inference"][secret]["risk"],
                  file=sys.stderr)
        out[name] = cand
    return out


def run_numeric(splits: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Anonymeter's inference on the numeric secrets, for every candidate."""
    from anonymeter.evaluators import InferenceEvaluator

    train, control = splits["train"], splits["control"]
    out: dict[str, Any] = {}
    for name in ("copy", "perturbed"):
        out[name] = {}
        for secret in NUMERIC_SECRETS:
            aux = [c for c in train.columns if c != secret]
            ev = InferenceEvaluator(ori=train, syn=splits[name], control=control, aux_cols=aux,
                                    secret=secret, n_attacks=N_TRAIN, regression=True)
            ev.evaluate(n_jobs=1)
            out[name][secret] = _results(ev)
            print(name, "inference", secret, out[name][secret]["risk"], file=sys.stderr)
    return out


def main() -> None:
    """Compute and write the golden JSON (``--numeric``: only add the numeric-secret block)."""
    import anonymeter
    import numpy as np

    warnings.simplefilter("ignore")
    adult = pd.read_csv(ADULT)
    splits = make_splits(adult)
    if "--numeric" in sys.argv:
        golden = json.loads(OUT.read_text(encoding="utf-8"))
        assert golden["digests"] == {k: split_digest(v) for k, v in splits.items()}
        golden["config"]["numeric_secrets"] = NUMERIC_SECRETS
        golden["versions_numeric"] = {"anonymeter": getattr(anonymeter, "__version__", "1.1.0"),
                                      "numpy": np.__version__, "pandas": pd.__version__,
                                      "python": sys.version.split()[0]}
        golden["inference_numeric"] = run_numeric(splits)
        OUT.write_text(json.dumps(golden, indent=1) + "\n", encoding="utf-8")
        return
    golden = {
        "what": "Anonymeter risks on fixed Adult splits; see anonymeter_golden.py",
        "versions": {"anonymeter": getattr(anonymeter, "__version__", "1.1.0"),
                     "numpy": np.__version__, "pandas": pd.__version__,
                     "python": sys.version.split()[0]},
        "config": {"seed": SEED, "n_train": N_TRAIN, "n_control": N_CONTROL,
                   "perturb": PERTURB, "n_attacks_singling_out": N_ATTACKS_SO,
                   "n_cols_singling_out": N_COLS_SO, "singling_out_seeds": list(SO_SEEDS),
                   "link_a": LINK_A, "link_b": LINK_B, "secrets": SECRETS,
                   "confidence": CONFIDENCE, "n_attacks_linkability": N_TRAIN,
                   "n_attacks_inference": N_TRAIN, "n_neighbors": 1},
        "digests": {k: split_digest(v) for k, v in splits.items()},
        "candidates": run(splits),
    }
    OUT.write_text(json.dumps(golden, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
