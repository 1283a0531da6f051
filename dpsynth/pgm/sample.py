"""Exact sampling from a model: ancestral sampling along the junction tree, vectorised over rows.

The root clique's joint (and any clique without a separator) is drawn as multinomial cell
counts shuffled into rows; every other clique draws its new attributes from the conditional
table given its separator with the parent, each row independently: one uniform ``u`` per row
and clique is inverted through its parent configuration's CDF. The inversion uses a guide
table (Chen's method): the CDF's range is cut into ``K`` equal buckets (``K`` a power of two,
so ``floor(u * K)`` is exact) and the guide holds, per configuration and bucket, the first
cell the answer can be; a short vectorised forward scan over the few rows whose bucket holds a
CDF step finishes the search. The result is exactly the smallest cell whose CDF exceeds ``u``
(the same as a binary search), at a constant number of array passes per clique.
Conditioning clamps the potentials and recalibrates (no rejection).

By default the uniforms are stratified: within each group of rows sharing a separator
configuration (the root: all rows), the group's ``k`` rows in random order get
``(j + U) / k``, so every cell receives the floor or the ceiling of its expected count
(systematic sampling, as Private-PGM rounds its synthetic data) while each row keeps the
model's distribution. ``stratified=False`` gives independent rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from dpsynth.arrays import FloatArray, IntArray
from dpsynth.errors import ConfigError
from dpsynth.pgm.constraints import Assignment
from dpsynth.pgm.model import Model

__all__ = ["InverseCDF", "sample", "sample_with_shares"]

_BELOW_ONE = float(np.nextafter(1.0, 0.0))


@dataclass(frozen=True, eq=False)
class InverseCDF:
    """Inverse-CDF lookup for a ``configs x cells`` table of conditional distributions.

    Attributes:
        cdf: Flattened per-configuration CDFs (each row ends at exactly 1.0 from its last
            positive cell on, so ``u < 1`` never lands past it or on a zero cell).
        guide: Flattened ``configs x buckets`` table of flat CDF positions: for bucket ``b``
            of configuration ``c``, the first position whose CDF exceeds ``b / buckets``.
        buckets: Number of buckets per configuration (a power of two).
    """

    cdf: FloatArray
    guide: IntArray
    buckets: int

    @classmethod
    def build(cls, table: FloatArray) -> InverseCDF:
        """Precompute the CDFs and the guide of ``table`` (rows need not be normalised)."""
        configs, cells = table.shape
        mass = table.sum(axis=1, keepdims=True)
        cdf = np.cumsum(table / np.where(mass > 0, mass, 1.0), axis=1)
        positive = table > 0
        last = np.where(positive.any(axis=1), cells - 1 - np.argmax(positive[:, ::-1], axis=1), 0)
        cdf[np.arange(cells)[None, :] >= last[:, None]] = 1.0
        buckets = 1 << max(int(2 * cells - 1).bit_length(), 0)  # >= 2 * cells, a power of two
        # An entry e lies at or below the bucket start b / K iff ceil(e * K) <= b (exact: K is
        # a power of two), so the number of entries at or below each start is a cumulative
        # histogram of ceil(e * K) (entries with ceil(e * K) = K never lie below a start).
        first = np.minimum(np.ceil(cdf * buckets).astype(np.int64), buckets)
        rows = np.arange(configs, dtype=np.int64)[:, None] * (buckets + 1)
        hist = np.bincount((first + rows).ravel(), minlength=configs * (buckets + 1))
        below = np.cumsum(hist.reshape(configs, buckets + 1)[:, :buckets], axis=1)
        guide = below + (np.arange(configs, dtype=np.int64) * cells)[:, None]
        return cls(cdf.ravel(), guide.ravel(), buckets)

    def draw(self, parent_index: IntArray | None, u: FloatArray) -> IntArray:
        """Flat positions ``config * cells + cell`` of one draw per row.

        Args:
            parent_index: Each row's configuration (``None``: configuration 0 for all).
            u: One uniform in ``[0, 1)`` per row.
        """
        slot = (u * self.buckets).astype(np.int64)
        if parent_index is not None:
            slot += parent_index * self.buckets
        pos = self.guide[slot]
        # pos <= answer: every entry before it is <= the bucket start <= u. Step forward while
        # the CDF at pos is still <= u (only rows whose bucket holds a CDF step ever move).
        todo = np.flatnonzero(self.cdf[pos] <= u)
        while todo.size:
            pos[todo] += 1
            todo = todo[self.cdf[pos[todo]] <= u[todo]]
        return pos


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


def _stratified_uniforms(config: IntArray, configs: int, rng: np.random.Generator) -> FloatArray:
    """One uniform per row, stratified within each group of rows that share a configuration.

    The ``k`` rows of a group, in a fresh random order, get ``(j + U) / k`` for ``j = 0..k-1``
    and one ``U ~ U[0, 1)`` per group: each row's uniform is still ``U[0, 1)`` (so each row
    still follows the conditional distribution), but the group's cells are filled by
    systematic sampling, i.e. each cell gets the floor or the ceiling of its expected count.
    """
    rows = config.size
    counts = np.bincount(config, minlength=configs)
    keys = config.astype(np.uint16) if configs <= 1 << 16 else config  # radix sort when small
    order = rng.permutation(rows)
    order = order[np.argsort(keys[order], kind="stable")]  # grouped, random order inside
    # In grouped order, row j of group c (starting at s_c) gets (j - s_c + U_c) / k_c.
    starts = np.cumsum(counts) - counts
    shift = np.repeat(rng.random(configs) - starts, counts)
    shift += np.arange(rows, dtype=np.float64)
    shift /= np.repeat(counts.astype(np.float64), counts)
    u = np.empty(rows)
    u[order] = shift
    return np.minimum(u, _BELOW_ONE, out=u)  # (k - 1 + U) / k may round up to 1


def sample(
    model: Model,
    rows: int,
    rng: np.random.Generator,
    *,
    evidence: Assignment | None = None,
    stratified: bool = True,
) -> IntArray:
    """Draw ``rows`` records from the model (optionally given evidence).

    Args:
        model: The model.
        rows: Number of records.
        rng: Source of randomness (same seed, same model -> same sample).
        evidence: ``{attribute: code or allowed codes}``; every sampled row satisfies it.
        stratified: ``True`` (default): every row still has the
            model's distribution, but each clique's new attributes are drawn by systematic
            sampling within each group of rows sharing the separator (the root by systematic
            sampling over its cells), so each group's counts are the floor or the ceiling of
            their expected values: far less sampling noise in the marginals (as the rounding
            of Private-PGM's synthetic data). Rows are then exchangeable, not independent.
            ``False``: independent records.

    Returns:
        ``rows x len(domain)`` integer codes, columns in ``model.domain.attrs`` order. The
        array is column-major (each column contiguous), which is how it is filled.

    Raises:
        ConfigError: Negative ``rows``, invalid evidence or evidence of zero probability.
    """
    if rows < 0:
        raise ConfigError(f"rows ({rows}) must be >= 0")
    if evidence:
        model = model.condition(evidence)
    out = np.empty((len(model.domain), rows), dtype=np.int64)
    columns = {a: out[i] for i, a in enumerate(model.domain.attrs)}
    for node in model.tree.order:
        _sample_clique(model, node, columns, rows, rng, stratified=stratified)
    return out.T


def _sample_clique(
    model: Model,
    node: int,
    columns: dict[str, IntArray],
    rows: int,
    rng: np.random.Generator,
    *,
    stratified: bool,
) -> None:
    """Fill the ``rows``-long columns of ``node``'s new attributes (those not in its separator).

    The separator's columns must already be filled (``node`` comes after its parent in
    ``tree.order``).
    """
    domain = model.domain
    tree = model.tree
    probs = model.beliefs.probs
    clique = tree.cliques[node]
    shape = tuple(domain.project(clique).shape)
    parent = tree.parent[node]
    sep = tree.separator(node, parent) if parent >= 0 else ()
    new = tuple(a for a in clique if a not in sep)
    if not new:
        return
    perm = tuple(clique.index(a) for a in sep + new)
    sep_shape = tuple(shape[clique.index(a)] for a in sep)
    new_shape = tuple(shape[clique.index(a)] for a in new)
    configs = int(np.prod(sep_shape, dtype=np.int64))
    cells = int(np.prod(new_shape, dtype=np.int64))
    table = np.transpose(probs[node], perm).reshape(configs, cells)
    if sep:
        config = columns[sep[0]]
        for a, size in zip(sep[1:], sep_shape[1:], strict=True):
            config = config * size
            config += columns[a]
        u = _stratified_uniforms(config, configs, rng) if stratified else rng.random(rows)
        flat = InverseCDF.build(table).draw(config, u)
    elif stratified:
        u = np.minimum((rng.permutation(rows) + rng.random()) / max(rows, 1), _BELOW_ONE)
        flat = InverseCDF.build(table).draw(None, u)
    else:
        flat = _draw_unconditional(table[0], rows, rng)
    # ``flat`` indexes the (configs x cells) table; map it to each new attribute's code
    # with one gather from a small table of codes (no per-row unravelling arithmetic).
    grid = np.unravel_index(np.arange(configs * cells, dtype=np.int64) % cells, new_shape)
    for a, codes in zip(new, grid, strict=True):
        np.take(codes.astype(np.int64), flat, out=columns[a])


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
    for code, count in zip(codes, counts, strict=True):
        if count > 0:
            parts.append(sample(model, int(count), rng, evidence={column: int(code)}))
    if not parts:
        return np.zeros((0, len(model.domain)), dtype=np.int64)
    stacked = np.concatenate(parts, axis=0)
    return stacked[rng.permutation(stacked.shape[0])]
