"""Structural zeros and evidence: normalise partial assignments and turn them into cell masks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from dpsynth.errors import ConfigError
from dpsynth.pgm.domain import Domain

__all__ = ["Assignment", "assignment_mask", "normalize_assignment"]

#: A partial assignment: each attribute gets one code or a set of codes.
Assignment = Mapping[str, int | Sequence[int]]
#: Normalised form: sorted attribute/codes pairs, codes sorted and distinct.
Normalized = tuple[tuple[str, tuple[int, ...]], ...]


def normalize_assignment(domain: Domain, assignment: Assignment, *, what: str) -> Normalized:
    """Validate a partial assignment against the public domain and normalise it.

    Args:
        domain: The public domain.
        assignment: ``{attribute: code or codes}``.
        what: What the assignment is (``"constraint"``, ``"evidence"``), for error messages.

    Raises:
        ConfigError: Unknown attribute, empty code set or code outside ``0..size-1``.
    """
    if not assignment:
        raise ConfigError(f"{what} must name at least one attribute")
    sizes = domain.to_dict()
    out: list[tuple[str, tuple[int, ...]]] = []
    for attr in domain.attrs:
        if attr not in assignment:
            continue
        raw = assignment[attr]
        codes = (int(raw),) if isinstance(raw, (int, np.integer)) else tuple(int(v) for v in raw)
        if not codes:
            raise ConfigError(f"{what} on attribute {attr!r} has no codes")
        bad = [c for c in codes if not 0 <= c < sizes[attr]]
        if bad:
            raise ConfigError(
                f"{what} on attribute {attr!r} uses codes outside 0..{sizes[attr] - 1}"
            )
        out.append((attr, tuple(sorted(set(codes)))))
    unknown = [a for a in assignment if a not in sizes]
    if unknown:
        raise ConfigError(f"{what} names attributes {unknown} that are not in the domain")
    return tuple(out)


def assignment_mask(
    clique: tuple[str, ...], shape: tuple[int, ...], assignment: Normalized
) -> npt.NDArray[np.bool_]:
    """Boolean mask over a clique's cells that match every attribute of ``assignment``.

    Attributes of the clique that the assignment does not mention match every code.
    """
    mask = np.ones(shape, dtype=bool)
    for attr, codes in assignment:
        axis = clique.index(attr)
        hit = np.zeros(shape[axis], dtype=bool)
        hit[list(codes)] = True
        view = [1] * len(shape)
        view[axis] = shape[axis]
        mask &= hit.reshape(view)
    return mask
