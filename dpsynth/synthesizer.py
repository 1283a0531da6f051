"""A fitted synthesizer: the public result of a fit, and everything done with it afterwards.

:class:`Synthesizer` holds only public things (schema, transcript, model, what the fit
spent, how its guarantee was obtained), so sampling, saving and loading are post-processing:
nothing here reads private data or spends budget. :func:`dpsynth.api.fit` builds one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.conditions import ConditionSpec, Resolved, enforce_windows, resolve_conditions
from dpsynth.errors import ConfigError
from dpsynth.mechanisms.compress import Compression
from dpsynth.pgm import Model, load_model, sample, save_model
from dpsynth.privacy.guarantee import PrivacyStatement, statement_for
from dpsynth.privacy.measure import Measurement
from dpsynth.privacy.randomness import PostProcessingSeed
from dpsynth.privacy.spend import PrivacySpend
from dpsynth.tabular.atomic import atomic_directory, write_text_atomic
from dpsynth.tabular.constraint_repair import apply_constraints
from dpsynth.tabular.encoding import decode
from dpsynth.tabular.schema import Schema, parse_schema

__all__ = ["Synthesizer", "load"]

_FORMAT = 1


@dataclass(frozen=True)
class _Code:
    """A condition given directly as a code of the public domain (internal)."""

    code: int


@dataclass(frozen=True, eq=False)
class Synthesizer:
    """A fitted generator: public schema, transcript, model and privacy statement.

    Attributes:
        schema: The public schema.
        mechanism: The mechanism's name.
        privacy: What the fit spent (epsilon, delta, rho, conversion, charged steps), with the
            unit of privacy and the caveats.
        estimated_rows: DP estimate of the input's row count (the default output size).
        measurements: The noisy marginals measured (empty for neural generators).
        selected: Cliques chosen by private selection.
        params: Public parameters of the mechanism.
    """

    schema: Schema
    mechanism: str
    privacy: PrivacySpend
    estimated_rows: int
    model: Model | None = field(repr=False, default=None)
    neural: Any = field(repr=False, default=None)
    measurements: tuple[Measurement, ...] = field(repr=False, default=())
    selected: tuple[tuple[str, ...], ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    compression: Compression | None = field(repr=False, default=None)
    statement: PrivacyStatement | None = field(repr=False, default=None)

    @property
    def estimated_rows_stderr(self) -> float | None:
        """Standard error of :attr:`estimated_rows` from the measurements' noise (public), or
        ``None`` without measurements (neural generators)."""
        if not self.measurements:
            return None
        from dpsynth.pgm import total_stderr

        return total_stderr(self.measurements)

    @property
    def guarantee(self) -> PrivacyStatement:
        """How the guarantee was obtained, as built by the mechanism that ran."""
        return self.statement if self.statement is not None else statement_for(self.mechanism)

    def _evidence(self, conditions: ConditionSpec | None) -> dict[str, list[int]] | None:
        return self._resolve(conditions).evidence or None

    def _resolve(self, conditions: ConditionSpec | None) -> Resolved:
        if not conditions:
            return Resolved()
        if isinstance(conditions, Mapping) and any(isinstance(v, _Code) for v in conditions.values()):
            return Resolved({name: [v.code] for name, v in conditions.items() if isinstance(v, _Code)})
        return resolve_conditions(conditions, self.schema)

    def sample_codes(self, rows: int, rng: np.random.Generator,
                     conditions: ConditionSpec | None = None, *, independent: bool = False) -> np.ndarray:
        """Sample integer codes (rows x modelled columns); see :meth:`sample` for the arguments.

        A range condition clamps the codes of the bins it intersects; only :meth:`sample`
        makes the decoded values satisfy it exactly.
        """
        return self._codes(rows, rng, self._evidence(conditions), independent)

    def sample_codes_given(self, rows: int, rng: np.random.Generator, evidence: Mapping[str, list[int]]) -> np.ndarray:
        """Sample integer codes given ``{column: allowed codes}`` of the schema's domain (the
        evidence of linked tables: a child row given its parent's codes)."""
        return self._codes(rows, rng, {c: list(v) for c, v in evidence.items()}, False)

    def decode_codes(self, codes: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        """Rows from codes of :meth:`sample_codes` (decoded, structural constraints applied)."""
        return apply_constraints(decode(codes, self.schema, rng), codes, self.schema, rng)

    def _codes(self, rows: int, rng: np.random.Generator, evidence: dict[str, list[int]] | None,
               independent: bool) -> np.ndarray:
        if rows < 0:
            raise ConfigError(f"rows ({rows}) must be >= 0")
        if self.model is not None:
            if self.compression is None:
                return sample(self.model, rows, rng, evidence=evidence, stratified=not independent)
            columns = list(self.model.domain.attrs)
            inner = self.compression.evidence(evidence) if evidence else None
            codes = sample(self.model, rows, rng, evidence=inner, stratified=not independent)
            return self.compression.expand(codes, columns, rng, evidence, inplace=True)  # codes are ours
        if evidence:
            raise ConfigError(f"mechanism {self.mechanism!r} does not support conditions")
        return np.asarray(self.neural.sample(rows, rng), dtype=np.int64)

    def _rebalanced_codes(self, rows: int, rng: np.random.Generator,
                          rebalance: Mapping[str, Mapping[object, float]], independent: bool) -> np.ndarray:
        if self.model is None:
            raise ConfigError(f"mechanism {self.mechanism!r} does not support rebalancing")
        if len(rebalance) != 1:
            raise ConfigError("rebalance takes exactly one column")
        (column, wanted), = rebalance.items()
        col = self.schema.column(column)
        target: dict[int, float] = {}
        for value, share in wanted.items():
            (code,) = self._evidence({column: value})[column]  # type: ignore[index]
            target[code] = float(share)
        given = sum(target.values())
        if any(v < 0 for v in target.values()) or given > 1 + 1e-9:
            raise ConfigError(f"rebalance shares of {column!r} must be >= 0 and sum to at most 1")
        rest = [c for c in range(col.domain_size()) if c not in target]
        probs = self.model.probability((column,))
        if self.compression is not None:
            probs = self.compression.expand_probability(column, probs)
        mass = float(sum(probs[c] for c in rest))
        for c in rest:  # the remaining share is spread in the model's own proportions
            target[c] = (1 - given) * float(probs[c]) / mass if mass > 0 else 0.0
        codes = sorted(c for c, v in target.items() if v > 0)
        counts = rng.multinomial(rows, np.array([target[c] for c in codes]) / sum(target[c] for c in codes))
        parts = [self.sample_codes(int(k), rng, {column: _Code(c)}, independent=independent)
                 for c, k in zip(codes, counts, strict=True) if k]
        if not parts:
            return np.zeros((0, len(self.schema.domain())), dtype=np.int64)
        stacked = np.concatenate(parts, axis=0)
        return stacked[rng.permutation(stacked.shape[0])]

    def sample(self, rows: int | None = None, *, conditions: ConditionSpec | None = None,
               rebalance: Mapping[str, Mapping[object, float]] | None = None,
               seed: int | None = None, independent: bool = False) -> pd.DataFrame:
        """Draw synthetic rows (post-processing only).

        Args:
            rows: How many; default the DP estimate of the input's size.
            conditions: ``{column: value, list of values or conditions.Range}``, or
                expressions such as ``["age>=40", "race=Black,White", "date=2017-05..2017-06"]``
                (:mod:`dpsynth.conditions`; conditions on one column must all hold). Rows are
                drawn from the model's conditional distribution (clamped evidence, not
                rejection), and values under a range satisfy it exactly.
            rebalance: ``{column: {value: share}}`` for one column: rows are drawn with these
                shares of the given values (other values share the rest in the model's
                proportions), each class from the model's conditional distribution. The
                private answer to SMOTE-style oversampling.
            seed: Seed of the post-processing randomness (sampling, bin decoding).
            independent: Draw independent rows. By default (graphical models) each clique's
                values are drawn by systematic sampling within the rows that share its
                separator, so every row follows the model but the sample's marginals carry
                far less sampling noise (rows are exchangeable, not independent); DP-SGD
                models always draw independent rows.
        """
        rng = PostProcessingSeed(seed).generator()  # the user's seed: post-processing only
        n = self.estimated_rows if rows is None else int(rows)
        if rebalance:
            if conditions:
                raise ConfigError("give conditions or rebalance, not both")
            codes = self._rebalanced_codes(n, rng, rebalance, independent)
            frame, windows = decode(codes, self.schema, rng), None
        else:
            resolved = self._resolve(conditions)
            codes = self._codes(n, rng, resolved.evidence or None, independent)
            frame = enforce_windows(decode(codes, self.schema, rng), codes, resolved, self.schema,
                                    lambda block: decode(block, self.schema, rng), rng)
            windows = resolved.windows
        return apply_constraints(frame, codes, self.schema, rng, windows=windows)

    def save(self, directory: str | Path, *, overwrite: bool = False) -> Path:
        """Save atomically as JSON + npz (no pickle)."""
        target = Path(directory)
        with atomic_directory(target, overwrite=overwrite) as tmp:
            meta = {
                "format": _FORMAT, "mechanism": self.mechanism, "schema": self.schema.to_dict(),
                "privacy": self.privacy.published().to_json(), "estimated_rows": self.estimated_rows,
                "selected": [list(c) for c in self.selected], "params": self.params,
                "compression": self.compression.to_json() if self.compression is not None else None,
                "statement": self.guarantee.to_json(),
                "measurements": [{"clique": list(m.clique), "sigma": m.sigma, "weight": m.weight}
                                 for m in self.measurements],
            }
            write_text_atomic(tmp / "synthesizer.json", json.dumps(meta, indent=2))
            if self.measurements:
                arrays: dict[str, Any] = {f"m{i}": m.values for i, m in enumerate(self.measurements)}
                np.savez_compressed(tmp / "measurements.npz", **arrays)
            if self.model is not None:
                save_model(self.model, tmp / "model")
            if self.neural is not None:
                from dpsynth.neural import save_neural

                save_neural(self.neural, tmp / "neural")
        from dpsynth.tabular.io import publish

        publish(target)  # post-processing of DP outputs: public modes, as the bundle's
        return target


def load(directory: str | Path) -> Synthesizer:
    """Load a synthesizer saved with :meth:`Synthesizer.save`."""
    path = Path(directory)
    try:
        meta = json.loads((path / "synthesizer.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise ConfigError(f"{path} is not a saved dpsynth model (synthesizer.json missing or invalid)") from None
    if meta.get("format") != _FORMAT:
        raise ConfigError(f"{path}: unsupported model format {meta.get('format')!r}")
    measurements: list[Measurement] = []
    if meta["measurements"]:
        with np.load(path / "measurements.npz", allow_pickle=False) as npz:
            for i, m in enumerate(meta["measurements"]):
                measurements.append(Measurement(tuple(m["clique"]), npz[f"m{i}"], float(m["sigma"]),
                                                float(m["weight"])))
    model = load_model(path / "model") if (path / "model").exists() else None
    neural = None
    if (path / "neural").exists():
        from dpsynth.neural import load_neural

        neural = load_neural(path / "neural")
    comp = meta.get("compression")
    return Synthesizer(parse_schema(meta["schema"]), meta["mechanism"], PrivacySpend.from_json(meta["privacy"]),
                       int(meta["estimated_rows"]), model, neural, tuple(measurements),
                       tuple(tuple(c) for c in meta["selected"]), meta["params"],
                       Compression.from_json(comp) if comp else None,
                       PrivacyStatement.from_json(meta["statement"]) if meta.get("statement") else None)
