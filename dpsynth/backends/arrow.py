"""Counting with pyarrow: Parquet read batch by batch through its dictionaries, counted in numpy.

No query engine sits between the file and the counts. Each worker thread reads batches of
one Parquet row group at a time (text columns as Arrow dictionaries, so a string is never
materialised per row), turns every column into codes and adds each batch to the dense tables
of a few unions of the requested marginals (:class:`~dpsynth.backends.tally.UnionPlan`).
Memory is bounded by the batch size and the union tables, so files larger than memory
stream through.

Codes come from :func:`dpsynth.tabular.encoding.encode_column` itself, applied to the *distinct*
values of a batch (a dictionary) rather than to its rows, so the semantics are those of the
numpy engine by construction (nulls, undeclared categories, clamping, bin edges, unicode
normalisation). Integer columns whose public bounds span few values use a lookup table built
the same way over the whole bounded range.

Person-level bounding needs all of a person's rows at once: the codes (one or two bytes a
cell) and person ids are then gathered in memory and bounded exactly as the numpy engine does
(:func:`~dpsynth.backends.bounding.bound_contributions`: the run's key and the codes of every
modelled column, so each counting pass, and every engine, keeps the same rows).
"""

from __future__ import annotations

import glob as globlib
import logging
import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from dpsynth.backends.base import CachedCounts
from dpsynth.backends.bounding import bound_contributions
from dpsynth.backends.frames import normalise_frame
from dpsynth.backends.tally import UnionPlan
from dpsynth.errors import ConfigError, SchemaError, require
from dpsynth.privacy.randomness import MechanismKey
from dpsynth.tabular.encoding import encode_column
from dpsynth.tabular.schema import NumericColumn, Schema

__all__ = ["BATCH_ROWS", "LUT_LIMIT", "ArrowBackend"]

log = logging.getLogger(__name__)

#: Integer columns whose public bounds span at most this many values use a lookup table.
LUT_LIMIT = 1 << 22
#: Rows per batch read from a row group (bounds the memory of each worker).
BATCH_ROWS = 1 << 18
#: Distinct values per column whose codes a worker remembers across row groups.
_KNOWN_LIMIT = 1 << 16
_PARQUET = (".parquet", ".pq")
_LUT_TYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32")

Unit = Callable[["_Worker"], Iterator[Any]]


def _parquet_files(path: str) -> list[str]:
    """The Parquet files of a file path, a directory (searched recursively) or a glob."""
    if any(ch in path for ch in "*?["):
        files = sorted(globlib.glob(path, recursive=True))
    elif Path(path).is_dir():
        files = sorted(str(p) for p in Path(path).rglob("*") if p.suffix.lower() in _PARQUET)
    elif Path(path).exists():
        if Path(path).suffix.lower() not in _PARQUET:
            raise ConfigError(
                f"input {Path(path).name}: the arrow engine reads Parquet (.parquet, .pq); "
                "use --engine duckdb for CSV"
            )
        files = [path]
    else:
        raise ConfigError(f"input file {path} does not exist")
    if not files:
        raise ConfigError(f"no Parquet files match {path}")
    return files


