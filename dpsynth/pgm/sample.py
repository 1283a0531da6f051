"""Exact sampling from a model: ancestral sampling along the junction tree, vectorised over rows.

The root clique's joint is drawn by inverse CDF; every other clique draws its new attributes
from the conditional table given its separator with the parent, each row independently (one
uniform per row and clique, looked up in a single concatenated per-parent-configuration CDF).
Conditioning clamps the potentials and recalibrates (no rejection).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from dpsynth.errors import ConfigError
from dpsynth.pgm.constraints import Assignment
from dpsynth.pgm.model import Model

__all__ = ["sample", "sample_with_shares"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def _draw(table: FloatArray, parent_index: IntArray | None, u: FloatArray) -> IntArray:
    """Draw one column index per row from ``table`` (``configs x cells``) given each row's config.

    Rows of ``table`` are unnormalised conditional distributions. A row's uniform ``u`` is
    looked up in its own cumulative row; zero-probability cells are never returned.
    """
    configs, cells = table.shape
    mass = table.sum(axis=1, keepdims=True)
    safe = np.where(mass > 0, mass, 1.0)
    cdf = np.cumsum(table / safe, axis=1)
    positive = table > 0
    last = np.where(positive.any(axis=1), cells - 1 - np.argmax(positive[:, ::-1], axis=1), 0)
    cdf[np.arange(cells)[None, :] >= last[:, None]] = 1.0
    if parent_index is None:
        idx = np.searchsorted(cdf[0], u, side="right")
        return np.asarray(np.minimum(idx, last[0]), dtype=np.int64)
    # Row k's CDF is shifted to [2k, 2k+1]: one searchsorted serves every configuration.
    offsets = 2.0 * np.arange(configs, dtype=np.float64)
    flat = (cdf + offsets[:, None]).ravel()
    pos = np.searchsorted(flat, u + 2.0 * parent_index, side="right") - parent_index * cells
    return np.asarray(np.minimum(pos, last[parent_index]), dtype=np.int64)


def sample(
    model: Model,
    rows: int,
    rng: np.random.Generator,
    *,
    evidence: Assignment | None = None,
) -> IntArray:
    """Draw ``rows`` independent records from the model (optionally given evidence).

    Args:
        model: The model.
        rows: Number of records.
        rng: Source of randomness (same seed, same model -> same sample).
        evidence: ``{attribute: code or allowed codes}``; every sampled row satisfies it.

    Returns:
        ``rows x len(domain)`` integer codes, columns in ``model.domain.attrs`` order.

    Raises:
        ConfigError: Negative ``rows``, invalid evidence or evidence of zero probability.
    """
    if rows < 0:
        raise ConfigError(f"rows ({rows}) must be >= 0")
    if evidence:
        model = model.condition(evidence)
    domain = model.domain
    tree = model.tree
    probs = model.beliefs.probs
    columns: dict[str, IntArray] = {}
    for node in tree.order:
        clique = tree.cliques[node]
        shape = tuple(domain.project(clique).shape)
        parent = tree.parent[node]
        sep = tree.separator(node, parent) if parent >= 0 else ()
        new = tuple(a for a in clique if a not in sep)
        if not new:
            continue
        perm = tuple(clique.index(a) for a in sep + new)
        sep_shape = tuple(shape[clique.index(a)] for a in sep)
        new_shape = tuple(shape[clique.index(a)] for a in new)
        configs = int(np.prod(sep_shape, dtype=np.int64))
        table = np.transpose(probs[node], perm).reshape(configs, -1)
        u = rng.random(rows)
        parent_index: IntArray | None = None
        for a, size in zip(sep, sep_shape):
            parent_index = columns[a] if parent_index is None else parent_index * size + columns[a]
        flat = _draw(table, parent_index, u)
        if len(new) == 1:
            columns[new[0]] = flat
        else:
            for a, values in zip(new, np.unravel_index(flat, new_shape)):
                columns[a] = values.astype(np.int64, copy=False)
    out = np.empty((rows, len(domain)), dtype=np.int64)
    for i, a in enumerate(domain.attrs):
        out[:, i] = columns[a]
    return out


def sample_with_shares(
    model: Model,
    rows: int,
    rng: np.random.Generator,
    column: str,
    shares: Mapping[int, float],
) -> IntArray:
    """Sample with prescribed class shares of one column (rebalancing).

    Per-class counts are drawn from a multinomial with the normalised ``shares``; each class
    is then sampled conditionally and the rows are shuffled.

    Raises:
        ConfigError: Unknown column, invalid shares, or a class of zero model probability.
    """
    model.domain.check((column,))
    if not shares:
        raise ConfigError(f"shares for column {column!r} must not be empty")
    codes = list(shares)
    weights = np.array([float(shares[c]) for c in codes])
    if np.any(weights < 0) or not weights.sum() > 0:
        raise ConfigError(f"shares for column {column!r} must be >= 0 and not all 0")
    counts = rng.multinomial(rows, weights / weights.sum())
    parts: list[IntArray] = []
    for code, count in zip(codes, counts):
        if count > 0:
            parts.append(sample(model, int(count), rng, evidence={column: int(code)}))
    if not parts:
        return np.zeros((0, len(model.domain)), dtype=np.int64)
    stacked = np.concatenate(parts, axis=0)
    return stacked[rng.permutation(stacked.shape[0])]
