"""pandas frames handed to a columnar engine: mixed-type object columns become text.

DuckDB and Arrow need one type per column; a pandas object column may mix strings, numbers
and dates. Such a column is rewritten as the text each cell would be matched on by
:mod:`dpsynth.tabular.encoding` (``canonical_key``), so the engines encode it as the numpy engine does.
"""

from __future__ import annotations

import math
from datetime import date, datetime

import pandas as pd

from dpsynth.tabular.schema import canonical_key

__all__ = ["cell_text", "normalise_frame"]


def cell_text(v: object) -> str | None:
    """Text of one cell of a mixed-type object column (what pandas would match on)."""
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    return canonical_key(v)


def normalise_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with string column names and mixed-type object columns as text (input untouched)."""
    out = df.rename(columns=str)
    for name in out.columns:
        s = out[name]
        if s.dtype == object and not all(isinstance(v, str) for v in s.dropna().unique()):
            out[name] = pd.Series([cell_text(v) for v in s], index=s.index, dtype=object)
    return out