class _Worker:
    """Per-thread state: open files, the last dictionary mapping per column, union tables."""

    def __init__(self, owner: ArrowBackend, tables: list[npt.NDArray[np.int64]]) -> None:
        self.owner = owner
        self.files: dict[str, Any] = {}
        self.dicts: dict[int, tuple[Any, npt.NDArray[np.int32]]] = {}
        self.known: dict[int, dict[tuple[str, Any], int]] = {}
        self.tables = tables

    def parquet(self, path: str) -> Any:
        if path not in self.files:
            pq = self.owner._pq
            text = [f.name for f in pq.read_schema(path) if self.owner._is_text(f.type)]
            self.files[path] = pq.ParquetFile(path, read_dictionary=text)
        return self.files[path]

    def mapping(self, j: int, dictionary: Any) -> npt.NDArray[np.int32]:
        """Codes of a dictionary's values, plus the null code last.

        Row groups usually carry the same values in another order, so codes are remembered
        per ``(Arrow type, value)`` and only values not seen before are encoded (encoding is
        value by value, so a value's code does not depend on its neighbours).
        """
        last = self.dicts.get(j)
        if last is not None and last[0].equals(dictionary):
            return last[1]
        known = self.known.setdefault(j, {})
        kind = str(dictionary.type)
        values = dictionary.to_pylist()
        fresh = [i for i, v in enumerate(values) if (kind, v) not in known]
        looked: dict[int, int] = {}
        if fresh:
            codes, _ = encode_column(dictionary.take(fresh).to_pandas(), self.owner._cols[j])
            looked = dict(zip(fresh, codes.tolist(), strict=True))
            if len(known) < _KNOWN_LIMIT:
                known.update(((kind, values[i]), c) for i, c in looked.items())
        out = np.array(
            [looked[i] if i in looked else known[(kind, v)] for i, v in enumerate(values)]
            + [self.owner._null_codes[j]],
            dtype=np.int32,
        )
        self.dicts[j] = (dictionary, out)
        return out


