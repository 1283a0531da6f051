"""Shared command line and result writing for the peer runner scripts (stdlib only)."""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def parse() -> argparse.Namespace:
    """The runner's arguments (written by benchmarks/synth.py)."""
    ap = argparse.ArgumentParser()
    for name in ("--train", "--domain", "--mechanism", "--out"):
        ap.add_argument(name, required=True)
    for name in ("--epsilon", "--delta", "--rho"):
        ap.add_argument(name, type=float, required=True)
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args()


def usage() -> tuple[float, float]:
    """CPU seconds so far and peak RSS (MiB) of this process."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_maxrss / 1024.0


def timed_fit(fit: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """Call ``fit`` and return its result with wall and CPU seconds."""
    cpu0, _ = usage()
    t0 = time.perf_counter()
    result = fit()
    wall = time.perf_counter() - t0
    cpu1, _ = usage()
    return result, {"fit_s": wall, "cpu_s": cpu1 - cpu0}


def write(out: str, frame: Any, columns: list[str], meta: dict[str, Any]) -> None:
    """Write the synthetic rows (integer codes) and the run's metadata."""
    path = Path(out)
    frame[columns].to_csv(path.with_suffix(".csv"), index=False)
    _, peak = usage()
    meta = {"status": "ok", **meta, "peak_mib": peak}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1))


def write_rows(out: str, rows: Any, columns: list[str], meta: dict[str, Any]) -> None:
    """:func:`write` for a sampler that returns a DataFrame or a list of row tuples."""
    import numpy as np
    import pandas as pd

    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows), columns=columns)
    frame.columns = columns
    write(out, frame.astype(np.int64), columns, meta)
