"""Contribution bounding for user-level privacy: keep at most ``k`` rows per person.

When the schema's privacy unit is a person (an identifier column and ``max_rows = k``), every
marginal must be computed on a table where each person contributes at most ``k`` rows, so one
person changes any count by at most ``k``.

One rule for every engine. Each row of a person gets a rank key

    md5(concat_ws('|', subkey, person, code_1, ..., code_d, dup))

where ``subkey`` is the run's secret bounding key (:meth:`MechanismKey.hex_for`), ``person``
the identifier as text, ``code_i`` the row's codes over *all* modelled columns, and ``dup`` the
row's position (1-based) among the person's identical rows. The ``k`` rows with the smallest
keys are kept. The key is thus a function of the person's own rows and the secret only: adding
or removing another person, or moving rows around the file, never changes which of this
person's rows are kept, and every counting pass (and every engine: numpy, arrow, DuckDB,
Spark compute the same md5) keeps the same rows. Rows whose identifier is null each count as
their own person and are always kept.

The SQL engines build the same key in SQL (:func:`dpsynth.backends.sql.bounded_sql`); this
module is the in-memory path shared by the numpy and arrow engines.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt
import pandas as pd

from dpsynth.errors import ConfigError, SchemaError
from dpsynth.privacy.randomness import MechanismKey
from dpsynth.tabular.encoding import encode
from dpsynth.tabular.schema import Schema
from dpsynth.tabular.table import Table

__all__ = ["BOUNDING_PURPOSE", "bound_contributions", "encode_bounded", "id_text"]

#: The purpose string of the bounding sub-key (:meth:`MechanismKey.hex_for`).
BOUNDING_PURPOSE = "contribution-bounding"


def id_text(ids: pd.Series) -> pd.Series:
    """Person identifiers as the text SQL engines give ``CAST(id AS VARCHAR)``.

    Integers print without a decimal point, floats as Python's ``repr`` (``3.0``, ``1.5``, as
    DuckDB and Spark print a DOUBLE), everything else as ``str``. CSV files are read as text by
    every engine, so their identifiers hash identically everywhere. Nulls stay null.
    """
    s = ids.reset_index(drop=True)
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.map(lambda v: None if pd.isna(v) else ("true" if v else "false"))
    if pd.api.types.is_integer_dtype(s.dtype):
        return s.map(lambda v: None if pd.isna(v) else str(int(v)))
    if pd.api.types.is_float_dtype(s.dtype):
        return s.map(lambda v: None if pd.isna(v) else repr(float(v)))
    return s.map(lambda v: None if pd.isna(v) else str(v))


def bound_contributions(
    ids: pd.Series | npt.ArrayLike,
    codes: npt.NDArray[np.integer],
    k: int,
    key: MechanismKey,
) -> npt.NDArray[np.bool_]:
    """A mask keeping at most ``k`` rows per person, chosen by the keyed row hash.

    Args:
        ids: The person identifier of every row (any hashable values; nulls allowed).
        codes: ``(n, d)`` codes of every modelled column, in schema order (the row content).
        k: The maximum number of rows kept per person (``>= 1``).
        key: The run's in-mechanism secret (never the user's seed).

    Returns:
        Boolean mask over the rows: True for a kept row. Rows with a null identifier are kept.
    """
    if k < 1:
        raise ConfigError(f"max_rows ({k}) must be >= 1")
    series = ids if isinstance(ids, pd.Series) else pd.Series(ids)
    n = len(series)
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[0] != n:
        raise ConfigError(f"codes must have shape (rows={n}, columns), got {codes.shape}")
    groups, _ = pd.factorize(series.reset_index(drop=True), use_na_sentinel=True)
    keep = np.ones(n, dtype=bool)
    if n == 0:
        return keep
    sizes = np.bincount(groups[groups >= 0], minlength=int(groups.max()) + 1 if (groups >= 0).any() else 0)
    heavy = np.flatnonzero((groups >= 0) & (sizes[np.maximum(groups, 0)] > k))
    if heavy.size == 0:
        return keep
    text = id_text(series.iloc[heavy]).tolist()  # only the rows that are hashed
    frame = pd.DataFrame(codes[heavy], copy=False)
    frame.insert(0, "__pid", groups[heavy])
    dup = frame.groupby(list(frame.columns), sort=False).cumcount().to_numpy() + 1
    subkey = key.hex_for(BOUNDING_PURPOSE)
    rows = codes[heavy].tolist()
    hashes = [
        hashlib.md5("|".join([subkey, pid, *map(str, row), str(j)]).encode("utf-8")).hexdigest()
        for pid, row, j in zip(text, rows, dup.tolist(), strict=True)
    ]
    order = pd.DataFrame({"g": groups[heavy], "h": hashes}).sort_values(["g", "h"], kind="stable")
    rank = order.groupby("g", sort=False).cumcount().to_numpy()
    keep[heavy[order.index.to_numpy()]] = rank < k
    return keep


def encode_bounded(df: pd.DataFrame, schema: Schema, key: MechanismKey) -> Table:
    """Encode ``df`` as :func:`~dpsynth.tabular.encoding.encode` does, after bounding contributions.

    With a row-level privacy unit this is plain encoding. With a person-level unit, at most
    ``schema.privacy_unit.max_rows`` rows of each person are kept, chosen by the keyed row
    hash over the person's encoded rows (see the module docstring).
    """
    unit = schema.privacy_unit
    if unit.kind != "person":
        return encode(df, schema)
    column = str(unit.column)
    frame = df.rename(columns=str)
    if column not in frame.columns:
        raise SchemaError(f"the data lacks the privacy unit column {column!r}")
    table = encode(frame, schema)
    codes = table.column_codes(tuple(c.name for c in schema.modelled))
    keep = bound_contributions(frame[column], codes, int(unit.max_rows or 1), key)
    return Table(table.columns, table.sizes, table.codes[keep])
