"""Exact sampling from a model: ancestral sampling along the junction tree, vectorised over rows.

The root clique's joint (and any clique without a separator) is drawn as multinomial cell
counts shuffled into rows; every other clique draws its new attributes from the conditional
table given its separator with the parent, each row independently (one uniform per row and
clique, found by a vectorised binary search in its parent configuration's CDF).
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
    cells = table.shape[1]
    mass = table.sum(axis=1, keepdims=True)
    safe = np.where(mass > 0, mass, 1.0)
    cdf = np.cumsum(table / safe, axis=1)
    positive = table > 0
    last = np.where(positive.any(axis=1), cells - 1 - np.argmax(positive[:, ::-1], axis=1), 0)
    # From the last positive cell on the CDF is exactly 1 > u, so the search below never
    # returns a cell past it (nor any zero-probability cell: its CDF step is empty).
    cdf[np.arange(cells)[None, :] >= last[:, None]] = 1.0
    if parent_index is None:
        return np.asarray(np.searchsorted(cdf[0], u, side="right"), dtype=np.int64)
    # Offset each row's CDF by its configuration index: the flattened table is then sorted,
    # and one vectorised search finds every row's cell inside its own row (the offsets keep a
    # query k + u, 0 <= u < 1, inside row k, whose last entry is exactly k + 1).
    offsets = np.arange(table.shape[0], dtype=np.float64)[:, None]
    flat = (cdf + offsets).ravel()
    pos = np.searchsorted(flat, parent_index + u, side="right") - parent_index * cells
    return np.asarray(pos, dtype=np.int64)


def _draw_unconditional(weights: FloatArray, rows: int, rng: np.random.Generator) -> IntArray:
    """``rows`` i.i.d. cell indices from unnormalised ``weights``.

    Multinomial cell counts, each cell repeated, then shuffled: the same distribution as
    independent draws, without a search per row.
    """
    mass = float(weights.sum())
    if not mass > 0:
        return np.zeros(rows, dtype=np.int64)
    counts = rng.multinomial(rows, np.clip(weights / mass, 0.0, 1.0))
    out = np.repeat(np.arange(weights.shape[0], dtype=np.int64), counts)
    rng.shuffle(out)
    return out


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
        if sep:
            parent_index = columns[sep[0]].copy()
            for a, size in zip(sep[1:], sep_shape[1:]):
                parent_index *= size
                parent_index += columns[a]
            flat = _draw(table, parent_index, rng.random(rows))
        else:
            flat = _draw_unconditional(table[0], rows, rng)
        if len(new) == 1:
            columns[new[0]] = flat
        else:
            # Unravel the (few) cells once and gather per row: cheaper than unravelling rows.
            cells = np.arange(int(np.prod(new_shape, dtype=np.int64)), dtype=np.int64)
            for a, coords in zip(new, np.unravel_index(cells, new_shape)):
                columns[a] = coords[flat]
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
