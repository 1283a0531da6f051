"""Mixed-type record encoding and a bounded-memory Gower-like nearest-neighbour search.

Distance between two records is the mean over columns of a per-column distance in [0, 1]:

* numeric columns: ``min(|x - y| / scale, 1)`` where ``scale`` is the public range
  (``hi - lo`` from ``numeric_ranges``) when given, else the robust range of the real data
  (99th minus 1st percentile; the full range if that is 0; 1 if the column is constant);
* categorical columns (anything non-numeric, and booleans): 0 if equal, 1 otherwise;
* nulls: a null equals a null (distance 0) and differs from any value (distance 1).

The column kind (numeric or categorical) is taken from the real frame. Values are never
parsed through query strings, so any column name (spaces, parentheses, unicode) works. A
column that is missing, or synthetic values that cannot be read as the real column's kind,
raise :class:`~dpsynth.errors.SchemaError` naming the column (never a value).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from dpsynth.errors import ConfigError, SchemaError

__all__ = [
    "DEFAULT_BLOCK_ELEMENTS",
    "EncodedTable",
    "MixedEncoder",
    "distance_blocks",
    "nearest_neighbors",
]

DEFAULT_BLOCK_ELEMENTS = 1 << 21  # about 16 MB of float64 per distance block
CACHE_BLOCK_ELEMENTS = 1 << 18  # 2 MB of float64: a block that stays in cache is ~2x faster


@dataclass(frozen=True)
class EncodedTable:
    """Records encoded for distance computation.

    Attributes:
        num: Float array (n, p_num), NaN for null.
        cat: Integer codes (n, p_cat), -1 for null.
        num_columns: Names of the numeric columns, in order.
        cat_columns: Names of the categorical columns, in order.
        scales: Positive scale per numeric column.
    """

    num: NDArray[np.float64]
    cat: NDArray[np.int64]
    num_columns: tuple[str, ...]
    cat_columns: tuple[str, ...]
    scales: NDArray[np.float64]

    @property
    def n_rows(self) -> int:
        """Number of records."""
        return int(self.num.shape[0]) if self.num.shape[1] else int(self.cat.shape[0])

    @property
    def columns(self) -> tuple[str, ...]:
        """All encoded columns (numeric first)."""
        return self.num_columns + self.cat_columns

    def select(self, columns: Sequence[str]) -> EncodedTable:
        """The same records restricted to ``columns`` (each must be encoded)."""
        for c in columns:
            if c not in self.num_columns and c not in self.cat_columns:
                raise SchemaError(f"column {c!r} is not among the audited columns")
        ni = [i for i, c in enumerate(self.num_columns) if c in columns]
        ci = [i for i, c in enumerate(self.cat_columns) if c in columns]
        return EncodedTable(self.num[:, ni], self.cat[:, ci],
                            tuple(self.num_columns[i] for i in ni),
                            tuple(self.cat_columns[i] for i in ci), self.scales[ni])

    def take(self, rows: NDArray[np.intp]) -> EncodedTable:
        """The records at positions ``rows``."""
        return EncodedTable(self.num[rows], self.cat[rows], self.num_columns,
                            self.cat_columns, self.scales)

    def column(self, name: str) -> NDArray[np.float64] | NDArray[np.int64]:
        """One encoded column (floats for numeric, codes for categorical)."""
        if name in self.num_columns:
            return self.num[:, self.num_columns.index(name)]
        if name in self.cat_columns:
            return self.cat[:, self.cat_columns.index(name)]
        raise SchemaError(f"column {name!r} is not among the audited columns")

    def row_keys(self) -> NDArray[np.void]:
        """One hashable byte key per record (nulls equal nulls), for exact-match checks."""
        num = np.where(np.isnan(self.num), np.inf, self.num)  # a single null representation
        num = np.where(num == 0.0, 0.0, num)  # -0.0 == 0.0
        both = np.concatenate([num.view(np.int64), self.cat], axis=1)
        both = np.ascontiguousarray(both)
        return both.view(np.dtype((np.void, both.dtype.itemsize * both.shape[1]))).ravel()


def _is_numeric(s: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(s.dtype)) and not pd.api.types.is_bool_dtype(s.dtype)


class MixedEncoder:
    """Learns column kinds, scales and category codes, then encodes frames consistently.

    Args:
        real: The real (training) frame; it fixes the audited columns and their kinds.
        others: Further frames (synthetic, holdout) whose categories join the code book.
        columns: Columns to audit (default: all columns of ``real``).
        numeric_ranges: Public ``(lo, hi)`` per numeric column; otherwise the robust range of
            the real data is used as the scale (the audit is confidential, see DESIGN §2.7).
    """

    def __init__(self, real: pd.DataFrame, others: Sequence[pd.DataFrame] = (), *,
                 columns: Sequence[str] | None = None,
                 numeric_ranges: Mapping[str, tuple[float, float]] | None = None) -> None:
        cols = list(real.columns) if columns is None else list(columns)
        if len(set(cols)) != len(cols):
            raise SchemaError("audited columns must be unique")
        for frame_name, frame in [("real", real)] + [(f"frame {i + 2}", f)
                                                      for i, f in enumerate(others)]:
            for c in cols:
                if c not in frame.columns:
                    raise SchemaError(f"column {c!r} is missing from the {frame_name} data")
        self.num_columns = tuple(c for c in cols if _is_numeric(real[c]))
        self.cat_columns = tuple(c for c in cols if not _is_numeric(real[c]))
        ranges = dict(numeric_ranges or {})
        scales = []
        for c in self.num_columns:
            if c in ranges:
                lo, hi = (float(v) for v in ranges[c])
                if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
                    raise ConfigError(f"numeric range of column {c!r} must be finite with hi > lo")
                scales.append(hi - lo)
                continue
            x = pd.to_numeric(real[c], errors="coerce").to_numpy(dtype=np.float64)
            x = x[np.isfinite(x)]
            scale = 0.0
            if x.size:
                q1, q99 = np.quantile(x, [0.01, 0.99])
                scale = float(q99 - q1) or float(x.max() - x.min())
            scales.append(scale if scale > 0 else 1.0)
        self.scales = np.asarray(scales, dtype=np.float64)
        self._codebooks: dict[str, pd.Index] = {}
        for c in self.cat_columns:
            values = pd.concat([real[c].astype(object)] + [f[c].astype(object) for f in others])
            self._codebooks[c] = pd.Index(pd.unique(values.dropna()))

    @property
    def columns(self) -> tuple[str, ...]:
        """Audited columns (numeric first)."""
        return self.num_columns + self.cat_columns

    def categories(self, column: str) -> tuple[str, ...]:
        """Labels of a categorical column's codes, in code order (code ``i`` is entry ``i``)."""
        if column not in self._codebooks:
            raise SchemaError(f"column {column!r} is not a categorical audited column")
        return tuple(str(v) for v in self._codebooks[column])

    def encode(self, frame: pd.DataFrame, *, name: str = "data") -> EncodedTable:
        """Encode ``frame`` (must hold every audited column).

        Raises:
            SchemaError: a column is missing, a numeric column holds non-numeric values, or a
                categorical value was not seen when the encoder was built.
        """
        n = len(frame)
        num = np.empty((n, len(self.num_columns)), dtype=np.float64)
        cat = np.empty((n, len(self.cat_columns)), dtype=np.int64)
        for j, c in enumerate(self.num_columns):
            if c not in frame.columns:
                raise SchemaError(f"column {c!r} is missing from the {name} data")
            raw = frame[c]
            x = pd.to_numeric(raw, errors="coerce")
            bad = int((x.isna() & raw.notna()).sum())
            if bad:
                raise SchemaError(
                    f"column {c!r} of the {name} data has {bad} non-numeric values, "
                    "but it is numeric in the real data")
            arr = np.array(x.to_numpy(dtype=np.float64, na_value=np.nan), copy=True)
            arr[np.isinf(arr)] = np.nan
            num[:, j] = arr
        for j, c in enumerate(self.cat_columns):
            if c not in frame.columns:
                raise SchemaError(f"column {c!r} is missing from the {name} data")
            codes = self._codebooks[c].get_indexer(pd.Index(frame[c].astype(object)))
            unseen = int(((codes < 0) & frame[c].notna().to_numpy()).sum())
            if unseen:
                raise SchemaError(f"column {c!r} of the {name} data has {unseen} values the "
                                  "encoder has not seen; pass that frame when building it")
            cat[:, j] = codes
        return EncodedTable(num, cat, self.num_columns, self.cat_columns, self.scales)


