"""Fit linked tables under one person-level guarantee, and sample tables whose keys join.

The generator (PrivLava's simplest form, without latent clusters):

1. The **root** table (one row per person) is fitted with one extra modelled column per child
   table, the person's number of rows in it clamped to ``max_rows_per_parent`` (``n_<child>``,
   public domain ``0..max``).
2. Each **child** table is fitted on its own columns joined with the declared
   ``parent_columns`` of its person's root row, under person-level privacy: contribution
   bounding keeps at most ``max_rows_per_parent`` rows per person (keyed by the run's secret),
   so every count's sensitivity is that bound.
3. **Sampling** draws the root rows, resamples them within each group of equal parent columns
   so that each group's child rows match the child model's share (the default ``reweighted``
   link), gives them fresh keys 1..n, then for each child table draws, for every root row, as
   many child rows as its ``n_<child>`` says, from the child model conditioned on that row's
   parent columns; their foreign keys are the parent's key.

One outer accountant holds the whole budget: before a table is fitted it is charged the
table's share (a zCDP event), and the table's fit runs under an inner accountant of exactly
that share, so no table can spend more. Adding or removing one person changes one root row
and at most ``max_rows_per_parent`` rows of each child table, and the shares compose: the
release is ``(sum of shares)``-zCDP for that person, stated once as (epsilon, delta).

Value-level policy (as in a single table): a root row without a key is dropped; of several
root rows with one key the first is kept; child rows whose key is missing or names no root
row are dropped; a person's surplus child rows are dropped by the bounding.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.errors import ConfigError, SchemaError
from dpsynth.privacy.budget import budget_of
from dpsynth.privacy.events import ZCDPEvent
from dpsynth.privacy.randomness import PostProcessingSeed
from dpsynth.privacy.spend import PrivacySpend
from dpsynth.relational.linking import matched, reweighted
from dpsynth.relational.schema import RelationalSchema, count_column, dump_relational, reload_relational
from dpsynth.synthesizer import Synthesizer
from dpsynth.tabular.schema import Schema, parse_schema

__all__ = ["MECHANISMS", "RelationalSynthesizer", "fit_relational", "fit_schemas", "prepare_frames"]

#: Mechanisms a relational fit can use: children are sampled by conditioning a graphical model.
MECHANISMS = ("mst", "aim", "independent")
#: How children are linked to sampled persons (see :meth:`RelationalSynthesizer.sample`).
LINKS = ("conditional", "matched", "reweighted")
_FORMAT = "dpsynth-relational/1"


def _count_spec(name: str, bound: int) -> dict[str, Any]:
    """A child-count column: integers 0..bound, one cell each up to 63, else widening bins."""
    spec: dict[str, Any] = {"name": name, "kind": "numeric", "dtype": "int", "bounds": [0, bound]}
    if bound + 1 > 64:
        edges = set(range(16))
        edge = 16.0
        while edge < bound:
            edges.add(int(edge))
            edge *= 1.5
        spec["edges"] = sorted(edges | {bound})
    return spec


def fit_schemas(rel: RelationalSchema) -> dict[str, Schema]:
    """The schema each table is fitted with: the root with its child-count columns, each
    child with its parent columns and the person as its privacy unit."""
    root = rel.schemas[rel.root]
    data = root.model_dump(mode="json", by_alias=True)
    data["columns"] += [_count_spec(count_column(c), int(rel.specs[c].max_rows_per_parent or 1))
                        for c in rel.children]
    out = {rel.root: parse_schema(data, f"{rel.root} (with child counts)")}
    for child in rel.children:
        spec = rel.specs[child]
        data = rel.schemas[child].model_dump(mode="json", by_alias=True)
        data["columns"] += [root.column(c).model_dump(mode="json", by_alias=True) for c in spec.parent_columns]
        data["privacy_unit"] = {"kind": "person", "column": spec.foreign_key, "max_rows": spec.max_rows_per_parent}
        out[child] = parse_schema(data, f"{child} (with parent columns)")
    return out


def _keys(values: pd.Series) -> pd.Series:
    """Key values as text (a CSV's ``7`` and a frame's ``7.0`` are not joined; nulls stay null)."""
    return values.astype("string").str.strip()


def _root_frame(rel: RelationalSchema, frame: pd.DataFrame) -> pd.DataFrame:
    """The root's rows with keys as text: rows without a key dropped, the first of each key kept."""
    pk = str(rel.specs[rel.root].primary_key)
    if pk not in frame.columns:
        raise ConfigError(f"table {rel.root!r}: the data has no primary key column {pk!r}")
    root = frame.copy()
    root[pk] = _keys(root[pk])
    return root[root[pk].notna()].drop_duplicates(subset=pk, keep="first").reset_index(drop=True)


