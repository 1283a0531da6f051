"""Domain compression from noisy 1-way marginals (MST's preprocessing step).

Values whose noisy count is below ``threshold * sigma`` are indistinguishable from noise, so
MST merges them into one "rare" cell per column before measuring 2-way marginals: fewer cells
carry noise, and the model does not spread mass over noise. The mapping is a function of the
noisy 1-way measurements only (post-processing), so it is public. Sampling expands a rare
cell back to one of its values, with the post-processing random generator: uniformly, or
(``weighted``) in proportion to the values' noisy 1-way counts clipped at 0 plus one noise
scale (public too; the added scale keeps noise-level counts close to a uniform split).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from dpsynth.arrays import IntArray
from dpsynth.errors import ConfigError
from dpsynth.privacy.measure import Measurement

__all__ = ["Compression", "compress_rare_values"]


@dataclass(frozen=True, eq=False)
class Compression:
    """Per-column maps from original codes to compressed codes (public).

    Attributes:
        maps: ``{column: array}`` where ``array[old_code] = new_code``; columns not listed
            are unchanged. Kept values keep their order; the rare cell is the last code.
        sizes: Original domain sizes of every column.
        weights: Optional ``{column: array}``: for each original code of a compressed column,
            its probability within its compressed cell (1 for kept values). Columns without
            weights expand uniformly.
    """

    maps: dict[str, IntArray]
    sizes: dict[str, int]
    weights: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)

    @classmethod
    def from_one_way(cls, ones: Sequence[Measurement], sizes: Mapping[str, int], *,
                     threshold: float = 3.0, keep: Sequence[str] = (),
                     weighted: bool = False) -> Compression:
        """Merge the values of each column whose noisy count is below ``threshold * sigma``.

        A column is compressed only when at least two of its values are rare; columns in
        ``keep`` (e.g. those named by structural constraints) are never compressed. With
        ``weighted``, a rare cell later expands to its values in proportion to their noisy
        counts clipped at 0 plus ``sigma`` (near-uniform when the counts are noise-level).
        """
        maps: dict[str, IntArray] = {}
        weights: dict[str, npt.NDArray[np.float64]] = {}
        for m in ones:
            if len(m.clique) != 1 or m.clique[0] in keep:
                continue
            rare = m.values < threshold * m.sigma
            if rare.sum() < 2:
                continue
            new = np.empty(m.values.size, dtype=np.int64)
            kept = np.flatnonzero(~rare)
            new[kept] = np.arange(kept.size)
            new[rare] = kept.size
            maps[m.clique[0]] = new
            if weighted:
                share = np.ones(m.values.size)
                mass = np.clip(m.values[rare].astype(np.float64), 0.0, None) + m.sigma
                share[rare] = mass / mass.sum()
                weights[m.clique[0]] = share
        return cls(maps, dict(sizes), weights)

    @property
    def active(self) -> bool:
        """Whether any column is compressed."""
        return bool(self.maps)

    def domain(self) -> dict[str, int]:
        """The compressed domain sizes, in the original column order."""
        return {c: int(self.maps[c].max()) + 1 if c in self.maps else n for c, n in self.sizes.items()}

    def _matrix(self, column: str) -> npt.NDArray[np.float64]:
        m = self.maps[column]
        out = np.zeros((int(m.max()) + 1, m.size))
        out[m, np.arange(m.size)] = 1.0
        return out

    def compress_counts(self, clique: Sequence[str], counts: IntArray) -> IntArray:
        """Sum exact (or noisy) counts over each clique axis into the compressed cells."""
        out: npt.NDArray[Any] = np.asarray(counts)
        for axis, col in enumerate(clique):
            if col in self.maps:
                out = np.moveaxis(np.tensordot(self._matrix(col), np.moveaxis(out, axis, 0), axes=1), 0, axis)
        result: IntArray = np.rint(out).astype(np.int64)
        return result

    def compress_codes(self, codes: IntArray, columns: Sequence[str]) -> IntArray:
        """Map rows of original codes (columns in ``columns`` order) to compressed codes."""
        out = codes.copy()
        for j, col in enumerate(columns):
            if col in self.maps:
                out[:, j] = self.maps[col][codes[:, j]]
        return out

    def evidence(self, allowed: Mapping[str, Sequence[int]]) -> dict[str, list[int]]:
        """Compressed-domain evidence for allowed original codes."""
        return {c: sorted({int(self.maps[c][v]) for v in vals}) if c in self.maps else list(vals)
                for c, vals in allowed.items()}

    def expand(self, codes: IntArray, columns: Sequence[str], rng: np.random.Generator,
               allowed: Mapping[str, Sequence[int]] | None = None, *, inplace: bool = False) -> IntArray:
        """Map compressed codes back to original codes; a rare cell becomes one of its values
        uniformly (restricted to ``allowed`` values of that column when given).

        With ``inplace`` the columns of ``codes`` are overwritten (no copy of the whole table);
        otherwise a copy in the same memory layout is returned.
        """
        out = codes if inplace else codes.copy(order="K")
        for j, col in enumerate(columns):
            if col not in self.maps:
                continue
            m = self.maps[col]
            rare_code = int(m.max())
            members = np.flatnonzero(m == rare_code)
            lookup = np.zeros(rare_code + 1, dtype=np.int64)
            lookup[m] = np.arange(m.size)  # kept cells are one value each; the rare cell is fixed below
            rows = np.flatnonzero(codes[:, j] == rare_code)  # before ``out`` (maybe ``codes``) changes
            out[:, j] = lookup[codes[:, j]]
            if allowed and col in allowed:
                members = np.intersect1d(members, np.asarray(allowed[col], dtype=np.int64))
            if rows.size == 0:
                continue
            if members.size == 0:
                raise ConfigError(f"no allowed value of {col!r} in a compressed cell")
            if col in self.weights:
                share = self.weights[col][members]
                cdf = np.cumsum(share / share.sum())
                cdf[-1] = 1.0
                pick = np.searchsorted(cdf, rng.random(rows.size), side="right")
                out[rows, j] = members[np.minimum(pick, members.size - 1)]
            else:
                out[rows, j] = members[rng.integers(0, members.size, rows.size)]
        return out

    def expand_probability(self, column: str, probs: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Probabilities over original codes from those over compressed codes (split as
        :meth:`expand` splits: by the weights, else uniformly)."""
        if column not in self.maps:
            return probs
        m = self.maps[column]
        if column in self.weights:
            return probs[m] * self.weights[column]
        counts = np.bincount(m, minlength=probs.size)
        return probs[m] / counts[m]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        out: dict[str, Any] = {"maps": {c: m.tolist() for c, m in self.maps.items()}, "sizes": self.sizes}
        if self.weights:
            out["weights"] = {c: w.tolist() for c, w in self.weights.items()}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Compression:
        """Inverse of :meth:`to_json`."""
        return cls({c: np.asarray(m, dtype=np.int64) for c, m in data["maps"].items()},
                   {c: int(n) for c, n in data["sizes"].items()},
                   {c: np.asarray(w, dtype=np.float64) for c, w in data.get("weights", {}).items()})


def compress_rare_values(ones: Sequence[Measurement], sizes: Mapping[str, int], *, threshold: float,
                         constraints: Sequence[Mapping[str, object]] = (),
                         weighted: bool = False) -> tuple[Compression | None, dict[str, int], list[Measurement]]:
    """Merge rare values seen in noisy 1-way marginals (post-processing), for MST and AIM alike.

    Columns named by a structural constraint are never compressed.

    Returns:
        The compression (``None`` when no column has two rare values), the domain sizes the
        model then works on, and the 1-way measurements restated on that domain.
    """
    keep = sorted({str(c) for con in constraints for c in con})
    comp = Compression.from_one_way(ones, sizes, threshold=threshold, keep=keep, weighted=weighted)
    if not comp.active:
        return None, dict(sizes), list(ones)
    restated = [Measurement(m.clique, comp.compress_counts(m.clique, m.values), m.sigma) for m in ones]
    return comp, comp.domain(), restated
