"""Scale benchmark: counting throughput and peak memory of the counting engines on big Adult-like data.

Generates Adult-like Parquet files (10M rows; 100M with ``--big``) by resampling the coded
rows of ``examples/adult/adult.csv``, perturbing 5% of the cells to fresh codes and decoding
with :func:`dpsynth.tabular.encoding.decode`, one chunk at a time so memory stays low. Then, for each
engine, one child process counts every 2-way marginal of the 15 Adult columns (105 marginals)
and the parent samples the RSS of the child's whole process tree (the JVM included) from
/proc. The floor is pyarrow reading the whole file and summing one column.

Usage::

    python benchmarks/scale.py [--rows 10000000] [--big] [--engines floor,arrow,duckdb,spark,numpy]
                               [--out /tmp/dpsynth-scale] [--timeout 1800]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the --worker child runs this file directly, from any checkout

from dpsynth.tabular.encoding import decode, encode, read_frame  # noqa: E402 (needs ROOT on sys.path)
from dpsynth.tabular.schema import load_schema  # noqa: E402

SCHEMA_PATH = ROOT / "examples" / "adult" / "schema.yaml"
ADULT = ROOT / "examples" / "adult" / "adult.csv"
CHUNK = 1_000_000


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """Write ``rows`` Adult-like rows to ``path`` (Parquet), ``CHUNK`` rows at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = load_schema(SCHEMA_PATH)
    base = encode(read_frame(ADULT, schema), schema).codes
    sizes = np.array([c.domain_size() for c in schema.modelled])
    rng = np.random.default_rng(seed)
    writer = None
    try:
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            codes = base[rng.integers(0, len(base), n)]
            flip = rng.random(codes.shape) < 0.05
            codes = np.where(flip, (rng.random(codes.shape) * sizes).astype(np.int64), codes)
            table = pa.Table.from_pandas(decode(codes, schema, rng), preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=256_000)
    finally:
        if writer is not None:
            writer.close()


def _pairs() -> list[tuple[str, ...]]:
    schema = load_schema(SCHEMA_PATH)
    return list(itertools.combinations([c.name for c in schema.modelled], 2))


def worker(engine: str, path: str) -> None:
    """Run one engine on ``path`` and print a JSON line with its timing (child process)."""
    t0 = time.perf_counter()
    if engine == "floor":
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        total = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1 << 20):
            total += int(pc.sum(batch.column("age")).as_py() or 0)
        checksum = total
    else:
        from dpsynth.backends.factory import open_backend
        from dpsynth.privacy.randomness import MechanismKey

        schema = load_schema(SCHEMA_PATH)
        options: dict[str, object] = {}
        if engine == "duckdb":
            options = {"memory_limit": "2GB", "temp_directory": str(Path(path).parent / "duckdb-spill")}
        if engine == "spark":
            from dpsynth.backends.spark import local_session

            options = {"spark": local_session(cores=2, driver_memory="2g")}
        backend = open_backend(engine, path, schema, key=MechanismKey.for_audit("scale benchmark"), **options)
        counts = backend.count(_pairs())
        checksum = int(sum(int(c.sum()) for c in counts))
        backend.close()
    print(json.dumps({"engine": engine, "seconds": time.perf_counter() - t0, "checksum": checksum}), flush=True)


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def measure(engine: str, path: Path, timeout: float) -> dict[str, object]:
    """Run :func:`worker` in a child process, sampling the peak RSS of its process tree."""
    t0 = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker", engine, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        if time.perf_counter() - t0 > timeout:
            proc.kill()
            return {"engine": engine, "error": f"timeout after {timeout:.0f}s", "peak_rss": peak}
        time.sleep(0.2)
    out = (proc.stdout.read() if proc.stdout else "").strip().splitlines()
    if proc.returncode != 0 or not out:
        return {"engine": engine, "error": f"exit code {proc.returncode}", "peak_rss": peak}
    result: dict[str, object] = json.loads(out[-1])
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["cpu"] = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    result["peak_rss"] = peak
    result["wall"] = time.perf_counter() - t0
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--big", action="store_true", help="also run 100M rows (disk and time hungry)")
    parser.add_argument("--engines", default="floor,arrow,duckdb,spark,numpy")
    parser.add_argument("--out", type=Path, default=Path("/tmp/dpsynth-scale"))
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--worker", nargs=2, metavar=("ENGINE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    for rows in [args.rows] + ([100_000_000] if args.big else []):
        path = args.out / f"adult-{rows}.parquet"
        if not path.exists():
            t = time.perf_counter()
            generate(path, rows)
            print(
                f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.0f}s",
                file=sys.stderr,
            )
        results = []
        for engine in args.engines.split(","):
            results.append(measure(engine, path, args.timeout))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)  # partial results survive
        floor = next((r for r in results if r["engine"] == "floor" and "seconds" in r), None)
        print(f"\n{rows:,} rows, all {len(_pairs())} two-way marginals ({os.cpu_count()} cores)")
        print(f"{'engine':<8} {'seconds':>9} {'rows/s':>12} {'x floor':>8} {'CPU s':>7} {'peak RSS':>10}  checksum")
        for r in results:
            if "seconds" not in r:
                dashes = f"{'-':>9} {'-':>12} {'-':>8} {'-':>7}"
                print(f"{r['engine']:<8} {dashes} {int(r['peak_rss']) / 2**20:>8.0f}MB  {r['error']}")
                continue
            sec = float(r["seconds"])  # type: ignore[arg-type]
            ratio = sec / float(floor["seconds"]) if floor else float("nan")  # type: ignore[arg-type]
            print(
                f"{r['engine']:<8} {sec:>9.2f} {rows / sec:>12,.0f} {ratio:>8.2f} {float(r['cpu']):>7.1f} "  # type: ignore[arg-type]
                f"{int(r['peak_rss']) / 2**20:>8.0f}MB  {r['checksum']}"  # type: ignore[call-overload]
            )


if __name__ == "__main__":
    main()