def distance_blocks(query: EncodedTable, ref: EncodedTable, *,
                    block_elements: int = DEFAULT_BLOCK_ELEMENTS
                    ) -> Iterator[tuple[int, NDArray[np.float64]]]:
    """Yield ``(start, D)`` where ``D[i, j]`` is the distance of query ``start+i`` to ref ``j``.

    Blocks hold at most about ``block_elements`` entries (capped at
    :data:`CACHE_BLOCK_ELEMENTS` so that a block stays in cache), so memory stays bounded
    whatever the number of query records. Categorical mismatches are counted in small
    integers and added once, which equals the per-column float sum up to rounding in the
    last bit.
    """
    if query.columns != ref.columns:
        raise ConfigError("query and reference records must be encoded on the same columns")
    p = len(query.columns)
    if p == 0:
        raise ConfigError("distance needs at least one column")
    n_ref = ref.n_rows
    chunk = max(1, min(block_elements, CACHE_BLOCK_ELEMENTS) // max(n_ref, 1))
    qs = query.num / query.scales  # scaled once; distances are then plain differences
    rs = [np.ascontiguousarray(ref.num[:, j] / ref.scales[j]) for j in range(ref.num.shape[1])]
    has_null = [bool(np.isnan(qs[:, j]).any() or np.isnan(rs[j]).any())
                for j in range(qs.shape[1])]
    p_cat = query.cat.shape[1]
    rc = [np.ascontiguousarray(ref.cat[:, j]) for j in range(p_cat)]
    count_type = np.uint8 if p_cat < 256 else np.int32
    for start in range(0, query.n_rows, chunk):
        stop = min(start + chunk, query.n_rows)
        d = np.zeros((stop - start, n_ref), dtype=np.float64)
        tmp = np.empty_like(d)
        for j in range(qs.shape[1]):
            q = qs[start:stop, j][:, None]
            r = rs[j][None, :]
            np.subtract(q, r, out=tmp)
            np.abs(tmp, out=tmp)
            np.minimum(tmp, 1.0, out=tmp)
            if has_null[j]:
                qn, rn = np.isnan(q), np.isnan(r)
                tmp[qn | rn] = 1.0
                tmp[qn & rn] = 0.0
            d += tmp
        if p_cat:
            mismatches = np.zeros(d.shape, dtype=count_type)
            differ = np.empty(d.shape, dtype=bool)
            for j in range(p_cat):
                np.not_equal(query.cat[start:stop, j][:, None], rc[j][None, :], out=differ)
                np.add(mismatches, differ, out=mismatches, casting="unsafe")
            d += mismatches
        d /= p
        yield start, d


def nearest_neighbors(query: EncodedTable, ref: EncodedTable, *, k: int = 1,
                      rng: np.random.Generator | None = None,
                      block_elements: int = DEFAULT_BLOCK_ELEMENTS
                      ) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """The ``k`` nearest reference records of each query record.

    Args:
        query: Records to look up.
        ref: Records searched.
        k: Number of neighbours.
        rng: When given, ties are broken at random (the reference is shuffled first);
            otherwise by position.
        block_elements: Memory bound of one distance block.

    Returns:
        ``(indices, distances)``, each (n_query, k), sorted by distance; indices refer to
        ``ref``'s original positions.
    """
    n_ref = ref.n_rows
    if not 1 <= k <= n_ref:
        raise ConfigError(f"k ({k}) must lie in [1, number of reference records ({n_ref})]")
    perm = rng.permutation(n_ref) if rng is not None else np.arange(n_ref)
    shuffled = ref.take(perm)
    idx = np.empty((query.n_rows, k), dtype=np.intp)
    dist = np.empty((query.n_rows, k), dtype=np.float64)
    for start, d in distance_blocks(query, shuffled, block_elements=block_elements):
        rows = np.arange(d.shape[0])[:, None]
        if k == 1:
            part = np.argmin(d, axis=1)[:, None]
        else:
            part = np.argpartition(d, k - 1, axis=1)[:, :k]
            order = np.argsort(d[rows, part], axis=1, kind="stable")
            part = part[rows, order]
        idx[start:start + d.shape[0]] = perm[part]
        dist[start:start + d.shape[0]] = d[rows, part]
    return idx, dist


def _knn_means(query: EncodedTable, ref: EncodedTable, self_pos: NDArray[np.intp], k: int
               ) -> NDArray[np.float64]:
    """Mean distance of each query record to its ``k`` nearest ``ref`` records.

    ``self_pos[i]`` is the position of query ``i`` in ``ref`` (its own record, skipped), or
    -1 when it is not there.
    """
    out = np.empty(query.n_rows, dtype=np.float64)
    for start, d in distance_blocks(query, ref):
        rows = np.arange(d.shape[0])
        own = self_pos[start:start + d.shape[0]]
        d[rows[own >= 0], own[own >= 0]] = np.inf  # a record is not its own neighbour
        out[start:start + d.shape[0]] = np.partition(d, k - 1, axis=1)[:, :k].mean(axis=1)
    return out


def top_outliers(records: EncodedTable, n: int, *, k: int = 5, sample: int = 2048,
                 batch: int = 512) -> NDArray[np.intp]:
    """Positions of the ``n`` records farthest from their ``k`` nearest other records.

    The score of a record is its mean distance to its ``k`` nearest other records (Meeus et
    al., ESORICS 2023); the result, highest first with ties by position, equals ranking every
    record's exact score, without the quadratic all-pairs pass. The mean distance to the
    ``k`` nearest among an evenly spaced sample of ``sample`` records bounds each score from
    above; exact scores are computed in that bound's order, in batches, until the next bound
    falls below the ``n``-th best exact score.

    Args:
        records: The records ranked.
        n: Number of outliers wanted.
        k: Neighbours averaged.
        sample: Size of the sample giving the upper bounds.
        batch: Records scored exactly per step.
    """
    total = records.n_rows
    if not 1 <= k < total:
        raise ConfigError(f"k ({k}) must lie in [1, number of records - 1 ({total - 1})]")
    n = max(0, min(n, total))
    positions = np.arange(total, dtype=np.intp)
    sampled = np.unique(np.linspace(0, total - 1, min(total, max(sample, 2 * k + 2))).astype(np.intp))
    own = np.full(total, -1, dtype=np.intp)
    own[sampled] = np.arange(sampled.size)
    bound = _knn_means(records, records.take(sampled), own, k) if sampled.size < total else None
    order = positions if bound is None else np.argsort(-bound, kind="stable").astype(np.intp)
    scored_pos: list[NDArray[np.intp]] = []
    scored: list[NDArray[np.float64]] = []
    done = 0
    while done < total:
        chunk = order[done:done + (total if bound is None else batch)]
        scored_pos.append(chunk)
        scored.append(_knn_means(records.take(chunk), records, chunk, k))
        done += chunk.size
        best = np.sort(np.concatenate(scored))[::-1]
        if bound is not None and done < total and best.size >= n and \
                (n == 0 or bound[order[done]] < best[n - 1]):
            break
    pos = np.concatenate(scored_pos)
    score = np.concatenate(scored)
    rank = np.lexsort((pos, -score))
    return pos[rank[:n]]