class ArrowBackend(CachedCounts):
    """Exact marginal counts of Parquet files or Arrow tables, streamed with pyarrow.

    Args:
        source: A Parquet file, a directory of Parquet files, a glob, a ``pyarrow.Table`` or
            a pandas DataFrame (converted to Arrow once).
        schema: The public schema; its modelled columns define the domain.
        threads: Worker threads (each reads its own row groups); all cores when None.
        batch_rows: Rows per batch a worker holds at a time.
        key: The run's in-mechanism secret, which keys contribution bounding (person-level
            privacy unit only); a fresh one when None. The same key keeps the same rows as the
            numpy, DuckDB and Spark engines, in every counting pass.
    """

    def __init__(
        self,
        source: Any,
        schema: Schema,
        *,
        threads: int | None = None,
        batch_rows: int = BATCH_ROWS,
        key: MechanismKey | None = None,
    ) -> None:
        self._pa = cast(Any, require("pyarrow", "scale"))
        self._pc = cast(Any, require("pyarrow.compute", "scale"))
        self._pq = cast(Any, require("pyarrow.parquet", "scale"))
        self._init_cache(schema)
        if batch_rows < 1:
            raise ConfigError(f"batch_rows ({batch_rows}) must be >= 1")
        self._threads = max(1, int(threads) if threads is not None else (os.cpu_count() or 1))
        self._batch = int(batch_rows)
        self._key = key if key is not None else MechanismKey.fresh()
        self._keep: npt.NDArray[np.bool_] | None = None  # the bounding mask, in data order
        self._cols = list(schema.modelled)
        self._arrow_table: Any = None
        self._files: list[str] = []
        unit = schema.privacy_unit
        self._pid = str(unit.column) if unit.kind == "person" else None
        if isinstance(source, pd.DataFrame):
            source = self._pa.Table.from_pandas(normalise_frame(source), preserve_index=False)
        if isinstance(source, self._pa.Table):
            self._arrow_table = source
            fields = {f.name: f.type for f in source.schema}
        elif isinstance(source, (str, Path)):
            self._files = _parquet_files(str(source))
            fields = {f.name: f.type for f in self._pq.read_schema(self._files[0])}
        else:
            raise ConfigError("source must be a Parquet path, a pyarrow Table or a pandas DataFrame")
        missing = [c.name for c in self._cols if c.name not in fields]
        if self._pid is not None and self._pid not in fields:
            missing.append(self._pid)
        if missing:
            raise SchemaError(f"the data lacks schema columns {missing}")
        self._null_codes = [int(encode_column(pd.Series([None], dtype=object), c)[0][0]) for c in self._cols]
        self._luts = {j: lut for j, c in enumerate(self._cols) if (lut := self._lut(c, fields[c.name])) is not None}

    def _is_text(self, t: Any) -> bool:
        pa = self._pa
        return bool(
            pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)
        )

    def _lut(self, col: Any, arrow_type: Any) -> tuple[int, npt.NDArray[np.int32]] | None:
        """``(offset, codes)``: the code of integer ``v`` is ``codes[clip(v - offset)]``, or None.

        The table covers the public bounds (from 0 when the lower bound is not negative, so
        no subtraction is needed); integers beyond a bound are clamped to it, and so share
        the code at that end of the table.
        """
        if not isinstance(col, NumericColumn) or str(arrow_type) not in _LUT_TYPES:
            return None
        lo, hi = int(np.floor(col.bounds[0])), int(np.ceil(col.bounds[1]))
        lo = min(0, lo)
        if col.atoms:  # cover the atoms, and one guard value beyond them that clamps like the bounds
            lo, hi = min(lo, math.floor(min(col.atoms)) - 1), max(hi, math.ceil(max(col.atoms)) + 1)
        if hi - lo + 1 > LUT_LIMIT:
            return None
        codes, _ = encode_column(pd.Series(np.arange(lo, hi + 1, dtype=np.int64)), col)
        return lo, codes.astype(np.int32)

    def _units(self) -> list[Unit]:
        """One unit of work per row group (files) or per batch (tables), in data order."""
        names = [c.name for c in self._cols] + ([self._pid] if self._pid is not None else [])
        units: list[Unit] = []
        for path in self._files:
            for g in range(self._pq.ParquetFile(path).metadata.num_row_groups):
                def read(w: _Worker, path: str = path, g: int = g) -> Iterator[Any]:
                    return iter(w.parquet(path).iter_batches(
                        batch_size=self._batch, row_groups=[g], columns=names, use_threads=False))
                units.append(read)
        if self._arrow_table is not None:
            table = self._arrow_table.select(names)
            for start in range(0, table.num_rows, self._batch):
                def part(w: _Worker, start: int = start) -> Iterator[Any]:
                    return iter(table.slice(start, self._batch).to_batches())
                units.append(part)
        return units

    def _codes(self, w: _Worker, j: int, arr: Any) -> npt.NDArray[np.int32]:
        """Codes of column ``j`` for one batch array (int32: half the memory traffic of int64)."""
        pa, pc = self._pa, self._pc
        lut = self._luts.get(j)
        if lut is not None and str(arr.type) in _LUT_TYPES:
            lo, table = lut
            vals = (arr.fill_null(0) if arr.null_count else arr).to_numpy(zero_copy_only=False)
            out = np.take(table, vals.astype(np.int64) - lo if lo else vals, mode="clip")
            if arr.null_count:
                out[np.asarray(arr.is_null().to_numpy(zero_copy_only=False))] = self._null_codes[j]
            return cast(npt.NDArray[np.int32], out)
        if not pa.types.is_dictionary(arr.type):
            try:
                arr = pc.dictionary_encode(arr)
            except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
                codes, _ = encode_column(arr.to_pandas(), self._cols[j])
                return codes.astype(np.int32)
        mapping = w.mapping(j, arr.dictionary)
        idx = arr.indices
        if arr.null_count:
            idx = idx.fill_null(mapping.size - 1)
        return cast(npt.NDArray[np.int32], np.take(mapping, idx.to_numpy(zero_copy_only=False)))

    def _run(
        self, work: Callable[[_Worker, Any], Any], zeros: Callable[[], list[npt.NDArray[np.int64]]]
    ) -> tuple[list[Any], list[_Worker]]:
        """Run ``work`` on every batch, units spread over the threads; results in data order."""
        local = threading.local()
        workers: list[_Worker] = []
        lock = threading.Lock()

        def one(unit: Unit) -> list[Any]:
            w = getattr(local, "w", None)
            if w is None:
                w = local.w = _Worker(self, zeros())
                with lock:
                    workers.append(w)
            return [work(w, batch) for batch in unit(w)]

        units = self._units()
        if self._threads == 1 or len(units) < 2:
            results = [one(u) for u in units]
        else:
            with ThreadPoolExecutor(self._threads, thread_name_prefix="dpsynth-arrow") as ex:
                results = list(ex.map(one, units))
        return [r for rs in results for r in rs], workers

    def _compute(self, keys: list[tuple[str, ...]]) -> None:
        order = [c.name for c in self._cols]
        needed = sorted({order.index(c) for k in keys for c in k})
        sizes = [self._domain[n] for n in order]
        plan = UnionPlan(sizes, [tuple(order.index(c) for c in k) for k in keys])
        terms = [plan.flat_terms(j) for j in range(len(plan.unions))]

        def add(tables: list[npt.NDArray[np.int64]], codes: dict[int, npt.NDArray[np.int32]]) -> None:
            for table, flat_terms in zip(tables, terms, strict=True):
                # int32 flat indices while the union fits (cache-resident batches, ~3x faster).
                dtype = np.int32 if table.size < 1 << 31 else np.int64
                flat: npt.NDArray[np.signedinteger[Any]] = np.zeros(len(codes[flat_terms[0][0]]), dtype=dtype)
                for c, mult in flat_terms:
                    flat += codes[c] * dtype(mult) if mult != 1 else codes[c]
                table += np.bincount(flat, minlength=table.size)

        def zeros() -> list[npt.NDArray[np.int64]]:
            return [np.zeros(plan.cells(j), dtype=np.int64) for j in range(len(plan.unions))]

        if self._pid is None:
            def count_batch(w: _Worker, batch: Any) -> None:
                add(w.tables, {j: self._codes(w, j, batch.column(order[j])) for j in needed})

            _, workers = self._run(count_batch, zeros)
            tables = zeros()
            for w in workers:
                for t, part in zip(tables, w.tables, strict=True):
                    t += part
        else:
            tables = self._bounded(needed, zeros, add)
        self._cache.update(zip(keys, plan.assemble_dense(tables), strict=True))

    def _bounded(
        self, needed: list[int], zeros: Callable[[], list[npt.NDArray[np.int64]]], add: Callable[..., None]
    ) -> list[npt.NDArray[np.int64]]:
        """Union tables after keeping at most ``max_rows`` rows per person (codes held in memory).

        The first pass encodes every modelled column, not only the ``needed`` ones (the keyed
        row hash that chooses a person's rows covers the whole row) and remembers the mask;
        later passes read only the ``needed`` columns, in the same data order, and apply it, so
        every pass keeps the same rows without hashing again.
        """
        pid = str(self._pid)
        first = self._keep is None
        cols = range(len(self._cols)) if first else needed
        narrow = {j: np.uint8 if self._domain[self._cols[j].name] <= 256 else np.int32 for j in cols}

        def gather(w: _Worker, batch: Any) -> tuple[Any, dict[int, npt.NDArray[Any]]]:
            return (batch.column(pid) if first else None), {
                j: self._codes(w, j, batch.column(self._cols[j].name)).astype(narrow[j]) for j in cols}

        parts, _ = self._run(gather, zeros)
        tables = zeros()
        if not parts:
            return tables
        if not first:
            assert self._keep is not None
            add(tables, {j: np.concatenate([p[1][j] for p in parts])[self._keep].astype(np.int32) for j in needed})
            return tables
        ids = self._pa.chunked_array([p[0] for p in parts]).to_pandas()
        full = {j: np.concatenate([p[1][j] for p in parts]) for j in cols}
        matrix = (
            np.stack([full[j].astype(np.int64) for j in cols], axis=1) if full else np.zeros((len(ids), 0), np.int64)
        )
        keep = bound_contributions(ids, matrix, int(self._schema.privacy_unit.max_rows or 1), self._key)
        self._keep = keep
        del matrix
        codes = {j: full[j][keep].astype(np.int32) for j in needed}
        add(tables, codes)
        return tables

    def close(self) -> None:
        """Forget the source and the cached counts."""
        self._closed = True
        self._cache.clear()
        self._arrow_table = None
        self._files = []
        self._keep = None