def _frame_of(rel: RelationalSchema, name: str, source: Any) -> pd.DataFrame:
    """A table's rows: the frame given, or its CSV/Parquet file read with its schema (and the
    table's ``sep``); a file's problem is named with its table."""
    if isinstance(source, pd.DataFrame):
        return source
    from dpsynth.tabular.encoding import read_frame

    with table_errors(name):
        return read_frame(source, rel.schemas[name], sep=rel.specs[name].sep)


@contextmanager
def table_errors(name: str) -> Iterator[None]:
    """Name the table in a file error, and point the CLI's ``--sep`` hint at the table's ``sep``."""
    try:
        yield
    except (ConfigError, SchemaError) as exc:
        text = str(exc).replace("pass --sep", "set the table's sep in the relational schema to")
        text = text.replace("(--sep)", "(the table's sep)")
        raise type(exc)(text if text.startswith("table ") else f"table {name!r}: {text}") from None


def prepare_frames(rel: RelationalSchema, frames: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """The frames each table is fitted on (see :func:`fit_schemas`), by the module's policy;
    ``frames`` holds a frame or a CSV/Parquet path per table."""
    missing = sorted(set(rel.specs) - set(frames))
    if missing:
        raise ConfigError(f"no data given for tables {missing}")
    pk = str(rel.specs[rel.root].primary_key)
    root = _root_frame(rel, _frame_of(rel, rel.root, frames[rel.root]))
    out: dict[str, pd.DataFrame] = {}
    for child in rel.children:
        spec = rel.specs[child]
        fk = str(spec.foreign_key)
        frame = _frame_of(rel, child, frames[child])
        if fk not in frame.columns:
            raise ConfigError(f"table {child!r}: the data has no foreign key column {fk!r}")
        # a child file's own copy of a parent column (a person's age repeated on every visit) is
        # not the child's: the person's value comes from the root
        frame = frame.drop(columns=[c for c in spec.parent_columns if c in frame.columns])
        frame[fk] = _keys(frame[fk])
        parent = root[[pk, *spec.parent_columns]].rename(columns={pk: fk})
        joined = frame[frame[fk].notna()].merge(parent, on=fk, how="inner", validate="many_to_one")
        out[child] = joined
        counts = joined.groupby(fk, sort=False).size()
        bound = int(spec.max_rows_per_parent or 1)
        root[count_column(child)] = root[pk].map(counts).fillna(0).astype("int64").clip(upper=bound)
    return {rel.root: root, **out}


def _in_order(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """The table's own columns in its schema's order (identifiers declared ``output: drop``
    and not keys are left out; parent and count columns are dropped)."""
    return frame[[c.name for c in schema.columns if c.name in frame.columns]]


@dataclass(frozen=True)
class RelationalSynthesizer:
    """Fitted linked tables: one synthesizer per table and the release's one guarantee.

    Attributes:
        rel: The relational schema.
        synths: The fitted synthesizer of each table (schemas of :func:`fit_schemas`).
        privacy: The spend of the whole release, per person.
    """

    rel: RelationalSchema
    synths: dict[str, Synthesizer]
    privacy: PrivacySpend

    @property
    def estimated_rows(self) -> int:
        """The DP estimate of the number of persons (root rows)."""
        return int(self.synths[self.rel.root].estimated_rows)

    def sample(self, rows: int | None = None, *, seed: int | None = None,
               link: str = "reweighted") -> dict[str, pd.DataFrame]:
        """Synthetic tables (post-processing only): ``rows`` persons (default the DP estimate)
        and their child rows; keys are fresh integers that join.

        ``link="reweighted"`` (default) first resamples the persons within each group of equal
        parent columns, tilted towards more or fewer children, so that each group's child rows
        match the child model's share (:func:`dpsynth.relational.linking.reweighted`), then links as ``conditional``; on
        NAFLD it gave the best joined marginals and TSTR of the three at a small cost in the
        count distribution (docs/relational.md). ``link="conditional"`` draws each person's
        ``n_<child>`` rows from the child model given the person's parent columns.
        ``link="matched"`` draws as many rows from the child model alone (so their parent
        columns follow the child model) and hands each to a person with the same parent
        columns, in proportion to the persons' ``n_<child>`` (at most the bound each); rows
        whose parent columns no person has are dropped.
        """
        if link not in LINKS:
            raise ConfigError(f"link ({link!r}) must be one of {list(LINKS)}")
        rng = PostProcessingSeed(seed).generator()
        rel = self.rel
        n = self.estimated_rows if rows is None else int(rows)
        if n < 0:
            raise ConfigError(f"rows ({n}) must be >= 0")
        root = self.synths[rel.root]
        codes = root.sample_codes(n, rng)
        frame = root.decode_codes(codes, rng)
        if link == "reweighted":
            links = {c: rel.specs[c].parent_columns for c in rel.children if rel.specs[c].parent_columns}
            idx = reweighted(self.synths, links, codes,
                              {c: frame[count_column(c)].to_numpy(dtype=np.int64) for c in links},
                              [c.name for c in root.schema.modelled], rng)
            codes, frame = codes[idx], frame.iloc[idx].reset_index(drop=True)
        pk = str(rel.specs[rel.root].primary_key)
        keys = np.arange(1, n + 1, dtype=np.int64)
        frame[pk] = keys
        pos = {c.name: j for j, c in enumerate(root.schema.modelled)}
        out = {rel.root: _in_order(frame, rel.schemas[rel.root])}
        for child in rel.children:
            counts = frame[count_column(child)].to_numpy(dtype=np.int64)
            given = codes[:, [pos[c] for c in rel.specs[child].parent_columns]]
            out[child] = self._children(child, keys, counts, given, rng, link)
        return out

    def _children(self, child: str, keys: np.ndarray, counts: np.ndarray, given: np.ndarray,
                  rng: np.random.Generator, link: str) -> pd.DataFrame:
        spec = self.rel.specs[child]
        synth = self.synths[child]
        if link == "matched" and spec.parent_columns:
            parents, block = matched(synth, spec.parent_columns, counts, given,
                                      int(spec.max_rows_per_parent or 1), rng)
            frame = synth.decode_codes(block, rng)
            frame[str(spec.foreign_key)] = keys[parents]
            if spec.primary_key is not None:
                frame[spec.primary_key] = np.arange(1, len(parents) + 1, dtype=np.int64)
            return _in_order(frame, self.rel.schemas[child])
        parents = np.repeat(np.arange(len(keys)), counts)
        block = np.empty((len(parents), len(synth.schema.modelled)), dtype=np.int64)
        if spec.parent_columns and len(parents):
            combos, inverse = np.unique(given[parents], axis=0, return_inverse=True)
            inverse = inverse.reshape(-1)
            for g, combo in enumerate(combos):
                rows = np.flatnonzero(inverse == g)
                evidence = {c: [int(v)] for c, v in zip(spec.parent_columns, combo, strict=True)}
                block[rows] = synth.sample_codes_given(len(rows), rng, evidence)
        else:
            block[:] = synth.sample_codes(len(parents), rng)
        frame = synth.decode_codes(block, rng)
        frame[str(spec.foreign_key)] = keys[parents]
        if spec.primary_key is not None:
            frame[spec.primary_key] = np.arange(1, len(parents) + 1, dtype=np.int64)
        return _in_order(frame, self.rel.schemas[child])

    def save(self, directory: str | Path) -> Path:
        """Write the relational schema, each table's model and the guarantee into ``directory``
        (an existing, empty folder the caller writes atomically)."""
        folder = Path(directory)
        dump_relational(self.rel, folder)
        for name, synth in self.synths.items():
            synth.save(folder / "models" / name)
        meta = {"format": _FORMAT, "privacy": self.privacy.published().to_json()}
        (folder / "relational-model.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, directory: str | Path) -> RelationalSynthesizer:
        """Read back what :meth:`save` wrote."""
        from dpsynth.synthesizer import load

        folder = Path(directory)
        try:
            meta = json.loads((folder / "relational-model.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            raise ConfigError(f"{folder} is not a saved relational model") from None
        if meta.get("format") != _FORMAT:
            raise ConfigError(f"{folder}: unsupported relational model format {meta.get('format')!r}")
        rel = reload_relational(folder)
        synths = {name: load(folder / "models" / name) for name in rel.specs}
        return cls(rel, synths, PrivacySpend.from_json(meta["privacy"]))


def fit_relational(rel: RelationalSchema, frames: Mapping[str, Any], *, mechanism: str = "aim",
                   epsilon: float | None = None, delta: float = 1e-9, rho: float | None = None,
                   options: object | None = None, engine: str = "numpy", ledger_path: str | Path | None = None,
                   lifetime_epsilon: float | None = None, allow_private_schema: bool = False) -> RelationalSynthesizer:
    """Fit every table of ``rel`` on ``frames`` (one frame per table), spending the budget once.

    Args:
        rel: The relational schema.
        frames: Each table's rows: a frame (as read with its schema) or a CSV/Parquet path; keys
            are compared as text.
        mechanism: ``aim``, ``mst`` or ``independent`` for every table.
        epsilon: Budget per person as (epsilon, delta)-DP; or give ``rho`` (zCDP).
        delta: The delta of the guarantee.
        options: The mechanism's options, used for every table.
        engine: Counting engine of each table's fit. With ``duckdb`` the child tables are
            joined with their parent columns and counted inside DuckDB, out of core
            (:mod:`dpsynth.relational.sources`); only the root is held in memory.
        ledger_path: Persistent per-dataset ledger: the whole budget is reserved in it before
            any read (or the release is refused, leaving it as it was), then committed.
        lifetime_epsilon: Lifetime cap (at ``delta``) stored when the ledger is created.
        allow_private_schema: Accept table schemas with ``private_inferred`` facts (each is
            recorded as a caveat of the guarantee); otherwise they are refused, every table's
            before any data is read.
    """
    if mechanism not in MECHANISMS:
        raise ConfigError(f"mechanism ({mechanism!r}) must be one of {list(MECHANISMS)} for linked tables")
    budget = budget_of(epsilon=epsilon, delta=delta, rho=rho)
    for name, own in rel.schemas.items():
        inferred = own.private_inferred()
        if inferred and not allow_private_schema:
            raise SchemaError(f"table {name!r}: the schema has private_inferred facts (columns {inferred}); "
                              "declare public facts, or pass --allow-private-schema (allow_private_schema=True) "
                              "to accept the caveat")
    schemas = fit_schemas(rel)
    missing = sorted(set(rel.specs) - set(frames))
    if missing:
        raise ConfigError(f"no data given for tables {missing}")
    if engine != "duckdb":
        prepared: Mapping[str, Any] = prepare_frames(rel, frames)
        return _fit_tables(rel, schemas, prepared, budget, mechanism=mechanism, delta=delta, options=options,
                           engine=engine, ledger=(ledger_path, lifetime_epsilon), private=allow_private_schema)
    from dpsynth.relational.sources import ChildRelations, add_counts

    root = _root_frame(rel, _frame_of(rel, rel.root, frames[rel.root]))
    with ChildRelations(rel, root, frames) as joined:
        prepared = {rel.root: add_counts(rel, root, joined), **joined.paths}
        return _fit_tables(rel, schemas, prepared, budget, mechanism=mechanism, delta=delta, options=options,
                           engine=engine, ledger=(ledger_path, lifetime_epsilon), private=allow_private_schema)


def _fit_tables(rel: RelationalSchema, schemas: Mapping[str, Schema], prepared: Mapping[str, Any], budget: Any, *,
                mechanism: str, delta: float, options: object | None, engine: str,
                ledger: tuple[str | Path | None, float | None], private: bool) -> RelationalSynthesizer:
    """Fit each table under one outer accountant, charging its share first (see the module)."""
    from dpsynth.api import _accountant, fit

    accountant = _accountant(budget, delta, ledger[0], ledger[1], None, f"release-tables {rel.name or ''}")
    total = accountant.remaining_rho
    synths: dict[str, Synthesizer] = {}
    try:
        names = list(rel.specs)
        for name in names:  # the last table takes exactly what is left (no rounding overspend)
            share = total * rel.shares[name] if name != names[-1] else accountant.remaining_rho
            accountant.charge(ZCDPEvent(share, label=f"table {name!r} ({rel.shares[name]:.3g} of the budget)"))
            synths[name] = fit(prepared[name], schemas[name], mechanism=mechanism, rho=share, delta=delta,
                               options=options, engine=engine, allow_private_schema=private)
    except BaseException:
        accountant.abort()
        raise
    accountant.commit()
    spend = accountant.spend(delta)
    caveats: list[str] = []
    for name, synth in synths.items():  # the tables' caveats, once each; a private schema names its table
        for caveat in synth.privacy.caveats:
            text = f"table {name!r}: {caveat}" if caveat.startswith("PRIVATE SCHEMA") else caveat
            if text not in caveats:
                caveats.append(text)
    return RelationalSynthesizer(rel, synths, spend.with_context(unit=rel.describe_unit(), caveats=caveats))
