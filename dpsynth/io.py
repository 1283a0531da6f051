"""Writing synthetic frames: atomic CSV (with formula-injection escaping) and Parquet."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from dpsynth.atomic import write_bytes_atomic
from dpsynth.errors import ConfigError

__all__ = ["write_frame", "escape_formulas"]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def escape_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells that a spreadsheet would run as a formula with an apostrophe.

    Only text columns are touched: numbers (negative ones included) stay numbers.
    """
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if s.dtype == object or pd.api.types.is_string_dtype(s):
            mask = s.map(lambda v: isinstance(v, str) and v.startswith(_FORMULA_START))
            if mask.any():
                out[col] = s.where(~mask, "'" + s.astype(str))
    return out


def write_frame(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` atomically as CSV (escaped) or Parquet, chosen by the file suffix."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        buf = io.StringIO()
        escape_formulas(df).to_csv(buf, index=False, lineterminator="\n")
        write_bytes_atomic(p, buf.getvalue().encode("utf-8"))
    elif suffix in (".parquet", ".pq"):
        bio = io.BytesIO()
        df.to_parquet(bio, index=False)
        write_bytes_atomic(p, bio.getvalue())
    else:
        raise ConfigError(f"output {p.name}: unsupported format {suffix!r} (use .csv or .parquet)")
    return p
