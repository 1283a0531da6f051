"""Whole-process timings: dpsynth as a user runs it, one process per command, CSV in and out.

Each command runs in a fresh process (interpreter start, imports, reading the CSV, the fit,
writing files), ``--repeats`` times; the table gives the median wall seconds and the median
CPU seconds of the child (user + system, from ``RUSAGE_CHILDREN``). The input is coded Adult
(48,842 rows, 15 columns, ``tests/data/adult-coded.csv``) with the schema of its public
domain, at epsilon = 1 and delta = 1e-9.

Peers (``--peers dpmm,opendp``) run their runner scripts (``benchmarks/peers/``) in their own
virtualenvs as whole processes too: read the CSV, fit, sample as many rows, write a CSV. Their
virtualenvs are made by ``benchmarks/synth.py`` on first use.

Run: ``.venv/bin/python benchmarks/cli.py [--repeats 5] [--peers dpmm,opendp] [--peer-repeats 1]``
(results: ``benchmarks/results/cli.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth import BENCH, DELTA, PEERS, VENVS, ensure_venv  # the benchmark's helpers

from dpsynth.privacy.budget import epsilon_to_rho

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
RESULTS = ROOT / "benchmarks" / "results"
EPS = 1.0


def _run(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one child process (which must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-800:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _inputs(folder: Path) -> tuple[Path, Path, Path]:
    """Coded Adult as a CSV, its public schema, and the domain JSON (for the peers)."""
    from dpsynth.tabular.schema import dump_schema, from_pgm_domain

    domain = json.loads((DATA / "adult-coded-domain.json").read_text())
    data = folder / "adult.csv"
    shutil.copyfile(DATA / "adult-coded.csv", data)
    schema = folder / "schema.yaml"
    dump_schema(from_pgm_domain({c: int(v) for c, v in domain.items()}), schema)
    dom = folder / "domain.json"
    dom.write_text(json.dumps(domain))
    return data, schema, dom


def ours(folder: Path, data: Path, schema: Path, repeats: int) -> list[dict[str, object]]:
    """dpsynth's commands, each as its own process."""
    exe = [sys.executable, "-m", "dpsynth"]
    rows = str(len(pd.read_csv(data, usecols=[0])))
    steps: list[tuple[str, list[list[str]]]] = [("dpsynth --version", [[*exe, "--version"]])]
    for mech in ("mst", "aim"):
        fit = [*exe, "fit", str(data), "-s", str(schema), "-m", mech, "--epsilon", str(EPS),
               "--delta", str(DELTA), "--out", f"model-{mech}", "--overwrite"]
        sample = [*exe, "sample", f"model-{mech}", "--rows", rows, "--seed", "0",
                  "--out", f"synthetic-{mech}.csv"]
        steps.append((f"dpsynth fit -m {mech}", [fit]))
        steps.append((f"dpsynth sample ({mech} model, {rows} rows)", [sample]))
        steps.append((f"fit + sample, {mech}", [fit, sample]))
    release = [*exe, "release", str(data), "-s", str(schema), "-m", "mst", "--epsilon", str(EPS),
               "--delta", str(DELTA), "--seed", "0", "--out", "bundle", "--overwrite"]
    steps.append(("dpsynth release -m mst (bundle, report)", [release]))
    out: list[dict[str, object]] = []
    for label, cmds in steps:
        walls, cpus = [], []
        for _ in range(repeats):
            w = c = 0.0
            for cmd in cmds:
                dw, dc = _run(cmd, folder)
                w, c = w + dw, c + dc
            walls.append(w)
            cpus.append(c)
        out.append({"what": label, "wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus),
                    "runs": repeats})
        print(f"{label}: {statistics.median(walls):.2f} s wall, {statistics.median(cpus):.2f} s CPU", flush=True)
    return out


def peers(folder: Path, data: Path, dom: Path, names: list[str], repeats: int) -> list[dict[str, object]]:
    """Each peer's runner as one process: read, fit MST, sample, write."""
    out: list[dict[str, object]] = []
    for peer in names:
        if peer not in PEERS:
            raise SystemExit(f"unknown peer {peer!r}; known: {', '.join(PEERS)}")
        reason = ensure_venv(peer)
        label = f"{peer} MST, fit + sample (one process)"
        if reason is not None:
            out.append({"what": label, "error": reason})
            continue
        cmd = [str(VENVS / peer / "bin" / "python"), str(BENCH / "peers" / f"{peer}_runner.py"),
               "--train", str(data), "--domain", str(dom), "--mechanism", "mst", "--epsilon", str(EPS),
               "--delta", str(DELTA), "--rho", repr(epsilon_to_rho(EPS, DELTA)), "--seed", "0",
               "--out", str(folder / f"{peer}-mst")]
        runs = [_run(cmd, folder) for _ in range(repeats)]
        out.append({"what": label, "wall_s": statistics.median(r[0] for r in runs),
                    "cpu_s": statistics.median(r[1] for r in runs), "runs": repeats, "peer": True})
        print(f"{label}: {out[-1]['wall_s']:.2f} s wall", flush=True)
    return out


def render(rows: list[dict[str, object]]) -> str:
    """A markdown table, with each peer's ratio to dpsynth's MST fit + sample."""
    base = next(float(r["wall_s"]) for r in rows if r["what"] == "fit + sample, mst")  # type: ignore[arg-type]
    lines = ["| command (one process each) | wall s | CPU s | runs | peer wall / dpsynth MST fit + sample |",
             "|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['what']} | failed: {r['error']} | | | |")
            continue
        wall = float(r["wall_s"])  # type: ignore[arg-type]
        ratio = f"{wall / base:.0f}×" if r.get("peer") else "—"
        lines.append(f"| {r['what']} | {wall:.2f} | {float(r['cpu_s']):.2f} | {r['runs']} | "  # type: ignore[arg-type]
                     f"{ratio} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--peers", default="", help="comma-separated peers (dpmm, opendp) to time as whole processes")
    ap.add_argument("--peer-repeats", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dpsynth-cli-") as tmp:
        folder = Path(tmp)
        data, schema, dom = _inputs(folder)
        rows = ours(folder, data, schema, args.repeats)
        rows += peers(folder, data, dom, [p for p in args.peers.split(",") if p], args.peer_repeats)
    text = render(rows)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cli.md").write_text(
        f"Whole processes on coded Adult (48,842 rows, 15 columns), ε = {EPS:g}, δ = {DELTA:g}; medians of "
        f"the runs given; run {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores.\n\n{text}\n")
    (RESULTS / "cli.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
