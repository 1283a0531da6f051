"""Linked tables whose child table is larger than the memory the release may use.

    python benchmarks/relational_scale.py [--persons 1000000] [--rows 40000000] [--engines duckdb numpy]

Generates (with DuckDB, into ~/.cache/dpsynth/bench/scale/) a root table of persons and a child
table of visits whose number per person grows with age, writes the relational schema, then
times, per engine, the fit alone and the whole ``dpsynth release-tables --engine E``, each as one
process, with its wall time, its peak resident memory and the bundle's verification.
With ``--engine duckdb`` the child CSV is read, joined, bounded and counted by DuckDB under its
2 GB memory limit; only the root (one row per person) and the sampled tables are in Python
(``--release-persons`` bounds the latter).
Results go to benchmarks/results/relational-scale.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("DPSYNTH_BENCH_CACHE", Path.home() / ".cache" / "dpsynth" / "bench")) / "scale"

PERSONS = {"version": 1, "name": "persons", "columns": [
    {"name": "person_id", "kind": "identifier"},
    {"name": "age", "kind": "numeric", "dtype": "int", "bounds": [18, 90], "edges": [18, 30, 45, 60, 75, 90]},
    {"name": "sex", "kind": "categorical", "categories": ["F", "M"]},
    {"name": "region", "kind": "categorical", "categories": ["north", "south", "east", "west", "centre"]},
]}
VISITS = {"version": 1, "name": "visits", "columns": [
    {"name": "person_id", "kind": "identifier"},
    {"name": "department", "kind": "categorical",
     "categories": ["general", "cardiology", "maternity", "urology", "radiology", "oncology"]},
    {"name": "cost", "kind": "numeric", "bounds": [0, 5000], "bins": 16},
    {"name": "days", "kind": "numeric", "dtype": "int", "bounds": [0, 3650], "bins": 10},
]}


def generate(folder: Path, persons: int, rows: int) -> Path:
    """Write persons.csv, visits.csv (about ``rows`` rows), the schemas and relational.yaml."""
    import duckdb

    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "relational.yaml"
    if spec.exists() and (folder / "visits.csv").exists():
        return spec
    con = duckdb.connect()
    con.execute("SELECT setseed(0.42)")
    con.execute(f"""CREATE TABLE p AS SELECT i AS person_id, 18 + CAST(floor(random() * 72) AS INT) AS age,
                    CASE WHEN random() < 0.5 THEN 'F' ELSE 'M' END AS sex,
                    (['north','south','east','west','centre'])[1 + CAST(floor(random() * 5) AS INT)] AS region
                    FROM range(1, {persons + 1}) t(i)""")
    con.execute(f"COPY p TO '{folder / 'persons.csv'}' (HEADER)")
    mean = rows / persons  # visits per person grow with age: weight (age - 10) / mean weight
    con.execute(f"""COPY (SELECT p.person_id,
                    CASE WHEN p.sex = 'F' AND random() < 0.2 THEN 'maternity'
                         WHEN p.sex = 'M' AND random() < 0.15 THEN 'urology'
                         ELSE (['general','cardiology','radiology','oncology'])[1 + CAST(floor(random() * 4) AS INT)]
                    END AS department,
                    round(least(5000, -ln(random()) * (100 + 5 * p.age)), 2) AS cost,
                    CAST(floor(random() * 3650) AS INT) AS days
                    FROM p, range(0, CAST(round({mean} * 2 * (p.age - 10) / 64.0) AS INT)) r(j))
                    TO '{folder / 'visits.csv'}' (HEADER)""")
    (folder / "persons.schema.yaml").write_text(yaml.safe_dump(PERSONS, sort_keys=False))
    (folder / "visits.schema.yaml").write_text(yaml.safe_dump(VISITS, sort_keys=False))
    spec.write_text(yaml.safe_dump({
        "version": 1, "name": "scale", "root": "persons",
        "tables": [
            {"name": "persons", "schema": "persons.schema.yaml", "data": "persons.csv", "primary_key": "person_id"},
            {"name": "visits", "schema": "visits.schema.yaml", "data": "visits.csv", "parent": "persons",
             "foreign_key": "person_id", "max_rows_per_parent": 100, "parent_columns": ["age", "sex"]},
        ]}, sort_keys=False))
    return spec


FIT_ONLY = """
import sys
from dpsynth.relational import fit_relational, load_relational
from dpsynth.relational.bundle import read_tables
rel = load_relational(sys.argv[1])
frames = read_tables(rel, lazy_children=sys.argv[2] == "duckdb")
model = fit_relational(rel, frames, mechanism=sys.argv[3], epsilon=1.0, engine=sys.argv[2])
print("fitted; persons estimated:", model.estimated_rows)
"""


def timed(cmd: list[str]) -> tuple[float, float, bool, str]:
    """Run one whole process: wall seconds, its own peak RSS in MiB (``wait4``), success, its last line."""
    import tempfile

    with tempfile.TemporaryFile("w+") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        log.seek(0)
        lines = log.read().strip().splitlines() or [""]
    return seconds, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status) == 0, lines[-1]


def measure(spec: Path, engine: str, out: Path, mechanism: str, persons: int | None) -> dict[str, object]:
    """The fit alone, then the whole ``dpsynth release-tables`` (``persons`` released), each one process."""
    fit_s, fit_mib, fit_ok, _ = timed([sys.executable, "-c", FIT_ONLY, str(spec), engine, mechanism])
    cmd = [sys.executable, "-m", "dpsynth", "release-tables", str(spec), "--epsilon", "1", "--seed", "0",
           "-m", mechanism, "--engine", engine, "--out", str(out), "--overwrite"]
    if persons is not None:
        cmd += ["--rows", str(persons)]
    rel_s, rel_mib, rel_ok, last = timed(cmd)
    return {"engine": engine, "fit_s": fit_s, "fit_mib": fit_mib, "fit_ok": fit_ok,
            "release_s": rel_s, "release_mib": rel_mib, "ok": rel_ok and "verified: True" in last, "last": last}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=1_000_000)
    ap.add_argument("--rows", type=int, default=40_000_000)
    ap.add_argument("--engines", nargs="+", default=["duckdb"])
    ap.add_argument("--mechanism", default="mst")
    ap.add_argument("--release-persons", type=int, default=None,
                    help="persons the release writes (default: the DP estimate; the sampled tables are in memory)")
    args = ap.parse_args()
    folder = CACHE / f"p{args.persons}-r{args.rows}"
    t0 = time.perf_counter()
    spec = generate(folder, args.persons, args.rows)
    size = (folder / "visits.csv").stat().st_size
    with open(folder / "visits.csv", "rb") as fh:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 24), b"")) - 1
    print(f"data: {lines:,} visit rows, {size / 2**30:.2f} GiB CSV ({time.perf_counter() - t0:.0f} s)", flush=True)
    rows = []
    for engine in args.engines:
        rows.append(measure(spec, engine, folder / f"bundle-{engine}", args.mechanism, args.release_persons))
        print(rows[-1], flush=True)
    released = "the DP estimate of the persons" if args.release_persons is None else f"{args.release_persons:,} persons"
    lines_md = [f"{args.persons:,} persons, {lines:,} visit rows ({size / 2**30:.2f} GiB of CSV), "
                f"{args.mechanism.upper()}, epsilon 1, bound 100 visits per person. Each cell is one whole "
                "process (peak RSS: the process's own maximum resident set); "
                f"the release writes {released} and their visits.", "",
                "| engine | fit s | fit peak MiB | release s | release peak MiB | verified |",
                "|---|---|---|---|---|---|"]
    lines_md += [f"| {r['engine']} | {r['fit_s']:.0f} | {r['fit_mib']:.0f} | {r['release_s']:.0f} | "
                 f"{r['release_mib']:.0f} | {r['ok']} |" for r in rows]
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "relational-scale.md").write_text("\n".join(lines_md) + "\n")
    print("\n".join(lines_md))


if __name__ == "__main__":
    main()
