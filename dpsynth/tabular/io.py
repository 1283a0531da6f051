"""Writing outputs: atomic CSV (with formula-injection escaping) and Parquet, and checking an
output location before any budget is spent.

File modes: a release bundle is public (files 0644, directories 0755). Everything else dpsynth
writes stays private to its owner (files 0600, directories 0700, as created by the atomic
writer): fitted models and samples because the data steward decides when to publish them, the
confidential evaluation and audit because they are computed on the real data without DP. See
docs/releasing.md ("File permissions").
"""

from __future__ import annotations

import errno
import io
import os
import re
from pathlib import Path

import pandas as pd

from dpsynth.errors import ConfigError
from dpsynth.tabular.atomic import write_bytes_atomic

__all__ = ["check_output", "escape_csv_injection", "keep_private", "publish", "text_columns", "write_frame"]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def escape_csv_injection(df: pd.DataFrame) -> pd.DataFrame:
    """A copy where text cells that a spreadsheet would run as a formula start with ``'``.

    The one CSV-escaping rule of dpsynth (``sample`` and ``release`` both use it): a text cell
    starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a leading apostrophe
    unless the whole cell is a plain number, so ``=1+1`` and ``@x`` are defused while ``-3``
    and ``+1`` stay numbers. Numeric, boolean and datetime columns are left as they are, and
    every column keeps its dtype (``map`` would re-infer it: integer categories with nulls
    would turn into floats).
    """
    out = df.copy()
    for name in out.columns:
        s = out[name]
        if not (pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)):
            continue

        # decided once per distinct value: synthetic columns repeat few values many times
        bad = [v for v in pd.unique(s.dropna())
               if isinstance(v, str) and v.startswith(_FORMULA_START) and not _NUMBER.match(v)]
        if bad:
            hit = s.isin(bad).to_numpy()
            fixed = s.copy()
            fixed[hit] = ["'" + v for v in s[hit]]
            out[name] = fixed
    return out


def text_columns(df: pd.DataFrame) -> pd.DataFrame:
    """A copy where object columns holding more than one kind of value are text throughout.

    A categorical column of integers with an ``other`` label mixes ``int`` and ``str``;
    Parquet needs one type per column and CSV should spell it the same way, so such a column
    is written as text (nulls stay null). Columns of one Python type are left as they are.
    """
    out = df.copy()
    for name in out.columns:
        s = out[name]
        if not pd.api.types.is_object_dtype(s):
            continue
        kinds = {type(v) for v in pd.unique(s.dropna())}  # per distinct value: few, repeated
        if len(kinds) > 1:
            out[name] = s.map(lambda v: v if v is None or (isinstance(v, float) and v != v) else str(v))
    return out


def _nearest_existing(p: Path) -> Path:
    q = p.absolute()
    while not q.exists() and q != q.parent:
        q = q.parent
    return q


def check_output(out: str | Path, *, overwrite: bool = False, is_dir: bool = True) -> None:
    """Refuse an output location that cannot be written, before anything is read or spent.

    Checks that ``out`` does not exist (unless ``overwrite``), is of the right kind if it
    does, that its nearest existing parent is a directory, and that a probe file can be
    written there (this catches a read-only or full file system while nothing is spent yet).

    Raises:
        ConfigError: Naming the location and what to do (exit code 2).
        OSError: If the probe cannot be written (e.g. ``ENOSPC``); the CLI prints it as one line.
    """
    p = Path(out)
    what = "directory" if is_dir else "file"
    if p.exists():
        if not overwrite:
            raise ConfigError(f"output {p} already exists (pass --overwrite to replace it)")
        if p.is_dir() != is_dir:
            raise ConfigError(f"output {p} exists and is not a {what}; choose another path")
    base = _nearest_existing(p.parent)
    if not base.is_dir():
        raise ConfigError(f"output {p}: {base} is a file, not a directory; choose another path")
    probe = base / f".dpsynth-probe-{os.getpid()}"
    try:
        write_bytes_atomic(probe, b"")
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise ConfigError(f"output {p}: cannot write in {base} ({exc.strerror}); "
                              "choose a location you may write to") from None
        raise
    finally:
        probe.unlink(missing_ok=True)


def publish(path: str | Path) -> None:
    """Mark a DP output as publishable: files 0644, directories 0755 (recursively)."""
    p = Path(path)
    for q in [p, *(p.rglob("*") if p.is_dir() else [])]:
        q.chmod(0o755 if q.is_dir() else 0o644)


def keep_private(path: str | Path) -> None:
    """Mark a confidential output as its owner's only: files 0600, directories 0700."""
    p = Path(path)
    for q in [p, *(p.rglob("*") if p.is_dir() else [])]:
        q.chmod(0o700 if q.is_dir() else 0o600)


def write_frame(df: pd.DataFrame, path: str | Path, *, public: bool = True) -> Path:
    """Write ``df`` atomically as CSV (escaped) or Parquet, chosen by the file suffix.

    Args:
        df: The rows.
        path: A ``.csv`` or ``.parquet`` file.
        public: Mode 0644 (synthetic rows sampled from a DP model) rather than 0600.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        buf = io.StringIO()
        escape_csv_injection(text_columns(df)).to_csv(buf, index=False, lineterminator="\n")
        write_bytes_atomic(p, buf.getvalue().encode("utf-8"))
    elif suffix in (".parquet", ".pq"):
        bio = io.BytesIO()
        text_columns(df).to_parquet(bio, index=False)
        write_bytes_atomic(p, bio.getvalue())
    else:
        raise ConfigError(f"output {p.name}: unsupported format {suffix!r} (use .csv or .parquet)")
    (publish if public else keep_private)(p)
    return p
