"""Contribution bounding for user-level privacy: keep at most ``k`` random rows per person.

When the schema's privacy unit is a person (an identifier column and ``max_rows = k``), every
marginal must be computed on a table where each person contributes at most ``k`` rows, so one
person changes any count by at most ``k``. Which rows are kept is a function of that person's
rows and a random choice only, never of other people's data. Rows whose person identifier is
null each count as their own person and are always kept.

The SQL engines do the same with ``ROW_NUMBER() OVER (PARTITION BY id ORDER BY hash) <= k``
(see :func:`dpsynth.backends.sql.bounded_sql`); this module is the in-memory (numpy) path.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from dpsynth.encoding import encode
from dpsynth.errors import ConfigError, SchemaError
from dpsynth.schema import Schema
from dpsynth.table import Table

__all__ = ["bound_contributions", "encode_bounded"]


def bound_contributions(ids: pd.Series | npt.ArrayLike, k: int, rng: np.random.Generator) -> npt.NDArray[np.bool_]:
    """A mask keeping at most ``k`` rows per person, each person's rows chosen uniformly.

    Args:
        ids: The person identifier of every row (any hashable values; nulls allowed).
        k: The maximum number of rows kept per person (``>= 1``).
        rng: Random generator for the choice of rows.

    Returns:
        Boolean mask over the rows: True for a kept row. Rows with a null identifier are kept.
    """
    if k < 1:
        raise ConfigError(f"max_rows ({k}) must be >= 1")
    groups, _ = pd.factorize(pd.Series(ids) if not isinstance(ids, pd.Series) else ids, use_na_sentinel=True)
    n = len(groups)
    perm = rng.permutation(n)
    shuffled = groups[perm]
    rank = pd.Series(shuffled).groupby(shuffled).cumcount().to_numpy()
    keep = np.empty(n, dtype=bool)
    keep[perm] = (rank < k) | (shuffled < 0)
    return keep


def encode_bounded(df: pd.DataFrame, schema: Schema, rng: np.random.Generator) -> Table:
    """Encode ``df`` as :func:`~dpsynth.encoding.encode` does, after bounding contributions.

    With a row-level privacy unit this is plain encoding. With a person-level unit, at most
    ``schema.privacy_unit.max_rows`` rows of each person (chosen with ``rng``) are encoded.
    """
    unit = schema.privacy_unit
    if unit.kind != "person":
        return encode(df, schema)
    column = str(unit.column)
    if column not in df.columns.map(str):
        raise SchemaError(f"the data lacks the privacy unit column {column!r}")
    ids = df.rename(columns=str)[column]
    keep = bound_contributions(ids, int(unit.max_rows or 1), rng)
    return encode(df.loc[keep].reset_index(drop=True), schema)
