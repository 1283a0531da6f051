"""The gate to a raw table before any schema exists: what DP schema discovery may learn, and its cost.

:class:`PrivateFrame` holds the confidential rows as read from the file (text cells) and
answers three kinds of question, each charged to the accountant *before* it reads:

- :meth:`PrivateFrame.class_counts`: how many values of a column fall in each class of a public
  list (null, integer, date, ...), with discrete Gaussian noise (a :class:`GaussianEvent`);
- :meth:`PrivateFrame.frequent_values`: which values of a column are held by many units, by a
  Gaussian-thresholded histogram (OpenDP's ``make_gaussian_threshold``, an
  :class:`ApproxZCDPEvent`): a value held by few units is never released;
- :meth:`PrivateFrame.histogram`: counts of a column's values over public cells, with discrete
  Gaussian noise (a :class:`GaussianEvent`), from which bounds and bin edges are read.

The functions passed in (a classifier, a map from values to cells) are public rules applied
to each value on its own; the gate checks that each maps every row to at most one label or
cell, which is what the sensitivity rests on. With a person-level unit the gate first keeps
at most ``max_rows`` rows per person, chosen by a hash keyed with the run's secret key (as
the counting engines do), so every answer changes by at most ``max_rows`` per person.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from dpsynth.errors import ConfigError
from dpsynth.privacy import noise
from dpsynth.privacy.accountant import Accountant
from dpsynth.privacy.events import ApproxZCDPEvent, GaussianEvent
from dpsynth.privacy.randomness import MechanismKey

__all__ = ["BOUNDING_PURPOSE", "PrivateFrame", "threshold_rows"]

#: Purpose string of the bounding sub-key for raw rows (:meth:`MechanismKey.hex_for`).
BOUNDING_PURPOSE = "discovery-contribution-bounding"

Classifier = Callable[[pd.Series], pd.Series]
CellMap = Callable[[pd.Series], npt.NDArray[np.int64]]


def _bounded(frame: pd.DataFrame, unit_column: str, max_rows: int, key: MechanismKey) -> pd.DataFrame:
    """At most ``max_rows`` rows per person, the smallest keyed hashes of (person, row, repeat)."""
    ids = frame[unit_column].astype("string")
    counts = ids.map(ids.value_counts())  # null identifiers: each row its own person, as in the engines
    heavy = (counts.fillna(0) > max_rows).to_numpy()
    if not heavy.any():
        return frame.drop(columns=[unit_column])
    sub = frame.loc[heavy]
    text = sub.astype("string").fillna("\x00").agg("\x1f".join, axis=1)
    dup = pd.DataFrame({"p": ids[heavy], "t": text}).groupby(["p", "t"], sort=False).cumcount() + 1
    subkey = key.hex_for(BOUNDING_PURPOSE)
    hashes = [hashlib.sha256(f"{subkey}|{p}|{t}|{j}".encode()).hexdigest()
              for p, t, j in zip(ids[heavy], text, dup, strict=True)]
    order = pd.DataFrame({"p": ids[heavy].to_numpy(), "h": hashes}, index=sub.index).sort_values(["p", "h"])
    rank = order.groupby("p", sort=False).cumcount()
    drop = rank.index[rank.to_numpy() >= max_rows]
    return frame.drop(index=drop).drop(columns=[unit_column])


class PrivateFrame:
    """Charge-then-read access to a raw table's columns (see the module docstring).

    Args:
        frame: The confidential rows (never modified; a bounded copy is kept).
        accountant: The run's accountant; every answer is charged to it first.
        key: The run's secret key (contribution bounding only).
        unit_column: The person identifier for a person-level unit (not itself discoverable).
        max_rows: Rows kept per person (1 for row-level privacy).
    """

    def __init__(self, frame: pd.DataFrame, accountant: Accountant, *, key: MechanismKey,
                 unit_column: str | None = None, max_rows: int = 1) -> None:
        if not (isinstance(max_rows, int) and max_rows >= 1):
            raise ConfigError(f"max_rows ({max_rows!r}) must be an integer >= 1")
        if unit_column is None and max_rows != 1:
            raise ConfigError("max_rows > 1 needs a person identifier column (unit_column)")
        if unit_column is not None and unit_column not in frame.columns:
            raise ConfigError(f"the person identifier column {unit_column!r} is not in the data")
        self._frame = (frame.copy() if unit_column is None
                       else _bounded(frame, unit_column, max_rows, key))
        self._accountant = accountant
        self._bound = max_rows

    @property
    def columns(self) -> list[str]:
        """The column names (public: they are the header of the file)."""
        return [str(c) for c in self._frame.columns]

    @property
    def bound(self) -> int:
        """The most rows one unit of privacy contributes."""
        return self._bound

    @property
    def accountant(self) -> Accountant:
        """The accountant every answer is charged to."""
        return self._accountant

    def _column(self, column: str) -> pd.Series:
        if column not in self._frame.columns:
            raise ConfigError(f"column {column!r} is not in the data")
        return self._frame[column].reset_index(drop=True)

    def class_counts(self, column: str, classify: Classifier, labels: Sequence[str], *,
                     sigma: float, label: str) -> dict[str, int]:
        """Noisy counts of the column's values per class (every row in exactly one class).

        Args:
            column: The column.
            classify: A public rule giving each value one of ``labels``.
            labels: The public list of classes.
            sigma: Discrete Gaussian scale per count.
            label: Ledger label.
        """
        names = list(labels)
        self._accountant.charge(GaussianEvent(sigma=sigma, sensitivity=float(self._bound), label=label))
        classes = pd.Series(classify(self._column(column)), dtype="string")
        if len(classes) != len(self._frame) or not bool(classes.isin(names).all()):
            raise ConfigError(f"the classifier of {column!r} must give every row one of {names}")
        codes = pd.Categorical(classes, categories=names).codes
        exact = np.bincount(codes, minlength=len(names)).astype(np.int64)
        noisy = noise.discrete_gaussian(exact, sigma)
        return {n: int(v) for n, v in zip(names, noisy, strict=True)}

    def frequent_values(self, column: str, *, sigma: float, delta: float, label: str,
                        canonical: Callable[[pd.Series], pd.Series] | None = None) -> dict[str, int]:
        """The column's values held by many units, with noisy counts (nulls are not values).

        The threshold is the smallest at which OpenDP's privacy map of the thresholded
        histogram stays within ``delta``; the event charged is OpenDP's (rho, delta).

        Args:
            column: The column.
            sigma: Discrete Gaussian scale of the counts.
            delta: The delta this step may use.
            label: Ledger label.
            canonical: A public rule mapping each value to its canonical spelling first.
        """
        threshold = noise.threshold_for(sigma, delta, self._bound)
        rho, used = noise.threshold_cost(sigma, threshold, self._bound)
        self._accountant.charge(ApproxZCDPEvent(rho, used, label=label))
        values = self._column(column).dropna()
        if canonical is not None:
            values = pd.Series(canonical(values)).dropna()
        counts = values.astype(str).value_counts()
        return noise.gaussian_threshold({str(k): int(v) for k, v in counts.items()}, sigma, threshold)

    def histogram(self, column: str, cells: CellMap, n_cells: int, *, sigma: float,
                  label: str) -> npt.NDArray[np.int64]:
        """Noisy counts of the column's values over ``n_cells`` public cells.

        Args:
            column: The column.
            cells: A public rule giving each value its cell in ``[0, n_cells)``, or -1 for none.
            n_cells: The number of cells.
            sigma: Discrete Gaussian scale per cell.
            label: Ledger label.
        """
        if not (isinstance(n_cells, int) and n_cells >= 1):
            raise ConfigError(f"n_cells ({n_cells!r}) must be an integer >= 1")
        self._accountant.charge(GaussianEvent(sigma=sigma, sensitivity=float(self._bound), label=label))
        idx = np.asarray(cells(self._column(column)), dtype=np.int64)
        if idx.shape != (len(self._frame),) or bool(((idx < -1) | (idx >= n_cells)).any()):
            raise ConfigError(f"the cell map of {column!r} must give every row a cell in [-1, {n_cells})")
        exact = np.bincount(idx[idx >= 0], minlength=n_cells).astype(np.int64)
        return noise.discrete_gaussian(exact, sigma)


def threshold_rows(sigma: float, delta: float, bound: int) -> int:
    """How many rows a value needs before :meth:`PrivateFrame.frequent_values` may release it
    (the threshold OpenDP's map gives for ``sigma`` and ``delta``): public, for previews."""
    return noise.threshold_for(sigma, delta, bound)
